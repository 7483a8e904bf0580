/** PostgreSQL types to their Avro form. docs/avro-types.md lists every mapping and why. */
import {
  arrayColumn,
  MAX_ARRAY_DIMENSIONS,
  bitStringColumn,
  booleanColumn,
  bytesColumn,
  dateColumn,
  decimalColumn,
  describeValue,
  doubleColumn,
  floatColumn,
  debeziumUuidColumn,
  hstoreColumn,
  hstoreJsonColumn,
  intColumn,
  jsonColumn,
  longColumn,
  numericAsDoubleColumn,
  numericAsStringColumn,
  stringColumn,
  timeMicrosColumn,
  timestampMicrosColumn,
  uuidColumn,
  variableScaleDecimalColumn,
} from "./column-types.ts";
import type { ColumnAvroType } from "./column-types.ts";
import { parseDbType } from "./db-type.ts";
import { MICRO_DURATION_INTERVAL } from "./interval-micro-duration.ts";
import { DEBEZIUM_INTERVAL } from "./interval-text.ts";
import { pointColumn } from "./geometry.ts";
import { postgresBitsColumn, UNBOUNDED_BITS_LENGTH } from "./bits.ts";
import type { DbType } from "./db-type.ts";
import { dateType, fractionDigits, timestampType, timeType, ZONED_TIME } from "./temporal-modes.ts";
import type { TimePrecisionMode } from "./temporal-modes.ts";

/** How dates, times and decimals are carried (Debezium's time.precision.mode and decimal.handling.mode). */
export interface TypeModes {
  readonly timePrecision: TimePrecisionMode;
  /** Whether the numeric mode applies to every numeric (Debezium's decimal.handling.mode) or only to those without a declared scale (Sluice before 0.2). */
  readonly decimals: "all" | "unscaled";
  /** PostgreSQL hstore (Debezium's hstore.handling.mode): "json" text, Debezium's default, or a "map" (absent: "map", Sluice before 0.3). */
  readonly hstore?: HstoreMode;
  /** Whether PostgreSQL uuid carries Debezium's `io.debezium.data.Uuid` marker (absent: no; values are the same). */
  readonly uuidMarker?: boolean;
  /** PostgreSQL interval (Debezium's interval.handling.mode): "numeric" MicroDuration, Debezium's default, or ISO 8601 "string" (absent: "string", Sluice before 0.3). */
  readonly interval?: IntervalMode;
  /**
   * The text of the "string" interval mode: Debezium's io.debezium.time.Interval, every part
   * written ("debezium"), or PostgreSQL's own ISO 8601 text ("postgres"; absent, Sluice before 0.3).
   */
  readonly intervalText?: "debezium" | "postgres";
  /** PostgreSQL bit(1) as a boolean, as Debezium maps it (absent: no, the 0/1 text of Sluice before 0.3). */
  readonly bitBoolean?: boolean;
  /** PostgreSQL point as Debezium's io.debezium.data.geometry.Point record (absent: no, the text of Sluice before 0.3). */
  readonly pointRecord?: boolean;
  /**
   * Bit strings wider than one bit (PostgreSQL bit(n), bit varying; MySQL BIT(n)) as Debezium's
   * io.debezium.data.Bits bytes (absent: no, PostgreSQL's 0/1 text and MySQL's big-endian bytes of Sluice before 0.3).
   */
  readonly bits?: boolean;
}

export type HstoreMode = "json" | "map";
export type IntervalMode = "numeric" | "string";

/** Sluice's types before 0.2 (schemas registered without the modes in their sluice.table property). */
export const EARLIER_TYPE_MODES: TypeModes = { timePrecision: "avro", decimals: "unscaled", hstore: "map", uuidMarker: false, interval: "string", intervalText: "postgres", bitBoolean: false, pointRecord: false, bits: false };

/** How numerics without a declared scale are carried: exact (VariableScaleDecimal), as double, or as text. */
export type NumericMode = "precise" | "double" | "string";

/**
 * Array columns: PostgreSQL does not record how many dimensions a column's values have (any
 * `integer[]` value may be 1-D, 2-D, ... up to 6-D), so array items may nest up to 6 levels
 * (`nested`, the default). `flat` is the one-dimensional layout of subjects registered before
 * nested arrays, kept where the subject's compatibility level refuses the nested one.
 */
