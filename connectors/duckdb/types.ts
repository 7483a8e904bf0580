/**
 * LogicalType -> DuckDB column type, and ColumnValue -> the DuckDB value the appender takes.
 * Exact: decimals as DECIMAL (unscaled integers, never doubles) or, beyond 38 digits or without a
 * declared scale, VARCHAR holding the exact digits; timestamps keep microseconds.
 */
import {
  blobValue,
  dateValue,
  decimalValue,
  intervalValue,
  listValue,
  timestampTZValue,
  timestampValue,
  timeValue,
  uuidValue,
} from "@duckdb/node-api";
import type {
  DuckDBAppender,
  DuckDBBlobValue,
  DuckDBDateValue,
  DuckDBIntervalValue,
  DuckDBTimestampValue,
  DuckDBTimeValue,
  DuckDBType,
  DuckDBValue,
} from "@duckdb/node-api";
import type { ColumnValue } from "../contracts.ts";
import { ValueRejected } from "../sinks/errors.ts";
import type { LogicalType } from "../sinks/logical-type.ts";
import {
  arrayItems,
  booleanValue,
  bytesValue,
  checkedInteger,
  infinityOf,
  jsonText,
  plainDecimalText,
  scaledDecimal,
  stringText,
  toBigInt,
  toFloat,
  uuidText,
} from "../sinks/values.ts";

const MAX_DECIMAL_PRECISION = 38;
const DUCKDB_DATE_INFINITY = 2_147_483_647;
const DUCKDB_TIMESTAMP_INFINITY = 9_223_372_036_854_775_807n;

export function duckdbType(type: LogicalType): string {
  switch (type.kind) {
    case "boolean":
      return "BOOLEAN";
    case "integer": {
      const bits = type.bits === 24 ? 32 : type.bits;
      const name = { 8: "TINYINT", 16: "SMALLINT", 32: "INTEGER", 64: "BIGINT" }[bits];
      return type.unsigned ? `U${name}` : name;
    }
    case "float":
      return type.bits === 32 ? "REAL" : "DOUBLE";
    case "decimal":
      return type.precision !== null && type.precision <= MAX_DECIMAL_PRECISION ? `DECIMAL(${type.precision},${type.scale})` : "VARCHAR";
    case "string":
      return "VARCHAR";
    case "uuid":
      return "UUID";
    case "json":
      return "JSON";
    case "bytes":
      return "BLOB";
    case "date":
      return "DATE";
    case "timestamp":
      return type.tz ? "TIMESTAMPTZ" : "TIMESTAMP";
    case "time":
      return "TIME";
    case "duration":
      return "INTERVAL";
    case "array":
      return `${duckdbType(type.element)}[]`;
  }
}

/** The appender value for a present (not null, not UNCHANGED) value of a column of `type`. */
export function duckdbValue(type: LogicalType, value: ColumnValue): DuckDBValue {
  if (value === null) return null;
  switch (type.kind) {
    case "boolean":
      return booleanValue(value);
    case "integer": {
      const n = checkedInteger(value, type);
      return type.bits === 64 ? n : Number(n);
    }
    case "float":
      return toFloat(value);
    case "decimal":
      if (type.precision !== null && type.scale !== null && type.precision <= MAX_DECIMAL_PRECISION) {
        return decimalValue(scaledDecimal(value, type.precision, type.scale), type.precision, type.scale);
      }
      return plainDecimalText(value);
    case "string":
      return stringText(value);
    case "uuid":
      return uuidValue(BigInt(`0x${uuidText(value).replace(/-/g, "")}`));
    case "json":
      return jsonText(value);
    case "bytes":
      return blobValue(bytesValue(value));
    case "date": {
      const infinity = infinityOf(value, "date");
      return dateValue(infinity === null ? duckdbDays(value) : infinity === "infinity" ? DUCKDB_DATE_INFINITY : -DUCKDB_DATE_INFINITY);
    }
    case "timestamp": {
      // DuckDB's -infinity is -(2^63 - 1); PostgreSQL's (-2^63) is not a valid DuckDB timestamp.
      const infinity = infinityOf(value, "timestamp");
      const micros = infinity === null ? duckdbMicros(value) : infinity === "infinity" ? DUCKDB_TIMESTAMP_INFINITY : -DUCKDB_TIMESTAMP_INFINITY;
      return type.tz ? timestampTZValue(micros) : timestampValue(micros);
    }
    case "time": {
      const micros = toBigInt(value);
      if (micros < 0n || micros > 86_400_000_000n) throw new ValueRejected(`time ${micros} µs is outside 00:00..24:00`);
      return timeValue(micros);
    }
    case "duration":
      return intervalValue(0, 0, toBigInt(value));
    case "array":
      return listValue(
        arrayItems(value).map((item) => {
          if (Array.isArray(item)) throw new ValueRejected("multi-dimensional arrays are not supported");
          return item === null ? null : duckdbValue(type.element, item);
        }),
      );
  }
}

