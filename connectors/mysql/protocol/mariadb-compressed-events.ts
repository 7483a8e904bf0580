/**
 * MariaDB's compressed binlog events (log_bin_compress): a QUERY_COMPRESSED event holds its
 * statement, a *_ROWS_COMPRESSED event its row images (after the uncompressed header and column
 * bitmaps), as one header byte (0x80 | how many bytes the length takes), the uncompressed length
 * big-endian, then a zlib stream.
 */
import { inflateSync } from "node:zlib";
import { DecompressionLimitError } from "./decompression-limit.ts";

export function uncompressEventData(stored: Buffer, what: string, limit: number): Buffer {
  const header = stored[0];
  if (header === undefined || (header & 0x80) === 0) throw new RangeError(`compressed ${what}: header byte ${header ?? "missing"} does not mark compressed data`);
  const lengthBytes = header & 0x07;
  if (lengthBytes === 0 || lengthBytes > 4 || stored.length < 1 + lengthBytes) throw new RangeError(`compressed ${what}: ${stored.length} bytes lack the length`);
  const length = stored.readUIntBE(1, lengthBytes);
  if (length === 0) return Buffer.alloc(0);
  if (length > limit) throw new DecompressionLimitError(`compressed ${what} of ${stored.length} bytes states ${length} bytes uncompressed, over the limit of ${limit}`, { limit, stated: length, compressedBytes: stored.length });
  // The stated length bounds what inflating may allocate.
  const data = inflateSync(stored.subarray(1 + lengthBytes), { maxOutputLength: length });
  if (data.length !== length) throw new RangeError(`compressed ${what}: inflates to ${data.length} bytes, its header says ${length}`);
  return data;
}