export type ArrayLayout = "nested" | "flat";

export function postgresColumnType(dbType: string, numericMode: NumericMode, arrayLayout: ArrayLayout = "nested", modes: TypeModes = EARLIER_TYPE_MODES): ColumnAvroType {
  const type = parseDbType(dbType, { postgresArrays: true });
  const scalar = postgresScalarType(type, numericMode, modes);
  return type.isArray ? arrayColumn(scalar, { dimensions: arrayLayout === "nested" ? MAX_ARRAY_DIMENSIONS : 1 }) : scalar;
}

const INTEGERS = new Set(["smallint", "int2", "smallserial", "serial2", "integer", "int", "int4", "serial", "serial4"]);
const BIGINTS = new Set(["bigint", "int8", "bigserial", "serial8"]);
/** Unsigned 32-bit system types: exact in a long, decoded as numbers. */
const UNSIGNED_32 = new Set(["oid", "xid", "cid"]);
const TEXTS = new Set(["text", "character varying", "varchar", "character", "char", "bpchar", "name", "citext"]);
const TIMESTAMPS = new Set(["timestamp", "timestamp without time zone", "timestamptz", "timestamp with time zone"]);

const ZONED_TIMESTAMPS = new Set(["timestamptz", "timestamp with time zone"]);

/** `interval` and its field-restricted forms (`interval day to second`, `interval year`, ...). */
export function isIntervalType(name: string): boolean {
  return name === "interval" || name.startsWith("interval ");
}

/**
 * `bit` and `bit(1)` (not `bit varying(1)`, which Debezium keeps as Bits). An array type named
 * without its length (`_bit`) may hold longer bit strings, so it keeps the text.
 */
export function isSingleBit(type: Pick<DbType, "name" | "args" | "isArray">): boolean {
  return type.name === "bit" && (type.args.length === 0 ? !type.isArray : Number(type.args[0]) === 1);
}

/** `bit varying(1)`, which Debezium (like bit(1)) maps to a boolean; Sluice does so with the bits mode. */
export function isVaryingSingleBit(type: Pick<DbType, "name" | "args" | "isArray">): boolean {
  return (type.name === "bit varying" || type.name === "varbit") && !type.isArray && type.args.length === 1 && Number(type.args[0]) === 1;
}

/**
 * The width Debezium's Bits carries for a PostgreSQL bit string column, or null where it keeps
 * another form: bit(1) and bit varying(1) (boolean in Debezium), and arrays (Debezium has no
 * consistent form for them), which keep the 0/1 text.
 */
export function postgresBitsLength(type: Pick<DbType, "name" | "args" | "isArray">): number | null {
  if (type.isArray) return null;
  if (type.name === "bit") return type.args.length === 0 ? null : Number(type.args[0]) > 1 ? Number(type.args[0]) : null;
  if (type.name !== "bit varying" && type.name !== "varbit") return null;
  return type.args.length === 0 ? UNBOUNDED_BITS_LENGTH : Number(type.args[0]) > 1 ? Number(type.args[0]) : null;
}

/** bit(1) as Debezium's boolean: '1' is true; decodes to the same '0'/'1' text. */
const BIT_BOOLEAN: ColumnAvroType = {
  ...booleanColumn,
  label: "boolean (bit(1))",
  toAvro: (value) => {
    if (value === "1" || value === "0") return value === "1";
    throw new TypeError(`expected bit(1) text 0 or 1, got ${describeValue(value)}`);
  },
  fromAvro: (value) => (value === true ? "1" : "0"),
};

/** bit varying(1) as Debezium's boolean; its empty value is false with the text "" in the record header sluice.special. */
const VARBIT_BOOLEAN: ColumnAvroType = {
  ...booleanColumn,
  label: "boolean (bit varying(1))",
  toAvro: (value, context, path) => {
    if (value === "1" || value === "0") return value === "1";
    if (value === "") {
      context.special(path, value);
      return false;
    }
    throw new TypeError(`expected bit varying(1) text 0, 1 or empty, got ${describeValue(value)}`);
  },
  fromAvro: (value, context, path) => context.special(path) ?? (value === true ? "1" : "0"),
  mayBeSpecial: true,
};

