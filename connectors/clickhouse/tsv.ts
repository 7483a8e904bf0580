/**
 * ClickHouse's TabSeparated format, byte for byte, for Sluice's bookkeeping tables (catalog.ts:
 * strings and integers, exact as text) and for reading results in tools and tests; table rows go
 * in as RowBinary (rowbinary.ts). The same escapes serve SQL string literals.
 */

const BACKSLASH = 0x5c;
const ESCAPES = new Map<number, number>([
  [0x08, 0x62], // \b
  [0x0c, 0x66], // \f
  [0x0d, 0x72], // \r
  [0x0a, 0x6e], // \n
  [0x09, 0x74], // \t
  [0x00, 0x30], // \0
  [0x27, 0x27], // \'
  [BACKSLASH, BACKSLASH],
]);

/** Backslash-escapes the bytes ClickHouse escapes in TSV. */
export function escapeBytes(bytes: Uint8Array): Buffer {
  let extra = 0;
  for (const byte of bytes) if (ESCAPES.has(byte)) extra++;
  const source = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (extra === 0) return source;
  const out = Buffer.allocUnsafe(bytes.length + extra);
  let j = 0;
  for (const byte of bytes) {
    const escaped = ESCAPES.get(byte);
    if (escaped === undefined) out[j++] = byte;
    else {
      out[j++] = BACKSLASH;
      out[j++] = escaped;
    }
  }
  return out;
}

export function escapeText(text: string): Buffer {
  return escapeBytes(Buffer.from(text, "utf8"));
}

/** A SQL string literal that is plain ASCII whatever the bytes (non-printable and non-ASCII bytes as \xHH). */
export function sqlString(bytes: Uint8Array | string): string {
  const data = typeof bytes === "string" ? Buffer.from(bytes, "utf8") : bytes;
  let out = "'";
  for (const byte of data) {
    if (byte === 0x27 || byte === BACKSLASH) out += `\\${String.fromCharCode(byte)}`;
    else if (byte >= 0x20 && byte < 0x7f) out += String.fromCharCode(byte);
    else out += `\\x${byte.toString(16).padStart(2, "0")}`;
  }
  return `${out}'`;
}

const TAB = Buffer.from("\t");
const NEWLINE = Buffer.from("\n");

/** One TSV line from its (already escaped) fields. */
export function tsvLine(fields: readonly Buffer[]): Buffer {
  const parts: Buffer[] = [];
  fields.forEach((field, i) => {
    if (i > 0) parts.push(TAB);
    parts.push(field);
  });
  parts.push(NEWLINE);
  return Buffer.concat(parts);
}

/** Splits TSV output into rows of raw (still escaped) fields. Tabs and newlines inside values are always escaped, so splitting on them is exact. */
export function parseTsv(data: Buffer): Buffer[][] {
  const rows: Buffer[][] = [];
  let start = 0;
  while (start < data.length) {
    let end = data.indexOf(0x0a, start);
    if (end < 0) end = data.length;
    const line = data.subarray(start, end);
    const fields: Buffer[] = [];
    let fieldStart = 0;
    for (;;) {
      const tab = line.indexOf(0x09, fieldStart);
      if (tab < 0) {
        fields.push(line.subarray(fieldStart));
        break;
      }
      fields.push(line.subarray(fieldStart, tab));
      fieldStart = tab + 1;
    }
    rows.push(fields);
    start = end + 1;
  }
  return rows;
}

/** Reverses TSV escaping (for reading values in tests and tools). */
export function unescapeField(field: Buffer): Buffer {
  if (field.indexOf(BACKSLASH) < 0) return field;
  const out: number[] = [];
  const reverse = new Map([...ESCAPES].map(([raw, letter]) => [letter, raw]));
  for (let i = 0; i < field.length; i++) {
    const byte = field[i] as number;
    if (byte === BACKSLASH && i + 1 < field.length) {
      const next = field[++i] as number;
      out.push(reverse.get(next) ?? next);
    } else out.push(byte);
  }
  return Buffer.from(out);
}
