import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { test } from "node:test";
import type { Message } from "kafkajs";
import { withLinearPartitionGrouping } from "./partition-grouping.ts";

type Group = (options: { topic: string; partitionMetadata: unknown[]; messages: Message[]; partitioner: (o: { message: Message }) => number }) => Record<number, Message[]>;
// The function kafkajs's producer groups every request's messages with.
const groupMessagesPerPartition = createRequire(import.meta.url)("kafkajs/src/producer/groupMessagesPerPartition.js") as Group;

const messages = (n: number) => Array.from({ length: n }, (_, i) => ({ key: `k${i}`, value: `v${i}`, partition: (i * 7) % 3 }));

test("kafkajs's own grouping of a list Sluice hands it: the same partitions and order, without a per-message pass through its quadratic reducer", () => {
  let partitionerCalls = 0;
  const partitioner = ({ message }: { message: Message }) => {
    partitionerCalls++;
    return message.partition!;
  };
  const partitionMetadata = [0, 1, 2].map((partitionId) => ({ partitionId, leader: 0 }));
  const expected = groupMessagesPerPartition({ topic: "t", partitionMetadata, messages: messages(5_000), partitioner });
  assert.equal(partitionerCalls, 5_000);
  partitionerCalls = 0;
  const grouped = groupMessagesPerPartition({ topic: "t", partitionMetadata, messages: withLinearPartitionGrouping(messages(5_000)), partitioner });
  assert.deepEqual(grouped, expected);
  assert.deepEqual(Object.keys(grouped), ["0", "1", "2"]);
  assert.equal(partitionerCalls, 0, "kafkajs no longer groups through messages.reduce(fn, {}): the linear grouping is not used");
});

test("any other reduce on the list is the ordinary one", () => {
  const list = withLinearPartitionGrouping(messages(10));
  assert.equal(list.reduce((sum, m) => sum + m.partition!, 0), messages(10).reduce((sum, m) => sum + m.partition, 0));
  assert.deepEqual(list.reduce((keys: string[], m) => [...keys, String(m.key)], []), messages(10).map((m) => m.key));
  assert.equal(Object.keys(list).length, 10, "reduce is not an enumerable property");
});
