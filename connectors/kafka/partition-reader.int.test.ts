/** Reading partitions without a consumer group, against the real broker from test/services/. */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { CompressionTypes, Kafka } from "kafkajs";
import { createLogger } from "../../runtime/logger.ts";
import type { Checkpoint } from "../contracts.ts";
import { checkpointTopic } from "../topics/names.ts";
import { createKafkaClient } from "./kafka-client.ts";
import { KafkaTopicLog } from "./kafka-log.ts";
import { PartitionReader } from "./partition-reader.ts";
import { assertConnectionsClosed, testDeployment, testKafkaConfig } from "./kafka-test-config.ts";

const logger = createLogger("warn");
const deployment = testDeployment("preader");
const newAdmin = () => new Kafka({ brokers: testKafkaConfig().brokers, logLevel: 0 }).admin();

after(async () => {
  const admin = newAdmin();
  await admin.connect();
  const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${deployment}.`));
  if (topics.length > 0) await admin.deleteTopics({ topics });
  await admin.disconnect();
});

/** Counts the consumers (each one a consumer group member) every kafkajs client makes while `body` runs. */
async function consumersMadeDuring<T>(body: () => Promise<T>): Promise<{ result: T; consumers: number }> {
  const prototype = Kafka.prototype as unknown as { consumer: (...args: unknown[]) => unknown };
  const original = prototype.consumer;
  let consumers = 0;
  prototype.consumer = function (this: unknown, ...args: unknown[]) {
    consumers++;
    return original.apply(this, args);
  };
  try {
    return { result: await body(), consumers };
  } finally {
    prototype.consumer = original;
  }
}

const text = (bytes: Uint8Array | null) => (bytes === null ? null : Buffer.from(bytes).toString("utf8"));

describe("PartitionReader", () => {
  test("reads the committed records of each partition's range in order: not aborted ones, not transaction markers, not outside the range", async () => {
    const topic = `${deployment}.mixed`;
    const admin = newAdmin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 2, replicationFactor: 1 }], waitForLeaders: true });
    const kafka = new Kafka({ brokers: testKafkaConfig().brokers, logLevel: 0 });
    const producer = kafka.producer({ transactionalId: `${deployment}.tx`, idempotent: true, maxInFlightRequests: 1 });
    const plain = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    await plain.connect();
    const send = async (values: string[], partition: number, outcome: "commit" | "abort" | "none", compression = CompressionTypes.None) => {
      const messages = values.map((value) => ({ key: value, value, partition }));
      if (outcome === "none") return void (await plain.send({ topic, acks: -1, compression, messages }));
      const transaction = await producer.transaction();
      await transaction.send({ topic, acks: -1, compression, messages });
      await (outcome === "commit" ? transaction.commit() : transaction.abort());
    };
    try {
      // Partition 0: a compressed batch of ten, then an aborted transaction, then a committed one.
      await send(Array.from({ length: 10 }, (_, i) => `p0-gz-${i}`), 0, "commit", CompressionTypes.GZIP);
      await send(["p0-aborted-1", "p0-aborted-2"], 0, "abort");
      await send(["p0-last"], 0, "commit");
      // Partition 1: plain records around an aborted transaction.
      await send(["p1-a"], 1, "none");
      await send(["p1-aborted"], 1, "abort");
      await send(["p1-b", "p1-c"], 1, "none");
    } finally {
      await producer.disconnect();
      await plain.disconnect();
    }
    const offsets = await admin.fetchTopicOffsets(topic);
    const end = (partition: number) => BigInt(offsets.find((o) => o.partition === partition)!.high);
    const reader = new PartitionReader({ kafka: createKafkaClient(testKafkaConfig(), logger), brokers: testKafkaConfig().brokers, fetchBytes: 2 ** 20, partitionFetchBytes: 2 ** 20 });
    try {
      const { result, consumers } = await consumersMadeDuring(() => reader.read(topic, [{ partition: 0, start: 0n, end: end(0) }, { partition: 1, start: 0n, end: end(1) }]));
      assert.equal(consumers, 0, "no consumer group");
      assert.deepEqual(result.filter((r) => r.partition === 0).map((r) => text(r.value)), [...Array.from({ length: 10 }, (_, i) => `p0-gz-${i}`), "p0-last"]);
      assert.deepEqual(result.filter((r) => r.partition === 1).map((r) => text(r.value)), ["p1-a", "p1-b", "p1-c"]);
      const p0 = result.filter((r) => r.partition === 0);
      assert.deepEqual(p0.map((r) => r.offset), [...p0.map((r) => r.offset)].sort((a, b) => (a < b ? -1 : 1)), "in offset order");
      assert.equal(text(p0[0]!.key), "p0-gz-0");

      // From the middle of the compressed batch to before the last record: only that range.
      const middle = await reader.read(topic, [{ partition: 0, start: 3n, end: p0.at(-1)!.offset }, { partition: 1, start: end(1), end: end(1) }]);
      assert.deepEqual(middle.map((r) => text(r.value)), Array.from({ length: 7 }, (_, i) => `p0-gz-${i + 3}`));
    } finally {
      await reader.close();
      await admin.disconnect();
    }
  });

  test("records bigger than the fetch size, in several partitions: each comes whole in a later fetch, none is skipped", async () => {
    const topic = `${deployment}.wide`;
    const admin = newAdmin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 3, replicationFactor: 1 }], waitForLeaders: true });
    const producer = new Kafka({ brokers: testKafkaConfig().brokers, logLevel: 0 }).producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const wide = (partition: number, i: number) => `${partition}:${i}:`.padEnd(200_000, "x");
    try {
      for (let i = 0; i < 3; i++) {
        await producer.send({ topic, acks: -1, messages: [0, 1, 2].map((partition) => ({ key: `k${partition}`, value: wide(partition, i), partition })) });
      }
    } finally {
      await producer.disconnect();
    }
    const offsets = await admin.fetchTopicOffsets(topic);
    // A fetch answers with the first partition's first batch whole when it exceeds the sizes, and nothing more.
    const reader = new PartitionReader({ kafka: createKafkaClient(testKafkaConfig(), logger), brokers: testKafkaConfig().brokers, fetchBytes: 64 * 1024, partitionFetchBytes: 64 * 1024 });
    try {
      const read = await reader.read(topic, offsets.map((o) => ({ partition: o.partition, start: 0n, end: BigInt(o.high) })));
      for (const partition of [0, 1, 2]) {
        // Compared by head and length: a failure names which records came, without printing 200 KB each.
        const brief = (value: string | null) => `${value?.slice(0, 8)}… ${value?.length} chars`;
        assert.deepEqual(read.filter((r) => r.partition === partition).map((r) => brief(text(r.value))), [0, 1, 2].map((i) => brief(wide(partition, i))));
      }
    } finally {
      await reader.close();
      await admin.disconnect();
    }
  });

  test("two reads at once leave no connection open once the reader is closed", async () => {
    const topic = `${deployment}.twice`;
    const admin = newAdmin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 1, replicationFactor: 1 }], waitForLeaders: true });
    await admin.disconnect();
    const producer = new Kafka({ brokers: testKafkaConfig().brokers, logLevel: 0 }).producer();
    await producer.connect();
    await producer.send({ topic, acks: -1, messages: ["a", "b", "c"].map((value) => ({ value, partition: 0 })) });
    await producer.disconnect();
    // Every socket the reader's kafkajs cluster connects meanwhile.
    let reader: PartitionReader | undefined;
    await assertConnectionsClosed(
      async () => {
        reader = new PartitionReader({ kafka: createKafkaClient(testKafkaConfig(), logger), brokers: testKafkaConfig().brokers, fetchBytes: 2 ** 20, partitionFetchBytes: 2 ** 20 });
        const reads = await Promise.all([0, 1, 2].map(() => reader!.read(topic, [{ partition: 0, start: 0n, end: 3n }])));
        for (const read of reads) assert.deepEqual(read.map((r) => text(r.value)), ["a", "b", "c"]);
      },
      async () => await reader?.close(),
      "the reads",
    );
  });

  test("a restart's reads of the internal topics (checkpoint, schema journal, topic identities) join no consumer group", async () => {
    const config = testKafkaConfig();
    const data = `${deployment}.src.public.items`;
    const checkpoint: Checkpoint = { source: "src", position: { commit: 42n, change: 41n } };
    const first = await KafkaTopicLog.open({ config, deployment, logger });
    try {
      await first.createTopic({ name: data, partitions: 2, retentionMs: null, retentionBytes: null, compacted: false });
      await first.registryJournal.append({ mutations: ["first"] });
      await first.registryJournal.append({ mutations: ["second"] });
      await first.produce([{ topic: data, key: Buffer.from("k"), value: Buffer.from("v"), timestamp: Date.now() }], checkpoint);
    } finally {
      await first.close();
    }
    const again = await KafkaTopicLog.open({ config, deployment, logger });
    try {
      const { result, consumers } = await consumersMadeDuring(async () => ({
        checkpoint: await again.readCheckpoint("src"),
        journal: await again.registryJournal.loadAll(),
        ids: await again.topicIds([data]),
      }));
      assert.equal(consumers, 0, "read without a consumer group");
      assert.deepEqual(result.checkpoint, checkpoint, `the checkpoint is read from ${checkpointTopic(deployment)}`);
      assert.deepEqual(result.journal, [{ mutations: ["first"] }, { mutations: ["second"] }]);
      assert.match(result.ids.get(data) ?? "", /^[0-9a-f-]{36}$/);
    } finally {
      await again.close();
    }
  });
});

test("KafkaTopicLog.scanTopic visits every committed record in offset order, a chunk at a time, without a consumer group", async () => {
  const log = await KafkaTopicLog.open({ config: testKafkaConfig(), deployment, logger });
  const topic = `${deployment}.parked`;
  try {
    await log.createTopic({ name: topic, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
    const values = Array.from({ length: 25 }, (_, i) => `parked ${i}`);
    for (const part of [values.slice(0, 10), values.slice(10, 11), values.slice(11)]) {
      await log.produce(part.map((value) => ({ topic, key: Buffer.from("t"), value: Buffer.from(value), timestamp: Date.now() })));
    }
    const seen: string[] = [];
    const { consumers } = await consumersMadeDuring(() => log.scanTopic(topic, 4, async (record) => void seen.push(text(record.value)!)));
    assert.equal(consumers, 0, "no consumer group");
    assert.deepEqual(seen, values, "each once, in order, across chunks and transaction markers");
    const stop = new AbortController();
    const before: string[] = [];
    await log.scanTopic(topic, 4, async (record) => {
      before.push(text(record.value)!);
      if (before.length === 6) stop.abort();
    }, stop.signal);
    assert.deepEqual(before, values.slice(0, 8), "a stop ends the scan after the chunk under way");
  } finally {
    await log.close();
  }
});
