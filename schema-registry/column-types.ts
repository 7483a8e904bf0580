/**
 * The Avro form of one column type: its schema and the converters between a ColumnValue
 * (contracts.ts) and the value avsc encodes. Which database type gets which form is decided in
 * postgres-types.ts and mysql-types.ts; docs/avro-types.md is the table.
 */
import { civilDate } from "../connectors/common/civil-calendar.ts";
import type { ColumnValue, Unchanged } from "../connectors/contracts.ts";
import type { AvroSchemaJson } from "./avro-schema.ts";
import { bytesToDecimalText, bytesToUnscaled, decimalBytes, parseDecimal, ReusedDecimalBytes, unscaledToBytes } from "./decimal.ts";
import { formatHstore, parseHstore } from "./hstore.ts";
import type { HstoreMap } from "./hstore.ts";

export type PresentValue = Exclude<ColumnValue, null | Unchanged>;
export type SpecialNumeric = "NaN" | "Infinity" | "-Infinity";

/**
 * Receives the source's own text where the Avro value cannot say it (see row-codec.ts): NaN and
 * ±Infinity of precise decimals (the field then holds null), a PostgreSQL timetz's offset (the
 * field holds Debezium's UTC form).
 */
export interface EncodeContext {
  special(path: string, value: string): void;
}

export interface DecodeContext {
  special(path: string): string | undefined;
}

/** Named Avro types are defined once per schema and referenced by name afterwards. */
export interface NamedTypeScope {
  define(fullName: string, definition: () => AvroSchemaJson): AvroSchemaJson;
}

export type ToAvroFunction = (value: PresentValue, context: EncodeContext, path: string) => unknown;

/**
 * A present value's avsc value. `writtenAtOnce`, where set, gives the same for a value written out
 * before it is called again (capture's compiled writers): it may hand back the same buffer each
 * time, overwritten. It belongs to this function, so a type made from another with its own toAvro
 * (`{ ...base, toAvro }`) does not keep the other's.
 */
export type ToAvro = ToAvroFunction & { readonly writtenAtOnce?: ToAvroFunction };

export interface ColumnAvroType {
  /** What the column became, for messages: "decimal(10,2)", "array<int>". */
  readonly label: string;
  /** The Avro schema of a present (non-null) value. */
  schema(scope: NamedTypeScope): AvroSchemaJson;
  /** The avsc value of a present value, or `undefined` when it was recorded as a special value. */
  readonly toAvro: ToAvro;
  fromAvro(value: unknown, context: DecodeContext, path: string): ColumnValue;
  /** Stands in for a value that is not available in a field that cannot be null. */
  readonly zero: unknown;
  /** Whether values may be NaN/±Infinity recorded beside the record (precise PostgreSQL numerics). */
  readonly mayBeSpecial: boolean;
  /** How a value is shown in an error (default: describeValue), e.g. a timestamp as its date and time. */
  readonly show?: (value: PresentValue) => string;
  /**
   * The Avro value of Debezium's placeholder for a value the source did not send (PostgreSQL
   * unchanged TOAST), for types that can hold it (strings, bytes, arrays of them); absent: null or `zero`.
   */
  readonly unavailable?: unknown;
}

/** Debezium's default `unavailable.value.placeholder`, written where PostgreSQL did not send an unchanged TOAST value. */
export const UNAVAILABLE_VALUE_PLACEHOLDER = "__debezium_unavailable_value";

const INT_MIN = -(2 ** 31);
const INT_MAX = 2 ** 31 - 1;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const INTEGER_TEXT = /^[+-]?\d+$/;
const SPECIALS = new Map<string, SpecialNumeric>([
  ["nan", "NaN"],
  ["infinity", "Infinity"],
  ["+infinity", "Infinity"],
  ["-infinity", "-Infinity"],
]);

export function describeValue(value: unknown): string {
  if (value instanceof Uint8Array) return `${value.length} bytes`;
  if (Array.isArray(value)) return "an array";
  if (typeof value === "string") return `string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value)}`;
  if (typeof value === "bigint") return `bigint ${value}`;
  return `${typeof value} ${String(value)}`;
}

function expected(what: string, value: unknown): never {
  throw new TypeError(`expected ${what}, got ${describeValue(value)}`);
}

function withProps(type: string, props: Readonly<Record<string, unknown>>): AvroSchemaJson {
  return Object.keys(props).length === 0 ? type : { type, ...props };
}

