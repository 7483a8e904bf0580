/**
 * Reads the little-endian integers, length-encoded integers and strings of MySQL's binlog and
 * client/server protocol, with bounds checks. `pos` is public so decoders can skip and measure.
 */
export class BinaryReader {
  readonly bytes: Buffer;
  pos: number;
  /** Exclusive end of the readable range (e.g. an event without its checksum). */
  end: number;

  constructor(bytes: Buffer, pos = 0, end = bytes.length) {
    this.bytes = bytes;
    this.pos = pos;
    this.end = end;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  need(count: number, what: string): void {
    if (this.pos + count > this.end) {
      throw new RangeError(`truncated binlog data: ${what} needs ${count} bytes at offset ${this.pos}, ${this.end - this.pos} left`);
    }
  }

  skip(count: number): void {
    this.need(count, "skipped bytes");
    this.pos += count;
  }

  u8(): number {
    this.need(1, "uint8");
    return this.bytes[this.pos++]!;
  }

  i8(): number {
    this.need(1, "int8");
    return this.bytes.readInt8(this.pos++);
  }

  u16(): number {
    this.need(2, "uint16");
    const value = this.bytes.readUInt16LE(this.pos);
    this.pos += 2;
    return value;
  }

  i16(): number {
    this.need(2, "int16");
    const value = this.bytes.readInt16LE(this.pos);
    this.pos += 2;
    return value;
  }

  u24(): number {
    this.need(3, "uint24");
    const b = this.bytes;
    const p = this.pos;
    this.pos += 3;
    return b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16);
  }

  i24(): number {
    const value = this.u24();
    return value & 0x800000 ? value - 0x1000000 : value;
  }

  u32(): number {
    this.need(4, "uint32");
    const value = this.bytes.readUInt32LE(this.pos);
    this.pos += 4;
    return value;
  }

  i32(): number {
    this.need(4, "int32");
    const value = this.bytes.readInt32LE(this.pos);
    this.pos += 4;
    return value;
  }

  /** An unsigned little-endian integer of 1 to 6 bytes, as a number. */
  uintLE(bytes: number): number {
    this.need(bytes, `uint${bytes * 8}`);
    const value = this.bytes.readUIntLE(this.pos, bytes);
    this.pos += bytes;
    return value;
  }

  /** An unsigned big-endian integer of 1 to 6 bytes, as a number. */
  uintBE(bytes: number): number {
    this.need(bytes, `uint${bytes * 8} (big-endian)`);
    const value = this.bytes.readUIntBE(this.pos, bytes);
    this.pos += bytes;
    return value;
  }

  u48(): number {
    return this.uintLE(6);
  }

  u64(): bigint {
    this.need(8, "uint64");
    const value = this.bytes.readBigUInt64LE(this.pos);
    this.pos += 8;
    return value;
  }

  i64(): bigint {
    this.need(8, "int64");
    const value = this.bytes.readBigInt64LE(this.pos);
    this.pos += 8;
    return value;
  }

  /** A uint64 that must fit a safe integer (sizes, counts, offsets). */
  u64Number(what: string): number {
    const value = this.u64();
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`${what} ${value} is out of range`);
    return Number(value);
  }

  f32(): number {
    this.need(4, "float");
    const value = this.bytes.readFloatLE(this.pos);
    this.pos += 4;
    return value;
  }

  f64(): number {
    this.need(8, "double");
    const value = this.bytes.readDoubleLE(this.pos);
    this.pos += 8;
    return value;
  }

  /** MySQL's length-encoded integer (net_field_length): 1, 3, 4 or 9 bytes. */
  lenenc(): number {
    const first = this.u8();
    if (first < 0xfb) return first;
    if (first === 0xfc) return this.u16();
    if (first === 0xfd) return this.u24();
    if (first === 0xfe) return this.u64Number("length-encoded integer");
    throw new RangeError(`invalid length-encoded integer prefix 0x${first.toString(16)} at offset ${this.pos - 1}`);
  }

  bytesView(count: number): Buffer {
    this.need(count, "bytes");
    const view = this.bytes.subarray(this.pos, this.pos + count);
    this.pos += count;
    return view;
  }

  /** A copy, for values that outlive the event buffer. */
  bytesCopy(count: number): Uint8Array {
    this.need(count, "bytes");
    const copy = new Uint8Array(count);
    copy.set(this.bytes.subarray(this.pos, this.pos + count));
    this.pos += count;
    return copy;
  }

  rest(): Buffer {
    return this.bytesView(this.end - this.pos);
  }

  utf8(count: number): string {
    this.need(count, "string");
    const text = this.bytes.toString("utf8", this.pos, this.pos + count);
    this.pos += count;
    return text;
  }

  lenencUtf8(): string {
    return this.utf8(this.lenenc());
  }

  /** A string up to the next NUL (which is consumed) or the end. */
  nulTerminatedUtf8(): string {
    let stop = this.bytes.indexOf(0, this.pos);
    if (stop < 0 || stop > this.end) stop = this.end;
    const text = this.bytes.toString("utf8", this.pos, stop);
    this.pos = Math.min(stop + 1, this.end);
    return text;
  }

  /** A bitmap of `bits` bits, least significant bit of the first byte first. */
  bitmap(bits: number): Uint8Array {
    return this.bytesView((bits + 7) >> 3);
  }
}

export function bitIsSet(bitmap: Uint8Array, index: number): boolean {
  return (bitmap[index >> 3]! & (1 << (index & 7))) !== 0;
}

export function bitsSet(bitmap: Uint8Array, bits: number): number {
  let count = 0;
  for (let i = 0; i < bits; i++) if (bitIsSet(bitmap, i)) count++;
  return count;
}
