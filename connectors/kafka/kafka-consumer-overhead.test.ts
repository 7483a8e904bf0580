/**
 * What a record queued in a sink's read-ahead holds besides its key and value, measured, against what the
 * consumer counts for it under a memory budget (RECORD_HEAP_OVERHEAD): the read-ahead's bound is in those bytes.
 */
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { test } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { inPlaceRecordsOf, RECORD_HEAP_OVERHEAD } from "./kafka-consumer.ts";
import { FetchedMessage } from "./record-batch-decoder.ts";

const require = createRequire(import.meta.url);
type Long = { readonly value: bigint };
const { RecordBatch } = require("kafkajs/src/protocol/recordBatch/v0/index.js") as {
  RecordBatch(options: { firstOffset: Long; firstTimestamp: number; maxTimestamp: number; lastOffsetDelta: number; records: unknown[]; transactional: boolean; producerId: Long }): Promise<{ buffer: Buffer }>;
};
const Record = require("kafkajs/src/protocol/recordBatch/record/v0/index.js") as (options: object) => unknown;
const Decoder = require("kafkajs/src/protocol/decoder.js") as new (buffer: Buffer) => unknown;
const Long = require("kafkajs/src/utils/long.js") as { fromValue(value: number): Long };
const decodeMessages = require("kafkajs/src/protocol/requests/fetch/v4/decodeMessages.js") as (decoder: unknown) => Promise<unknown[]>;

const KEY_BYTES = 30;
const VALUE_BYTES = 20;
const PER_BATCH = 1_000;

/** A fetch's record set: three transactional batches of small records, as a sink reads them. */
async function fetchResponse(): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (let b = 0; b < 3; b++) {
    const records = Array.from({ length: PER_BATCH }, (_, i) => Record({ offsetDelta: i, timestampDelta: i, key: Buffer.alloc(KEY_BYTES, 1), value: Buffer.alloc(VALUE_BYTES, 2), headers: {} }));
    const first = Date.now();
    parts.push((await RecordBatch({ firstOffset: Long.fromValue(1_000 + b * PER_BATCH), firstTimestamp: first, maxTimestamp: first, lastOffsetDelta: PER_BATCH - 1, records, transactional: true, producerId: Long.fromValue(5) })).buffer);
  }
  const body = Buffer.concat(parts);
  const response = Buffer.alloc(4 + body.length);
  response.writeInt32BE(body.length, 0);
  body.copy(response, 4);
  return response;
}

test("a queued record is counted at about what it holds besides its key and value, heap and typed arrays", async () => {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  const response = await fetchResponse();
  const fetched = async () => inPlaceRecordsOf("t", 0, (await decodeMessages(new Decoder(response))) as never);
  const first = (await decodeMessages(new Decoder(response)))[0];
  assert.ok(first instanceof FetchedMessage, "Sluice's record batch decoder reads the fetch");
  for (let i = 0; i < 5; i++) await fetched();

  const used = () => {
    gc();
    gc();
    const { heapUsed, arrayBuffers } = process.memoryUsage();
    return heapUsed + arrayBuffers;
  };
  const before = used();
  const kept: unknown[][] = [];
  for (let i = 0; i < 30; i++) kept.push(await fetched());
  const after = used();
  const records = kept.reduce((sum, batch) => sum + batch.length, 0);
  assert.equal(records, 30 * 3 * PER_BATCH);
  const perRecord = (after - before) / records - KEY_BYTES - VALUE_BYTES;

  assert.ok(perRecord <= RECORD_HEAP_OVERHEAD, `a queued record holds ${perRecord.toFixed(0)} bytes besides its key and value, counted at ${RECORD_HEAP_OVERHEAD}`);
  // Counted much higher, a read-ahead holds far fewer records than the memory plan gives it room for.
  assert.ok(RECORD_HEAP_OVERHEAD <= 1.5 * perRecord, `counted at ${RECORD_HEAP_OVERHEAD} bytes, a queued record holds ${perRecord.toFixed(0)}`);
});
