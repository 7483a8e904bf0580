/**
 * The column types sinks reason about, derived from a ColumnSchema's `dbType` (PostgreSQL
 * `format_type()` names or MySQL column types), and the widening rule between them. Each target
 * maps a LogicalType to its own column type (duckdb/types.ts, clickhouse/types.ts,
 * elasticsearch/mapping.ts). Values arrive as ColumnValue (contracts.ts): integers as number or
 * bigint, decimals as digit strings, dates as days, times and timestamps as microseconds.
 */
import type { SourceKind } from "../contracts.ts";

export type IntegerBits = 8 | 16 | 24 | 32 | 64;

export type LogicalType =
  | { readonly kind: "boolean" }
  | { readonly kind: "integer"; readonly bits: IntegerBits; readonly unsigned: boolean }
  | { readonly kind: "float"; readonly bits: 32 | 64 }
  /** precision/scale null: no declared scale (any decimal, e.g. PostgreSQL `numeric`). */
  | { readonly kind: "decimal"; readonly precision: number | null; readonly scale: number | null }
  | { readonly kind: "string" }
  | { readonly kind: "uuid" }
  | { readonly kind: "json" }
  | { readonly kind: "bytes" }
  /** Days since 1970-01-01. */
  | { readonly kind: "date" }
  /** Microseconds since 1970-01-01T00:00; `tz`: an instant (UTC), else a wall-clock time. */
  | { readonly kind: "timestamp"; readonly tz: boolean }
  /** Microseconds since midnight. */
  | { readonly kind: "time" }
  /** Signed microseconds (MySQL TIME spans -838:59:59 to 838:59:59). */
  | { readonly kind: "duration" }
  | { readonly kind: "array"; readonly element: LogicalType };

export interface ParsedDbType {
  /** Lower-case name without modifiers or array marker: "character varying", "int". */
  readonly name: string;
  readonly args: readonly string[];
  readonly isArray: boolean;
  readonly unsigned: boolean;
}

