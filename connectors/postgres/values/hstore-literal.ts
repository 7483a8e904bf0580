/**
 * The text form of the hstore extension ('"a"=>"1", "b"=>NULL') as a JSON object text
 * ('{"a":"1","b":null}'): ColumnValue has no map, and JSON keeps every key and NULL exactly.
 */
export function hstoreToJson(text: string): string {
  let position = 0;
  const entries: string[] = [];
  const fail = (why: string): never => {
    throw new TypeError(`bad hstore at ${position} (${why}): "${text}"`);
  };
  const skipSpace = () => {
    while (position < text.length && /\s/.test(text[position]!)) position++;
  };
  const quoted = (): string => {
    if (text[position] !== '"') fail('expected "');
    position++;
    let value = "";
    for (;;) {
      if (position >= text.length) fail("unterminated string");
      const ch = text[position]!;
      if (ch === '"') break;
      if (ch === "\\") {
        position++;
        if (position >= text.length) fail("dangling backslash");
      }
      value += text[position];
      position++;
    }
    position++;
    return value;
  };

  skipSpace();
  while (position < text.length) {
    const key = quoted();
    skipSpace();
    if (text.slice(position, position + 2) !== "=>") fail("expected =>");
    position += 2;
    skipSpace();
    let value: string | null;
    if (text.startsWith("NULL", position)) {
      value = null;
      position += 4;
    } else {
      value = quoted();
    }
    entries.push(`${JSON.stringify(key)}:${JSON.stringify(value)}`);
    skipSpace();
    if (position < text.length) {
      if (text[position] !== ",") fail("expected ,");
      position++;
      skipSpace();
    }
  }
  return `{${entries.join(",")}}`;
}
