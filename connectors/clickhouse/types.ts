/**
 * LogicalType → ClickHouse column type, and ColumnValue → its exact TSV field. The mapping
 * depends on what the server has (`Dialect`): DateTime64 (20.1+) and Date32 (21.9+) hold
 * timestamps with microseconds and dates before 1970; older servers (18.16 in tests) get the same
 * values as integers (µs / days since the epoch) instead of a lossy DateTime or a Date that
 * cannot hold 1969. Values out of a column's range are rejected here (ClickHouse would wrap
 * integers and zero dates silently).
 */
import type { ColumnValue } from "../contracts.ts";
import { ValueRejected } from "../sinks/errors.ts";
import type { LogicalType } from "../sinks/logical-type.ts";
import {
  arrayItems,
  booleanValue,
  bytesValue,
  checkedInteger,
  decimalText,
  formatDate,
  formatTimestamp,
  jsonText,
  plainDecimalText,
  stringText,
  toBigInt,
  toDays,
  toFloat,
  uuidText,
} from "../sinks/values.ts";
import { escapeBytes, NULL_FIELD, quoted, sqlString } from "./tsv.ts";

export interface Dialect {
  /** DateTime64(6, 'UTC') for timestamps (20.1+). */
  readonly dateTime64: boolean;
  /** Date32 for dates (21.9+). */
  readonly date32: boolean;
  /** ReplacingMergeTree(version, is_deleted) (23.2+, config native_deletes). */
  readonly nativeDeletes: boolean;
}

export function serverVersion(version: string): [number, number] {
  const [major, minor] = version.split(".").map((part) => Number.parseInt(part, 10));
  return [major ?? 0, minor ?? 0];
}

export function atLeast(version: string, major: number, minor: number): boolean {
  const [a, b] = serverVersion(version);
  return a > major || (a === major && b >= minor);
}

export function dialectFor(version: string, nativeDeletes: boolean): Dialect {
  return { dateTime64: atLeast(version, 20, 1), date32: atLeast(version, 21, 9), nativeDeletes };
}

const MAX_DECIMAL_PRECISION = 38;
// Date32 and DateTime64 cover 1900-01-01 .. 2299-12-31.
const MIN_DAY32 = -25_567;
const MAX_DAY32 = 120_529;

export function clickhouseType(type: LogicalType, dialect: Dialect, nullable: boolean): string {
  if (type.kind === "array") return `Array(${clickhouseType(type.element, dialect, true)})`;
  const base = baseType(type, dialect);
  return nullable ? `Nullable(${base})` : base;
}

function baseType(type: Exclude<LogicalType, { kind: "array" }>, dialect: Dialect): string {
  switch (type.kind) {
    case "boolean":
      return "UInt8";
    case "integer":
      return `${type.unsigned ? "UInt" : "Int"}${type.bits === 24 ? 32 : type.bits}`;
    case "float":
      return `Float${type.bits}`;
    case "decimal":
      return type.precision !== null && type.precision <= MAX_DECIMAL_PRECISION ? `Decimal(${type.precision}, ${type.scale})` : "String";
    case "string":
    case "json":
    case "bytes":
      return "String";
    case "uuid":
      return "UUID";
    case "date":
      return dialect.date32 ? "Date32" : "Int32";
    case "timestamp":
      return dialect.dateTime64 ? "DateTime64(6, 'UTC')" : "Int64";
    case "time":
    case "duration":
      return "Int64";
  }
}

/** Whether values are written bare (numbers) rather than as strings (quoted inside arrays and in SQL). */
function isNumeric(type: LogicalType, dialect: Dialect): boolean {
  switch (type.kind) {
    case "boolean":
    case "integer":
    case "float":
    case "time":
    case "duration":
      return true;
    case "decimal":
      return type.precision !== null && type.precision <= MAX_DECIMAL_PRECISION;
    case "date":
      return !dialect.date32;
    case "timestamp":
      return !dialect.dateTime64;
    default:
      return false;
  }
}

