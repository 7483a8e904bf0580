/**
 * Partitions added by hand (kafka-topics --alter --partitions 4) to a topic Sluice wrote over 2, and then topics.partitions
 * raised to 4 to match: the restart no longer spreads keys over 4, which put most keys' new records in another partition
 * than their earlier ones (found live: keys moved to partitions 2 and 3, with no warning). Compaction keeps a key's newest
 * record only within a partition, so a deleted row's older record would outlive its tombstone in the other, and a sink
 * added later or a rebuild would show the row again once the tombstone is removed. The last records' keys tell the count
 * the topic was written with; Sluice writes that one and warns TOPIC_PARTITIONS_ADDED. Real broker.
 */
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { after, test } from "node:test";
import kafkajs from "kafkajs";
import { createLogger } from "../../runtime/logger.ts";
import { readToEnd } from "../topics/contract-suite.ts";
import { partitionForKey } from "../topics/partitioner.ts";
import { KafkaTopicLog } from "./kafka-log.ts";
import { deleteKafkaDeployment, testDeployment, testKafkaConfig } from "./kafka-test-config.ts";

const deployment = testDeployment("raised");

after(() => deleteKafkaDeployment(deployment));

test("topics.partitions raised to a count an operator added by hand: keys stay in the partitions their records are in, warned", async () => {
  const topic = `${deployment}.items`;
  const spec = (partitions: number) => ({ name: topic, partitions, retentionMs: null, retentionBytes: null, compacted: true });
  const keys = Array.from({ length: 40 }, (_, i) => Buffer.from(`key-${i}`));
  const first = await KafkaTopicLog.open({ config: testKafkaConfig({ partitions: 2 }), deployment, logger: createLogger("warn") });
  try {
    await first.createTopic(spec(2));
    await first.produce(keys.map((key, i) => ({ topic, key, value: Buffer.from(`before ${i}`), timestamp: Date.now() })));
  } finally {
    await first.close();
  }
  const admin = new kafkajs.Kafka({ brokers: testKafkaConfig().brokers, logLevel: 0 }).admin();
  await admin.connect();
  try {
    await admin.createPartitions({ topicPartitions: [{ topic, count: 4 }] });
    // The broker's metadata shows the new partitions a moment later.
    for (let i = 0; i < 100 && (await admin.fetchTopicMetadata({ topics: [topic] })).topics[0]!.partitions.length < 4; i++) await new Promise((r) => setTimeout(r, 100));
  } finally {
    await admin.disconnect();
  }
  const lines: string[] = [];
  const logger = createLogger("warn", new Writable({ write: (chunk, _encoding, done) => (lines.push(String(chunk)), done()) }));
  const raised = await KafkaTopicLog.open({ config: testKafkaConfig({ partitions: 4 }), deployment, logger });
  try {
    await raised.createTopic(spec(4));
    await raised.produce(keys.map((key, i) => ({ topic, key, value: Buffer.from(`after ${i}`), timestamp: Date.now() })));
    const consumer = await raised.consumer(`${deployment}.read`, [topic]);
    const read = await readToEnd(raised, consumer, [topic]);
    await consumer.close();
    assert.equal(read.length, 2 * keys.length);
    const moved = read.filter((r) => r.partition !== partitionForKey(r.key, 2)).map((r) => `${r.key!.toString()} in ${r.partition}`);
    assert.deepEqual(moved, [], "every key's records in the partition of 2");
  } finally {
    await raised.close();
  }
  const warned = lines.map((l) => JSON.parse(l) as { code?: string; msg: string; writtenPartitions?: number }).find((l) => l.code === "TOPIC_PARTITIONS_ADDED");
  assert.equal(warned?.writtenPartitions, 2);
  assert.match(warned.msg, /4 partitions, 4 configured, and its records were written over 2 of them: partitions 2 to 3 hold no record \(topics\.partitions raised to 4 after partitions were added by hand\?\)/);
});

/** The admin client's ListOffsets calls (fetchTopicOffsets) of `log` from here on, by topic. */
function countOffsetRequests(log: KafkaTopicLog): Map<string, number> {
  const counted = new Map<string, number>();
  const admin = (log as unknown as { admin: kafkajs.Admin }).admin;
  const fetch = admin.fetchTopicOffsets.bind(admin);
  admin.fetchTopicOffsets = (topic: string) => (counted.set(topic, (counted.get(topic) ?? 0) + 1), fetch(topic));
  return counted;
}

