/**
 * Text-format decoders for PostgreSQL's built-in scalar types, keyed by their fixed type OIDs.
 * Each returns the exact ColumnValue documented in connectors/contracts.ts and docs/postgres.md.
 * The connection settings in ../connection-settings.ts fix the text forms these expect
 * (DateStyle ISO, IntervalStyle iso_8601, TimeZone UTC, bytea_output hex, lc_monetary C).
 */
import type { ColumnValue } from "../../contracts.ts";
import { decodeDate, decodeTime, decodeTimeTz, decodeTimestamp, decodeTimestampTz } from "./civil-time.ts";

export type TextDecoder = (text: string) => ColumnValue;

export const asText: TextDecoder = (text) => text;

const asNumber: TextDecoder = (text) => {
  const value = Number(text);
  if (Number.isNaN(value) && text !== "NaN") throw new TypeError(`cannot decode number "${text}"`);
  return value;
};

/** float4: the exact single-precision value (its shortest text read as a double, rounded back to float). */
const asFloat4: TextDecoder = (text) => Math.fround(asNumber(text) as number);

const asBigint: TextDecoder = (text) => BigInt(text);

const asBoolean: TextDecoder = (text) => {
  if (text === "t") return true;
  if (text === "f") return false;
  throw new TypeError(`cannot decode boolean "${text}"`);
};

/** numeric: the exact digits as PostgreSQL prints them ("-12.3400", "NaN", "Infinity"). */
const asNumeric: TextDecoder = (text) => {
  if (!/^(?:-?\d+(?:\.\d+)?|NaN|-?Infinity)$/.test(text)) throw new TypeError(`cannot decode numeric "${text}"`);
  return text;
};

/** money (lc_monetary C: "-$1,234.56"): the plain decimal "-1234.56". */
export const decodeMoney: TextDecoder = (text) => {
  const negative = text.startsWith("-") || (text.startsWith("(") && text.endsWith(")"));
  const digits = text.replace(/[^0-9.]/g, "");
  if (!/^\d+(\.\d+)?$/.test(digits)) throw new TypeError(`cannot decode money "${text}"`);
  return negative ? `-${digits}` : digits;
};

/** Buffers below this size may be slices of Buffer's shared pool (Buffer.poolSize / 2). */
const SHARED_POOL_BELOW = Buffer.poolSize >>> 1;

/** bytea, hex format ("\x0aff") or, should a server force it, escape format ("a\\000b"). */
export const decodeBytea: TextDecoder = (text) => {
  if (text.startsWith("\\x")) {
    // Buffer's decoder stops at the first pair that is not hex: fewer bytes than pairs means invalid text. (A
    // regular expression over the text overflowed the stack on a value of some MiB.)
    const bytes = Buffer.from(text.slice(2), "hex");
    if (bytes.length * 2 !== text.length - 2) throw new TypeError(`cannot decode bytea "${text.slice(0, 40)}"`);
    // A small value is copied out of Buffer's shared pool; a large one has its memory to itself and is not copied again.
    return bytes.length < SHARED_POOL_BELOW ? new Uint8Array(bytes) : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
  }
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code !== 0x5c) {
      bytes.push(code);
    } else if (text[i + 1] === "\\") {
      bytes.push(0x5c);
      i++;
    } else {
      bytes.push(parseInt(text.slice(i + 1, i + 4), 8));
      i += 3;
    }
  }
  return new Uint8Array(bytes);
};

/** Built-in scalar types whose OIDs are fixed in every PostgreSQL (pg_type.dat). */
export const BUILTIN_SCALAR_DECODERS: ReadonlyMap<number, TextDecoder> = new Map<number, TextDecoder>([
  [16, asBoolean], // bool
  [17, decodeBytea], // bytea
  [20, asBigint], // int8
  [21, asNumber], // int2
  [23, asNumber], // int4
  [26, asNumber], // oid
  [700, asFloat4], // float4
  [701, asNumber], // float8 (NaN, Infinity, -Infinity included)
  [790, decodeMoney], // money
  [1082, decodeDate], // date
  [1083, decodeTime], // time
  [1114, decodeTimestamp], // timestamp
  [1184, decodeTimestampTz], // timestamptz
  [1266, decodeTimeTz], // timetz
  [1700, asNumeric], // numeric
]);

/** What a ByteDecoder gives for a text it does not read: the caller makes the string and uses the type's TextDecoder. */
export const NOT_DECODED: unique symbol = Symbol("not decoded");

/**
 * A column's value read straight from its text's bytes (`bytes` from `start` to `end`), with no string made: exactly
 * what the type's TextDecoder gives for that text, or NOT_DECODED for any text it does not read itself (the
 * TextDecoder's value or error then stands).
 */
export type ByteDecoder = (bytes: Uint8Array, start: number, end: number) => ColumnValue | typeof NOT_DECODED;

/** An optional minus and 1 to 15 ASCII digits: their integer (exact: below 2^53), which Number gives for that text; else NOT_DECODED. */
function shortInteger(bytes: Uint8Array, start: number, end: number): number | typeof NOT_DECODED {
  let at = start;
  const negative = bytes[at] === 0x2d; // -
  if (negative) at++;
  const digits = end - at;
  if (digits < 1 || digits > 15) return NOT_DECODED;
  let value = 0;
  for (; at < end; at++) {
    const digit = bytes[at]! - 0x30;
    if (digit < 0 || digit > 9) return NOT_DECODED;
    value = value * 10 + digit;
  }
  return negative ? -value : value;
}

const bigintBytes: ByteDecoder = (bytes, start, end) => {
  const value = shortInteger(bytes, start, end);
  return value === NOT_DECODED ? value : BigInt(value);
};

const float4Bytes: ByteDecoder = (bytes, start, end) => {
  const value = shortInteger(bytes, start, end);
  return value === NOT_DECODED ? value : Math.fround(value);
};

const booleanBytes: ByteDecoder = (bytes, start, end) => (end - start !== 1 ? NOT_DECODED : bytes[start] === 0x74 ? true : bytes[start] === 0x66 ? false : NOT_DECODED);

/** The TextDecoders above whose common texts (integers, booleans) are read from their bytes. */
export const BYTE_DECODERS: ReadonlyMap<TextDecoder, ByteDecoder> = new Map<TextDecoder, ByteDecoder>([
  [asBoolean, booleanBytes],
  [asBigint, bigintBytes],
  [asNumber, shortInteger],
  [asFloat4, float4Bytes],
]);
