/**
 * Bit strings as Debezium's `io.debezium.data.Bits`: bytes holding the bits little-endian (the
 * string's last bit is bit 0 of byte 0), with the declared width in the `length` parameter.
 * Debezium's PostgreSQL connector writes only the bytes up to the highest set bit (none for a
 * zero string); its MySQL connector always writes ceil(n/8) bytes.
 */
import type { ColumnAvroType } from "./column-types.ts";
import { bytesColumn, describeValue } from "./column-types.ts";

const BITS = "io.debezium.data.Bits";
/** Debezium's `length` of a PostgreSQL bit varying without a declared length. */
export const UNBOUNDED_BITS_LENGTH = 2 ** 31 - 1;

function bitsSchema(length: number): ColumnAvroType["schema"] {
  return () => ({ type: "bytes", "connect.version": 1, "connect.parameters": { length: String(length) }, "connect.name": BITS });
}

/** A 0/1 string to its little-endian bytes, without the zero bytes above the highest set bit. */
function bitTextToLittleEndian(text: string): Buffer {
  const bytes = Buffer.alloc((text.length + 7) >> 3);
  let used = 0;
  for (let i = 0; i < text.length; i++) {
    if (text.charCodeAt(text.length - 1 - i) === 49) {
      bytes[i >> 3] = (bytes[i >> 3] as number) | (1 << (i & 7));
      used = (i >> 3) + 1;
    }
  }
  return bytes.subarray(0, used);
}

/** Little-endian bytes to their 0/1 text, padded with leading zeros to `width` bits (none: no leading zeros, "0" for zero). */
function littleEndianToBitText(value: unknown, width: number | null): string {
  if (!(value instanceof Uint8Array)) throw new TypeError(`expected Bits bytes, got ${describeValue(value)}`);
  let text = "";
  for (let i = value.length - 1; i >= 0; i--) text += (value[i] as number).toString(2).padStart(8, "0");
  const trimmed = text.replace(/^0+/, "");
  if (width === null) return trimmed === "" ? "0" : trimmed;
  if (trimmed.length > width) throw new RangeError(`${trimmed.length} bits do not fit bit(${width})`);
  return trimmed.padStart(width, "0");
}

/**
 * PostgreSQL `bit(n)` (fixed: the width gives the leading zeros back) or `bit varying(n)` (not
 * fixed) as Bits. Where the bytes do not give the text back (a varbit's leading zeros, an empty
 * varbit), the text travels in the record header `sluice.special`, so Sluice's sinks store it exactly.
 */
export function postgresBitsColumn(length: number, fixed: boolean): ColumnAvroType {
  const width = fixed ? length : null;
  return {
    ...bytesColumn(`bytes (Bits, length ${length})`),
    schema: bitsSchema(length),
    toAvro: (value, context, path) => {
      if (typeof value !== "string" || !/^[01]*$/.test(value)) throw new TypeError(`expected a bit string of 0s and 1s, got ${describeValue(value)}`);
      const bytes = bitTextToLittleEndian(value);
      if (littleEndianToBitText(bytes, width) !== value) context.special(path, value);
      return bytes;
    },
    fromAvro: (value, context, path) => context.special(path) ?? littleEndianToBitText(value, width),
    zero: Buffer.alloc(0),
    mayBeSpecial: true,
  };
}

/** MySQL `BIT(n)`, n > 1: the source's big-endian ceil(n/8) bytes as Bits (little-endian, the same length); decodes to the big-endian bytes. */
export function mysqlBitsColumn(bits: number): ColumnAvroType {
  const length = Math.ceil(bits / 8);
  const bigEndian = (value: unknown, what: string): Buffer => {
    let bytes: Uint8Array;
    if (value instanceof Uint8Array) bytes = value;
    else if ((typeof value === "number" && Number.isInteger(value) && value >= 0) || (typeof value === "bigint" && value >= 0n)) {
      const n = BigInt(value);
      if (n >= 1n << BigInt(bits)) throw new RangeError(`${n} is out of range for bit(${bits})`);
      bytes = Buffer.from(n.toString(16).padStart(length * 2, "0"), "hex");
    } else throw new TypeError(`expected ${what}, got ${describeValue(value)}`);
    if (bytes.length > length) throw new RangeError(`${bytes.length} bytes do not fit bit(${bits})`);
    const padded = Buffer.alloc(length);
    padded.set(bytes, length - bytes.length);
    return padded;
  };
  return {
    ...bytesColumn(`bytes (Bits, length ${bits})`),
    schema: bitsSchema(bits),
    toAvro: (value) => bigEndian(value, `bit(${bits}) bytes`).reverse(),
    fromAvro: (value) => {
      if (!(value instanceof Uint8Array)) throw new TypeError(`expected Bits bytes, got ${describeValue(value)}`);
      const little = Buffer.alloc(length);
      little.set(value.subarray(0, length));
      return new Uint8Array(little.reverse());
    },
    zero: Buffer.alloc(length),
    mayBeSpecial: false,
  };
}
