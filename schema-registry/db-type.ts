/**
 * Splits a database type as sources report it ("numeric(10,2)", "timestamp(3) with time zone",
 * "_int4", "integer[]", "int(10) unsigned zerofill", "enum('a','b')") into its parts.
 */

export interface DbType {
  /** Lower-case name without modifiers, schema qualifier, array marker or sign words: "timestamp with time zone". */
  readonly name: string;
  /** Arguments of the modifier in parentheses, unquoted: ["10", "2"], ["a", "b"]. */
  readonly args: readonly string[];
  /** PostgreSQL array ("_int4", "integer[]"); `name` is then the element type. */
  readonly isArray: boolean;
  /** MySQL UNSIGNED. */
  readonly unsigned: boolean;
}

export function parseDbType(dbType: string, options: { postgresArrays: boolean }): DbType {
  const { outside, inside } = splitModifier(dbType.trim());
  let words = outside.toLowerCase().replace(/\s+/g, " ").trim();
  let isArray = false;
  if (options.postgresArrays) {
    if (/(\s*\[\d*\])+$/.test(words)) {
      isArray = true;
      words = words.replace(/(\s*\[\d*\])+$/, "").trim();
    } else if (words.startsWith("_")) {
      isArray = true;
      words = words.slice(1);
    }
  }
  const unsigned = /\bunsigned\b/.test(words);
  words = words.replace(/\b(unsigned|signed|zerofill)\b/g, "").replace(/\s+/g, " ").trim();
  words = words.replace(/"/g, "");
  const qualified = /^[a-z_][a-z0-9_$]*\.(.+)$/.exec(words);
  if (qualified && !words.includes(" ")) words = qualified[1] as string;
  return { name: words, args: inside === null ? [] : splitArgs(inside), isArray, unsigned };
}

/** Separates the first parenthesised modifier, respecting quoted strings inside it. */
function splitModifier(text: string): { outside: string; inside: string | null } {
  const open = text.indexOf("(");
  if (open < 0) return { outside: text, inside: null };
  let quoted = false;
  for (let i = open + 1; i < text.length; i++) {
    const char = text[i];
    if (char === "'") quoted = !quoted;
    else if (char === ")" && !quoted) {
      return { outside: `${text.slice(0, open)} ${text.slice(i + 1)}`, inside: text.slice(open + 1, i) };
    }
  }
  return { outside: text, inside: null };
}

function splitArgs(inside: string): string[] {
  const args: string[] = [];
  let current = "";
  let quoted = false;
  let wasQuoted = false;
  for (let i = 0; i < inside.length; i++) {
    const char = inside[i] as string;
    if (char === "'") {
      if (quoted && inside[i + 1] === "'") {
        current += "'";
        i++;
      } else {
        quoted = !quoted;
        wasQuoted = true;
      }
    } else if (char === "," && !quoted) {
      args.push(wasQuoted ? current : current.trim());
      current = "";
      wasQuoted = false;
    } else if (quoted || char !== " " || current !== "") {
      current += char;
    }
  }
  args.push(wasQuoted ? current : current.trim());
  return args;
}