export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** A plain Uint8Array view (not a Buffer), so decoded rows compare equal to source rows. */
function asUint8Array(value: unknown): Uint8Array {
  if (!(value instanceof Uint8Array)) expected("bytes", value);
  return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
}

function toInteger(value: PresentValue, min: bigint, max: bigint, what: string): bigint {
  let n: bigint;
  if (typeof value === "bigint") n = value;
  else if (typeof value === "number" && Number.isInteger(value)) n = BigInt(value);
  else if (typeof value === "string" && INTEGER_TEXT.test(value.trim())) n = BigInt(value.trim());
  else expected(what, value);
  if (n < min || n > max) throw new RangeError(`${n} is out of range for ${what}`);
  return n;
}

const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER);
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** A long value for avsc: a number when exact, else a bigint. */
function toLong(value: PresentValue, what: string): number | bigint {
  if (typeof value === "number" && Number.isSafeInteger(value)) return value;
  const n = typeof value === "bigint" && value >= INT64_MIN && value <= INT64_MAX ? value : toInteger(value, INT64_MIN, INT64_MAX, what);
  return n >= MIN_SAFE && n <= MAX_SAFE ? Number(n) : n;
}

function longResult(value: unknown): bigint {
  if (typeof value === "bigint") return value;
  if (typeof value === "number" && Number.isInteger(value)) return BigInt(value);
  return expected("a long", value);
}

function toFloatingPoint(value: PresentValue): number {
  if (typeof value === "number") return value;
  if (typeof value === "bigint") return Number(value);
  if (typeof value === "string") {
    const special = SPECIALS.get(value.trim().toLowerCase());
    if (special) return Number(special);
    const n = Number(value);
    if (value.trim() !== "" && !Number.isNaN(n)) return n;
  }
  return expected("a floating-point number", value);
}

function specialOf(value: PresentValue): SpecialNumeric | undefined {
  if (typeof value === "number" && !Number.isFinite(value)) return Number.isNaN(value) ? "NaN" : value > 0 ? "Infinity" : "-Infinity";
  if (typeof value === "string") return startsAsNumber(value) ? undefined : SPECIALS.get(value.trim().toLowerCase());
  return undefined;
}

/** Text whose first character is a digit, or a minus and a digit: no special value (the usual decimal, without a lookup). */
function startsAsNumber(text: string): boolean {
  const first = text.charCodeAt(0);
  if (first >= 48 && first <= 57) return true;
  const second = text.charCodeAt(1);
  return first === 45 && second >= 48 && second <= 57;
}

function decimalText(value: PresentValue): string {
  if (typeof value === "string") return value;
  if (typeof value === "bigint") return value.toString();
  if (typeof value === "number" && Number.isFinite(value)) return String(value);
  return expected("a decimal (digit string)", value);
}

export const booleanColumn: ColumnAvroType = {
  label: "boolean",
  schema: () => "boolean",
  toAvro: (value) => (typeof value === "boolean" ? value : expected("a boolean", value)),
  fromAvro: (value) => value as boolean,
  zero: false,
  mayBeSpecial: false,
};

export const intColumn: ColumnAvroType = {
  label: "int",
  schema: () => "int",
  toAvro: (value) => {
    if (typeof value === "number" && Number.isInteger(value) && value >= INT_MIN && value <= INT_MAX) return value;
    return Number(toInteger(value, BigInt(INT_MIN), BigInt(INT_MAX), "an int"));
  },
  fromAvro: (value) => value as number,
  zero: 0,
  mayBeSpecial: false,
};

/** A 64-bit integer. `narrow` columns (e.g. MySQL INT UNSIGNED) always fit a number and decode as one. */
export function longColumn(options: { narrow: boolean }): ColumnAvroType {
  return {
    label: "long",
    schema: () => "long",
    toAvro: (value) => toLong(value, "a long"),
    fromAvro: options.narrow ? (value) => Number(longResult(value)) : longResult,
    zero: 0,
    mayBeSpecial: false,
  };
}

export const floatColumn: ColumnAvroType = {
  label: "float",
  schema: () => "float",
  toAvro: toFloatingPoint,
  fromAvro: (value) => value as number,
  zero: 0,
  mayBeSpecial: false,
};

export const doubleColumn: ColumnAvroType = { ...floatColumn, label: "double", schema: () => "double" };