function postgresScalarType(type: DbType, numericMode: NumericMode, modes: TypeModes): ColumnAvroType {
  const name = type.name;
  if (INTEGERS.has(name)) return intColumn;
  if (BIGINTS.has(name)) return longColumn({ narrow: false });
  if (UNSIGNED_32.has(name)) return longColumn({ narrow: true });
  if (TEXTS.has(name)) return stringColumn("string");
  if (isIntervalType(name)) {
    if (modes.interval === "numeric") return MICRO_DURATION_INTERVAL;
    return modes.intervalText === "debezium" ? DEBEZIUM_INTERVAL : stringColumn(`string (${name})`);
  }
  if (TIMESTAMPS.has(name)) return modes.timePrecision === "avro" ? timestampMicrosColumn : timestampType(modes.timePrecision, fractionDigits(type.args), ZONED_TIMESTAMPS.has(name));
  switch (name) {
    case "xid8":
      return decimalColumn(20, 0, { integerResult: true });
    case "real":
    case "float4":
      return floatColumn;
    case "double precision":
    case "float8":
      return doubleColumn;
    case "float":
      return Number(type.args[0] ?? 53) <= 24 ? floatColumn : doubleColumn;
    case "numeric":
    case "decimal":
      return numericType(type.args, numericMode, modes.decimals);
    case "money":
      // money is a 64-bit count of cents: at most 19 digits, 2 after the point.
      return decimalColumn(19, 2, { currencyText: true });
    case "boolean":
    case "bool":
      return booleanColumn;
    case "bytea":
      return bytesColumn("bytes");
    case "date":
      return modes.timePrecision === "avro" ? dateColumn : dateType(modes.timePrecision);
    case "time":
    case "time without time zone":
      return modes.timePrecision === "avro" ? timeMicrosColumn : timeType(modes.timePrecision, fractionDigits(type.args));
    case "timetz":
    case "time with time zone":
      return modes.timePrecision === "avro" ? stringColumn(`string (${name})`) : ZONED_TIME;
    case "uuid":
      return modes.uuidMarker === true ? debeziumUuidColumn : uuidColumn;
    case "json":
    case "jsonb":
      return jsonColumn;
    case "xml":
      return stringColumn("string (xml)", { "connect.name": "io.debezium.data.Xml" });
    case "bit":
    case "bit varying":
    case "varbit": {
      if (modes.bitBoolean === true && isSingleBit(type)) return BIT_BOOLEAN;
      if (modes.bits === true && isVaryingSingleBit(type)) return VARBIT_BOOLEAN;
      const length = modes.bits === true ? postgresBitsLength(type) : null;
      return length === null ? bitStringColumn : postgresBitsColumn(length, name === "bit");
    }
    case "hstore":
      return modes.hstore === "json" ? hstoreJsonColumn : hstoreColumn;
    case "point":
      return modes.pointRecord === true ? pointColumn : stringColumn("string (point)");
    default:
      // interval, inet, cidr, macaddr(8), tsvector, tsquery, geometric types, ranges,
      // enums and any other type: its text form.
      return stringColumn(`string (${name})`);
  }
}

function numericType(args: readonly string[], numericMode: NumericMode, decimals: TypeModes["decimals"]): ColumnAvroType {
  const precision = Number(args[0]);
  const scale = args.length > 1 ? Number(args[1]) : 0;
  // Avro decimals need 0 <= scale <= precision; PostgreSQL 15 also allows negative scales and
  // scales above the precision, which are carried like an unconstrained numeric.
  const declared = args.length > 0 && Number.isInteger(precision) && precision > 0 && Number.isInteger(scale) && scale >= 0 && scale <= precision;
  if (declared && (decimals === "unscaled" || numericMode === "precise")) return decimalColumn(precision, scale, { specials: true });
  switch (numericMode) {
    case "precise":
      return variableScaleDecimalColumn;
    case "double":
      return numericAsDoubleColumn;
    case "string":
      return numericAsStringColumn;
  }
}