// DuckDB's DATE spans 5877642-06-25 BC .. 5881580-07-10: every PostgreSQL and MySQL date, BC and far-future included.
const DUCKDB_MIN_DAYS = -2_147_483_646;
const DUCKDB_MAX_DAYS = 2_147_483_646;

function duckdbDays(value: ColumnValue): number {
  const days = toBigInt(value);
  if (days < BigInt(DUCKDB_MIN_DAYS) || days > BigInt(DUCKDB_MAX_DAYS)) throw new ValueRejected(`date ${days} (days since 1970-01-01) is outside DuckDB's DATE`);
  return Number(days);
}

/**
 * DuckDB's finite TIMESTAMP spans ±(2^63 - 2) µs from 1970 (294247 AD); PostgreSQL's goes on to 294276 AD, which a
 * timestamptz carried as text (ZonedTimestamp) brings here: refused per row, as the bindings' own error failed the write.
 */
function duckdbMicros(value: ColumnValue): bigint {
  const micros = toBigInt(value);
  if (micros >= DUCKDB_TIMESTAMP_INFINITY || micros <= -DUCKDB_TIMESTAMP_INFINITY) throw new ValueRejected(`timestamp ${micros} µs (since 1970-01-01) is outside DuckDB's TIMESTAMP`);
  return micros;
}

type Append = (appender: DuckDBAppender, cell: DuckDBValue) => void;

/**
 * How a present cell of a column of `type` (what duckdbValue gives) goes into an appender column of
 * that exact DuckDB type: the typed append calls where the bindings have one, so a row is not first
 * built into a generic DuckDB value; the rest (decimals, JSON, UUID, lists) through appendValue with the column's type.
 */
export function appendFor(type: LogicalType, columnType: DuckDBType): Append {
  switch (type.kind) {
    case "boolean":
      return (a, v) => a.appendBoolean(v as boolean);
    case "integer": {
      const bits = type.bits === 24 ? 32 : type.bits;
      if (bits === 64) return type.unsigned ? (a, v) => a.appendUBigInt(v as bigint) : (a, v) => a.appendBigInt(v as bigint);
      if (bits === 32) return type.unsigned ? (a, v) => a.appendUInteger(v as number) : (a, v) => a.appendInteger(v as number);
      if (bits === 16) return type.unsigned ? (a, v) => a.appendUSmallInt(v as number) : (a, v) => a.appendSmallInt(v as number);
      return type.unsigned ? (a, v) => a.appendUTinyInt(v as number) : (a, v) => a.appendTinyInt(v as number);
    }
    case "float":
      return type.bits === 32 ? (a, v) => a.appendFloat(v as number) : (a, v) => a.appendDouble(v as number);
    case "string":
      return (a, v) => a.appendVarchar(v as string);
    case "date":
      return (a, v) => a.appendDate(v as DuckDBDateValue);
    case "time":
      return (a, v) => a.appendTime(v as DuckDBTimeValue);
    case "timestamp":
      // A TIMESTAMPTZ column takes the timestamp call as well: both hold microseconds since the epoch, stored as given (no time zone applied).
      return (a, v) => a.appendTimestamp(v as DuckDBTimestampValue);
    case "duration":
      return (a, v) => a.appendInterval(v as DuckDBIntervalValue);
    case "bytes":
      return (a, v) => a.appendBlob((v as DuckDBBlobValue).bytes);
    default:
      return (a, v) => a.appendValue(v, columnType);
  }
}
