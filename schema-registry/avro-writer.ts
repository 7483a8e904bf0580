/**
 * Avro binary writers compiled once per schema: the avsc type tree of a registered schema becomes
 * a tree of small functions that write values straight into one reusable output buffer, with no
 * per-value Tap, no copy of each long through a scratch buffer, and no union branch search.
 *
 * They accept exactly the values avsc accepts for the same schema and write the same bytes
 * (schema-registry tests compare the two over every column type); a value they cannot write
 * throws, and the caller then encodes with avsc, whose answer (bytes or error) is the reference.
 */
import type { Type } from "avsc";

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const MAX_SAFE_BIG = BigInt(MAX_SAFE);
const MIN_SAFE_BIG = -MAX_SAFE_BIG;

/** An output buffer larger than this is not reused after take(): see there. */
export const LARGE_OUTPUT_BYTES = 4 * 2 ** 20;
/** Room left after a large value when the output grows for it; also the most room a buffer take() hands out may have unused. */
export const LARGE_OUTPUT_SLACK_BYTES = 2 ** 20;

/** A growable output buffer the writers append to; reused from one record to the next. */
export class AvroOutput {
  buf: Buffer;
  pos = 0;

  readonly #initialSize: number;

  constructor(size = 64 * 1024) {
    this.#initialSize = size;
    this.buf = Buffer.allocUnsafe(size);
  }

  reset(): void {
    this.pos = 0;
  }

  /** Room for `count` more bytes. */
  ensure(count: number): void {
    if (this.pos + count <= this.buf.length) return;
    // Past a large value, room for the record's remaining small fields too: doubling there would copy the value again into twice its size.
    const wanted = this.pos + count;
    const grown = Buffer.allocUnsafe(Math.max(this.buf.length * 2, wanted > LARGE_OUTPUT_BYTES ? wanted + LARGE_OUTPUT_SLACK_BYTES : wanted));
    this.buf.copy(grown, 0, 0, this.pos);
    this.buf = grown;
  }

