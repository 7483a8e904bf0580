/**
 * One decoder per column of a row image, built from the TABLE_MAP column (binlog type and
 * metadata) and what is known of the column (signedness, charset, ENUM/SET members, declared
 * type), returning the exact ColumnValue:
 *
 * - TINYINT...INT (signed or not): number; BIGINT: bigint (unsigned up to 2^64-1 exact)
 * - DECIMAL: its digits as text, scale included ("-12.30"); FLOAT/DOUBLE: number (FLOAT's float32 value)
 * - DATE: days since the epoch; DATETIME/TIMESTAMP: bigint microseconds since the epoch
 *   (DATETIME read as UTC); TIME: signed microseconds; YEAR: number (0 for 0000)
 * - CHAR/VARCHAR/TEXT: text decoded from the column's charset; BINARY/VARBINARY/BLOB, VECTOR: bytes
 * - ENUM: the member's text ("" for the invalid-value index 0); SET: members joined by ","
 * - BIT(1): boolean; BIT(n): big-endian bytes; JSON: its text; GEOMETRY: as MySQL stores it, a 4-byte SRID then WKB
 * - MariaDB UUID/INET4/INET6: their text form; MariaDB COMPRESSED columns: as their uncompressed type
 */
import type { ColumnValue } from "../../contracts.ts";
import type { BinaryReader } from "../protocol/binary-reader.ts";
import { ColumnType, columnTypeName } from "../protocol/constants.ts";
import type { TableMapColumn } from "../protocol/table-map.ts";
import type { Charset } from "./charsets.ts";
import { uncompressColumnValue } from "./compressed-column.ts";
import { decimalBinaryLength, decodeDecimal } from "./decimal.ts";
import { decodeJsonText } from "./json-binary.ts";
import {
  decodeDate,
  decodeDatetime2,
  decodeDatetimeV1,
  decodeMariadbDatetimeHires,
  decodeMariadbTimeHires,
  decodeMariadbTimestampHires,
  decodeTime2,
  decodeTimestamp2,
  decodeTimeV1,
  decodeYear,
  fractionBytes,
  MARIADB_DATETIME_HIRES_BYTES,
  MARIADB_TIME_HIRES_BYTES,
  MARIADB_TIMESTAMP_FRACTION_BYTES,
} from "./temporal.ts";
import { formatInet4, formatInet6, formatMariadbUuid } from "./network-types.ts";

export type ZeroDates = "null" | "error";

export interface ColumnDecodeInfo {
  readonly name: string;
  /** Declared type as Sluice reports it ("int unsigned", "binary(16)", "uuid"...). */
  readonly dbType: string;
  readonly unsigned: boolean;
  readonly charset: Charset;
  /** ENUM/SET members in declaration order; null when not known. */
  readonly members: readonly string[] | null;
}

export type ValueDecoder = (reader: BinaryReader) => ColumnValue;

/** A DATE/DATETIME/TIMESTAMP with a zero part, refused under zero_dates: error. */
export class ZeroDateError extends RangeError {}

/**
 * What a zero date (or one no calendar has, "2024-02-30") becomes under zero_dates: error: this text, which no Avro date or timestamp
 * type accepts, so capture halts the row's table with an error naming the column and the value
 * (parked, nothing lost) instead of the source stopping for every table.
 */
export const ZERO_DATE_TEXT = "0000-00-00";

/**
 * zero_dates for one column: a key column cannot be NULL, so its zero date is always delivered as ZERO_DATE_TEXT, which
 * the encoder refuses naming the column and the zero date (NULL would be refused as "null in a NOT NULL column").
 */
export function zeroDatesOf(zeroDates: ZeroDates, key: readonly string[], column: string): ZeroDates {
  return key.includes(column) ? "error" : zeroDates;
}

