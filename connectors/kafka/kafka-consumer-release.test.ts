/** releaseMessages (kafka-consumer.ts): what kafkajs reads of a batch after eachBatch is as before it let go of the messages. */
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { test } from "node:test";
import type { EachBatchPayload } from "kafkajs";
import { releaseMessages } from "./kafka-consumer.ts";

const require = createRequire(import.meta.url);
const Batch = require("kafkajs/src/consumer/batch.js") as new (topic: string, fetchedOffset: string, partitionData: Record<string, unknown>) => EachBatchPayload["batch"] & {
  rawMessages: unknown[];
  messagesWithinOffset: unknown[];
  isEmptyIncludingFiltered(): boolean;
  isEmptyDueToLogCompactedMessages(): boolean;
  isEmptyControlRecord(): boolean;
  isEmptyDueToFiltering(): boolean;
};

const message = (offset: number, control = false, producerId = "-1") => ({
  offset: String(offset),
  key: Buffer.from(`k${offset}`),
  value: control ? null : Buffer.from(`v${offset}`),
  timestamp: "0",
  headers: {},
  isControlRecord: control,
  batchContext: { producerId, inTransaction: producerId !== "-1", isControlBatch: control },
});

const batchOf = (fetchedOffset: number, messages: ReturnType<typeof message>[]) =>
  new Batch("t", String(fetchedOffset), { partition: 0, highWatermark: "100", abortedTransactions: [], messages });

/** Everything kafkajs's runner reads of a batch once eachBatch returned (resolveOffset, END_BATCH_PROCESS's checks). */
const after = (batch: ReturnType<typeof batchOf>) => ({
  lastOffset: batch.lastOffset(),
  isEmpty: batch.isEmpty(),
  isEmptyIncludingFiltered: batch.isEmptyIncludingFiltered(),
  isEmptyDueToFiltering: batch.isEmptyDueToFiltering(),
  isEmptyDueToLogCompactedMessages: batch.isEmptyDueToLogCompactedMessages(),
  isEmptyControlRecord: batch.isEmptyControlRecord(),
  offsetLag: batch.offsetLag(),
});

test("a released batch keeps one message per array and answers kafkajs as before", () => {
  const cases = [
    // A transaction's records and its commit marker, which kafkajs filters out of messages but resolves past.
    batchOf(10, [message(10, false, "7"), message(11, false, "7"), message(12, false, "7"), message(13, true, "7")]),
    // Records before the fetched offset (from a compressed batch) are not the batch's.
    batchOf(12, [message(10), message(11), message(12), message(13), message(14)]),
    batchOf(5, [message(5)]),
    batchOf(3, [message(3), message(4)]),
  ];
  for (const batch of cases) {
    const before = after(batch);
    releaseMessages(batch);
    assert.deepEqual(after(batch), before);
    assert.ok(batch.messages.length <= 1 && batch.messagesWithinOffset.length <= 1 && batch.rawMessages.length <= 1, "the other messages are let go");
  }
});

test("the fetch response's message array, shared with the batch, is let go of too", () => {
  const messages = [message(0), message(1), message(2)];
  const batch = batchOf(0, messages);
  releaseMessages(batch);
  assert.equal(messages.length, 1);
  assert.equal((messages[0] as { offset: string }).offset, "2");
});

test("the message a released batch keeps holds no view of the fetch response", () => {
  const batch = batchOf(0, [message(0), message(1), message(2)]);
  releaseMessages(batch);
  for (const kept of [...batch.messages, ...batch.messagesWithinOffset, ...batch.rawMessages] as { key: unknown; value: unknown }[]) {
    assert.equal(kept.key, null);
    assert.equal(kept.value, null);
  }
});
