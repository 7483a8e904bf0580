/**
 * ClickHouse's RowBinary format at the byte level: little-endian fixed-width numbers, LEB128
 * lengths before strings and arrays, a 0/1 byte before Nullable values. The sink inserts rows
 * in it because it carries floats bit for bit (ClickHouse 18.16 parses text floats inexactly)
 * and reads stored rows back in it for unchanged-TOAST columns.
 */

const FIRST_CHUNK_BYTES = 16 * 1024;
const MAX_CHUNK_BYTES = 1024 * 1024;
const TWO_32 = 2 ** 32;

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;

/**
 * Appends rows into chunks (each twice the last, up to 1 MiB), so a batch costs a few allocations.
 * A row always sits in one chunk: a chunk that runs out moves the row begun so far into a new,
 * large enough one. A finished row is either handed out as a view of its chunk (`endRow`; views
 * stay valid after later rows) or kept by its number (`keepRow`), and runs of kept rows are read
 * back as views of their chunks (`rows`): a batch's rows then cost no object each. One writer
 * uses one of the two ways.
 */
export class RowBinaryWriter {
  #chunk = Buffer.allocUnsafe(FIRST_CHUNK_BYTES);
  /** The chunk as a DataView: its 64-bit writes make no BigInt on the way (Buffer's writeBigInt64LE makes several per value). */
  #view = viewOf(this.#chunk);
  #start = 0;
  #pos = 0;
  /** Kept rows: where each ends in its chunk. */
  readonly #ends: number[] = [];
  /** The chunks holding kept rows (the current one last), and the number of each one's first row. */
  readonly #chunks: Buffer[] = [this.#chunk];
  readonly #firstRows: number[] = [0];

  /** The row written since the last `endRow`/`dropRow`. */
  endRow(): Buffer {
    const row = this.#chunk.subarray(this.#start, this.#pos);
    this.#start = this.#pos;
    return row;
  }

  /** Keeps the row written since the last `keepRow`/`dropRow`; returns its number (0, 1, ...). */
  keepRow(): number {
    this.#start = this.#pos;
    return this.#ends.push(this.#pos) - 1;
  }

  /** How many rows `keepRow` kept. */
  get keptRows(): number {
    return this.#ends.length;
  }