/** The unescaped text of a present scalar value as ClickHouse reads (and prints) it. */
function scalarText(type: Exclude<LogicalType, { kind: "array" }>, dialect: Dialect, value: ColumnValue): Buffer | string {
  switch (type.kind) {
    case "boolean":
      return booleanValue(value) ? "1" : "0";
    case "integer":
      return checkedInteger(value, type).toString();
    case "float": {
      const n = toFloat(value);
      if (Number.isNaN(n)) return "nan";
      if (!Number.isFinite(n)) return n > 0 ? "inf" : "-inf";
      return String(n);
    }
    case "decimal":
      return type.precision !== null && type.scale !== null && type.precision <= MAX_DECIMAL_PRECISION
        ? decimalText(value, type.precision, type.scale)
        : plainDecimalText(value);
    case "string":
      return stringText(value);
    case "json":
      return jsonText(value);
    case "bytes":
      return Buffer.from(bytesValue(value));
    case "uuid":
      return uuidText(value);
    case "date": {
      const days = toDays(value);
      if (!dialect.date32) return String(days);
      if (days < MIN_DAY32 || days > MAX_DAY32) throw new ValueRejected(`date ${formatDate(days)} is outside ClickHouse Date32 (1900-01-01..2299-12-31)`);
      return formatDate(days);
    }
    case "timestamp": {
      const micros = toBigInt(value);
      if (!dialect.dateTime64) return micros.toString();
      const days = Number(micros / 86_400_000_000n);
      if (days < MIN_DAY32 || days > MAX_DAY32) throw new ValueRejected(`timestamp ${formatTimestamp(micros)} is outside ClickHouse DateTime64 (1900..2299)`);
      return formatTimestamp(micros, " ");
    }
    case "time": {
      const micros = toBigInt(value);
      if (micros < 0n || micros > 86_400_000_000n) throw new ValueRejected(`time ${micros} µs is outside 00:00..24:00`);
      return micros.toString();
    }
    case "duration":
      return toBigInt(value).toString();
  }
}

function bytesOf(text: Buffer | string): Buffer {
  return typeof text === "string" ? Buffer.from(text, "utf8") : text;
}

/** The TSV field for a value (null: \N, or [] for arrays, which ClickHouse cannot make NULL). */
export function encodeField(type: LogicalType, dialect: Dialect, value: ColumnValue): Buffer {
  if (type.kind === "array") {
    if (value === null) return EMPTY_ARRAY;
    const element = type.element;
    if (element.kind === "array") throw new ValueRejected("multi-dimensional arrays are not supported");
    const parts = arrayItems(value).map((item) => {
      if (item === null) return NULL_WORD;
      if (Array.isArray(item)) throw new ValueRejected("multi-dimensional arrays are not supported");
      const text = bytesOf(scalarText(element, dialect, item));
      return isNumeric(element, dialect) ? text : quoted(text);
    });
    return Buffer.concat([OPEN, ...parts.flatMap((part, i) => (i === 0 ? [part] : [COMMA, part])), CLOSE]);
  }
  if (value === null) return NULL_FIELD;
  return escapeBytes(bytesOf(scalarText(type, dialect, value)));
}

/** A SQL literal for a key value in an IN list: integers bare, anything else a string ClickHouse converts to the column type. */
export function keyLiteral(type: LogicalType, dialect: Dialect, value: ColumnValue): string {
  if (type.kind === "array") throw new ValueRejected("array key columns are not supported");
  const text = scalarText(type, dialect, value);
  const bare = isNumeric(type, dialect) && type.kind !== "decimal" && type.kind !== "float";
  return bare ? String(text) : sqlString(text);
}

const EMPTY_ARRAY = Buffer.from("[]");
const NULL_WORD = Buffer.from("NULL");
const OPEN = Buffer.from("[");
const CLOSE = Buffer.from("]");
const COMMA = Buffer.from(",");
