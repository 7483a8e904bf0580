/**
 * ColumnValue <-> RowBinary for the column types of types.ts, and the SQL literals of key values.
 * Writing is exact (floats bit for bit, decimals as their scaled integers) and rejects what a
 * column cannot hold (ClickHouse would wrap integers and zero dates silently). Reading serves the
 * stored rows of unchanged-TOAST columns: `skipValue` measures a field, `readValue` turns one back
 * into a ColumnValue when it has to go into a column of another type.
 */
import type { ColumnValue } from "../contracts.ts";
import { ValueRejected } from "../sinks/errors.ts";
import type { LogicalType } from "../sinks/logical-type.ts";
import {
  arrayItems,
  booleanValue,
  bytesValue,
  checkedInteger,
  formatDate,
  formatTimestamp,
  infinityOf,
  jsonText,
  plainDecimalText,
  scaledDecimal,
  stringText,
  toBigInt,
  toDays,
  toFloat,
  uuidText,
} from "../sinks/values.ts";
import type { RowBinaryReader, RowBinaryWriter } from "./rowbinary.ts";
import { sqlString } from "./tsv.ts";
import { formatUnscaled } from "../../schema-registry/decimal.ts";
import { decimalBytes } from "./types.ts";
import type { Dialect } from "./types.ts";

type Scalar = Exclude<LogicalType, { kind: "array" }>;

// Date32 and DateTime64 cover 1900-01-01 .. 2299-12-31.
const MIN_DAY32 = -25_567;
const MAX_DAY32 = 120_529;
const MICROS_PER_DAY = 86_400_000_000n;
/** Exclusive bounds of DateTime64 in microseconds: the days of MIN_DAY32 and MAX_DAY32 whole, as `micros / MICROS_PER_DAY` (truncated) takes them. */
const MIN_DATETIME64_MICROS = BigInt(MIN_DAY32 - 1) * MICROS_PER_DAY;
const MAX_DATETIME64_MICROS = BigInt(MAX_DAY32 + 1) * MICROS_PER_DAY;
const MIN_INT64 = -(2n ** 63n);
const MAX_INT64 = 2n ** 63n - 1n;

/** Writes one field of a column of `type` (`nullable`: a Nullable(...) column; arrays never are, NULL is []). */
export function writeValue(writer: RowBinaryWriter, type: LogicalType, dialect: Dialect, nullable: boolean, value: ColumnValue): void {
  if (type.kind === "array") {
    if (value === null) {
      writer.varUInt(0);
      return;
    }
    const element = type.element;
    if (element.kind === "array") throw new ValueRejected("multi-dimensional arrays are not supported");
    const items = arrayItems(value);
    writer.varUInt(items.length);
    for (const item of items) {
      if (Array.isArray(item)) throw new ValueRejected("multi-dimensional arrays are not supported");
      writeValue(writer, element, dialect, true, item);
    }
    return;
  }
  if (value === null) {
    if (!nullable) throw new ValueRejected("NULL in a key column");
    writer.uint8(1);
    return;
  }
  if (nullable) writer.uint8(0);
  writeScalar(writer, type, dialect, value);
}

function writeScalar(writer: RowBinaryWriter, type: Scalar, dialect: Dialect, value: ColumnValue): void {
  switch (type.kind) {
    case "boolean":
      writer.uint8(booleanValue(value) ? 1 : 0);
      return;
    case "integer":
      writeInteger(writer, type, value);
      return;
    case "float": {
      const n = toFloat(value);
      if (type.bits === 64) writer.float64(n);
      else if (Number.isFinite(n) && !Number.isFinite(Math.fround(n))) throw new ValueRejected(`${n} is out of range for float32`);
      else writer.float32(n);
      return;
    }
    case "decimal": {
      const bytes = decimalBytes(type);
      if (bytes === null) {
        writer.string(plainDecimalText(value));
        return;
      }
      const unscaled = scaledDecimal(value, type.precision as number, type.scale as number);
      if (bytes === 4) writer.int32(Number(unscaled));
      else if (bytes === 8) writer.int64(unscaled);
      else writer.int128(unscaled);
      return;
    }
    case "string":
      writer.string(stringText(value));
      return;
    case "json":
      writer.string(jsonText(value));
      return;
    case "bytes":
      writer.bytes(bytesValue(value));
      return;
    case "uuid":
      writer.raw(uuidBytes(value));
      return;
    case "date":
      writer.int32(dialect.date32 ? date32Days(value) : toDays(value));
      return;
    case "timestamp":
      writer.int64(dialect.dateTime64 ? dateTime64Micros(value) : integerTimestamp(value));
      return;
    case "time":
      writer.int64(timeMicros(value));
      return;
    case "duration":
      writer.int64(int64Value(value, "duration"));
      return;
  }
}