  /** The bytes of kept rows `from` up to (not including) `to`, as views of their chunks (one per chunk they span). */
  rows(from: number, to: number): Buffer[] {
    if (!(from >= 0 && from <= to && to <= this.#ends.length)) throw new RangeError(`rows ${from}..${to} of ${this.#ends.length}`);
    const out: Buffer[] = [];
    let chunk = this.#firstRows.length - 1;
    while (this.#firstRows[chunk]! > from) chunk--;
    for (let row = from; row < to; chunk++) {
      const first = this.#firstRows[chunk]!;
      const next = chunk + 1 < this.#firstRows.length ? this.#firstRows[chunk + 1]! : this.#ends.length;
      const last = Math.min(to, next);
      out.push(this.#chunks[chunk]!.subarray(row === first ? 0 : this.#ends[row - 1]!, this.#ends[last - 1]!));
      row = last;
    }
    return out;
  }

  /** Forgets a row begun but not finished (a value was rejected halfway). */
  dropRow(): void {
    this.#pos = this.#start;
  }

  uint8(value: number): void {
    this.#room(1);
    this.#chunk[this.#pos++] = value;
  }

  int8(value: number): void {
    this.#room(1);
    this.#pos = this.#chunk.writeInt8(value, this.#pos);
  }

  int16(value: number): void {
    this.#room(2);
    this.#pos = this.#chunk.writeInt16LE(value, this.#pos);
  }

  uint16(value: number): void {
    this.#room(2);
    this.#pos = this.#chunk.writeUInt16LE(value, this.#pos);
  }

  int32(value: number): void {
    this.#room(4);
    this.#pos = this.#chunk.writeInt32LE(value, this.#pos);
  }

  uint32(value: number): void {
    this.#room(4);
    this.#pos = this.#chunk.writeUInt32LE(value, this.#pos);
  }

  /** A safe integer as 64 bits (two's complement), without going through BigInt. */
  int64Number(value: number): void {
    this.#room(8);
    const high = Math.floor(value / TWO_32);
    this.#chunk.writeUInt32LE(value - high * TWO_32, this.#pos);
    this.#chunk.writeInt32LE(high, this.#pos + 4);
    this.#pos += 8;
  }

  int64(value: bigint): void {
    this.#room(8);
    // Out of range: Buffer's write throws its RangeError, as before.
    if (!(value >= INT64_MIN && value <= INT64_MAX)) this.#chunk.writeBigInt64LE(value, this.#pos);
    this.#view.setBigInt64(this.#pos, value, true);
    this.#pos += 8;
  }

  uint64(value: bigint): void {
    this.#room(8);
    if (!(value >= 0n && value <= UINT64_MAX)) this.#chunk.writeBigUInt64LE(value, this.#pos);
    this.#view.setBigUint64(this.#pos, value, true);
    this.#pos += 8;
  }

  /** Two's complement over 128 bits (Decimal128); the caller checks the range. */
  int128(value: bigint): void {
    this.#room(16);
    const bits = BigInt.asUintN(128, value);
    this.#chunk.writeBigUInt64LE(BigInt.asUintN(64, bits), this.#pos);
    this.#chunk.writeBigUInt64LE(bits >> 64n, this.#pos + 8);
    this.#pos += 16;
  }

  float32(value: number): void {
    this.#room(4);
    this.#pos = this.#chunk.writeFloatLE(value, this.#pos);
  }

  float64(value: number): void {
    this.#room(8);
    this.#pos = this.#chunk.writeDoubleLE(value, this.#pos);
  }

  /** An unsigned LEB128 length (strings, arrays). */
  varUInt(value: number): void {
    this.#room(10);
    let rest = value;
    while (rest >= 0x80) {
      this.#chunk[this.#pos++] = (rest % 0x80) | 0x80;
      rest = Math.floor(rest / 0x80);
    }
    this.#chunk[this.#pos++] = rest;
  }

  string(value: string): void {
    const length = Buffer.byteLength(value, "utf8");
    this.varUInt(length);
    this.#room(length);
    this.#pos += this.#chunk.write(value, this.#pos, length, "utf8");
  }

  bytes(value: Uint8Array): void {
    this.varUInt(value.length);
    this.raw(value);
  }

  /** Bytes already in RowBinary (a stored field). */
  raw(value: Uint8Array): void {
    this.#room(value.length);
    this.#chunk.set(value, this.#pos);
    this.#pos += value.length;
  }

  #room(bytes: number): void {
    if (this.#pos + bytes <= this.#chunk.length) return;
    const begun = this.#chunk.subarray(this.#start, this.#pos);
    const next = Buffer.allocUnsafe(Math.max(Math.min(2 * this.#chunk.length, MAX_CHUNK_BYTES), 2 * (begun.length + bytes)));
    begun.copy(next);
    // The kept rows so far stay in the old chunk; a chunk none of them is in is replaced.
    if (this.#firstRows[this.#firstRows.length - 1] === this.#ends.length) this.#chunks[this.#chunks.length - 1] = next;
    else {
      this.#chunks.push(next);
      this.#firstRows.push(this.#ends.length);
    }
    this.#chunk = next;
    this.#view = viewOf(next);
    this.#pos = begun.length;
    this.#start = 0;
  }
}

function viewOf(chunk: Buffer): DataView {
  return new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

/** Reads RowBinary output; every read checks that the bytes are there. */
export class RowBinaryReader {
  readonly data: Buffer;
  pos = 0;

  constructor(data: Buffer) {
    this.data = data;
  }

  get done(): boolean {
    return this.pos >= this.data.length;
  }

  skip(bytes: number): void {
    this.#need(bytes);
    this.pos += bytes;
  }

  uint8(): number {
    this.#need(1);
    return this.data[this.pos++] as number;
  }

  int8(): number {
    this.#need(1);
    return this.data.readInt8(this.pos++);
  }

  int16(): number {
    return this.data.readInt16LE(this.#advance(2));
  }

  uint16(): number {
    return this.data.readUInt16LE(this.#advance(2));
  }

  int32(): number {
    return this.data.readInt32LE(this.#advance(4));
  }

  uint32(): number {
    return this.data.readUInt32LE(this.#advance(4));
  }

  int64(): bigint {
    return this.data.readBigInt64LE(this.#advance(8));
  }

  uint64(): bigint {
    return this.data.readBigUInt64LE(this.#advance(8));
  }

  int128(): bigint {
    const at = this.#advance(16);
    return BigInt.asIntN(128, (this.data.readBigUInt64LE(at + 8) << 64n) | this.data.readBigUInt64LE(at));
  }

  float32(): number {
    return this.data.readFloatLE(this.#advance(4));
  }

  float64(): number {
    return this.data.readDoubleLE(this.#advance(8));
  }

  varUInt(): number {
    let value = 0;
    let scale = 1;
    for (;;) {
      const byte = this.uint8();
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) return value;
      scale *= 0x80;
      if (scale > Number.MAX_SAFE_INTEGER) throw new RangeError(`RowBinary length at offset ${this.pos} is too long`);
    }
  }

  /** A length-prefixed string's bytes (a view, not a copy). */
  bytes(): Buffer {
    const length = this.varUInt();
    const at = this.#advance(length);
    return this.data.subarray(at, at + length);
  }

  #advance(bytes: number): number {
    this.#need(bytes);
    const at = this.pos;
    this.pos += bytes;
    return at;
  }

  #need(bytes: number): void {
    if (this.pos + bytes > this.data.length) {
      throw new RangeError(`truncated RowBinary data: ${bytes} bytes needed at offset ${this.pos}, ${this.data.length - this.pos} left`);
    }
  }
}