test("a topic whose first records retention deleted is adopted: the last records are read from its first offset, an empty partition not at all (it was stuck on OFFSET_OUT_OF_RANGE)", async () => {
  const topic = `${deployment}.expired`;
  const spec = (partitions: number) => ({ name: topic, partitions, retentionMs: null, retentionBytes: null, compacted: false });
  const keys = Array.from({ length: 40 }, (_, i) => Buffer.from(`key-${i}`));
  const first = await KafkaTopicLog.open({ config: testKafkaConfig({ partitions: 2 }), deployment, logger: createLogger("warn") });
  try {
    await first.createTopic(spec(2));
    await first.produce(keys.map((key, i) => ({ topic, key, value: Buffer.from(`before ${i}`), timestamp: Date.now() })));
  } finally {
    await first.close();
  }
  const admin = new kafkajs.Kafka({ brokers: testKafkaConfig().brokers, logLevel: 0 }).admin();
  await admin.connect();
  try {
    // As retention would: partition 0 keeps its last 3 records (its low offset is above high - 8), partition 1 none (low == high).
    const offsets = await admin.fetchTopicOffsets(topic);
    const high = (p: number) => Number(offsets.find((o) => o.partition === p)!.high);
    assert.ok(high(0) > 8 && high(1) > 0);
    await admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: String(high(0) - 3) }, { partition: 1, offset: "-1" }] });
    await admin.createPartitions({ topicPartitions: [{ topic, count: 4 }] });
    for (let i = 0; i < 100 && (await admin.fetchTopicMetadata({ topics: [topic] })).topics[0]!.partitions.length < 4; i++) await new Promise((r) => setTimeout(r, 100));
  } finally {
    await admin.disconnect();
  }
  const lines: string[] = [];
  const logger = createLogger("warn", new Writable({ write: (chunk, _encoding, done) => (lines.push(String(chunk)), done()) }));
  const raised = await KafkaTopicLog.open({ config: testKafkaConfig({ partitions: 4 }), deployment, logger });
  try {
    await raised.createTopic(spec(4));
    await raised.produce(keys.map((key, i) => ({ topic, key, value: Buffer.from(`after ${i}`), timestamp: Date.now() })));
    const consumer = await raised.consumer(`${deployment}.read-expired`, [topic]);
    const read = await readToEnd(raised, consumer, [topic]);
    await consumer.close();
    const after = read.filter((r) => r.value?.toString().startsWith("after "));
    assert.equal(after.length, keys.length);
    // Partition 0's 3 remaining keys told the count: 2.
    assert.deepEqual(after.filter((r) => r.partition !== partitionForKey(r.key, 2)).map((r) => `${r.key!.toString()} in ${r.partition}`), []);
  } finally {
    await raised.close();
  }
  const warned = lines.map((l) => JSON.parse(l) as { code?: string; writtenPartitions?: number }).find((l) => l.code === "TOPIC_PARTITIONS_ADDED");
  assert.equal(warned?.writtenPartitions, 2);
});

test("adopting a topic of one partition asks no offsets; one with partitions added by hand reads its partitions' last records in one read", async () => {
  const single = `${deployment}.single`;
  const topic = `${deployment}.spread`;
  const spec = (name: string, partitions: number) => ({ name, partitions, retentionMs: null, retentionBytes: null, compacted: true });
  const first = await KafkaTopicLog.open({ config: testKafkaConfig({ partitions: 1 }), deployment, logger: createLogger("warn") });
  try {
    await first.createTopic(spec(single, 1));
    await first.createTopic(spec(topic, 3));
    await first.produce(Array.from({ length: 30 }, (_, i) => ({ topic, key: Buffer.from(`key-${i}`), value: Buffer.from(`v${i}`), timestamp: Date.now() })));
  } finally {
    await first.close();
  }
  const admin = new kafkajs.Kafka({ brokers: testKafkaConfig().brokers, logLevel: 0 }).admin();
  await admin.connect();
  try {
    await admin.createPartitions({ topicPartitions: [{ topic, count: 5 }] });
    for (let i = 0; i < 100 && (await admin.fetchTopicMetadata({ topics: [topic] })).topics[0]!.partitions.length < 5; i++) await new Promise((r) => setTimeout(r, 100));
  } finally {
    await admin.disconnect();
  }
  const again = await KafkaTopicLog.open({ config: testKafkaConfig({ partitions: 5 }), deployment, logger: createLogger("error") });
  try {
    const offsetRequests = countOffsetRequests(again);
    const ranges: string[] = [];
    const reader = (again as unknown as { partitionReader(): { each: (topic: string, r: readonly unknown[], ...rest: unknown[]) => Promise<void> } }).partitionReader();
    const each = reader.each.bind(reader);
    reader.each = (t, r, ...rest) => (ranges.push(`${t}: ${r.length}`), each(t, r, ...rest));
    const readRange = again.readRange.bind(again);
    let rangeReads = 0;
    again.readRange = (...args) => (rangeReads++, readRange(...args));
    await again.createTopic(spec(single, 1));
    assert.equal(offsetRequests.get(single), undefined, "no offsets asked for a topic of one partition");
    await again.createTopic(spec(topic, 5));
    assert.equal(offsetRequests.get(topic), 1);
    assert.equal(rangeReads, 0, "no read per partition");
    assert.deepEqual(ranges.filter((r) => r.startsWith(`${topic}:`)), [`${topic}: 3`], "one read of the 3 written partitions");
  } finally {
    await again.close();
  }
});
