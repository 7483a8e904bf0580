/**
 * The inner events of a MySQL 8 TRANSACTION_PAYLOAD_EVENT (binlog_transaction_compression), one at a time, as zstd
 * decompresses them: only the event being cut and zstd's output window are held, never the whole transaction, so a
 * payload may decompress to any size. Each inner event must fit the decompression limit (decompression-limit.ts); the
 * payload's stated uncompressed size, when given, bounds the whole and must be met exactly.
 */
import { createZstdDecompress } from "node:zlib";
import { DecompressionLimitError } from "./decompression-limit.ts";
import { ROWS_EVENTS } from "./constants.ts";
import { EVENT_HEADER_BYTES } from "./event-header.ts";
import type { TransactionPayload } from "./events.ts";
import { COMPRESSION_NONE, COMPRESSION_ZSTD } from "./events.ts";

/**
 * An inner event over the limit whose type says it holds rows: its first bytes (its header, and its rows header
 * naming the table), the rest passed over as it is decompressed, so the decoder can halt that table only.
 */
export interface OversizedEvent {
  readonly head: Buffer;
  readonly error: DecompressionLimitError;
}

/** Bytes kept of an oversized rows event: its headers, with the column bitmaps of the widest table (4096 columns). */
const OVERSIZED_HEAD_BYTES = 2048;

/** zstd's output in pieces of this size; the stream holds about one piece ahead of the reader. */
const CHUNK_BYTES = 64 * 1024;
const SIZE_OFFSET = 9;

export async function* streamPayloadEvents(payload: TransactionPayload, limit: number): AsyncGenerator<Buffer | OversizedEvent> {
  const { compression, stated, data } = payload;
  if (compression === COMPRESSION_NONE) {
    yield* new EventCutter(data.length, limit, data.length).cut(data);
    return;
  }
  if (compression !== COMPRESSION_ZSTD) throw new RangeError(`unknown transaction payload compression ${compression}`);
  const cutter = new EventCutter(stated, limit, data.length);
  const zstd = createZstdDecompress({ chunkSize: CHUNK_BYTES });
  zstd.end(data);
  try {
    for await (const chunk of zstd) yield* cutter.cut(chunk as Buffer);
  } finally {
    // An early end (an error of the reader, or the decoder stopped): zstd's state is freed now, not at collection.
    zstd.destroy();
  }
  cutter.finish();
}

/** Cuts decompressed bytes, arriving in any pieces, into whole events. */
class EventCutter {
  private readonly stated: number | null;
  private readonly limit: number;
  private readonly compressedBytes: number;
  /** Bytes of the event being put together, in the order they came. */
  private pieces: Buffer[] = [];
  private held = 0;
  /** The size of that event, once its header's size field has arrived. */
  private size: number | null = null;
  /** Where that event starts in the decompressed bytes. */
  private eventAt = 0;
  /** Bytes still to pass over of an oversized event whose head was handed on. */
  private skip = 0;
  private total = 0;

  constructor(stated: number | null, limit: number, compressedBytes: number) {
    this.stated = stated;
    this.limit = limit;
    this.compressedBytes = compressedBytes;
  }

  /** The whole events `chunk` completes, as views of the chunks they came in (joined only when split over several). */
  *cut(chunk: Buffer): Generator<Buffer | OversizedEvent> {
    this.total += chunk.length;
    if (this.stated !== null && this.total > this.stated) {
      throw new DecompressionLimitError(`transaction payload of ${this.compressedBytes} compressed bytes decompresses to more than the ${this.stated} bytes its header states`, {
        limit: this.limit,
        stated: this.stated,
        compressedBytes: this.compressedBytes,
      });
    }
    let rest = chunk;
    while (rest.length > 0) {
      if (this.skip > 0) {
        const passed = Math.min(this.skip, rest.length);
        this.skip -= passed;
        rest = rest.subarray(passed);
        continue;
      }
      this.pieces.push(rest);
      this.held += rest.length;
      if (this.size === null) {
        if (this.held < SIZE_OFFSET + 4) return;
        this.eventAt = this.total - this.held;
        this.size = this.sizeOf(this.joined());
      }
      const oversized = this.size > this.limit;
      const wanted = oversized ? Math.min(this.size, OVERSIZED_HEAD_BYTES) : this.size;
      if (this.held < wanted) return;
      const joined = this.joined();
      const size = this.size;
      rest = joined.subarray(wanted);
      this.pieces = [];
      this.held = 0;
      this.size = null;
      if (!oversized) {
        yield joined.subarray(0, size);
        continue;
      }
      this.skip = size - wanted;
      yield { head: Buffer.from(joined.subarray(0, wanted)), error: this.oversizedError(size, this.eventAt) };
    }
  }

  finish(): void {
    if (this.held > 0 || this.skip > 0) throw new RangeError(`transaction payload ends inside an event (${this.held} bytes left over)`);
    if (this.stated !== null && this.total !== this.stated) throw new RangeError(`transaction payload decompresses to ${this.total} bytes, its header states ${this.stated}`);
  }

  private joined(): Buffer {
    if (this.pieces.length > 1) this.pieces = [Buffer.concat(this.pieces, this.held)];
    return this.pieces[0]!;
  }

  private sizeOf(head: Buffer): number {
    const size = head.readUInt32LE(SIZE_OFFSET);
    const at = this.eventAt;
    if (size < EVENT_HEADER_BYTES) throw new RangeError(`transaction payload event of ${size} bytes at ${at} is shorter than its header`);
    // A rows event over the limit is handed on as its head (OversizedEvent); any other stops here.
    if (size > this.limit && !ROWS_EVENTS.has(head[4]!)) throw this.oversizedError(size, at);
    return size;
  }

  private oversizedError(size: number, at: number): DecompressionLimitError {
    return new DecompressionLimitError(`transaction payload holds an event of ${size} bytes (at ${at} of its decompressed bytes), over the limit of ${this.limit}`, {
      limit: this.limit,
      stated: size,
      compressedBytes: this.compressedBytes,
    });
  }
}
