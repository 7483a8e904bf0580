/** kafkajs's fetch record-set decoder with emptied-batches.ts in place, on record sets kafkajs's own encoder makes. */
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { test } from "node:test";
import "./emptied-batches.ts";

const require = createRequire(import.meta.url);
const { RecordBatch } = require("kafkajs/src/protocol/recordBatch/v0/index.js") as { RecordBatch: (batch: Record<string, unknown>) => Promise<{ buffer: Buffer }> };
const Record = require("kafkajs/src/protocol/recordBatch/record/v0/index.js") as (record: { offsetDelta: number; key: Buffer; value: Buffer }) => unknown;
const Long = require("kafkajs/src/utils/long.js") as { fromValue(value: number): unknown };
const Decoder = require("kafkajs/src/protocol/decoder.js") as new (buffer: Buffer) => { offset: number; readInt32(): number };
type Decoded = { offset: string; key: Buffer | null; value: Buffer | null; isControlRecord: boolean; batchContext: { firstOffset: string; lastOffsetDelta: number; producerId: string } };
const decodeMessages = require("kafkajs/src/protocol/requests/fetch/v4/decodeMessages.js") as (decoder: InstanceType<typeof Decoder>) => Promise<Decoded[]>;

const batch = async (firstOffset: number, lastOffsetDelta: number, values: string[], producerId = -1) =>
  (await RecordBatch({
    firstOffset: Long.fromValue(firstOffset), lastOffsetDelta, transactional: producerId >= 0, producerId: Long.fromValue(producerId),
    records: values.map((value, offsetDelta) => Record({ offsetDelta, key: Buffer.from(value), value: Buffer.from(value) })),
  })).buffer;

/** A fetch response's partition record set (int32 size, then the batches), after a partition header stand-in of 6 bytes and before 3 more bytes. */
function responseWith(batches: Buffer[]): Buffer {
  const records = Buffer.concat(batches);
  const size = Buffer.alloc(4);
  size.writeInt32BE(records.length);
  return Buffer.concat([Buffer.alloc(6), size, records, Buffer.from([1, 2, 3])]);
}

test("a batch of no records becomes one control record at its last offset, in offset order among the others", async () => {
  const decoder = new Decoder(responseWith([await batch(0, 1, ["a", "b"]), await batch(2, 3, [], 7), await batch(6, 0, ["c"])]));
  decoder.offset = 6;
  const records = await decodeMessages(decoder);
  assert.deepEqual(records.map((r) => [r.offset, r.isControlRecord, r.value?.toString() ?? null]), [["0", false, "a"], ["1", false, "b"], ["5", true, null], ["6", false, "c"]]);
  const standIn = records[2]!;
  assert.equal(standIn.key, null);
  assert.deepEqual([standIn.batchContext.firstOffset, standIn.batchContext.lastOffsetDelta, standIn.batchContext.producerId], ["2", 3, "7"]);
  assert.equal(decoder.offset, 6 + 4 + (decoder as unknown as { buffer: Buffer }).buffer.readInt32BE(6), "the decoder moved past the record set, as kafkajs's does");
});

test("a record set of only an emptied batch, or one cut off by the fetch's size, yields what it holds whole", async () => {
  assert.deepEqual((await decodeMessages(Object.assign(new Decoder(responseWith([await batch(10, 4, [])])), { offset: 6 }))).map((r) => r.offset), ["14"]);
  const cut = await batch(15, 0, []);
  const partial = await decodeMessages(Object.assign(new Decoder(responseWith([await batch(10, 4, []), cut.subarray(0, cut.length - 1)])), { offset: 6 }));
  assert.deepEqual(partial.map((r) => r.offset), ["14"], "the cut-off batch is left for the next fetch");
  assert.deepEqual(await decodeMessages(Object.assign(new Decoder(responseWith([])), { offset: 6 })), []);
});
