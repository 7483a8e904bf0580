/**
 * A write's bulk operations as NDJSON bytes, written once each into one growing buffer where the
 * requests' bodies are: a body of consecutive operations is a view of it, not a concatenation,
 * and the write keeps no object per operation until it is sent (a batch's objects are what the
 * scavenges copy and promote). Only Elasticsearch's retries of some items and a body refused for
 * its size take copies.
 *
 * An operation is written whole (`add`) or piece by piece, then ended (`end`); pieces of ASCII
 * text go in byte by byte, without a text of the whole operation to build, flatten and encode.
 */

/** Start capacity when the caller has no better guess. */
const DEFAULT_CAPACITY = 64 * 1024;
/** The most UTF-8 bytes one UTF-16 code unit takes. */
const MAX_BYTES_PER_UNIT = 3;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
/** Bytes up to which a piece is copied byte by byte. */
const SHORT_PIECE = 16;

export class NdjsonOperations {
  #buffer: Buffer;
  #used = 0;
  /** Where each ended operation's bytes end; it starts where the one before ends. */
  readonly #ends: number[] = [];

  /** `capacity`: the bytes expected (e.g. the previous write's); the buffer grows past it when needed. */
  constructor(capacity = DEFAULT_CAPACITY) {
    this.#buffer = Buffer.allocUnsafe(Math.max(16, Math.ceil(capacity)));
  }

  /** The operations of `lines`: each its action line and, except for deletes, its document line. */
  static ofLines(operations: readonly (readonly string[])[]): NdjsonOperations {
    const out = new NdjsonOperations();
    for (const lines of operations) out.add(`${lines.join("\n")}\n`);
    return out;
  }

  /** Operations ended. */
  get length(): number {
    return this.#ends.length;
  }

  /** Bytes of the operations ended. */
  get byteLength(): number {
    return this.#ends.length === 0 ? 0 : (this.#ends[this.#ends.length - 1] as number);
  }

  /** Appends one operation: its lines, each ending with a newline. */
  add(text: string): void {
    this.text(text);
    this.end();
  }

  /** The operation written since the last one ended is complete. */
  end(): void {
    this.#ends.push(this.#used);
  }

  /** Forgets what was written since the last operation ended. */
  drop(): void {
    this.#used = this.byteLength;
  }

  /** Text as UTF-8. */
  text(text: string): void {
    this.#reserve(text.length * MAX_BYTES_PER_UNIT);
    this.#used += this.#buffer.write(text, this.#used);
  }

  /** Bytes as they are (e.g. a field name's, prepared once). */
  bytes(bytes: Uint8Array): void {
    const length = bytes.length;
    this.#reserve(length);
    const buffer = this.#buffer;
    let at = this.#used;
    // A copy call costs more than a few stores: short pieces (field names) go byte by byte.
    if (length > SHORT_PIECE) {
      buffer.set(bytes, at);
      at += length;
    } else for (let i = 0; i < length; i++) buffer[at++] = bytes[i] as number;
    this.#used = at;
  }

  /** Text that needs no JSON escape (digits, a formatted date): byte by byte when it is ASCII, as it nearly always is. */
  plain(text: string): void {
    if (!this.#ascii(text)) this.text(text);
  }

  /** A JSON string (what JSON.stringify writes). */
  jsonString(text: string): void {
    this.#reserve(text.length + 2);
    const start = this.#used;
    this.#buffer[this.#used++] = QUOTE;
    if (this.#ascii(text)) {
      this.#buffer[this.#used++] = QUOTE;
      return;
    }
    this.#used = start;
    this.text(JSON.stringify(text));
  }

  sizeOf(index: number): number {
    return (this.#ends[index] as number) - this.#startOf(index);
  }

  /** The bytes of the operations at `members` (ascending positions): a view when they are consecutive. */
  bytesOf(members: readonly number[]): Buffer {
    if (members.length === 0) return Buffer.alloc(0);
    const first = members[0] as number;
    const last = members[members.length - 1] as number;
    if (last - first === members.length - 1) return this.#buffer.subarray(this.#startOf(first), this.#ends[last]);
    const parts: Buffer[] = [];
    let runStart = first;
    let previous = first;
    for (let i = 1; i <= members.length; i++) {
      const member = members[i];
      if (member === previous + 1) {
        previous = member;
        continue;
      }
      parts.push(this.#buffer.subarray(this.#startOf(runStart), this.#ends[previous]));
      if (member === undefined) break;
      runStart = member;
      previous = member;
    }
    return Buffer.concat(parts);
  }

  /** Writes `text` byte by byte if every character is printable ASCII other than `"` and `\`; else writes nothing and says so. */
  #ascii(text: string): boolean {
    const length = text.length;
    this.#reserve(length);
    const buffer = this.#buffer;
    let at = this.#used;
    for (let i = 0; i < length; i++) {
      const code = text.charCodeAt(i);
      if (code < 0x20 || code > 0x7e || code === QUOTE || code === BACKSLASH) return false;
      buffer[at++] = code;
    }
    this.#used = at;
    return true;
  }

  #startOf(index: number): number {
    return index === 0 ? 0 : (this.#ends[index - 1] as number);
  }

  #reserve(bytes: number): void {
    if (this.#used + bytes <= this.#buffer.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(2 * this.#buffer.length, this.#used + bytes));
    this.#buffer.copy(bigger, 0, 0, this.#used);
    this.#buffer = bigger;
  }
}