  /**
   * What was written, as a buffer of its own. A buffer grown past LARGE_OUTPUT_BYTES (a large
   * value) is not kept for the next record: it is handed out itself when at most
   * LARGE_OUTPUT_SLACK_BYTES of it are unused (no copy of a large record: one value grows it to
   * about its size), else copied (a record of many fields doubled it up to twice its size, which
   * the memory plan does not count, for as long as the record is held), and the output starts
   * again from its first size, so one large value does not stay in memory for the process's life.
   */
  take(): Buffer {
    if (this.buf.length > LARGE_OUTPUT_BYTES) {
      const grown = this.buf;
      this.buf = Buffer.allocUnsafe(this.#initialSize);
      if (grown.length - this.pos <= LARGE_OUTPUT_SLACK_BYTES) return grown.subarray(0, this.pos);
      return Buffer.from(grown.subarray(0, this.pos));
    }
    const out = Buffer.allocUnsafe(this.pos);
    this.buf.copy(out, 0, 0, this.pos);
    return out;
  }

  writeBoolean(value: boolean): void {
    this.ensure(1);
    this.buf[this.pos++] = value ? 1 : 0;
  }

  /** Zig-zag varint of a safe integer (a number); callers check the range. */
  writeLong(n: number): void {
    this.ensure(10);
    const buf = this.buf;
    let pos = this.pos;
    if (n >= -1073741824 && n < 1073741824) {
      let m = n >= 0 ? n << 1 : (~n << 1) | 1;
      while (m > 0x7f) {
        buf[pos++] = (m & 0x7f) | 0x80;
        m >>>= 7;
      }
      buf[pos++] = m;
    } else {
      // The zig-zag value 2m (+1 when negative, m = -n - 1) passes 2^53, where a double loses its low bit:
      // its first 7 bits come from m before doubling, the rest is m / 64.
      const negative = n < 0;
      const m = negative ? -n - 1 : n;
      let rest = Math.floor(m / 64);
      buf[pos++] = ((m % 64) * 2 + (negative ? 1 : 0)) | (rest > 0 ? 0x80 : 0);
      while (rest > 0) {
        buf[pos++] = (rest % 0x80) | (rest >= 0x80 ? 0x80 : 0);
        rest = Math.floor(rest / 0x80);
      }
    }
    this.pos = pos;
  }

  /** Zig-zag varint of any 64-bit integer given as a bigint. */
  writeBigLong(value: bigint): void {
    if (value >= MIN_SAFE_BIG && value <= MAX_SAFE_BIG) {
      this.writeLong(Number(value));
      return;
    }
    this.ensure(10);
    let zigzag = value >= 0n ? value << 1n : ((-value) << 1n) - 1n;
    while (zigzag >= 0x80n) {
      this.buf[this.pos++] = Number(zigzag & 0x7fn) | 0x80;
      zigzag >>= 7n;
    }
    this.buf[this.pos++] = Number(zigzag);
  }

  writeFloat(value: number): void {
    this.ensure(4);
    this.buf.writeFloatLE(value, this.pos);
    this.pos += 4;
  }

  writeDouble(value: number): void {
    this.ensure(8);
    this.buf.writeDoubleLE(value, this.pos);
    this.pos += 8;
  }

  writeString(value: string): void {
    const length = value.length;
    // Short ASCII text (most column values and names) is copied char by char; anything else by Buffer.
    if (length < 64) {
      this.ensure(length + 1);
      const buf = this.buf;
      const start = this.pos + 1;
      let i = 0;
      for (; i < length; i++) {
        const code = value.charCodeAt(i);
        if (code >= 0x80) break;
        buf[start + i] = code;
      }
      if (i === length) {
        buf[this.pos] = length << 1;
        this.pos = start + length;
        return;
      }
    }
    const bytes = Buffer.byteLength(value, "utf8");
    this.writeLong(bytes);
    this.ensure(bytes);
    if (bytes > 64) {
      this.buf.write(value, this.pos, bytes, "utf8");
      this.pos += bytes;
    } else {
      this.writeShortUtf8(value, bytes);
    }
  }

  /**
   * UTF-8 of short text as avsc writes it (by hand below 65 bytes): a lone surrogate becomes its
   * own three bytes there, where Buffer would write the replacement character.
   */
  private writeShortUtf8(value: string, bytes: number): void {
    const end = this.pos + bytes;
    const buf = this.buf;
    let pos = this.pos;
    for (let i = 0; i < value.length; i++) {
      let c1 = value.charCodeAt(i);
      let c2: number;
      if (c1 < 0x80) {
        buf[pos++] = c1;
      } else if (c1 < 0x800) {
        buf[pos++] = (c1 >> 6) | 0xc0;
        buf[pos++] = (c1 & 0x3f) | 0x80;
      } else if ((c1 & 0xfc00) === 0xd800 && ((c2 = value.charCodeAt(i + 1)) & 0xfc00) === 0xdc00) {
        c1 = 0x10000 + ((c1 & 0x03ff) << 10) + (c2 & 0x03ff);
        i++;
        buf[pos++] = (c1 >> 18) | 0xf0;
        buf[pos++] = ((c1 >> 12) & 0x3f) | 0x80;
        buf[pos++] = ((c1 >> 6) & 0x3f) | 0x80;
        buf[pos++] = (c1 & 0x3f) | 0x80;
      } else {
        buf[pos++] = (c1 >> 12) | 0xe0;
        buf[pos++] = ((c1 >> 6) & 0x3f) | 0x80;
        buf[pos++] = (c1 & 0x3f) | 0x80;
      }
    }
    if (pos !== end) throw new AvroWriteError(`text of ${bytes} UTF-8 bytes took ${pos - this.pos}`);
    this.pos = end;
  }

  /** The decimal digits of a non-negative safe integer, as ASCII, without a string (callers check the range). */
  writeDigits(n: number): void {
    if (n >= 1e9) {
      // Nine digits at a time in int32 arithmetic.
      const high = Math.floor(n / 1e9);
      this.writeDigits(high);
      this.writeNineDigits(n - high * 1e9);
      return;
    }
    const count = digitCount(n);
    this.ensure(count);
    const buf = this.buf;
    let pos = this.pos + count;
    this.pos = pos;
    let m = n | 0;
    do {
      const next = (m / 10) | 0;
      buf[--pos] = 48 + m - next * 10;
      m = next;
    } while (m > 0);
  }

  /** Exactly nine digits of 0 <= n < 1e9, zero-padded. */
  private writeNineDigits(n: number): void {
    this.ensure(9);
    const buf = this.buf;
    let pos = this.pos + 9;
    this.pos = pos;
    let m = n | 0;
    for (let i = 0; i < 9; i++) {
      const next = (m / 10) | 0;
      buf[--pos] = 48 + m - next * 10;
      m = next;
    }
  }

  writeBytes(value: Uint8Array): void {
    this.writeLong(value.length);
    this.writeFixed(value);
  }

  writeFixed(value: Uint8Array): void {
    this.ensure(value.length);
    this.buf.set(value, this.pos);
    this.pos += value.length;
  }
}

export type AvroWriter = (out: AvroOutput, value: unknown) => void;

/** The value is not one this writer takes; the caller encodes with avsc instead. */
export class AvroWriteError extends Error {}

function refuse(what: string, value: unknown): never {
  throw new AvroWriteError(`not ${what}: ${typeof value}`);
}

/**
 * A writer of the long values avsc takes here (avro-runtime.ts): safe-integer numbers and bigints
 * within 64 bits. Each long field gets its own, which keeps the bytes of the last bigint beyond
 * 2^53 it wrote: such values (nanosecond times) repeat from one change to the next.
 */
export function longWriter(): AvroWriter {
  let last: bigint | null = null;
  let lastBytes = Buffer.alloc(0);
  return (out, value) => {
    if (typeof value === "number") {
      if (!Number.isSafeInteger(value)) refuse("a long", value);
      out.writeLong(value);
    } else if (typeof value === "bigint") {
      // Exact when it lands in the safe range: a bigint beyond it never converts into it.
      const n = Number(value);
      if (n >= -MAX_SAFE && n <= MAX_SAFE) {
        out.writeLong(n);
      } else if (value === last) {
        out.writeFixed(lastBytes);
      } else {
        if (value < INT64_MIN || value > INT64_MAX) refuse("a long", value);
        const start = out.pos;
        out.writeBigLong(value);
        lastBytes = Buffer.from(out.buf.subarray(start, out.pos));
        last = value;
      }
    } else refuse("a long", value);
  };
}

interface AvscField {
  readonly name: string;
  readonly type: Type;
  defaultValue(): unknown;
}

/** The parts of avsc's type objects the compiler reads (avsc's typings leave them out). */
interface AvscType {
  readonly typeName: string;
  readonly fields?: readonly AvscField[];
  readonly types?: readonly Type[];
  readonly itemsType?: Type;
  readonly valuesType?: Type;
  readonly symbols?: readonly string[];
  readonly size?: number;
}

/** A field of a compiled record: its name and writer. */
export interface FieldWriter {
  readonly name: string;
  readonly write: AvroWriter;
  /** The writer of a value that is there (not undefined): `write` without the field's default. */
  readonly present: AvroWriter;
}

/**
 * Compiles writers for avsc types; named types (records referenced more than once, possibly
 * recursively) get one writer each. Throws UnsupportedSchemaError for what it does not handle, so
 * the caller keeps avsc for that schema.
 */
export class AvroWriterCompiler {
  private readonly compiled = new Map<Type, AvroWriter>();

