/**
 * PostgreSQL's array text format ("{1,2,NULL}", '{"a b","c\\"d"}', "{{1,2},{3,4}}",
 * "[0:1]={7,8}") parsed into nested arrays of element texts; NULL elements become null.
 */
export type ArrayText = readonly (string | null | ArrayText)[];

export function parseArrayLiteral(text: string, delimiter = ","): ArrayText {
  let position = 0;
  if (text.startsWith("[")) {
    // Dimension decoration for lower bounds other than 1: the values alone are what we keep.
    const equals = text.indexOf("=");
    if (equals < 0) throw new TypeError(`bad array literal "${text}"`);
    position = equals + 1;
  }

  const fail = (why: string): never => {
    throw new TypeError(`bad array literal at ${position} (${why}): "${text}"`);
  };
  const skipSpace = () => {
    while (position < text.length && isSpace(text.charCodeAt(position))) position++;
  };

  const parseList = (): ArrayText => {
    if (text[position] !== "{") fail("expected {");
    position++;
    const items: (string | null | ArrayText)[] = [];
    skipSpace();
    if (text[position] === "}") {
      position++;
      return items;
    }
    for (;;) {
      skipSpace();
      const ch = text[position];
      if (ch === "{") items.push(parseList());
      else if (ch === '"') items.push(parseQuoted());
      else items.push(parseUnquoted());
      skipSpace();
      const next = text[position];
      position++;
      if (next === "}") return items;
      if (next !== delimiter) fail(`expected "${delimiter}" or }`);
    }
  };

  const parseQuoted = (): string => {
    position++;
    let value = "";
    let start = position;
    for (;;) {
      if (position >= text.length) fail("unterminated quoted element");
      const ch = text[position];
      if (ch === '"') break;
      if (ch === "\\") {
        value += text.slice(start, position);
        position++;
        start = position;
      }
      position++;
    }
    value += text.slice(start, position);
    position++;
    return value;
  };

  const parseUnquoted = (): string | null => {
    let value = "";
    let escaped = false;
    let trailingSpace = 0;
    while (position < text.length) {
      const ch = text[position]!;
      if (ch === delimiter || ch === "}") break;
      if (ch === "{" || ch === '"') fail(`unexpected ${ch}`);
      if (ch === "\\") {
        position++;
        if (position >= text.length) fail("dangling backslash");
        value += text[position];
        escaped = true;
        trailingSpace = 0;
      } else {
        value += ch;
        trailingSpace = isSpace(ch.charCodeAt(0)) ? trailingSpace + 1 : 0;
      }
      position++;
    }
    if (trailingSpace > 0) value = value.slice(0, value.length - trailingSpace);
    if (value === "" && !escaped) fail("empty element");
    if (!escaped && value.length === 4 && value.toUpperCase() === "NULL") return null;
    return value;
  };

  const result = parseList();
  skipSpace();
  if (position !== text.length) fail("text after the closing }");
  return result;
}

function isSpace(code: number): boolean {
  return code === 0x20 || code === 0x09 || code === 0x0a || code === 0x0d || code === 0x0b || code === 0x0c;
}
