import assert from "node:assert/strict";
import { test } from "node:test";
import { CopyDataFramer } from "./copy-data-framer.ts";

const message = (type: string, body: Buffer): Buffer => {
  const header = Buffer.alloc(5);
  header[0] = type.charCodeAt(0);
  header.writeUInt32BE(4 + body.length, 1);
  return Buffer.concat([header, body]);
};

/** What the framer hands on: CopyData payloads, and the other messages' bytes joined between them. */
function framed(chunks: readonly Buffer[]): (string | Buffer)[] {
  const out: (string | Buffer)[] = [];
  const framer = new CopyDataFramer(
    (bytes, start, end) => out.push(`d:${bytes.subarray(start, end).toString("hex")}`),
    (bytes) => {
      const last = out.at(-1);
      if (Buffer.isBuffer(last)) out[out.length - 1] = Buffer.concat([last, bytes]);
      else out.push(Buffer.from(bytes));
    },
  );
  for (const chunk of chunks) framer.push(chunk);
  return out;
}

/** A seeded generator, so a failure can be run again. */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state / 2 ** 31;
  };
}

test("CopyData is handed on as offsets and other messages go to pg whole and in order, however the bytes are split", () => {
  const next = random(7);
  const messages: Buffer[] = [message("W", Buffer.from([0, 0, 0]))];
  for (let i = 0; i < 300; i++) {
    const kind = next();
    if (kind < 0.8) messages.push(message("d", Buffer.alloc(Math.floor(next() * (next() < 0.05 ? 70_000 : 300)), i & 0xff)));
    else if (kind < 0.9) messages.push(message("N", Buffer.from(`notice ${i}\0`)));
    else messages.push(message("c", Buffer.alloc(0)));
  }
  const expected: (string | Buffer)[] = [];
  for (const m of messages) {
    if (m[0] === 0x64) expected.push(`d:${m.subarray(5).toString("hex")}`);
    else if (Buffer.isBuffer(expected.at(-1))) expected[expected.length - 1] = Buffer.concat([expected.at(-1) as Buffer, m]);
    else expected.push(m);
  }
  const stream = Buffer.concat(messages);
  assert.deepEqual(framed([stream]), expected, "one chunk");
  for (const size of [1, 2, 3, 4, 5, 6, 7, 1000, 65536]) {
    const chunks: Buffer[] = [];
    for (let at = 0; at < stream.length; at += size) chunks.push(stream.subarray(at, at + size));
    assert.deepEqual(framed(chunks), expected, `chunks of ${size} bytes`);
  }
  for (let run = 0; run < 20; run++) {
    const chunks: Buffer[] = [];
    for (let at = 0; at < stream.length; ) {
      const size = 1 + Math.floor(next() * (next() < 0.5 ? 16 : 20_000));
      chunks.push(stream.subarray(at, at + size));
      at += size;
    }
    assert.deepEqual(framed(chunks), expected, `random chunks, run ${run}`);
  }
});

test("after a length below 4 (no message of pg's protocol has one) every byte goes to pg as it comes", () => {
  const copy = message("d", Buffer.from("ab"));
  const bad = Buffer.from([0x45, 0, 0, 0, 2, 9, 9]);
  const later = message("d", Buffer.from("cd"));
  assert.deepEqual(framed([Buffer.concat([copy, bad]), later]), [`d:${Buffer.from("ab").toString("hex")}`, Buffer.concat([bad, later])]);
  assert.deepEqual(framed([Buffer.concat([copy, bad.subarray(0, 3)]), bad.subarray(3), later]), [`d:${Buffer.from("ab").toString("hex")}`, Buffer.concat([bad, later])]);
});

test("a CopyData put together from several chunks is handed on as a buffer of its own (owned); one inside a chunk is not", () => {
  const whole = message("d", Buffer.alloc(300_000, 0x61));
  const inside = message("d", Buffer.from("small"));
  const seen: { text: string; owned: boolean; ownBuffer: boolean }[] = [];
  const chunks = [Buffer.concat([inside, whole.subarray(0, 1000)]), whole.subarray(1000, 200_000), whole.subarray(200_000)];
  const framer = new CopyDataFramer(
    (bytes, start, end, owned) => seen.push({ text: bytes.subarray(start, end).toString("latin1").slice(0, 8), owned, ownBuffer: !chunks.some((c) => c.buffer === bytes.buffer) }),
    () => assert.fail("no other message"),
  );
  for (const chunk of chunks) framer.push(chunk);
  assert.deepEqual(seen, [
    { text: "small", owned: false, ownBuffer: false },
    { text: "aaaaaaaa", owned: true, ownBuffer: true },
  ]);
});