/** A string; `props` adds a logical type or a semantic marker (e.g. Debezium's `connect.name`). */
export function stringColumn(label: string, props: Readonly<Record<string, unknown>> = {}): ColumnAvroType {
  return {
    label,
    schema: () => withProps("string", props),
    toAvro: (value) => {
      if (typeof value === "string") return value;
      if (typeof value === "number" || typeof value === "bigint" || typeof value === "boolean") return String(value);
      return expected("a string", value);
    },
    fromAvro: (value) => value as string,
    zero: "",
    mayBeSpecial: false,
    unavailable: UNAVAILABLE_VALUE_PLACEHOLDER,
  };
}

export function bytesColumn(label: string, props: Readonly<Record<string, unknown>> = {}): ColumnAvroType {
  return {
    label,
    schema: () => withProps("bytes", props),
    toAvro: (value) => (value instanceof Uint8Array ? asBuffer(value) : expected("bytes (Uint8Array)", value)),
    fromAvro: asUint8Array,
    zero: Buffer.alloc(0),
    mayBeSpecial: false,
    unavailable: Buffer.from(UNAVAILABLE_VALUE_PLACEHOLDER),
  };
}

export interface DecimalOptions {
  /** Decode to a bigint instead of a digit string (integers stored as decimals, e.g. BIGINT UNSIGNED). */
  readonly integerResult?: boolean;
  /** NaN and ±Infinity are possible and recorded beside the record (PostgreSQL numeric). */
  readonly specials?: boolean;
  /** Accepts currency-formatted text such as "-$1,234.56" (PostgreSQL money). */
  readonly currencyText?: boolean;
}

/** A decimal with declared precision and scale: Avro bytes with the `decimal` logical type. */
export function decimalColumn(precision: number, scale: number, options: DecimalOptions = {}): ColumnAvroType {
  /** The digits to encode, or undefined for a special value (recorded in `context`). */
  const digitsOf = (value: PresentValue, context: EncodeContext, path: string): string | undefined => {
    if (options.specials) {
      const special = specialOf(value);
      if (special) {
        context.special(path, special);
        return undefined;
      }
    }
    const text = decimalText(value);
    return options.currencyText ? text.replace(/[^0-9.+-]/g, "") : text;
  };
  const reused = new ReusedDecimalBytes();
  const toAvro: ToAvroFunction = (value, context, path) => {
    const text = digitsOf(value, context, path);
    return text === undefined ? undefined : decimalBytes(text, scale);
  };
  const writtenAtOnce: ToAvroFunction = (value, context, path) => {
    const text = digitsOf(value, context, path);
    return text === undefined ? undefined : reused.of(text, scale);
  };
  return {
    label: `decimal(${precision},${scale})`,
    schema: () => ({ type: "bytes", logicalType: "decimal", precision, scale }),
    toAvro: Object.assign(toAvro, { writtenAtOnce }),
    fromAvro: (value) => {
      // Read where they are (asUint8Array's view of them was garbage for every decimal a sink decodes).
      if (!(value instanceof Uint8Array)) expected("bytes", value);
      return options.integerResult && scale === 0 ? bytesToUnscaled(value) : bytesToDecimalText(value, scale);
    },
    zero: Buffer.of(0),
    mayBeSpecial: options.specials === true,
  };
}

const VARIABLE_SCALE_DECIMAL = "io.debezium.data.VariableScaleDecimal";

/**
 * A decimal whose scale varies per value (PostgreSQL `numeric` without a declared scale), laid out
 * as Debezium's VariableScaleDecimal record {scale: int, value: bytes}.
 */
export const variableScaleDecimalColumn: ColumnAvroType = {
  label: "VariableScaleDecimal",
  schema: (scope) =>
    scope.define(VARIABLE_SCALE_DECIMAL, () => ({
      type: "record",
      name: VARIABLE_SCALE_DECIMAL,
      fields: [
        { name: "scale", type: "int" },
        { name: "value", type: "bytes" },
      ],
      "connect.name": VARIABLE_SCALE_DECIMAL,
    })),
  toAvro: (value, context, path) => {
    const special = specialOf(value);
    if (special) {
      context.special(path, special);
      return undefined;
    }
    const { unscaled, scale } = parseDecimal(decimalText(value));
    return { scale, value: unscaledToBytes(unscaled) };
  },
  fromAvro: (value) => {
    const record = value as { scale: number; value: Uint8Array };
    return bytesToDecimalText(record.value, record.scale);
  },
  zero: { scale: 0, value: Buffer.of(0) },
  mayBeSpecial: true,
};