function writeInteger(writer: RowBinaryWriter, type: { readonly bits: 8 | 16 | 24 | 32 | 64; readonly unsigned: boolean }, value: ColumnValue): void {
  // Numbers in range skip BigInt (most integers arrive as numbers); anything else goes through the checked path.
  const low = type.unsigned ? 0 : -(2 ** (type.bits - 1));
  const high = type.unsigned ? 2 ** type.bits - 1 : 2 ** (type.bits - 1) - 1;
  const n = typeof value === "number" && Number.isSafeInteger(value) && value >= low && value <= high ? value : checkedInteger(value, type);
  switch (type.bits) {
    case 8:
      if (type.unsigned) writer.uint8(Number(n));
      else writer.int8(Number(n));
      return;
    case 16:
      if (type.unsigned) writer.uint16(Number(n));
      else writer.int16(Number(n));
      return;
    case 24:
    case 32:
      if (type.unsigned) writer.uint32(Number(n));
      else writer.int32(Number(n));
      return;
    case 64:
      if (typeof n === "number") writer.int64Number(n);
      else if (type.unsigned) writer.uint64(n);
      else writer.int64(n);
      return;
  }
}

/** UUID bytes as ClickHouse keeps them: each 8-byte half as a little-endian integer. */
function uuidBytes(value: ColumnValue): Buffer {
  const bytes = Buffer.from(uuidText(value).replace(/-/g, ""), "hex");
  bytes.subarray(0, 8).reverse();
  bytes.subarray(8).reverse();
  return bytes;
}

function date32Days(value: ColumnValue): number {
  const days = toDays(value);
  if (days < MIN_DAY32 || days > MAX_DAY32) throw new ValueRejected(`date ${formatDate(days)} is outside ClickHouse Date32 (1900-01-01..2299-12-31)`);
  return days;
}

function dateTime64Micros(value: ColumnValue): bigint {
  const micros = toBigInt(value);
  // Compared with the bounds' microseconds: no quotient (a BigInt) per value.
  if (micros <= MIN_DATETIME64_MICROS || micros >= MAX_DATETIME64_MICROS) throw new ValueRejected(`timestamp ${formatTimestamp(micros)} is outside ClickHouse DateTime64 (1900..2299)`);
  return micros;
}

function timeMicros(value: ColumnValue): bigint {
  const micros = toBigInt(value);
  if (micros < 0n || micros > MICROS_PER_DAY) throw new ValueRejected(`time ${micros} µs is outside 00:00..24:00`);
  return micros;
}

/** Microseconds for servers without DateTime64; PostgreSQL's ±infinity sentinels are refused, not stored as year-294247 times. */
function integerTimestamp(value: ColumnValue): bigint {
  const micros = int64Value(value, "timestamp");
  const infinity = infinityOf(micros, "timestamp");
  if (infinity !== null) throw new ValueRejected(`timestamp ${infinity} (PostgreSQL) has no equivalent in ClickHouse`);
  return micros;
}

function int64Value(value: ColumnValue, what: string): bigint {
  const n = toBigInt(value);
  if (n < MIN_INT64 || n > MAX_INT64) throw new ValueRejected(`${what} ${n} µs is out of range for Int64`);
  return n;
}

/** Moves past one field (see writeValue for the shape). */
export function skipValue(reader: RowBinaryReader, type: LogicalType, nullable: boolean): void {
  if (type.kind === "array") {
    const count = reader.varUInt();
    for (let i = 0; i < count; i++) skipValue(reader, type.element, true);
    return;
  }
  if (nullable && reader.uint8() !== 0) return;
  const size = fixedBytes(type);
  reader.skip(size ?? reader.varUInt());
}