/** Splits "numeric(10,2)", "timestamp(3) with time zone", "integer[]", "_int4", "int(10) unsigned zerofill". */
export function parseDbType(dbType: string, sourceKind: SourceKind): ParsedDbType {
  let text = dbType.trim().toLowerCase();
  let isArray = false;
  if (sourceKind === "postgres") {
    if (/(\[\d*\])+$/.test(text)) {
      isArray = true;
      text = text.replace(/(\s*\[\d*\])+$/, "");
    } else if (text.startsWith("_")) {
      isArray = true;
      text = text.slice(1);
    }
  }
  let args: string[] = [];
  const open = text.indexOf("(");
  if (open >= 0) {
    const close = closingParen(text, open);
    args = splitArgs(text.slice(open + 1, close));
    text = `${text.slice(0, open)} ${text.slice(close + 1)}`;
  }
  const unsigned = /\bunsigned\b/.test(text);
  const name = text
    .replace(/\b(unsigned|signed|zerofill)\b/g, " ")
    .replace(/"/g, "")
    .replace(/^[a-z_][a-z0-9_$]*\.(?=[a-z_])/, "")
    .replace(/\s+/g, " ")
    .trim();
  return { name, args, isArray, unsigned };
}

function closingParen(text: string, open: number): number {
  let quoted = false;
  for (let i = open + 1; i < text.length; i++) {
    if (text[i] === "'") quoted = !quoted;
    else if (text[i] === ")" && !quoted) return i;
  }
  return text.length;
}

function splitArgs(inside: string): string[] {
  const out: string[] = [];
  let current = "";
  let quoted = false;
  for (const char of inside) {
    if (char === "'") quoted = !quoted;
    else if (char === "," && !quoted) {
      out.push(current.trim());
      current = "";
    } else current += char;
  }
  out.push(current.trim());
  return out;
}

const int = (bits: IntegerBits, unsigned = false): LogicalType => ({ kind: "integer", bits, unsigned });
const STRING: LogicalType = { kind: "string" };

export function logicalType(dbType: string, sourceKind: SourceKind): LogicalType {
  const parsed = parseDbType(dbType, sourceKind);
  const scalar = sourceKind === "postgres" ? postgresType(parsed) : mysqlType(parsed);
  return parsed.isArray ? { kind: "array", element: scalar } : scalar;
}

function postgresType({ name, args }: ParsedDbType): LogicalType {
  switch (name) {
    case "smallint":
    case "int2":
    case "smallserial":
    case "serial2":
      return int(16);
    case "integer":
    case "int":
    case "int4":
    case "serial":
    case "serial4":
      return int(32);
    case "bigint":
    case "int8":
    case "bigserial":
    case "serial8":
      return int(64);
    case "oid":
    case "xid":
    case "cid":
      return int(32, true);
    case "xid8":
      return int(64, true);
    case "real":
    case "float4":
      return { kind: "float", bits: 32 };
    case "double precision":
    case "float8":
      return { kind: "float", bits: 64 };
    case "float":
      return { kind: "float", bits: Number(args[0] ?? 53) <= 24 ? 32 : 64 };
    case "numeric":
    case "decimal":
      return decimalOf(args, null);
    case "money":
      return { kind: "decimal", precision: 19, scale: 2 };
    case "boolean":
    case "bool":
      return { kind: "boolean" };
    case "bytea":
      return { kind: "bytes" };
    case "date":
      return { kind: "date" };
    case "time":
    case "time without time zone":
      return { kind: "time" };
    case "timestamp":
    case "timestamp without time zone":
      return { kind: "timestamp", tz: false };
    case "timestamptz":
    case "timestamp with time zone":
      return { kind: "timestamp", tz: true };
    case "uuid":
      return { kind: "uuid" };
    case "json":
    case "jsonb":
      return { kind: "json" };
    default:
      // text, varchar, char, citext, name, xml, bit strings, hstore, interval, timetz, inet,
      // enums, ranges, geometric types and any other type arrive as their text form.
      return STRING;
  }
}

function mysqlType({ name, args, unsigned }: ParsedDbType): LogicalType {
  switch (name) {
    case "tinyint":
    case "bool":
    case "boolean":
      return int(8, unsigned);
    case "smallint":
      return int(16, unsigned);
    case "year":
      return int(16);
    case "mediumint":
      return int(24, unsigned);
    case "int":
    case "integer":
      return int(32, unsigned);
    case "bigint":
      return int(64, unsigned);
    case "serial":
      return int(64, true);
    case "decimal":
    case "numeric":
    case "dec":
    case "fixed":
      return decimalOf(args.length === 0 ? ["10", "0"] : args.length === 1 ? [args[0] as string, "0"] : args, 10);
    case "float":
      return { kind: "float", bits: args.length === 1 && Number(args[0]) > 24 ? 64 : 32 };
    case "double":
    case "double precision":
    case "real":
      return { kind: "float", bits: 64 };
    case "bit":
      return Number(args[0] ?? 1) === 1 ? { kind: "boolean" } : { kind: "bytes" };
    case "binary":
    case "varbinary":
    case "tinyblob":
    case "blob":
    case "mediumblob":
    case "longblob":
    case "long varbinary":
    case "vector":
    case "geometry":
    case "point":
    case "linestring":
    case "polygon":
    case "multipoint":
    case "multilinestring":
    case "multipolygon":
    case "geometrycollection":
    case "geomcollection":
      return { kind: "bytes" };
    case "date":
      return { kind: "date" };
    case "time":
      return { kind: "duration" };
    case "datetime":
      return { kind: "timestamp", tz: false };
    case "timestamp":
      return { kind: "timestamp", tz: true };
    case "json":
      return { kind: "json" };
    case "uuid":
      return { kind: "uuid" };
    default:
      // char, varchar, the text types, enum, set, inet4/inet6: strings.
      return STRING;
  }
}

function decimalOf(args: readonly string[], defaultPrecision: number | null): LogicalType {
  const precision = Number(args[0] ?? defaultPrecision);
  const scale = args.length > 1 ? Number(args[1]) : 0;
  const declared = args.length > 0 && Number.isInteger(precision) && precision > 0 && Number.isInteger(scale) && scale >= 0 && scale <= precision;
  return declared ? { kind: "decimal", precision, scale } : { kind: "decimal", precision: null, scale: null };
}

/** Per bit width, the signed and the unsigned range: made once (a sink checks every integer it writes against one). */
const INTEGER_RANGES = new Map<number, { readonly signed: IntegerRange; readonly unsigned: IntegerRange }>();

interface IntegerRange {
  readonly min: bigint;
  readonly max: bigint;
}

export function integerRange(type: { readonly bits: IntegerBits; readonly unsigned: boolean }): IntegerRange {
  let ranges = INTEGER_RANGES.get(type.bits);
  if (ranges === undefined) {
    const bits = BigInt(type.bits);
    ranges = { signed: Object.freeze({ min: -(1n << (bits - 1n)), max: (1n << (bits - 1n)) - 1n }), unsigned: Object.freeze({ min: 0n, max: (1n << bits) - 1n }) };
    INTEGER_RANGES.set(type.bits, ranges);
  }
  return type.unsigned ? ranges.unsigned : ranges.signed;
}

/** Decimal digits needed for every value of an integer type (e.g. int32: 10). */
export function integerDigits(type: { readonly bits: IntegerBits; readonly unsigned: boolean }): number {
  const { min, max } = integerRange(type);
  return Math.max((-min).toString().length, max.toString().length);
}

const INTEGER_LADDER: readonly { bits: IntegerBits; unsigned: boolean }[] = [
  { bits: 8, unsigned: false },
  { bits: 8, unsigned: true },
  { bits: 16, unsigned: false },
  { bits: 16, unsigned: true },
  { bits: 24, unsigned: false },
  { bits: 24, unsigned: true },
  { bits: 32, unsigned: false },
  { bits: 32, unsigned: true },
  { bits: 64, unsigned: false },
  { bits: 64, unsigned: true },
];

/**
 * The narrowest type that holds every value of both `a` and `b`, or null when there is none a
 * sink can convert stored values to. `join(current, older) = current`, so events written under
 * an older, narrower schema change nothing.
 */
export function joinTypes(a: LogicalType, b: LogicalType): LogicalType | null {
  if (sameType(a, b)) return a;
  if (a.kind === "integer" && b.kind === "integer") {
    const ra = integerRange(a);
    const rb = integerRange(b);
    const min = ra.min < rb.min ? ra.min : rb.min;
    const max = ra.max > rb.max ? ra.max : rb.max;
    for (const candidate of INTEGER_LADDER) {
      const r = integerRange(candidate);
      if (r.min <= min && r.max >= max) return { kind: "integer", ...candidate };
    }
    return { kind: "decimal", precision: 20, scale: 0 };
  }
  if (a.kind === "integer" && b.kind === "decimal") return joinTypes({ kind: "decimal", precision: integerDigits(a), scale: 0 }, b);
  if (a.kind === "decimal" && b.kind === "integer") return joinTypes(b, a);
  if (a.kind === "decimal" && b.kind === "decimal") {
    if (a.precision === null || b.precision === null || a.scale === null || b.scale === null) return { kind: "decimal", precision: null, scale: null };
    const scale = Math.max(a.scale, b.scale);
    return { kind: "decimal", precision: Math.max(a.precision - a.scale, b.precision - b.scale) + scale, scale };
  }
  if (a.kind === "float" && b.kind === "float") return { kind: "float", bits: a.bits === 64 || b.bits === 64 ? 64 : 32 };
  // Integers up to 32 bits are exact in a double.
  if (a.kind === "integer" && b.kind === "float" && a.bits <= 32) return { kind: "float", bits: 64 };
  if (a.kind === "float" && b.kind === "integer") return joinTypes(b, a);
  // Values of these types are JavaScript strings, so a string column holds them unchanged.
  const stringLike = (t: LogicalType) => t.kind === "string" || t.kind === "uuid" || t.kind === "json";
  if (stringLike(a) && stringLike(b)) return STRING;
  if ((a.kind === "time" || a.kind === "duration") && (b.kind === "time" || b.kind === "duration")) return { kind: "duration" };
  if (a.kind === "array" && b.kind === "array") {
    const element = joinTypes(a.element, b.element);
    return element === null ? null : { kind: "array", element };
  }
  return null;
}

/**
 * Whether a column of type `to` holds every value of `from` as its exact text, where there is no
 * join: a number (integer, or decimal with its scale's digits, as decoders give it) becomes its
 * text, as PostgreSQL and MySQL cast it to text; arrays element by element. It lets a target whose
 * column became text (a rebuild's new generation takes the table's newest schema) take changes
 * written before, when the column was a number. Floats are left out: their text differs between
 * JavaScript and the databases (1e-7, -0). Nothing converts back from text.
 */
export function convertsTo(from: LogicalType, to: LogicalType): boolean {
  if (to.kind === "string") return from.kind === "integer" || from.kind === "decimal";
  if (from.kind === "array" && to.kind === "array") {
    const joined = joinTypes(to.element, from.element);
    return (joined !== null && sameType(joined, to.element)) || convertsTo(from.element, to.element);
  }
  return false;
}

export function sameType(a: LogicalType, b: LogicalType): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

export function describeType(type: LogicalType): string {
  switch (type.kind) {
    case "integer":
      return `${type.unsigned ? "u" : ""}int${type.bits}`;
    case "float":
      return `float${type.bits}`;
    case "decimal":
      return type.precision === null ? "decimal" : `decimal(${type.precision},${type.scale})`;
    case "timestamp":
      return type.tz ? "timestamp with time zone" : "timestamp";
    case "array":
      return `${describeType(type.element)}[]`;
    default:
      return type.kind;
  }
}