/** `decompressionLimit`: the most bytes a COMPRESSED value may inflate to (protocol/decompression-limit.ts). */
export function valueDecoder(column: TableMapColumn, info: ColumnDecodeInfo, zeroDates: ZeroDates, decompressionLimit?: number): ValueDecoder {
  const zero = zeroDates === "null" ? () => null : () => ZERO_DATE_TEXT;
  switch (column.realType) {
    case ColumnType.TINY:
      return info.unsigned ? (r) => r.u8() : (r) => r.i8();
    case ColumnType.SHORT:
      return info.unsigned ? (r) => r.u16() : (r) => r.i16();
    case ColumnType.INT24:
      return info.unsigned ? (r) => r.u24() : (r) => r.i24();
    case ColumnType.LONG:
      return info.unsigned ? (r) => r.u32() : (r) => r.i32();
    case ColumnType.LONGLONG:
      return info.unsigned ? (r) => r.u64() : (r) => r.i64();
    case ColumnType.FLOAT:
      return (r) => r.f32();
    case ColumnType.DOUBLE:
      return (r) => r.f64();
    case ColumnType.NEWDECIMAL: {
      const { precision, scale } = column;
      const length = decimalBinaryLength(precision, scale);
      return (r) => {
        r.need(length, "decimal");
        const text = decodeDecimal(r.bytes, r.pos, precision, scale);
        r.pos += length;
        return text;
      };
    }
    case ColumnType.YEAR:
      return (r) => decodeYear(r.u8());
    case ColumnType.DATE:
    case ColumnType.NEWDATE:
      return (r) => decodeDate(r.u24()) ?? zero();
    case ColumnType.TIME: {
      const fsp = mariadbHiresDigits(info.dbType);
      if (fsp === 0) return (r) => decodeTimeV1(r.i24());
      const length = MARIADB_TIME_HIRES_BYTES[fsp]!;
      return (r) => {
        r.need(length, "time");
        const value = decodeMariadbTimeHires(r.bytes, r.pos, fsp);
        r.pos += length;
        return value;
      };
    }
    case ColumnType.TIME2: {
      const length = 3 + fractionBytes(column.fsp);
      return (r) => {
        r.need(length, "time");
        const value = decodeTime2(r.bytes, r.pos, column.fsp);
        r.pos += length;
        return value;
      };
    }
    case ColumnType.DATETIME: {
      const fsp = mariadbHiresDigits(info.dbType);
      if (fsp === 0) return (r) => decodeDatetimeV1(r.u64()) ?? zero();
      const length = MARIADB_DATETIME_HIRES_BYTES[fsp]!;
      return (r) => {
        r.need(length, "datetime");
        const value = decodeMariadbDatetimeHires(r.bytes, r.pos, fsp);
        r.pos += length;
        return value ?? zero();
      };
    }
    case ColumnType.DATETIME2: {
      const length = 5 + fractionBytes(column.fsp);
      return (r) => {
        r.need(length, "datetime");
        const value = decodeDatetime2(r.bytes, r.pos, column.fsp);
        r.pos += length;
        return value ?? zero();
      };
    }
    case ColumnType.TIMESTAMP: {
      const fsp = mariadbHiresDigits(info.dbType);
      if (fsp === 0) {
        return (r) => {
          const seconds = r.u32();
          return seconds === 0 ? zero() : BigInt(seconds) * 1_000_000n;
        };
      }
      const length = 4 + MARIADB_TIMESTAMP_FRACTION_BYTES[fsp]!;
      return (r) => {
        r.need(length, "timestamp");
        const value = decodeMariadbTimestampHires(r.bytes, r.pos, fsp);
        r.pos += length;
        return value ?? zero();
      };
    }
    case ColumnType.TIMESTAMP2: {
      const length = 4 + fractionBytes(column.fsp);
      return (r) => {
        r.need(length, "timestamp");
        const value = decodeTimestamp2(r.bytes, r.pos, column.fsp);
        r.pos += length;
        return value ?? zero();
      };
    }
    case ColumnType.BIT: {
      const length = (column.bits + 7) >> 3;
      return column.bits === 1 ? (r) => r.u8() !== 0 : (r) => r.bytesCopy(length);
    }
    case ColumnType.ENUM:
      return enumDecoder(column, info);
    case ColumnType.SET:
      return setDecoder(column, info);
    case ColumnType.VARCHAR:
    case ColumnType.VAR_STRING:
    case ColumnType.STRING: {
      const lengthBytes = column.length < 256 ? 1 : 2;
      return column.compressed === true ? compressedDecoder(lengthBytes, info, decompressionLimit) : stringDecoder(lengthBytes, info);
    }
    case ColumnType.BLOB:
    case ColumnType.TINY_BLOB:
    case ColumnType.MEDIUM_BLOB:
    case ColumnType.LONG_BLOB:
      return column.compressed === true ? compressedDecoder(column.length, info, decompressionLimit) : stringDecoder(column.length, info);
    case ColumnType.JSON: {
      const lengthBytes = column.length;
      return (r) => {
        const length = r.uintLE(lengthBytes);
        r.need(length, "json");
        const text = decodeJsonText(r.bytes, r.pos, r.pos + length);
        r.pos += length;
        return text;
      };
    }
    case ColumnType.GEOMETRY: {
      const lengthBytes = column.length;
      return (r) => r.bytesCopy(r.uintLE(lengthBytes));
    }
    case ColumnType.VECTOR: {
      const lengthBytes = column.length;
      return (r) => r.bytesCopy(r.uintLE(lengthBytes));
    }
    case ColumnType.NULL:
      return () => null;
    default:
      throw new RangeError(`column ${info.name}: binlog type ${columnTypeName(column.realType)} is not supported`);
  }
}