/** A decimal carried as a double (lossy; NaN and ±Infinity are native). Decodes to its digit string. */
export const numericAsDoubleColumn: ColumnAvroType = {
  label: "double",
  schema: () => "double",
  toAvro: toFloatingPoint,
  fromAvro: (value) => String(value as number),
  zero: 0,
  mayBeSpecial: false,
};

/** A decimal carried as its exact digit string ("NaN", "Infinity", "-Infinity" included). */
export const numericAsStringColumn: ColumnAvroType = {
  label: "string",
  schema: () => "string",
  toAvro: (value) => {
    const special = specialOf(value);
    if (special) return special;
    const text = decimalText(value);
    parseDecimal(text);
    return text;
  },
  fromAvro: (value) => value as string,
  zero: "0",
  mayBeSpecial: false,
};

const MICROS_PER_DAY = 86_400_000_000n;

/** Microseconds since 1970-01-01 UTC as ISO-8601 text (any magnitude), for messages. */
export function civilTimestamp(micros: bigint): string {
  let days = micros / MICROS_PER_DAY;
  let rest = micros % MICROS_PER_DAY;
  if (rest < 0n) {
    days -= 1n;
    rest += MICROS_PER_DAY;
  }
  const seconds = Number(rest / 1_000_000n);
  const fraction = Number(rest % 1_000_000n);
  const time = [Math.floor(seconds / 3600), Math.floor(seconds / 60) % 60, seconds % 60].map((n) => String(n).padStart(2, "0")).join(":");
  return `${civilDate(Number(days))}T${time}${fraction === 0 ? "" : `.${String(fraction).padStart(6, "0")}`}Z`;
}

function integerOf(value: PresentValue): bigint | undefined {
  if (typeof value === "bigint") return value;
  if (typeof value === "number" && Number.isInteger(value)) return BigInt(value);
  if (typeof value === "string" && INTEGER_TEXT.test(value.trim())) return BigInt(value.trim());
  return undefined;
}

/** MySQL's zero date (or one no calendar has), refused: RowCodec words it for a key column. */
export class ZeroDateValueError extends RangeError {}

/** A date with a zero year, month or day (MySQL's 0000-00-00, delivered as text under zero_dates: error, and always in a key column) has no day count. */
function refuseZeroDate(value: PresentValue): void {
  if (typeof value === "string" && /^\d{4}-\d{2}-\d{2}/.test(value) && /^0000|^\d{4}-00|^\d{4}-\d{2}-00/.test(value)) {
    throw new ZeroDateValueError(`a zero date, which no Avro date or timestamp holds (the source's zero_dates: error refuses it; zero_dates: null carries it as NULL)`);
  }
}

/**
 * PostgreSQL's text of its one finite timestamp that lands on 2^63 - 1 µs after 1970, the count
 * `infinity` is carried as (connectors/postgres/values/civil-time.ts): refused, never infinity.
 */
export function refuseTimestampText(value: PresentValue): void {
  if (typeof value === "string" && /^\d{4,}-\d{2}-\d{2} /.test(value)) {
    throw new RangeError(`${value} is 2^63-1 microseconds after 1970, the count that carries PostgreSQL's infinity, so no timestamp type here can tell it from infinity`);
  }
}

export const dateColumn: ColumnAvroType = {
  label: "date",
  schema: () => ({ type: "int", logicalType: "date" }),
  toAvro: (value) => {
    refuseZeroDate(value);
    const days = integerOf(value);
    if (days !== undefined && (days < BigInt(INT_MIN) || days > BigInt(INT_MAX))) {
      throw new RangeError(`${civilDate(Number(days))} is beyond what the Avro date type (32-bit days since 1970-01-01) can hold`);
    }
    return Number(toInteger(value, BigInt(INT_MIN), BigInt(INT_MAX), "days since the epoch"));
  },
  fromAvro: (value) => value as number,
  zero: 0,
  mayBeSpecial: false,
  show: (value) => {
    const days = integerOf(value);
    return days === undefined ? describeValue(value) : `date ${civilDate(Number(days))}`;
  },
};

