/** PostgreSQL hstore text (`"a"=>"1", "b"=>NULL`) to a map and back. */

export type HstoreMap = Record<string, string | null>;

export function parseHstore(text: string): HstoreMap {
  const map: HstoreMap = {};
  let pos = 0;
  const skipSpaces = (): void => {
    while (pos < text.length && /\s/.test(text[pos] as string)) pos++;
  };
  const readToken = (): { text: string; quoted: boolean } => {
    skipSpaces();
    if (text[pos] === '"') {
      let value = "";
      pos++;
      while (pos < text.length && text[pos] !== '"') {
        if (text[pos] === "\\") pos++;
        value += text[pos] ?? "";
        pos++;
      }
      if (text[pos] !== '"') throw new SyntaxError(`unterminated quoted string in hstore ${JSON.stringify(text)}`);
      pos++;
      return { text: value, quoted: true };
    }
    const start = pos;
    while (pos < text.length && !/[\s,=]/.test(text[pos] as string)) pos++;
    if (start === pos) throw new SyntaxError(`expected a key or value at offset ${pos} in hstore ${JSON.stringify(text)}`);
    return { text: text.slice(start, pos), quoted: false };
  };
  skipSpaces();
  while (pos < text.length) {
    const key = readToken();
    skipSpaces();
    if (text.slice(pos, pos + 2) !== "=>") throw new SyntaxError(`expected "=>" at offset ${pos} in hstore ${JSON.stringify(text)}`);
    pos += 2;
    const value = readToken();
    map[key.text] = !value.quoted && value.text.toUpperCase() === "NULL" ? null : value.text;
    skipSpaces();
    if (pos < text.length) {
      if (text[pos] !== ",") throw new SyntaxError(`expected "," at offset ${pos} in hstore ${JSON.stringify(text)}`);
      pos++;
      skipSpaces();
    }
  }
  return map;
}

export function formatHstore(map: Readonly<HstoreMap>): string {
  const quote = (value: string): string => `"${value.replace(/["\\]/g, "\\$&")}"`;
  return Object.entries(map)
    .map(([key, value]) => `${quote(key)}=>${value === null ? "NULL" : quote(value)}`)
    .join(", ");
}
