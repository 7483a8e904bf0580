import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { test } from "node:test";
import { decodeRecordBatch, RECORD_BATCH_DECODER } from "./record-batch-decoder.ts";
import type { DecodedBatch } from "./record-batch-decoder.ts";

const require = createRequire(import.meta.url);

interface KafkaDecoder {
  readonly buffer: Buffer;
  readonly offset: number;
  forward(bytes: number): void;
}
type Long = { readonly value: bigint };
type RecordOptions = { offsetDelta: number; timestampDelta: number; key: Buffer | null; value: Buffer | null; headers: Record<string, Buffer | string | (Buffer | string)[]> };
const { RecordBatch } = require("kafkajs/src/protocol/recordBatch/v0/index.js") as {
  RecordBatch(options: { firstOffset: Long; firstTimestamp: number; maxTimestamp: number; lastOffsetDelta: number; records: unknown[]; transactional?: boolean; producerId?: Long; compression?: number }): Promise<{ buffer: Buffer }>;
};
const Record = require("kafkajs/src/protocol/recordBatch/record/v0/index.js") as (options: RecordOptions) => unknown;
const Decoder = require("kafkajs/src/protocol/decoder.js") as new (buffer: Buffer) => KafkaDecoder;
const Long = require("kafkajs/src/utils/long.js") as { fromValue(value: bigint | number | string): Long };
const GZIP = 1;

/** kafkajs's own record batch decoder (the module cache holds this module's replacement). */
function kafkajsDecoder(): (decoder: KafkaDecoder) => Promise<DecodedBatch> {
  const path = require.resolve(RECORD_BATCH_DECODER);
  const replaced = require.cache[path];
  delete require.cache[path];
  try {
    return require(path) as (decoder: KafkaDecoder) => Promise<DecodedBatch>;
  } finally {
    require.cache[path] = replaced;
  }
}
const original = kafkajsDecoder();

async function batch(firstOffset: bigint, records: RecordOptions[], options: { compression?: number; firstTimestamp?: number } = {}): Promise<Buffer> {
  const firstTimestamp = options.firstTimestamp ?? 1_765_000_000_000;
  const encoded = await RecordBatch({
    firstOffset: Long.fromValue(firstOffset),
    firstTimestamp,
    maxTimestamp: firstTimestamp + 5_000,
    lastOffsetDelta: records.length === 0 ? 0 : Math.max(...records.map((r) => r.offsetDelta)),
    records: records.map(Record),
    transactional: true,
    producerId: Long.fromValue(7n),
    ...(options.compression === undefined ? {} : { compression: options.compression }),
  });
  return encoded.buffer;
}

function rows(count: number, make: (i: number) => Partial<RecordOptions> = () => ({})): RecordOptions[] {
  return Array.from({ length: count }, (_, i) => ({ offsetDelta: i, timestampDelta: i * 3, key: Buffer.from(`key-${i}`), value: Buffer.alloc(40 + i, i), headers: {}, ...make(i) }));
}

/** A batch as its readers see it: each message's fields read (ours are made when read, from the batch's bytes). */
function asKafkajsReads(batch: DecodedBatch): unknown {
  const { records, ...context } = batch;
  return {
    ...context,
    records: records.map((m) => ({
      magicByte: m.magicByte,
      attributes: m.attributes,
      timestamp: m.timestamp,
      offset: m.offset,
      key: m.key,
      value: m.value,
      headers: m.headers,
      isControlRecord: m.isControlRecord,
      batchContext: m.batchContext,
    })),
  };
}

/** Both decoders over the same bytes (batches one after another): what each returns, and where each leaves its decoder. */
async function both(bytes: Buffer): Promise<void> {
  const mine = new Decoder(bytes);
  const theirs = new Decoder(bytes);
  while (theirs.offset < bytes.length) {
    const expected = await original(theirs);
    const actual = await decodeRecordBatch(mine);
    assert.deepEqual(asKafkajsReads(actual), asKafkajsReads(expected));
    assert.equal(mine.offset, theirs.offset);
  }
}

test("decodes records as kafkajs does: offsets, timestamps, keys, values, the batch's context", async () => {
  await both(Buffer.concat([await batch(1_000n, rows(50)), await batch(1_050n, rows(3))]));
});

test("null keys and values, headers (repeated keys become arrays, a null value stays null)", async () => {
  const records = rows(6, (i): Partial<RecordOptions> => ({
    key: i === 1 ? null : Buffer.from(`k${i}`),
    value: i === 2 ? null : Buffer.from(`v${i}`),
    headers: i === 3 ? { a: "1", b: ["x", "y", "z"] } : i === 4 ? { "sluice.origin": Buffer.from("t:0:1") } : {},
  }));
  await both(await batch(9n, records));
});

test("a compressed batch", async () => {
  await both(await batch(200n, rows(40, (i): Partial<RecordOptions> => ({ headers: i % 7 === 0 ? { h: String(i) } : {} })), { compression: GZIP }));
});

test("offsets past 2^53 and a timestamp delta below the first timestamp", async () => {
  await both(await batch(2n ** 60n + 5n, rows(4, (i) => ({ timestampDelta: -1_000 * i }))));
  await both(await batch(2n ** 53n - 2n, rows(4)));
});

test("log append time and control batches (attribute bits set on the encoded batch)", async () => {
  const ATTRIBUTES_AT = 21;
  for (const flag of [0x08, 0x20]) {
    const bytes = await batch(70n, rows(3));
    bytes.writeInt16BE(bytes.readInt16BE(ATTRIBUTES_AT) | flag, ATTRIBUTES_AT);
    await both(bytes);
  }
});

test("a batch cut off by the fetch's size fails as a partial message, as kafkajs's does", async () => {
  const bytes = await batch(1n, rows(10));
  const cut = bytes.subarray(0, bytes.length - 7);
  await assert.rejects(original(new Decoder(cut)), { name: "KafkaJSPartialMessageError" });
  await assert.rejects(decodeRecordBatch(new Decoder(cut)), { name: "KafkaJSPartialMessageError" });
});

test("kafkajs's fetch responses take this decoder", async () => {
  await import("./emptied-batches.ts");
  const decodeMessages = require("kafkajs/src/protocol/requests/fetch/v4/decodeMessages.js") as (decoder: KafkaDecoder) => Promise<{ offset: string }[]>;
  const body = Buffer.concat([await batch(5n, rows(3)), await batch(8n, rows(2))]);
  const sized = Buffer.alloc(4 + body.length);
  sized.writeInt32BE(body.length, 0);
  body.copy(sized, 4);
  const records = await decodeMessages(new Decoder(sized));
  assert.deepEqual(records.map((r) => r.offset), ["5", "6", "7", "8", "9"]);
  assert.equal(require(require.resolve(RECORD_BATCH_DECODER)), decodeRecordBatch);
});
