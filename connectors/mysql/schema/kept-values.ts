/**
 * Whether an ALTER TABLE that changes a column's definition (MODIFY, CHANGE, CONVERT TO CHARACTER SET) keeps the
 * values the rows already hold. The server converts every row in place and logs no row event for it: a narrower
 * DECIMAL scale or DATETIME precision rounds, a shorter VARCHAR or smaller integer (without strict mode) cuts or
 * clamps, an ENUM without a member empties it, a charset without a character puts '?' in its place, a TIMESTAMP made
 * a DATETIME takes the session's time zone. Rows not changed since then keep their old values in the targets unless
 * the table is read again. Only changes known to keep every value count as keeping; anything else reads again.
 */
import { knownMaxBytesPerChar } from "../values/charsets.ts";
import type { ColumnDefinition } from "./table-definition.ts";

/** Whether every value `before` can hold reads the same (as Sluice delivers it) after the column became `after`. */
export function keepsValues(before: ColumnDefinition, after: ColumnDefinition): boolean {
  if (before.nullable && !after.nullable) return false; // NULLs become 0 or '' without strict mode
  if (!charsetKeeps(before.charset, after.charset)) return false;
  if (before.dbType === after.dbType) return true;
  return typeKeeps(before.dbType, after.dbType, before.charset, after.charset);
}

/** Charsets every character of the others fits in. */
const UNICODE = new Set(["utf8mb4", "utf16", "utf16le", "utf32"]);
/** Charsets whose characters all fit utf8mb3 (the Basic Multilingual Plane). */
const BMP = new Set(["ascii", "latin1", "utf8mb3", "utf8", "ucs2"]);

function charsetKeeps(from: string | null, to: string | null): boolean {
  if (from === to || from === null) return true;
  if (to === null || from === "binary" || to === "binary") return false;
  // ASCII fits every charset Sluice knows but swe7 (7-bit Swedish: its letters take the places of @ [ ] { } and others).
  return UNICODE.has(to) || ((to === "utf8mb3" || to === "utf8") && BMP.has(from)) || (from === "ascii" && to !== "swe7" && knownMaxBytesPerChar(to) !== undefined);
}

const INTEGER_BITS: Readonly<Record<string, number>> = { tinyint: 8, smallint: 16, mediumint: 24, int: 32, bigint: 64 };

interface IntegerType {
  readonly bits: number;
  readonly unsigned: boolean;
}

function integerType(dbType: string): IntegerType | null {
  const match = /^(tinyint|smallint|mediumint|int|bigint)( unsigned)?$/.exec(dbType);
  return match === null ? null : { bits: INTEGER_BITS[match[1]!]!, unsigned: match[2] !== undefined };
}

function decimalType(dbType: string): { whole: number; scale: number } | null {
  const match = /^decimal\((\d+),(\d+)\)( unsigned)?$/.exec(dbType);
  return match === null ? null : { whole: Number(match[1]) - Number(match[2]), scale: Number(match[2]) };
}

/** Characters (char/varchar, counted in the column's charset) or bytes (text/blob types) a string type holds. */
function stringType(dbType: string, charset: string | null): { family: "text" | "binary"; fixed: boolean; capacity: number; bytes: boolean } | null {
  const sized = /^(char|varchar|binary|varbinary)\((\d+)\)$/.exec(dbType);
  if (sized !== null) {
    const binary = sized[1] === "binary" || sized[1] === "varbinary";
    return { family: binary ? "binary" : "text", fixed: sized[1] === "char" || sized[1] === "binary", capacity: Number(sized[2]), bytes: binary };
  }
  const lob = /^(tiny|medium|long)?(text|blob)$/.exec(dbType);
  if (lob === null) return null;
  const capacity = { tiny: 255, "": 65_535, medium: 16_777_215, long: 4_294_967_295 }[lob[1] ?? ""]!;
  return { family: lob[2] === "blob" || charset === "binary" ? "binary" : "text", fixed: false, capacity, bytes: true };
}

/** The widest character of a column's charset; for a charset Sluice does not know, the widest any has (4 bytes). */
function maxBytesPerChar(charset: string | null): number {
  return (charset === null ? undefined : knownMaxBytesPerChar(charset)) ?? 4;
}

function typeKeeps(from: string, to: string, fromCharset: string | null, toCharset: string | null): boolean {
  const fromInteger = integerType(from);
  if (fromInteger !== null) {
    const toInteger = integerType(to);
    if (toInteger !== null) {
      if (fromInteger.unsigned && !toInteger.unsigned) return toInteger.bits > fromInteger.bits;
      return fromInteger.unsigned === toInteger.unsigned && toInteger.bits >= fromInteger.bits;
    }
    return false; // to DECIMAL: Sluice delivers a decimal as text, an integer as a number
  }
  const fromDecimal = decimalType(from);
  if (fromDecimal !== null) {
    const toDecimal = decimalType(to);
    // Unsigned to signed or wider keeps; signed to unsigned clamps negatives.
    return toDecimal !== null && toDecimal.scale >= fromDecimal.scale && toDecimal.whole >= fromDecimal.whole && (!to.endsWith(" unsigned") || from.endsWith(" unsigned"));
  }
  const temporal = /^(datetime|timestamp|time)(?:\((\d)\))?$/;
  const fromTemporal = temporal.exec(from);
  if (fromTemporal !== null) {
    const toTemporal = temporal.exec(to);
    return toTemporal !== null && toTemporal[1] === fromTemporal[1] && Number(toTemporal[2] ?? 0) >= Number(fromTemporal[2] ?? 0);
  }
  const members = /^(enum|set)\((.*)\)$/s;
  const fromMembers = members.exec(from);
  if (fromMembers !== null) {
    const toMembers = members.exec(to);
    if (toMembers === null || toMembers[1] !== fromMembers[1]) return false;
    // ENUM values are kept by text wherever their member moved; a SET value prints its members in the list's order.
    const before = fromMembers[2]!;
    const after = toMembers[2]!;
    return fromMembers[1] === "set" ? after.startsWith(before) && (after.length === before.length || after[before.length] === ",") : enumKeeps(splitMembers(before), splitMembers(after));
  }
  const fromString = stringType(from, fromCharset);
  const toString = stringType(to, toCharset);
  if (fromString === null || toString === null || fromString.family !== toString.family) return false;
  if (fromString.fixed !== toString.fixed && !(fromString.family === "text" && fromString.fixed)) return false; // padding added or lost (CHAR to VARCHAR reads the same)
  if (fromString.family === "binary") return toString.capacity >= fromString.capacity;
  // Text: counted in characters; a byte-sized type holds at least its bytes over the charset's widest character.
  const fromChars = fromString.capacity;
  const toChars = toString.bytes ? Math.floor(toString.capacity / maxBytesPerChar(toCharset)) : toString.capacity;
  return toChars >= fromChars;
}

/** Every member kept, wherever it moved; a list not read as quoted members reads again. */
function enumKeeps(before: readonly string[], after: readonly string[]): boolean {
  return before.length > 0 && before.every((member) => after.includes(member));
}

/** The quoted members of an ENUM/SET type's list, as written. */
function splitMembers(list: string): string[] {
  return list.match(/'(?:[^']|'')*'/g) ?? [];
}
