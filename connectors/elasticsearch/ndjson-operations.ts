/**
 * A write's bulk operations as NDJSON bytes, written once each into one growing buffer where the
 * requests' bodies are: a body of consecutive operations is a view of it, not a concatenation,
 * and the write keeps no object per operation until it is sent (a batch's objects are what the
 * scavenges copy and promote). Only Elasticsearch's retries of some items and a body refused for
 * its size take copies.
 */

/** Start capacity when the caller has no better guess. */
const DEFAULT_CAPACITY = 64 * 1024;
/** A UTF-8 character takes at most this many bytes: more room than that left after a write means nothing was cut off. */
const MAX_CHAR_BYTES = 4;

export class NdjsonOperations {
  #buffer: Buffer;
  #used = 0;
  /** Where each operation's bytes end; it starts where the one before ends. */
  readonly #ends: number[] = [];

  /** `capacity`: the bytes expected (e.g. the previous write's); the buffer grows past it when needed. */
  constructor(capacity = DEFAULT_CAPACITY) {
    this.#buffer = Buffer.allocUnsafe(Math.max(MAX_CHAR_BYTES, Math.ceil(capacity)));
  }

  /** The operations of `lines`: each its action line and, except for deletes, its document line. */
  static ofLines(operations: readonly (readonly string[])[]): NdjsonOperations {
    const out = new NdjsonOperations();
    for (const lines of operations) out.add(`${lines.join("\n")}\n`);
    return out;
  }

  get length(): number {
    return this.#ends.length;
  }

  /** Bytes of all operations. */
  get byteLength(): number {
    return this.#used;
  }

  /** Appends one operation: its lines, each ending with a newline. */
  add(text: string): void {
    const buffer = this.#buffer;
    const room = buffer.length - this.#used;
    // A UTF-8 text is at least as many bytes as UTF-16 code units: too little room is known without measuring.
    let written = room < text.length ? -1 : buffer.write(text, this.#used);
    if (written < 0 || (room - written < MAX_CHAR_BYTES && written < Buffer.byteLength(text))) {
      this.#grow(Buffer.byteLength(text));
      written = this.#buffer.write(text, this.#used);
    }
    this.#used += written;
    this.#ends.push(this.#used);
  }

  sizeOf(index: number): number {
    return this.#endOf(index) - this.#startOf(index);
  }

  /** The bytes of the operations at `members` (ascending positions): a view when they are consecutive. */
  bytesOf(members: readonly number[]): Buffer {
    if (members.length === 0) return Buffer.alloc(0);
    const first = members[0] as number;
    const last = members[members.length - 1] as number;
    if (last - first === members.length - 1) return this.#buffer.subarray(this.#startOf(first), this.#endOf(last));
    const parts: Buffer[] = [];
    let runStart = first;
    let previous = first;
    for (let i = 1; i <= members.length; i++) {
      const member = members[i];
      if (member === previous + 1) {
        previous = member;
        continue;
      }
      parts.push(this.#buffer.subarray(this.#startOf(runStart), this.#endOf(previous)));
      if (member === undefined) break;
      runStart = member;
      previous = member;
    }
    return Buffer.concat(parts);
  }

  #startOf(index: number): number {
    return index === 0 ? 0 : (this.#ends[index - 1] as number);
  }

  #endOf(index: number): number {
    return this.#ends[index] as number;
  }

  #grow(needed: number): void {
    const bigger = Buffer.allocUnsafe(Math.max(2 * this.#buffer.length, this.#used + needed + MAX_CHAR_BYTES));
    this.#buffer.copy(bigger, 0, 0, this.#used);
    this.#buffer = bigger;
  }
}
