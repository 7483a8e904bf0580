/**
 * avsc types for encoding and decoding, with an exact 64-bit `long`: values are written from
 * bigint or safe-integer numbers and always read back as bigint, so integers beyond 2^53 survive.
 * Logical types are left to the column converters (row-codec.ts), so avsc sees only the
 * underlying types.
 */
import avro from "avsc";
import type { Type } from "avsc";
import type { AvroSchemaJson } from "./avro-schema.ts";

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
/** Below this magnitude the zig-zag value stays under 2^53, so plain number arithmetic is exact. */
const FAST_LIMIT = 2 ** 52;

function isLong(value: unknown): value is bigint | number {
  if (typeof value === "bigint") return value >= INT64_MIN && value <= INT64_MAX;
  return Number.isSafeInteger(value);
}

/** Reused by writeLong: avsc copies the returned bytes into its output before the next call. */
const LONG_SCRATCH = Buffer.allocUnsafe(10);
/** A view of the scratch per length, so no call allocates. */
const LONG_VIEWS = Array.from({ length: 11 }, (_, length) => LONG_SCRATCH.subarray(0, length));
const FAST_LIMIT_BIG = BigInt(FAST_LIMIT);

/** Zig-zag varint bytes of a long (the Avro binary encoding). */
function writeLong(value: bigint | number): Buffer {
  let length = 0;
  if (typeof value === "bigint" && value < FAST_LIMIT_BIG && value > -FAST_LIMIT_BIG) value = Number(value);
  if (typeof value === "number" && Math.abs(value) < FAST_LIMIT) {
    let zigzag = value >= 0 ? value * 2 : -value * 2 - 1;
    while (zigzag >= 0x80) {
      LONG_SCRATCH[length++] = (zigzag % 0x80) | 0x80;
      zigzag = Math.floor(zigzag / 0x80);
    }
    LONG_SCRATCH[length++] = zigzag;
  } else {
    const n = BigInt(value);
    let zigzag = n >= 0n ? n << 1n : ((-n) << 1n) - 1n;
    while (zigzag >= 0x80n) {
      LONG_SCRATCH[length++] = Number(zigzag & 0x7fn) | 0x80;
      zigzag >>= 7n;
    }
    LONG_SCRATCH[length++] = Number(zigzag);
  }
  return LONG_VIEWS[length]!;
}

function readLong(buffer: Buffer): bigint {
  if (buffer.length <= 7) {
    let zigzag = 0;
    let factor = 1;
    for (const byte of buffer) {
      zigzag += (byte & 0x7f) * factor;
      factor *= 0x80;
    }
    return BigInt(zigzag % 2 === 0 ? zigzag / 2 : -(zigzag + 1) / 2);
  }
  let zigzag = 0n;
  let shift = 0n;
  for (const byte of buffer) {
    zigzag |= BigInt(byte & 0x7f) << shift;
    shift += 7n;
  }
  return (zigzag & 1n) === 0n ? zigzag >> 1n : -((zigzag + 1n) >> 1n);
}

/** The exact long type; `noUnpack` hands us the raw varint bytes. */
const UNPACKED_LONG: Type = avro.types.LongType.__with(
  {
    fromBuffer: readLong,
    toBuffer: writeLong,
    fromJSON: (json: unknown) => BigInt(json as number | string),
    toJSON: (value: bigint | number) => (Number.isSafeInteger(Number(value)) ? Number(value) : String(value)),
    isValid: isLong,
    compare: (a: bigint | number, b: bigint | number) => {
      const x = BigInt(a);
      const y = BigInt(b);
      return x < y ? -1 : x > y ? 1 : 0;
    },
  },
  true,
);

/** avsc's read cursor (lib/utils.js Tap): the bytes and the position in them. */
interface Tap {
  readonly buf: Buffer;
  pos: number;
}

/**
 * Reads the long at the cursor as readLong does, from the bytes in place: avsc's own read of a
 * custom long copies its bytes into a new Buffer first (one per long: several per change event,
 * the largest share of a sink's decoding garbage). A truncated buffer reads as undefined and
 * leaves the cursor past its end, as avsc's reads do (fromBuffer then reports it).
 */