  writerOf(type: Type): AvroWriter {
    const avsc = type as unknown as AvscType;
    // Only records are shared (they may be recursive); every other occurrence gets its own writer.
    if (avsc.typeName !== "record" && avsc.typeName !== "error") return this.build(avsc);
    const known = this.compiled.get(type);
    if (known) return known;
    {
      // Recursive records: the slot holds a forwarder until the record's own writer exists.
      let write: AvroWriter | null = null;
      this.compiled.set(type, (out, value) => write!(out, value));
      write = this.recordWriter(this.fieldsOf(type));
      this.compiled.set(type, write);
      return write;
    }
  }

  /** The field writers of a record type, in order, with avsc's default handling of absent fields. */
  fieldsOf(type: Type): FieldWriter[] {
    const avsc = type as unknown as AvscType;
    if (avsc.typeName !== "record" || !avsc.fields) throw new UnsupportedSchemaError(`${avsc.typeName} is not a record`);
    return avsc.fields.map((field) => {
      const write = this.writerOf(field.type);
      const fallback = field.defaultValue();
      if (fallback === undefined) return { name: field.name, write, present: write };
      const bytes = field.type.toBuffer(fallback);
      return { name: field.name, write: (out: AvroOutput, value: unknown) => (value === undefined ? out.writeFixed(bytes) : write(out, value)), present: write };
    });
  }

  private recordWriter(fields: readonly FieldWriter[]): AvroWriter {
    const names = fields.map((field) => field.name);
    const writers = fields.map((field) => field.write);
    const count = fields.length;
    return (out, value) => {
      if (!isPlainObject(value)) refuse("a record", value);
      const record = value as Record<string, unknown>;
      for (let i = 0; i < count; i++) writers[i]!(out, record[names[i]!]);
    };
  }

