import assert from "node:assert/strict";
import { test } from "node:test";
import { AvroOutput, LARGE_OUTPUT_SLACK_BYTES, longWriter } from "./avro-writer.ts";

/** The Avro specification's long: zig-zag, then a varint of 7-bit groups, in bigint arithmetic. */
function specBytes(value: bigint): Buffer {
  let zigzag = value >= 0n ? value << 1n : ((-value) << 1n) - 1n;
  const bytes: number[] = [];
  while (zigzag >= 0x80n) {
    bytes.push(Number(zigzag & 0x7fn) | 0x80);
    zigzag >>= 7n;
  }
  bytes.push(Number(zigzag));
  return Buffer.from(bytes);
}

test("longs near ±2^53 keep their sign and every bit (2|n|+1 is beyond what a double holds exactly)", () => {
  const values: bigint[] = [-8609093272651264n, -4786802918853632n, 8609093272651264n, -1n, 0n, 1n, -(2n ** 30n), 2n ** 30n, 2n ** 63n - 1n, -(2n ** 63n)];
  for (const base of [2n ** 52n, 2n ** 53n - 1n, 2n ** 31n, 2n ** 45n + 12345n]) for (const delta of [-2n, -1n, 0n, 1n]) values.push(base + delta, -(base + delta));
  for (let i = 0n; i < 2000n; i++) values.push(-(2n ** 52n + i * 7919n), 2n ** 52n + i * 104729n);
  const write = longWriter();
  for (const value of values) {
    const safe = value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= -BigInt(Number.MAX_SAFE_INTEGER);
    for (const given of safe ? [value, Number(value)] : [value]) {
      const out = new AvroOutput(16);
      write(out, given);
      assert.deepEqual(out.take(), specBytes(value), `${typeof given} ${value}`);
    }
  }
});

test("writeDigits writes a safe integer's decimal digits as String() does, growing the buffer when needed", () => {
  const values = [0, 1, 9, 10, 99, 100, 12_345, 2 ** 31, 2 ** 32 + 7, 999_999_999_999_999, 10 ** 15, Number.MAX_SAFE_INTEGER];
  const out = new AvroOutput(1);
  for (const n of values) {
    out.reset();
    out.writeDigits(n);
    assert.equal(out.take().toString("latin1"), String(n));
  }
  out.reset();
  for (const n of values) out.writeDigits(n);
  assert.equal(out.take().toString("latin1"), values.map(String).join(""));
});

test("a large value is handed out without a copy, the output keeps no large buffer, and the fields after it do not double it", () => {
  const value = "0123456789abcdef".repeat((6 * 2 ** 20) / 16);
  const out = new AvroOutput();
  out.writeString(value);
  out.writeLong(42);
  out.writeString("after");
  const grown = out.buf;
  // Room for the value and what follows it, not twice the value.
  assert.ok(grown.length < value.length + 2 * 2 ** 20, `grew to ${grown.length} bytes for a ${value.length}-byte value`);
  const taken = out.take();
  assert.equal(taken.buffer, grown.buffer, "handed out, not copied");
  assert.ok(out.buf.length <= 64 * 1024, `kept ${out.buf.length} bytes for the next record`);
  const expected = Buffer.concat([specBytes(BigInt(value.length)), Buffer.from(value), specBytes(42n), specBytes(5n), Buffer.from("after")]);
  assert.ok(taken.equals(expected));
  // The next record is written and taken as before (a copy of a small output).
  out.reset();
  out.writeString("next");
  assert.deepEqual(out.take(), Buffer.concat([specBytes(4n), Buffer.from("next")]));
});

test("a large record of many fields (the output doubled for them) is handed out in a buffer of about its size", () => {
  const column = "x".repeat(300 * 1024);
  const out = new AvroOutput();
  for (let i = 0; i < 20; i++) out.writeString(column);
  const written = out.pos;
  assert.ok(out.buf.length - written > LARGE_OUTPUT_SLACK_BYTES, `doubled past the record: ${out.buf.length} bytes for ${written}`);
  const taken = out.take();
  assert.equal(taken.length, written);
  assert.ok(taken.buffer.byteLength <= written + LARGE_OUTPUT_SLACK_BYTES, `held in ${taken.buffer.byteLength} bytes for a ${written}-byte record`);
  assert.equal(taken.subarray(taken.length - column.length).toString("latin1"), column);
});