function readLongAt(tap: Tap): bigint | undefined {
  const buf = tap.buf;
  const start = tap.pos;
  let end = start;
  while (end < buf.length && buf[end]! & 0x80) end++;
  if (end >= buf.length) {
    tap.pos = buf.length + 1;
    return undefined;
  }
  tap.pos = end + 1;
  if (end - start < 7) {
    let zigzag = 0;
    let factor = 1;
    for (let i = start; i <= end; i++) {
      zigzag += (buf[i]! & 0x7f) * factor;
      factor *= 0x80;
    }
    return BigInt(zigzag % 2 === 0 ? zigzag / 2 : -(zigzag + 1) / 2);
  }
  let zigzag = 0n;
  let shift = 0n;
  for (let i = start; i <= end; i++) {
    zigzag |= BigInt(buf[i]! & 0x7f) << shift;
    shift += 7n;
  }
  return (zigzag & 1n) === 0n ? zigzag >> 1n : -((zigzag + 1n) >> 1n);
}

/**
 * The exact long type with readLongAt as its read: avsc's readers call each field type's
 * _read(tap) (avsc 5.7, lib/types.js), and its types are frozen, so the read goes on an object
 * that inherits everything else from the type.
 */
export const BIGINT_LONG: Type = Object.create(UNPACKED_LONG, { _read: { value: readLongAt } }) as Type;

/**
 * Marks a string or long schema (`{ type: "string", [REPEATED]: true }`) whose values mostly
 * repeat the previous one (a table's or a source's name in every change of it, a transaction's
 * id): its type hands out the previous string or bigint again when the bytes are the same,
 * instead of a new one per value (garbage for a sink thread's collector, a few per change).
 */
export const REPEATED = "sluice.repeated";

const PLAIN_STRING = avro.Type.forSchema("string");

/** A string type reading as repeatedStringRead does, with its own last value. */
function repeatedStringType(): Type {
  let lastBytes = Buffer.alloc(64);
  let lastLength = -1;
  let lastText = "";
  // avsc's Tap.readString (lib/utils.js), but for the comparison with the last value's bytes.
  const read = (tap: Tap & { readLong(): number; _invalidate(): void }): string | undefined => {
    const length = tap.readLong();
    if (length < 0) {
      tap._invalidate();
      return "";
    }
    const buf = tap.buf;
    const start = tap.pos;
    const end = start + length;
    tap.pos = end;
    if (end > buf.length) return undefined;
    if (length === lastLength && buf.compare(lastBytes, 0, length, start, end) === 0) return lastText;
    if (length > lastBytes.length) lastBytes = Buffer.alloc(Math.max(length, 2 * lastBytes.length));
    buf.copy(lastBytes, 0, start, end);
    lastLength = length;
    lastText = buf.toString("utf8", start, end);
    return lastText;
  };
  return Object.create(PLAIN_STRING, { _read: { value: read } }) as Type;
}

/** The exact long type, handing out the previous bigint again when the varint's bytes are the same (a transaction's id and commit time in each of its changes). */
function repeatedLongType(): Type {
  const lastBytes = Buffer.alloc(10);
  let lastLength = -1;
  let lastValue: bigint | undefined;
  const read = (tap: Tap): bigint | undefined => {
    const buf = tap.buf;
    const start = tap.pos;
    let end = start;
    while (end < buf.length && buf[end]! & 0x80) end++;
    const length = end + 1 - start;
    if (end < buf.length && length === lastLength && buf.compare(lastBytes, 0, length, start, end + 1) === 0) {
      tap.pos = end + 1;
      return lastValue;
    }
    const value = readLongAt(tap);
    if (value !== undefined && length <= lastBytes.length) {
      buf.copy(lastBytes, 0, start, end + 1);
      lastLength = length;
      lastValue = value;
    }
    return value;
  };
  return Object.create(UNPACKED_LONG, { _read: { value: read } }) as Type;
}

function useBigIntLong(schema: unknown): Type | undefined {
  if (schema === "long") return BIGINT_LONG;
  if (typeof schema !== "object" || schema === null) return undefined;
  const { type } = schema as { type?: unknown };
  const repeats = (schema as Record<string, unknown>)[REPEATED] === true;
  if (type === "long") return repeats ? repeatedLongType() : BIGINT_LONG;
  if (type === "string" && repeats) return repeatedStringType();
  return undefined;
}

/** An avsc type for a schema, built with fresh options so named types never leak between schemas. */
/** `registry`, when given, receives every named type of the schema by its full name. */
export function createAvroType(schema: AvroSchemaJson | string, registry?: Record<string, Type>): Type {
  const json: unknown = typeof schema === "string" && isJsonText(schema) ? JSON.parse(schema) : schema;
  return avro.Type.forSchema(json as never, { typeHook: useBigIntLong as never, wrapUnions: "auto", ...(registry === undefined ? {} : { registry }) });
}

function isJsonText(text: string): boolean {
  const first = text.trimStart()[0];
  return first === "{" || first === "[" || first === '"';
}