/** Microseconds as a long. `props` carries the logical type or marker; `asNumber` decodes to a number. */
function microsColumn(label: string, props: Readonly<Record<string, unknown>>, asNumber: boolean): ColumnAvroType {
  return {
    label,
    schema: () => ({ type: "long", ...props }),
    toAvro: (value) => toLong(value, "microseconds"),
    fromAvro: asNumber ? (value) => Number(longResult(value)) : longResult,
    zero: 0,
    mayBeSpecial: false,
  };
}

export const timeMicrosColumn = microsColumn("time-micros", { logicalType: "time-micros" }, true);

const micros = microsColumn("timestamp-micros", { logicalType: "timestamp-micros" }, false);
/**
 * Timestamps as microseconds since 1970-01-01 UTC in a long. PostgreSQL reaches 294276 AD (it
 * counts from 2000), a long of microseconds since 1970 only 294247 AD: later values are refused
 * with a message naming the timestamp (capture halts the table).
 */
export const timestampMicrosColumn: ColumnAvroType = {
  ...micros,
  toAvro: (value, context, path) => {
    refuseZeroDate(value);
    refuseTimestampText(value);
    const n = integerOf(value);
    if (n !== undefined && (n < INT64_MIN || n > INT64_MAX)) {
      throw new RangeError(`${civilTimestamp(n)} is beyond what timestamp-micros (a 64-bit count of microseconds since 1970, 290309 BC to 294247 AD) can hold`);
    }
    return micros.toAvro(value, context, path);
  },
  show: (value) => {
    const n = integerOf(value);
    return n === undefined ? describeValue(value) : `timestamp ${civilTimestamp(n)}`;
  },
};
/** A signed duration in microseconds (MySQL TIME spans -838:59:59 to 838:59:59, beyond a time of day). */
export const microDurationColumn = microsColumn("long (MicroTime)", { "connect.name": "io.debezium.time.MicroTime" }, true);

export const hstoreColumn: ColumnAvroType = {
  label: "map<string>",
  schema: () => ({ type: "map", values: ["null", "string"] }),
  toAvro: (value) => (typeof value === "string" ? parseHstore(value) : expected("hstore text", value)),
  fromAvro: (value) => formatHstore(value as HstoreMap),
  zero: {},
  mayBeSpecial: false,
};

/**
 * hstore as Debezium's default `hstore.handling.mode=json`: a JSON object of strings and nulls,
 * `io.debezium.data.Json`. Keys keep the source's order, so the text comes back exactly.
 */
export const hstoreJsonColumn: ColumnAvroType = {
  label: "string (hstore json)",
  schema: () => ({ type: "string", "connect.version": 1, "connect.name": "io.debezium.data.Json" }),
  toAvro: (value) => (typeof value === "string" ? JSON.stringify(parseHstore(value)) : expected("hstore text", value)),
  fromAvro: (value) => formatHstore(JSON.parse(value as string) as HstoreMap),
  zero: "{}",
  mayBeSpecial: false,
};

/** PostgreSQL bit strings as text of 0s and 1s, which keeps their exact length. */
export const bitStringColumn: ColumnAvroType = {
  ...stringColumn("string (bits)"),
  toAvro: (value) => (typeof value === "string" && /^[01]*$/.test(value) ? value : expected("a bit string of 0s and 1s", value)),
};

/** MySQL BIT(1) as boolean. */
export const bitBooleanColumn: ColumnAvroType = {
  ...booleanColumn,
  toAvro: (value) => {
    if (typeof value === "boolean") return value;
    if (typeof value === "number" || typeof value === "bigint") return value !== 0 && value !== 0n;
    if (value instanceof Uint8Array) return value.some((byte) => byte !== 0);
    return expected("a bit", value);
  },
};

/** MySQL BIT(n) as big-endian bytes, ceil(n/8) long. */
export function bitBytesColumn(bits: number): ColumnAvroType {
  const length = Math.ceil(bits / 8);
  return {
    ...bytesColumn(`bytes (bit(${bits}))`),
    toAvro: (value) => {
      let bytes: Uint8Array;
      if (value instanceof Uint8Array) bytes = value;
      else if (typeof value === "number" || typeof value === "bigint") {
        const n = toInteger(value, 0n, (1n << BigInt(bits)) - 1n, `bit(${bits})`);
        bytes = Buffer.from(n.toString(16).padStart(length * 2, "0"), "hex");
      } else return expected(`bit(${bits}) bytes`, value);
      if (bytes.length > length) throw new RangeError(`${bytes.length} bytes do not fit bit(${bits})`);
      const padded = Buffer.alloc(length);
      padded.set(bytes, length - bytes.length);
      return padded;
    },
  };
}

