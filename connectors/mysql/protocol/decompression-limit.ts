/**
 * The most bytes one compressed unit of the binlog may decompress to: MariaDB's compressed QUERY and rows events and
 * COMPRESSED values (zlib), each held whole while decoded, and each inner event of MySQL 8's TRANSACTION_PAYLOAD (a
 * whole transaction, zstd: streamed, payload-stream.ts, so only one inner event is held at a time). Past what the heap
 * holds, one ends the process; and a few compressed kilobytes from a hostile server or a man in the middle expand to
 * gigabytes. A size the header states over the limit is refused before decompressing, and the output is bounded
 * to the stated size (and the limit) whatever the header says.
 */
import { getHeapStatistics } from "node:v8";

const MiB = 2 ** 20;
/** MySQL's largest event (max_allowed_packet's and replica_max_allowed_packet's maximum). */
export const MAX_EVENT_BYTES = 1024 * MiB;
const MIN_LIMIT = 16 * MiB;

/**
 * A quarter of the V8 heap limit (which the memory budget sets, config/memory.ts), within 16 MiB and 1 GiB: the
 * decoded changes of a payload take some times its bytes in the heap.
 */
export function defaultDecompressionLimit(): number {
  return Math.min(MAX_EVENT_BYTES, Math.max(MIN_LIMIT, Math.floor(getHeapStatistics().heap_size_limit / 4)));
}

/** A compressed event whose stated or actual decompressed size is over the limit, or whose output is longer than stated. */
export class DecompressionLimitError extends RangeError {
  readonly limit: number;
  /** The decompressed size the data states; null when it states none. */
  readonly stated: number | null;
  /** The compressed bytes. */
  readonly compressedBytes: number;

  constructor(message: string, sizes: { readonly limit: number; readonly stated: number | null; readonly compressedBytes: number }) {
    super(message);
    this.name = "DecompressionLimitError";
    this.limit = sizes.limit;
    this.stated = sizes.stated;
    this.compressedBytes = sizes.compressedBytes;
  }
}

/** Whether `error` is zlib's refusal of output past maxOutputLength. */
export function isOutputLimitError(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === "ERR_BUFFER_TOO_LARGE";
}
