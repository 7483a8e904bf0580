/**
 * Snappy decompression for record batches Kafka stores compressed with Snappy: a topic's (or the broker's)
 * compression.type=snappy makes the broker recompress every batch it takes that way, whatever the producer sent, and
 * kafkajs ships no Snappy codec. The Java clients and the broker frame Snappy as snappy-java's stream format (a magic
 * header, then length-prefixed blocks); other clients (librdkafka) write one raw block. Both are read. Decompression
 * only: Sluice writes gzip, LZ4 or zstd.
 *
 * The format: https://github.com/google/snappy/blob/main/format_description.txt (read to learn it; written here anew).
 */
import { SluiceError } from "../errors.ts";

/** snappy-java's stream header: 0x82 "SNAPPY" 0x00, then two 4-byte versions. */
const FRAMED_MAGIC = Buffer.from([0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0x00]);
const FRAMED_HEADER_BYTES = 16;

/**
 * What one batch may decompress to: a record batch is at most a topic's max.message.bytes (Sluice's topics take up to
 * topics.max_record_bytes, 16 MiB by default); far more is a damaged or hostile length, refused before it is allocated.
 */
export const SNAPPY_MAX_OUTPUT_BYTES = 256 * 2 ** 20;

export function snappyDecompress(input: Buffer, maxOutputBytes = SNAPPY_MAX_OUTPUT_BYTES): Buffer {
  if (input.length < FRAMED_HEADER_BYTES || !input.subarray(0, FRAMED_MAGIC.length).equals(FRAMED_MAGIC)) return rawBlock(input, maxOutputBytes);
  const blocks: Buffer[] = [];
  let total = 0;
  let at = FRAMED_HEADER_BYTES;
  while (at < input.length) {
    if (at + 4 > input.length) throw invalid("a block's length is cut off");
    const length = input.readUInt32BE(at);
    at += 4;
    if (at + length > input.length) throw invalid(`a block of ${length} bytes is cut off`);
    const block = rawBlock(input.subarray(at, at + length), maxOutputBytes - total);
    total += block.length;
    blocks.push(block);
    at += length;
  }
  return blocks.length === 1 ? blocks[0]! : Buffer.concat(blocks, total);
}

/** One raw Snappy block: its uncompressed length (a varint), then literals and back-references. */
function rawBlock(input: Buffer, maxOutputBytes: number): Buffer {
  let at = 0;
  let length = 0;
  for (let shift = 0; ; shift += 7) {
    if (at >= input.length || shift > 28) throw invalid("its length is cut off or too long");
    const byte = input[at++]!;
    length += (byte & 0x7f) * 2 ** shift;
    if ((byte & 0x80) === 0) break;
  }
  if (length > maxOutputBytes) throw invalid(`it would decompress to ${length} bytes, more than the ${maxOutputBytes} a record batch may take`);
  const output = Buffer.allocUnsafe(length);
  let out = 0;
  while (at < input.length) {
    const tag = input[at++]!;
    const kind = tag & 3;
    if (kind === 0) {
      let size = tag >>> 2;
      if (size >= 60) {
        const bytes = size - 59;
        if (at + bytes > input.length) throw invalid("a literal's length is cut off");
        size = input.readUIntLE(at, bytes);
        at += bytes;
      }
      size += 1;
      if (at + size > input.length || out + size > length) throw invalid("a literal runs past its end");
      input.copy(output, out, at, at + size);
      at += size;
      out += size;
      continue;
    }
    let size: number;
    let offset: number;
    if (kind === 1) {
      if (at + 1 > input.length) throw invalid("a copy is cut off");
      size = ((tag >>> 2) & 7) + 4;
      offset = ((tag >>> 5) << 8) | input[at]!;
      at += 1;
    } else {
      const bytes = kind === 2 ? 2 : 4;
      if (at + bytes > input.length) throw invalid("a copy is cut off");
      size = (tag >>> 2) + 1;
      offset = input.readUIntLE(at, bytes);
      at += bytes;
    }
    if (offset === 0 || offset > out || out + size > length) throw invalid("a copy refers outside what was decompressed");
    // Byte by byte: a copy may overlap what it writes (a run).
    for (let i = 0; i < size; i++, out++) output[out] = output[out - offset]!;
  }
  if (out !== length) throw invalid(`it decompressed to ${out} bytes, not the ${length} it states`);
  return output;
}

function invalid(why: string): SluiceError {
  return new SluiceError(`a Snappy-compressed record batch cannot be read: ${why}`, { code: "KAFKA_BATCH_INVALID", context: { component: "kafka", compression: "snappy" } });
}
