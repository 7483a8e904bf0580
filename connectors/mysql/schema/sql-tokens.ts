/**
 * A tokenizer for the DDL statements the binlog carries: identifiers (bare or `quoted`), strings,
 * numbers and punctuation, with comments removed and MySQL's executable comments (`/*!50100 ... *\/`)
 * unwrapped.
 */

export type Token =
  | { readonly kind: "word"; readonly text: string; readonly quoted: boolean }
  | { readonly kind: "string"; readonly text: string }
  | { readonly kind: "number"; readonly text: string }
  | { readonly kind: "punct"; readonly text: string };

export function tokenize(sql: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  const n = sql.length;
  while (i < n) {
    const char = sql[i]!;
    if (/\s/.test(char)) {
      i++;
    } else if (char === "/" && sql[i + 1] === "*") {
      if (sql[i + 2] === "!") {
        // Executable comment: keep its content (after the optional version number).
        i += 3;
        while (i < n && /\d/.test(sql[i]!)) i++;
        continue;
      }
      const end = sql.indexOf("*/", i + 2);
      i = end < 0 ? n : end + 2;
    } else if (char === "*" && sql[i + 1] === "/") {
      i += 2; // end of an executable comment
    } else if ((char === "-" && sql[i + 1] === "-" && (i + 2 >= n || /\s/.test(sql[i + 2]!))) || char === "#") {
      const end = sql.indexOf("\n", i);
      i = end < 0 ? n : end + 1;
    } else if (char === "`" || char === '"') {
      let text = "";
      let j = i + 1;
      for (; j < n; j++) {
        if (sql[j] === char) {
          if (sql[j + 1] === char) {
            text += char;
            j++;
            continue;
          }
          break;
        }
        text += sql[j];
      }
      tokens.push({ kind: "word", text, quoted: true });
      i = j + 1;
    } else if (char === "'") {
      let text = "";
      let j = i + 1;
      for (; j < n; j++) {
        const c = sql[j]!;
        if (c === "\\" && j + 1 < n) {
          text += unescape(sql[++j]!);
          continue;
        }
        if (c === "'") {
          if (sql[j + 1] === "'") {
            text += "'";
            j++;
            continue;
          }
          break;
        }
        text += c;
      }
      tokens.push({ kind: "string", text });
      i = j + 1;
    } else if (/[0-9]/.test(char) || (char === "." && /[0-9]/.test(sql[i + 1] ?? ""))) {
      let j = i;
      while (j < n && /[0-9.eE]/.test(sql[j]!)) j++;
      if (/[a-zA-Z_$]/.test(sql[j] ?? "")) {
        while (j < n && /[a-zA-Z0-9_$]/.test(sql[j]!)) j++;
        tokens.push({ kind: "word", text: sql.slice(i, j), quoted: false });
      } else tokens.push({ kind: "number", text: sql.slice(i, j) });
      i = j;
    } else if (/[a-zA-Z_$\u0080-\uffff]/.test(char)) {
      let j = i;
      while (j < n && /[a-zA-Z0-9_$\u0080-\uffff]/.test(sql[j]!)) j++;
      tokens.push({ kind: "word", text: sql.slice(i, j), quoted: false });
      i = j;
    } else {
      tokens.push({ kind: "punct", text: char });
      i++;
    }
  }
  return tokens;
}

function unescape(char: string): string {
  switch (char) {
    case "n":
      return "\n";
    case "t":
      return "\t";
    case "r":
      return "\r";
    case "0":
      return "\0";
    case "Z":
      return "\x1a";
    case "b":
      return "\b";
    default:
      return char;
  }
}

/** A cursor over tokens with keyword helpers (keywords match bare words, case-insensitively). */
export class TokenCursor {
  private readonly tokens: Token[];
  pos = 0;

  constructor(tokens: Token[]) {
    this.tokens = tokens;
  }

  get done(): boolean {
    return this.pos >= this.tokens.length;
  }

  peek(offset = 0): Token | undefined {
    return this.tokens[this.pos + offset];
  }

  next(): Token | undefined {
    return this.tokens[this.pos++];
  }

  isKeyword(word: string, offset = 0): boolean {
    const token = this.peek(offset);
    return token?.kind === "word" && !token.quoted && token.text.toUpperCase() === word;
  }

  /** Consumes the keywords if they all follow. */
  accept(...words: string[]): boolean {
    if (!words.every((word, i) => this.isKeyword(word, i))) return false;
    this.pos += words.length;
    return true;
  }

  acceptPunct(text: string): boolean {
    const token = this.peek();
    if (token?.kind !== "punct" || token.text !== text) return false;
    this.pos++;
    return true;
  }

  isPunct(text: string, offset = 0): boolean {
    const token = this.peek(offset);
    return token?.kind === "punct" && token.text === text;
  }

  expectPunct(text: string): void {
    if (!this.acceptPunct(text)) throw new SyntaxError(`expected "${text}" at ${this.describe()}`);
  }

  /** An identifier: a quoted or bare word. */
  identifier(): string {
    const token = this.next();
    if (token?.kind !== "word") throw new SyntaxError(`expected a name at ${this.describe(-1)}`);
    return token.text;
  }

  /** `name` or `db`.`name`. */
  qualifiedName(defaultDatabase: string): { database: string; table: string } {
    const first = this.identifier();
    if (this.acceptPunct(".")) return { database: first, table: this.identifier() };
    return { database: defaultDatabase, table: first };
  }

  /** Skips tokens up to (not including) a comma or closing parenthesis at depth 0, or the end. */
  skipToListEnd(): void {
    let depth = 0;
    while (!this.done) {
      if (this.isPunct("(")) depth++;
      else if (this.isPunct(")")) {
        if (depth === 0) return;
        depth--;
      } else if (this.isPunct(",") && depth === 0) return;
      this.pos++;
    }
  }

  /** The tokens of a parenthesised group, which is consumed. */
  parenthesised(): Token[] {
    this.expectPunct("(");
    const start = this.pos;
    let depth = 0;
    while (!this.done) {
      if (this.isPunct("(")) depth++;
      else if (this.isPunct(")")) {
        if (depth === 0) break;
        depth--;
      }
      this.pos++;
    }
    const inner = this.tokens.slice(start, this.pos);
    this.expectPunct(")");
    return inner;
  }

  describe(offset = 0): string {
    const token = this.peek(offset);
    return token === undefined ? "the end" : `"${token.text}"`;
  }
}
