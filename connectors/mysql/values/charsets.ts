/**
 * Character sets: which charset a collation id belongs to, how many bytes a character takes at
 * most (to turn a column's byte length back into its declared length), and how to decode its
 * bytes to text. The server's own collation table (information_schema.COLLATIONS) is loaded when
 * connected; decoding a binlog file offline uses mysql2's table of the well-known ids.
 */
import mysql from "mysql2";

export interface Charset {
  /** MySQL's name: "utf8mb4", "latin1", "binary"... */
  readonly name: string;
  readonly maxBytesPerChar: number;
  readonly binary: boolean;
  /** Text of `bytes[start, end)`; throws for a charset Sluice cannot decode. */
  decode(bytes: Buffer, start: number, end: number): string;
}

const MAX_BYTES: Readonly<Record<string, number>> = {
  utf8mb4: 4,
  utf8mb3: 3,
  utf8: 3,
  ucs2: 2,
  utf16: 4,
  utf16le: 4,
  utf32: 4,
  big5: 2,
  gbk: 2,
  gb2312: 2,
  gb18030: 4,
  sjis: 2,
  cp932: 2,
  ujis: 3,
  eucjpms: 3,
  euckr: 2,
};

/** WHATWG encoding labels (TextDecoder) per MySQL charset. MySQL's latin1 is Windows-1252. */
const DECODER_LABELS: Readonly<Record<string, string>> = {
  latin1: "windows-1252",
  ascii: "windows-1252",
  ucs2: "utf-16be",
  utf16: "utf-16be",
  utf16le: "utf-16le",
  big5: "big5",
  gbk: "gbk",
  gb2312: "gbk",
  gb18030: "gb18030",
  sjis: "shift_jis",
  cp932: "shift_jis",
  ujis: "euc-jp",
  eucjpms: "euc-jp",
  euckr: "euc-kr",
  cp1250: "windows-1250",
  cp1251: "windows-1251",
  cp1256: "windows-1256",
  cp1257: "windows-1257",
  latin2: "iso-8859-2",
  latin5: "windows-1254",
  latin7: "iso-8859-13",
  greek: "iso-8859-7",
  hebrew: "iso-8859-8",
  koi8r: "koi8-r",
  koi8u: "koi8-u",
  tis620: "windows-874",
  cp866: "ibm866",
  macroman: "macintosh",
};

/** The single-byte charsets of MySQL and MariaDB (information_schema.CHARACTER_SETS, MAXLEN 1). */
const SINGLE_BYTE = new Set([
  "armscii8", "ascii", "binary", "cp1250", "cp1251", "cp1256", "cp1257", "cp850", "cp852", "cp866", "dec8", "geostd8", "greek",
  "hebrew", "hp8", "keybcs2", "koi8r", "koi8u", "latin1", "latin2", "latin5", "latin7", "macce", "macroman", "swe7", "tis620",
]);

/** The most bytes a character of `name` takes, or undefined for a charset Sluice does not know. */
export function knownMaxBytesPerChar(name: string): number | undefined {
  const key = name.toLowerCase();
  return MAX_BYTES[key] ?? (SINGLE_BYTE.has(key) ? 1 : undefined);
}

const UTF8_NAMES = new Set(["utf8mb4", "utf8mb3", "utf8"]);

function decodeUtf32(bytes: Buffer, start: number, end: number): string {
  let text = "";
  for (let i = start; i + 4 <= end; i += 4) text += String.fromCodePoint(bytes.readUInt32BE(i));
  return text;
}

const charsets = new Map<string, Charset>();

export function charsetNamed(name: string): Charset {
  const key = name.toLowerCase();
  let charset = charsets.get(key);
  if (charset !== undefined) return charset;
  const maxBytesPerChar = knownMaxBytesPerChar(key) ?? 1;
  let decode: Charset["decode"];
  if (UTF8_NAMES.has(key)) decode = (bytes, start, end) => bytes.toString("utf8", start, end);
  else if (key === "binary") decode = (bytes, start, end) => bytes.toString("latin1", start, end);
  else if (key === "utf32") decode = decodeUtf32;
  else {
    const label = DECODER_LABELS[key];
    const decoder = label === undefined ? null : new TextDecoder(label);
    decode = (bytes, start, end) => {
      if (decoder === null) throw new RangeError(`character set ${key} is not supported; convert the column to utf8mb4`);
      return decoder.decode(bytes.subarray(start, end));
    };
  }
  charset = { name: key, maxBytesPerChar, binary: key === "binary", decode };
  charsets.set(key, charset);
  return charset;
}

/** mysql2's encoding names back to MySQL charset names. */
const FROM_MYSQL2: Readonly<Record<string, string>> = {
  utf8: "utf8mb4",
  cesu8: "utf8mb3",
  "utf16-le": "utf16le",
  macintosh: "macroman",
};

export class CollationTable {
  private readonly charsetById: Map<number, string>;

  private constructor(charsetById: Map<number, string>) {
    this.charsetById = charsetById;
  }

  /** The well-known collation ids (from mysql2), for decoding without a server. */
  static builtIn(): CollationTable {
    const byId = new Map<number, string>();
    mysql.CharsetToEncoding.forEach((encoding, id) => {
      if (typeof encoding === "string") byId.set(id, FROM_MYSQL2[encoding] ?? encoding);
    });
    return new CollationTable(byId);
  }

  /** The server's table, from `SELECT ID, CHARACTER_SET_NAME FROM information_schema.COLLATIONS`, over the built-in one. */
  static fromServer(rows: readonly { id: number; charset: string }[]): CollationTable {
    const table = CollationTable.builtIn();
    for (const row of rows) table.charsetById.set(row.id, row.charset.toLowerCase());
    return table;
  }

  charset(collationId: number): Charset {
    const name = this.charsetById.get(collationId);
    if (name === undefined) throw new RangeError(`unknown collation id ${collationId}`);
    return charsetNamed(name);
  }

  has(collationId: number): boolean {
    return this.charsetById.has(collationId);
  }
}
