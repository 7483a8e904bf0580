/**
 * MariaDB COMPRESSED columns (VARCHAR/BLOB/TEXT ... COMPRESSED) log their stored form: empty, or a
 * header byte then the value -- as is when the header's high nibble is 0, zlib-compressed when it
 * is 8 (low three bits: how many big-endian bytes of the original length follow; bit 3: raw
 * deflate, without the zlib wrapper).
 */
import { inflateRawSync, inflateSync } from "node:zlib";
import { DecompressionLimitError, defaultDecompressionLimit } from "../protocol/decompression-limit.ts";

const ZLIB = 8;
/** The most bytes a value may inflate to, as for compressed events (the header's length takes up to 7 bytes). */
const VALUE_LIMIT = defaultDecompressionLimit();

export function uncompressColumnValue(stored: Buffer, column: string, limit = VALUE_LIMIT): Buffer {
  if (stored.length === 0) return stored;
  const header = stored[0]!;
  const method = header >> 4;
  if (method === 0) return stored.subarray(1);
  if (method !== ZLIB) throw new RangeError(`column ${column}: COMPRESSED value with unknown compression method ${method}`);
  const lengthBytes = header & 0x07;
  if (lengthBytes === 0 || stored.length < 1 + lengthBytes) throw new RangeError(`column ${column}: COMPRESSED value of ${stored.length} bytes lacks its length`);
  const length = stored.readUIntBE(1, lengthBytes);
  if (length > limit) throw new DecompressionLimitError(`column ${column}: COMPRESSED value of ${stored.length} bytes states ${length} bytes uncompressed, over the limit of ${limit}`, { limit, stated: length, compressedBytes: stored.length });
  const input = stored.subarray(1 + lengthBytes);
  // The original length bounds what inflating may allocate.
  const options = { maxOutputLength: Math.max(length, 1) };
  const value = (header & 0x08) !== 0 ? inflateRawSync(input, options) : inflateSync(input, options);
  if (value.length !== length) throw new RangeError(`column ${column}: COMPRESSED value inflates to ${value.length} bytes, its header says ${length}`);
  return value;
}
