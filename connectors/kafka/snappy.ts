/**
 * Snappy decompression for record batches Kafka stores compressed with Snappy: a topic's (or the broker's)
 * compression.type=snappy makes the broker recompress every batch it takes that way, whatever the producer sent, and
 * kafkajs ships no Snappy codec. The Java clients and the broker frame Snappy as snappy-java's stream format (a magic
 * header, then length-prefixed blocks); other clients (librdkafka) write one raw block. Both are read: the framing
 * here, each raw block by the snappyjs package. Decompression only: Sluice writes gzip, LZ4 or zstd.
 */
import { uncompress } from "snappyjs";
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

/**
 * One raw Snappy block, decompressed by snappyjs once its elements are walked: snappyjs allocates the stated length and
 * neither checks that the block fills it (the rest stays zeros) nor that it stops there (the rest is dropped), and kafkajs
 * checks no batch CRC. So the stated length is read and bounded, and the length the block's literals and copies make is
 * counted, before anything is allocated: a block stating far more than its data makes is refused unallocated.
 */
function rawBlock(input: Buffer, maxOutputBytes: number): Buffer {
  const stated = statedLength(input);
  if (stated === null) throw invalid("its stated length is cut off or over 32 bits");
  if (stated.length > maxOutputBytes) throw invalid(`the uncompressed length of ${stated.length} is too big, expect at most ${maxOutputBytes}`);
  const made = decodedLength(input, stated.next);
  if (made !== stated.length) throw invalid(`the block states ${stated.length} bytes and its data makes ${made === null ? "an element cut off at its end" : `${made}`}`);
  try {
    return uncompress(input, maxOutputBytes);
  } catch (error) {
    throw invalid(error instanceof Error ? error.message : String(error), error);
  }
}

/** The block's varint preamble: the length it states and where its elements start; null when cut off or over 32 bits. */
function statedLength(block: Buffer): { length: number; next: number } | null {
  let length = 0;
  for (let at = 0; at < 5 && at < block.length; at++) {
    const byte = block[at]!;
    // The fifth byte holds the top 4 bits of 32.
    if (at === 4 && byte > 0x0f) return null;
    length += (byte & 0x7f) * 2 ** (7 * at);
    if (byte < 0x80) return { length, next: at + 1 };
  }
  return null;
}

/** What a raw block's literals and copies add up to, from `at` (after the varint preamble); null when one is cut off. */
function decodedLength(block: Buffer, at: number): number | null {
  let made = 0;
  while (at < block.length) {
    const tag = block[at]!;
    at++;
    const kind = tag & 0x3;
    if (kind === 0) {
      let length = (tag >>> 2) + 1;
      if (length > 60) {
        const bytes = length - 60;
        if (at + bytes > block.length) return null;
        length = block.readUIntLE(at, bytes) + 1;
        at += bytes;
      }
      if (at + length > block.length) return null;
      at += length;
      made += length;
    } else {
      const offsetBytes = kind === 1 ? 1 : kind === 2 ? 2 : 4;
      if (at + offsetBytes > block.length) return null;
      at += offsetBytes;
      made += kind === 1 ? ((tag >>> 2) & 0x7) + 4 : (tag >>> 2) + 1;
    }
  }
  return made;
}

function invalid(why: string, cause?: unknown): SluiceError {
  return new SluiceError(`a Snappy-compressed record batch cannot be read: ${why}`, { code: "KAFKA_BATCH_INVALID", context: { component: "kafka", compression: "snappy" }, cause });
}