  private build(type: AvscType): AvroWriter {
    switch (type.typeName) {
      case "null":
        return (_out, value) => {
          if (value !== null) refuse("null", value);
        };
      case "boolean":
        return (out, value) => (typeof value === "boolean" ? out.writeBoolean(value) : refuse("a boolean", value));
      case "int":
        return (out, value) => (value === ((value as number) | 0) ? out.writeLong(value as number) : refuse("an int", value));
      case "abstract:long":
        return longWriter();
      case "long":
        return (out, value) => (typeof value === "number" && Number.isSafeInteger(value) ? out.writeLong(value) : refuse("a long", value));
      case "float":
        return (out, value) => (typeof value === "number" ? out.writeFloat(value) : refuse("a float", value));
      case "double":
        return (out, value) => (typeof value === "number" ? out.writeDouble(value) : refuse("a double", value));
      case "string":
        return (out, value) => (typeof value === "string" ? out.writeString(value) : refuse("a string", value));
      case "bytes":
        return (out, value) => (Buffer.isBuffer(value) ? out.writeBytes(value) : refuse("a Buffer", value));
      case "fixed": {
        const size = type.size!;
        return (out, value) => (Buffer.isBuffer(value) && value.length === size ? out.writeFixed(value) : refuse(`${size} bytes`, value));
      }
      case "enum": {
        const indices = new Map(type.symbols!.map((symbol, index) => [symbol, index]));
        return (out, value) => {
          const index = typeof value === "string" ? indices.get(value) : undefined;
          if (index === undefined) refuse("a symbol", value);
          out.writeLong(index);
        };
      }
      case "array": {
        const items = this.writerOf(type.itemsType!);
        return (out, value) => {
          if (!Array.isArray(value)) refuse("an array", value);
          const count = value.length;
          if (count > 0) {
            out.writeLong(count);
            for (let i = 0; i < count; i++) items(out, value[i]);
          }
          out.writeLong(0);
        };
      }
      case "map": {
        const values = this.writerOf(type.valuesType!);
        return (out, value) => {
          if (!isPlainObject(value)) refuse("a map", value);
          const map = value as Record<string, unknown>;
          const keys = Object.keys(map);
          if (keys.length > 0) {
            out.writeLong(keys.length);
            for (const key of keys) {
              out.writeString(key);
              values(out, map[key]);
            }
          }
          out.writeLong(0);
        };
      }
      case "union:unwrapped":
        return this.unionWriter(type.types!);
      default:
        throw new UnsupportedSchemaError(`Avro type ${type.typeName}`);
    }
  }

  /**
   * An unwrapped union whose branches avsc tells apart by the value's kind: null, an array, and
   * at most one other branch (the unions Sluice's schemas use: ["null", T], [T, "null"],
   * ["null", T, array<...>]).
   */
  private unionWriter(branches: readonly Type[]): AvroWriter {
    let nullIndex = -1;
    let arrayIndex = -1;
    let otherIndex = -1;
    branches.forEach((branch, index) => {
      const name = (branch as unknown as AvscType).typeName;
      if (name === "null") nullIndex = index;
      else if (name === "array") arrayIndex = index;
      else if (otherIndex === -1 && name !== "union:unwrapped") otherIndex = index;
      else throw new UnsupportedSchemaError("a union with several non-array branches");
    });
    const array = arrayIndex === -1 ? null : this.writerOf(branches[arrayIndex]!);
    const other = otherIndex === -1 ? null : this.writerOf(branches[otherIndex]!);
    return (out, value) => {
      if (value === null) {
        if (nullIndex === -1) refuse("a non-null value", value);
        out.writeLong(nullIndex);
      } else if (Array.isArray(value)) {
        if (array === null) refuse("a value of the union", value);
        out.writeLong(arrayIndex);
        array(out, value);
      } else {
        if (other === null) refuse("a value of the union", value);
        out.writeLong(otherIndex);
        other(out, value);
      }
    };
  }
}

export class UnsupportedSchemaError extends Error {}

/** How many decimal digits a non-negative safe integer has. */
export function digitCount(n: number): number {
  let count = 1;
  while (n >= 1e9) {
    n = Math.floor(n / 1e9);
    count += 9;
  }
  return n < 1e4 ? (n < 10 ? count : n < 100 ? count + 1 : n < 1e3 ? count + 2 : count + 3) : n < 1e6 ? (n < 1e5 ? count + 4 : count + 5) : n < 1e7 ? count + 6 : n < 1e8 ? count + 7 : count + 8;
}

/** An object that is neither an array nor bytes (what avsc takes for records and maps in a union). */
function isPlainObject(value: unknown): value is object {
  return value !== null && typeof value === "object" && !Array.isArray(value) && !(value instanceof Uint8Array);
}
