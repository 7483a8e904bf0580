/** Node's Buffer method behind toString("utf8", start, end), without its argument handling (avsc uses it too). */
export interface Utf8Slicing {
  utf8Slice(start: number, end: number): string;
}

/** Reads the big-endian integers and NUL-terminated strings of PostgreSQL's wire formats, with bounds checks. */
export class ByteReader {
  readonly bytes: Buffer;
  offset: number;

  constructor(bytes: Buffer, offset = 0) {
    this.bytes = bytes;
    this.offset = offset;
  }

  get remaining(): number {
    return this.bytes.length - this.offset;
  }

  /** `what` defaults to "<count>-byte field" (built only for the error). */
  private need(count: number, what?: string): void {
    if (this.offset + count > this.bytes.length) {
      throw new RangeError(`truncated message: ${what ?? `${count}-byte field`} needs ${count} bytes at offset ${this.offset}, ${this.remaining} left`);
    }
  }

  uint8(): number {
    this.need(1, "Int8");
    return this.bytes.readUInt8(this.offset++);
  }

  int16(): number {
    this.need(2, "Int16");
    const value = this.bytes.readInt16BE(this.offset);
    this.offset += 2;
    return value;
  }

  int32(): number {
    this.need(4, "Int32");
    const value = this.bytes.readInt32BE(this.offset);
    this.offset += 4;
    return value;
  }

  uint32(): number {
    this.need(4, "UInt32");
    const bytes = this.bytes;
    const at = this.offset;
    this.offset = at + 4;
    return bytes[at]! * 0x1000000 + ((bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!);
  }

  /** An unsigned 64-bit value (LSNs). */
  uint64(): bigint {
    this.need(8, "Int64");
    const value = this.bytes.readBigUInt64BE(this.offset);
    this.offset += 8;
    return value;
  }

  /** A signed 64-bit value (timestamps). */
  int64(): bigint {
    this.need(8, "Int64");
    const value = this.bytes.readBigInt64BE(this.offset);
    this.offset += 8;
    return value;
  }

  /** A NUL-terminated UTF-8 string. */
  cstring(): string {
    const end = this.bytes.indexOf(0, this.offset);
    if (end === -1) throw new RangeError(`truncated message: unterminated string at offset ${this.offset}`);
    const value = this.bytes.toString("utf8", this.offset, end);
    this.offset = end + 1;
    return value;
  }

  /** `count` bytes of UTF-8 text (decoded in place, no view of them is made). */
  utf8(count: number): string {
    this.need(count);
    const value = (this.bytes as Buffer & Utf8Slicing).utf8Slice(this.offset, this.offset + count);
    this.offset += count;
    return value;
  }

  /** `count` raw bytes, as a view (no copy). */
  slice(count: number): Buffer {
    this.need(count);
    const value = this.bytes.subarray(this.offset, this.offset + count);
    this.offset += count;
    return value;
  }
}