/** MySQL SET values as the comma-separated text MySQL prints (arrays of members are joined). */
export function setColumn(allowed: readonly string[]): ColumnAvroType {
  const text = stringColumn("string (set)", { "connect.name": "io.debezium.data.EnumSet", "connect.parameters": { allowed: allowed.join(",") } });
  return {
    ...text,
    toAvro: (value, context, path) =>
      Array.isArray(value) && value.every((member) => typeof member === "string") ? value.join(",") : text.toAvro(value, context, path),
  };
}

/** PostgreSQL arrays have at most 6 dimensions (MAXDIM in its source). */
export const MAX_ARRAY_DIMENSIONS = 6;

/**
 * Arrays whose elements may be null. With `dimensions` above 1, an element may itself be an array
 * (one level less deep): the items union is `["null", T, array<...>]`. The element type keeps
 * branch 1, so one-dimensional values encode to the same bytes as under the one-dimensional
 * schema `["null", T]`. Values with more dimensions than the schema allows are refused.
 */
export function arrayColumn(element: ColumnAvroType, options: { readonly dimensions?: number } = {}): ColumnAvroType {
  const dimensions = options.dimensions ?? 1;
  const itemsSchema = (scope: NamedTypeScope, level: number): AvroSchemaJson[] => {
    const items: AvroSchemaJson[] = ["null", element.schema(scope)];
    if (level < dimensions) items.push({ type: "array", items: itemsSchema(scope, level + 1) });
    return items;
  };
  const encode = (value: readonly unknown[], context: EncodeContext, path: string, level: number): unknown[] =>
    value.map((item, index) => {
      if (item === null) return null;
      const itemPath = element.mayBeSpecial ? `${path}[${index}]` : path;
      if (Array.isArray(item)) {
        if (level >= dimensions) {
          throw new TypeError(`a value with more than ${dimensions} dimension${dimensions === 1 ? "" : "s"}, which array<${element.label}>${dimensions === 1 ? " (the one-dimensional layout this subject was registered with)" : ""} cannot hold`);
        }
        return encode(item, context, itemPath, level + 1);
      }
      if (typeof item === "symbol" || item === undefined) return expected("an array element", item);
      const encoded = element.toAvro(item as PresentValue, context, itemPath);
      return encoded === undefined ? null : encoded;
    });
  const decode = (value: readonly unknown[], context: DecodeContext, path: string): ColumnValue[] =>
    value.map((item, index) => {
      const itemPath = element.mayBeSpecial ? `${path}[${index}]` : path;
      if (item === null) return (element.mayBeSpecial && context.special(itemPath)) || null;
      if (Array.isArray(item)) return decode(item, context, itemPath) as ColumnValue;
      return element.fromAvro(item, context, itemPath);
    });
  return {
    label: `array<${element.label}>`,
    schema: (scope) => ({ type: "array", items: itemsSchema(scope, 1) }),
    toAvro: (value, context, path) => (Array.isArray(value) ? encode(value, context, path, 1) : expected("an array", value)),
    fromAvro: (value, context, path) => decode(value as readonly unknown[], context, path),
    zero: [],
    mayBeSpecial: element.mayBeSpecial,
    ...(element.unavailable === undefined ? {} : { unavailable: [element.unavailable] }),
    show: (value) => JSON.stringify(value, (_key, item: unknown) => (typeof item === "bigint" ? item.toString() : item instanceof Uint8Array ? `${item.length} bytes` : item)) ?? describeValue(value),
  };
}

/** JSON documents as their text, marked the way Debezium marks them. */
export const jsonColumn = stringColumn("string (json)", { "connect.name": "io.debezium.data.Json" });
export const uuidColumn = stringColumn("string (uuid)", { logicalType: "uuid" });
/** uuid with Debezium's marker beside the Avro logical type: the same string, read the same way. */
export const debeziumUuidColumn = stringColumn("string (uuid)", { logicalType: "uuid", "connect.version": 1, "connect.name": "io.debezium.data.Uuid" });