function stringDecoder(lengthBytes: number, info: ColumnDecodeInfo): ValueDecoder {
  const special = specialStringType(info.dbType);
  if (special !== null) {
    // Logged like BINARY(n): trailing zero bytes stripped.
    const size = info.dbType === "inet4" ? 4 : 16;
    return (r) => {
      const logged = r.bytesView(r.uintLE(lengthBytes));
      const value = Buffer.alloc(Math.max(size, logged.length));
      logged.copy(value);
      return special(value, info.name);
    };
  }
  if (info.charset.binary) {
    const padTo = binaryPadLength(info.dbType);
    if (padTo > 0) {
      return (r) => {
        const length = r.uintLE(lengthBytes);
        const value = new Uint8Array(Math.max(padTo, length));
        value.set(r.bytesView(length));
        return value;
      };
    }
    return (r) => r.bytesCopy(r.uintLE(lengthBytes));
  }
  const { charset } = info;
  return (r) => {
    const length = r.uintLE(lengthBytes);
    r.need(length, "string");
    const text = charset.decode(r.bytes, r.pos, r.pos + length);
    r.pos += length;
    return text;
  };
}

/**
 * Fractional digits of a TIME/DATETIME/TIMESTAMP logged with the old type code: only MariaDB's
 * 5.3 format has them (MySQL's old types have none), and the table map does not say how many.
 */
function mariadbHiresDigits(dbType: string): number {
  const match = /^(?:time|datetime|timestamp)\(([1-6])\)$/.exec(dbType);
  return match === null ? 0 : Number(match[1]);
}

/** MariaDB COMPRESSED VARCHAR/BLOB/TEXT: the stored value uncompressed, then as its charset says. */
function compressedDecoder(lengthBytes: number, info: ColumnDecodeInfo, limit: number | undefined): ValueDecoder {
  const { charset, name } = info;
  return (r) => {
    const value = uncompressColumnValue(r.bytesView(r.uintLE(lengthBytes)), name, limit);
    return charset.binary ? new Uint8Array(value) : charset.decode(value, 0, value.length);
  };
}

/** BINARY(n) comes with its trailing zero bytes stripped; SELECT returns them. */
function binaryPadLength(dbType: string): number {
  const match = /^binary\((\d+)\)$/.exec(dbType);
  return match === null ? 0 : Number(match[1]);
}

function specialStringType(dbType: string): ((bytes: Buffer, column: string) => string) | null {
  if (dbType === "uuid") return formatMariadbUuid;
  if (dbType === "inet6") return formatInet6;
  if (dbType === "inet4") return formatInet4;
  return null;
}

function membersOf(info: ColumnDecodeInfo, kind: string): readonly string[] {
  if (info.members === null) throw new RangeError(`column ${info.name}: the ${kind} members are unknown (no binlog metadata and no schema)`);
  return info.members;
}

function enumDecoder(column: TableMapColumn, info: ColumnDecodeInfo): ValueDecoder {
  const members = membersOf(info, "ENUM");
  const width = column.length;
  return (r) => {
    const index = r.uintLE(width);
    if (index === 0) return "";
    const member = members[index - 1];
    if (member === undefined) throw new RangeError(`column ${info.name}: ENUM index ${index} beyond its ${members.length} members`);
    return member;
  };
}

function setDecoder(column: TableMapColumn, info: ColumnDecodeInfo): ValueDecoder {
  const members = membersOf(info, "SET");
  const width = column.length;
  return (r) => {
    const bytes = r.bytesView(width);
    const chosen: string[] = [];
    for (let i = 0; i < members.length; i++) if (bytes[i >> 3]! & (1 << (i & 7))) chosen.push(members[i]!);
    return chosen.join(",");
  };
}
