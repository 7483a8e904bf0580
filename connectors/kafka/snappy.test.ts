import assert from "node:assert/strict";
import { test } from "node:test";
import { snappyDecompress } from "./snappy.ts";

const text = Array.from({ length: 40 }, (_, i) => `row ${i % 7} sluice; `).join("");
// Made by snappy-java 1.1.10.7 (the Kafka broker's own Snappy): Snappy.compress, and a SnappyOutputStream flushed
// after 300 bytes (two blocks), the framing the broker writes batches in.
const RAW = "b00434726f77203020736c756963653b20010e0031320e000032320e000033320e000034320e000035320e000036320e00fe6200fe6200fe6200fe6200fe6200fe6200fe62001962";
const FRAMED = "82534e415050590000000001000000010000003cac0234726f77203020736c756963653b20010e0031320e000032320e000033320e000034320e000035320e000036320e00fe6200fe6200fe620009620000003b840234736c756963653b20726f772031202e0e000032320e000033320e000034320e000035320e000036320e000030320e00fe6200fe6200566200";

test("a raw Snappy block and snappy-java's framed stream decompress to what was compressed", () => {
  assert.equal(snappyDecompress(Buffer.from(RAW, "hex")).toString(), text);
  assert.equal(snappyDecompress(Buffer.from(FRAMED, "hex")).toString(), text);
});

test("literals with a length byte, copies with 1-, 2- and 4-byte offsets, overlapping runs, an empty block", () => {
  const literal100 = Buffer.alloc(100, "q");
  const block = Buffer.concat([
    Buffer.from([100 + 3 + 9 + 6 + 5]), // the length: a varint
    Buffer.from([0xf0, 99]), literal100, // a literal of 100 (tag 60: one length byte)
    Buffer.from([0x08]), Buffer.from("abc"), // a literal of 3
    Buffer.from([0x15, 0x03]), // copy of 9 from 3 back, 1-byte offset: overlaps itself
    Buffer.from([0x16, 0x05, 0x00]), // copy of 6 from 5 back, 2-byte offset
    Buffer.from([0x13, 0x76, 0x00, 0x00, 0x00]), // copy of 5 from 118 back (the start), 4-byte offset
  ]);
  const expected = Buffer.concat([literal100, Buffer.from("abc"), Buffer.from("abcabcabc"), Buffer.from("bcabcb"), Buffer.alloc(5, "q")]);
  assert.deepEqual(snappyDecompress(block), expected);
  assert.deepEqual(snappyDecompress(Buffer.from([0])), Buffer.alloc(0));
});

test("a damaged or hostile block is refused, a length over the bound before anything is allocated for it", () => {
  const refused = (input: number[] | Buffer, why: RegExp, max?: number) =>
    assert.throws(() => snappyDecompress(Buffer.from(input), max), (error: Error & { code?: string }) => error.code === "KAFKA_BATCH_INVALID" && why.test(error.message));
  refused([0xff, 0xff, 0xff, 0xff, 0x07], /uncompressed length of 2147483647 is too big, expect at most 268435456/);
  refused([0xff, 0xff, 0xff, 0xff, 0x1f], /stated length is cut off or over 32 bits/);
  refused([12, 0x08, 0x61, 0x62, 0x63, 0x15, 0x09], /Invalid Snappy bitstream/); // a copy from before the start
  refused([3, 0x08, 0x61], /states 3 bytes and its data makes an element cut off at its end/); // a literal cut off
  refused([0x80], /stated length is cut off or over 32 bits/);
  // The limit counts over a framed stream's blocks together.
  refused(Buffer.from(FRAMED, "hex"), /too big, expect at most 100/, 400);
  // Not refused by snappyjs 0.7.0 itself (kafkajs checks no batch CRC either): a block that makes fewer bytes than it
  // states (the rest would be zeros, which can read as valid Avro), more (the rest dropped), a copy cut off at the end.
  refused([10, 0x08, 0x61, 0x62, 0x63], /states 10 bytes and its data makes 3/);
  refused([2, 0x08, 0x61, 0x62, 0x63], /states 2 bytes and its data makes 3/);
  refused([7, 0x08, 0x61, 0x62, 0x63, 0x01], /states 7 bytes and its data makes an element cut off at its end/);
  const framed = Buffer.from(FRAMED, "hex");
  framed[framed.length - 59]! -= 1; // the second block's stated length, a varint (84 02: 260 -> 259)
  refused(framed, /states 259 bytes and its data makes 260/);
});

test("a block stating far more than its data makes is refused before its stated length is allocated", () => {
  // 200 MiB stated (within the 256 MiB bound), a literal of 4 bytes made: snappyjs would allocate the 200 MiB first.
  const stated = 200 * 2 ** 20;
  const varint: number[] = [];
  for (let rest = stated; ; rest = Math.floor(rest / 128)) {
    if (rest < 128) {
      varint.push(rest);
      break;
    }
    varint.push((rest % 128) | 0x80);
  }
  const block = Buffer.from([...varint, 0x0c, 0x61, 0x62, 0x63, 0x64]);
  const allocated: number[] = [];
  const alloc = Buffer.alloc;
  // snappyjs allocates a Buffer input's output with Buffer.alloc(stated length).
  Buffer.alloc = ((size: number, fill?: string | Uint8Array | number, encoding?: BufferEncoding) => (allocated.push(size), alloc(size, fill, encoding))) as typeof Buffer.alloc;
  try {
    assert.throws(() => snappyDecompress(block), (error: Error & { code?: string }) => error.code === "KAFKA_BATCH_INVALID" && /states 209715200 bytes and its data makes 4/.test(error.message));
  } finally {
    Buffer.alloc = alloc;
  }
  assert.deepEqual(allocated.filter((size) => size >= 2 ** 20), []);
});