/** Bytes of a non-null value, or null for length-prefixed ones (String). */
function fixedBytes(type: Scalar): number | null {
  switch (type.kind) {
    case "boolean":
      return 1;
    case "integer":
      return type.bits === 24 ? 4 : type.bits / 8;
    case "float":
      return type.bits / 8;
    case "decimal":
      return decimalBytes(type);
    case "string":
    case "json":
    case "bytes":
      return null;
    case "uuid":
      return 16;
    case "date":
      return 4;
    case "timestamp":
    case "time":
    case "duration":
      return 8;
  }
}

/** Reads one field back as the ColumnValue writeValue takes for it. */
export function readValue(reader: RowBinaryReader, type: LogicalType, nullable: boolean): ColumnValue {
  if (type.kind === "array") {
    const count = reader.varUInt();
    const items: ColumnValue[] = [];
    for (let i = 0; i < count; i++) items.push(readValue(reader, type.element, true));
    return items;
  }
  if (nullable && reader.uint8() !== 0) return null;
  switch (type.kind) {
    case "boolean":
      return reader.uint8() !== 0;
    case "integer":
      return readInteger(reader, type);
    case "float":
      return type.bits === 64 ? reader.float64() : reader.float32();
    case "decimal": {
      const bytes = decimalBytes(type);
      if (bytes === null) return reader.bytes().toString("utf8");
      const unscaled = bytes === 4 ? BigInt(reader.int32()) : bytes === 8 ? reader.int64() : reader.int128();
      return formatUnscaled(unscaled, type.scale as number);
    }
    case "string":
    case "json":
      return reader.bytes().toString("utf8");
    case "bytes":
      return new Uint8Array(reader.bytes());
    case "uuid": {
      const at = reader.pos;
      reader.skip(16);
      const bytes = Buffer.from(reader.data.subarray(at, at + 16));
      bytes.subarray(0, 8).reverse();
      bytes.subarray(8).reverse();
      return uuidText(bytes.toString("hex"));
    }
    case "date":
      return reader.int32();
    case "timestamp":
    case "time":
    case "duration":
      return reader.int64();
  }
}

function readInteger(reader: RowBinaryReader, type: { readonly bits: 8 | 16 | 24 | 32 | 64; readonly unsigned: boolean }): number | bigint {
  switch (type.bits) {
    case 8:
      return type.unsigned ? reader.uint8() : reader.int8();
    case 16:
      return type.unsigned ? reader.uint16() : reader.int16();
    case 24:
    case 32:
      return type.unsigned ? reader.uint32() : reader.int32();
    case 64:
      return type.unsigned ? reader.uint64() : reader.int64();
  }
}

/**
 * A SQL literal for a value (a key in an IN list, a column's DEFAULT): integers bare, floats from their bits (ClickHouse
 * 18.16 converts float text inexactly), anything else a string the server converts exactly.
 */
export function keyLiteral(type: LogicalType, dialect: Dialect, value: ColumnValue): string {
  switch (type.kind) {
    case "array":
      throw new ValueRejected("array key columns are not supported");
    case "boolean":
      return booleanValue(value) ? "1" : "0";
    case "integer":
      return checkedInteger(value, type).toString();
    case "float": {
      const bits = Buffer.alloc(type.bits / 8);
      if (type.bits === 64) bits.writeDoubleLE(toFloat(value));
      else bits.writeFloatLE(toFloat(value));
      return `reinterpretAsFloat${type.bits}(unhex('${bits.toString("hex")}'))`;
    }
    case "decimal": {
      const bytes = decimalBytes(type);
      return sqlString(bytes === null ? plainDecimalText(value) : formatUnscaled(scaledDecimal(value, type.precision as number, type.scale as number), type.scale as number));
    }
    case "string":
      return sqlString(stringText(value));
    case "json":
      return sqlString(jsonText(value));
    case "bytes":
      return sqlString(bytesValue(value));
    case "uuid":
      return sqlString(uuidText(value));
    case "date":
      return dialect.date32 ? sqlString(formatDate(date32Days(value))) : String(toDays(value));
    case "timestamp":
      return dialect.dateTime64 ? sqlString(formatTimestamp(dateTime64Micros(value), " ")) : integerTimestamp(value).toString();
    case "time":
      return timeMicros(value).toString();
    case "duration":
      return int64Value(value, "duration").toString();
  }
}
