/**
 * LogicalType -> ClickHouse column type. The mapping depends on what the server has (`Dialect`):
 * DateTime64 (20.1+) and Date32 (21.9+) hold timestamps with microseconds and dates before 1970;
 * older servers (18.16 in tests) get the same values as integers (µs / days since the epoch)
 * instead of a lossy DateTime or a Date that cannot hold 1969. Both forms are the same bytes in
 * RowBinary (Int32 days, Int64 µs), so only range checks differ (codec.ts).
 */
import type { LogicalType } from "../sinks/logical-type.ts";

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
      return decimalBytes(type) === null ? "String" : `Decimal(${type.precision}, ${type.scale})`;
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

/**
 * The width of a decimal's Decimal(p, s) column (Decimal32/64/128 by precision), or null when it
 * is stored as exact text in a String column (no declared scale, or more than 38 digits).
 */
export function decimalBytes(type: { readonly precision: number | null; readonly scale: number | null }): 4 | 8 | 16 | null {
  if (type.precision === null || type.scale === null || type.precision > MAX_DECIMAL_PRECISION) return null;
  return type.precision <= 9 ? 4 : type.precision <= 18 ? 8 : 16;
}
