/**
 * The replication connection's bytes split into backend messages, CopyData ('d') handed on where
 * they are and everything else passed to pg's own parser in whole messages.
 *
 * Why: pg's parser makes a message object and a Buffer view for every CopyData and emits it
 * through two event emitters; a streamed change is one CopyData, so that was per change work and
 * garbage before the payload is copied into the read-ahead (wal-buffer.ts). Here a CopyData is
 * its offsets in the received chunk. A message split over chunks is put together in a buffer of
 * its own size (allocated once its length is known).
 */

/** Message type of CopyData. */
const COPY_DATA = 0x64;
/** Type byte and int32 length. */
const HEADER_BYTES = 5;

/** `owned`: `bytes` is a buffer of this message alone that the framer keeps no reference to (the handler may keep it instead of copying). */
export type CopyDataHandler = (bytes: Buffer, start: number, end: number, owned: boolean) => void;

export class CopyDataFramer {
  private readonly onCopyData: CopyDataHandler;
  private readonly forward: (bytes: Buffer) => void;
  /** A message begun in an earlier chunk: its bytes so far (HEADER_BYTES long until its length is known). */
  private partial: Buffer | null = null;
  private filled = 0;
  /** After a length pg's protocol cannot have: everything goes to pg as it comes (pg reports it). */
  private passThrough = false;

  /** `forward` receives whole messages other than CopyData, in order with the CopyData handed to `onCopyData`. */
  constructor(onCopyData: CopyDataHandler, forward: (bytes: Buffer) => void) {
    this.onCopyData = onCopyData;
    this.forward = forward;
  }

  push(chunk: Buffer): void {
    if (this.passThrough) return this.forward(chunk);
    let offset = 0;
    if (this.partial !== null) {
      offset = this.complete(chunk);
      if (this.partial !== null || this.passThrough) return;
    }
    // Messages not handed on yet (not CopyData) from here: forwarded together.
    let run = offset;
    while (chunk.length - offset >= HEADER_BYTES) {
      const length = chunk.readUInt32BE(offset + 1);
      if (length < 4) return this.givePg(chunk, run);
      const end = offset + 1 + length;
      if (end > chunk.length) break;
      if (chunk[offset] === COPY_DATA) {
        if (run < offset) this.forward(chunk.subarray(run, offset));
        this.onCopyData(chunk, offset + HEADER_BYTES, end, false);
        run = end;
      }
      offset = end;
    }
    if (run < offset) this.forward(chunk.subarray(run, offset));
    if (offset < chunk.length) this.begin(chunk, offset);
  }

  /** Keeps the start of a message the chunk ends in. */
  private begin(chunk: Buffer, offset: number): void {
    const have = chunk.length - offset;
    const size = have >= HEADER_BYTES ? 1 + chunk.readUInt32BE(offset + 1) : HEADER_BYTES;
    this.partial = Buffer.allocUnsafe(size);
    chunk.copy(this.partial, 0, offset);
    this.filled = have;
  }

  /** Adds the chunk's first bytes to the partial message, handing it on once whole; returns how many bytes of the chunk it took. */
  private complete(chunk: Buffer): number {
    let partial = this.partial!;
    let used = 0;
    if (this.filled < HEADER_BYTES) {
      used = Math.min(HEADER_BYTES - this.filled, chunk.length);
      chunk.copy(partial, this.filled, 0, used);
      this.filled += used;
      if (this.filled < HEADER_BYTES) return used;
      const length = partial.readUInt32BE(1);
      if (length < 4) {
        this.partial = null;
        this.givePg(Buffer.concat([partial, chunk.subarray(used)]), 0);
        return chunk.length;
      }
      const whole = Buffer.allocUnsafe(1 + length);
      partial.copy(whole, 0, 0, HEADER_BYTES);
      this.partial = partial = whole;
    }
    const take = Math.min(partial.length - this.filled, chunk.length - used);
    chunk.copy(partial, this.filled, used, used + take);
    this.filled += take;
    used += take;
    if (this.filled === partial.length) {
      this.partial = null;
      if (partial[0] === COPY_DATA) this.onCopyData(partial, HEADER_BYTES, partial.length, true);
      else this.forward(partial);
    }
    return used;
  }

  private givePg(chunk: Buffer, from: number): void {
    this.passThrough = true;
    this.forward(chunk.subarray(from));
  }
}
