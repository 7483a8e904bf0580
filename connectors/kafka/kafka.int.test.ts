/** The topic log contract and Kafka-only behaviour against the real broker from test/services/. */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Writable } from "node:stream";
import { after, describe, test } from "node:test";
import { Kafka } from "kafkajs";
import { createLogger } from "../../runtime/logger.ts";
import { checkpointTopic, registryTopic } from "../topics/names.ts";
import { partitionForKey } from "../topics/partitioner.ts";
import { readToEnd, topicLogContractSuite } from "../topics/contract-suite.ts";
import type { KafkaLogOptions } from "./kafka-log.ts";
import { KafkaTopicLog } from "./kafka-log.ts";
import { testDeployment, testKafkaConfig } from "./kafka-test-config.ts";

const logger = createLogger("warn");
const deployments: string[] = [];

async function dropDeploymentTopics(): Promise<void> {
  const admin = new Kafka({ brokers: testKafkaConfig().brokers, logLevel: 0 }).admin();
  await admin.connect();
  const topics = (await admin.listTopics()).filter((t) => deployments.some((d) => t.startsWith(`${d}.`)));
  if (topics.length > 0) await admin.deleteTopics({ topics });
  await admin.disconnect();
}
after(dropDeploymentTopics);

for (const transactions of [true, false]) {
  const deployment = testDeployment(transactions ? "ctx" : "calo");
  deployments.push(deployment);
  const config = testKafkaConfig({ transactions });
  topicLogContractSuite(`kafka (${transactions ? "transactions: exactly-once" : "no transactions: at-least-once"})`, {
    open: () => KafkaTopicLog.open({ config, deployment, logger }),
    childConfig: { deployment, topics: config },
  });
}

describe("kafka topic log", () => {
  const deployment = testDeployment("ck");
  deployments.push(deployment);

  test("creates its internal topics: compacted checkpoints, journal kept forever", async () => {
    const log = await KafkaTopicLog.open({ config: testKafkaConfig(), deployment, logger });
    try {
      const topics = await log.listTopics([checkpointTopic(deployment), registryTopic(deployment)]);
      assert.deepEqual(topics.find((t) => t.name === checkpointTopic(deployment)), { name: checkpointTopic(deployment), partitions: 1, retentionMs: null, retentionBytes: null, compacted: true });
      assert.deepEqual(topics.find((t) => t.name === registryTopic(deployment)), { name: registryTopic(deployment), partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
    } finally {
      await log.close();
    }
  });

  for (const compression of ["gzip", "lz4", "zstd"] as const) {
    test(`${compression} batches are accepted by the broker and read back`, async () => {
      const log = await KafkaTopicLog.open({ config: testKafkaConfig({ compression }), deployment, logger });
      try {
        const topic = `${deployment}.compressed.${compression}`;
        await log.createTopic({ name: topic, partitions: 2, retentionMs: null, retentionBytes: null, compacted: false });
        const values = Array.from({ length: 300 }, (_, i) => `${compression} value ${i} `.repeat(20));
        await log.produce(values.map((v, i) => ({ topic, key: Buffer.from(`k${i % 10}`), value: Buffer.from(v), timestamp: 1000 + i })));
        const consumer = await log.consumer(`${deployment}.read.${compression}`, [topic]);
        const read = await readToEnd(log, consumer, [topic]);
        await consumer.close();
        assert.deepEqual(read.map((r) => Buffer.from(r.value!).toString()).sort(), [...values].sort());
      } finally {
        await log.close();
      }
    });
  }

  test("a record whose time is ahead of this machine's clock (a source session's SET TIMESTAMP, a source clock ahead) is written at the time it is produced, not refused", async () => {
    // Found on a live deployment: a MariaDB session with SET TIMESTAMP of a 2100 date; the broker refused the batch
    // (message.timestamp.after.max.ms, one hour by default: KAFKA_INVALID_TIMESTAMP, not retriable), capture stopped
    // and the daemon with it, at every restart again.
    for (const transactions of [true, false]) {
      const log = await KafkaTopicLog.open({ config: testKafkaConfig({ transactions }), deployment, logger });
      try {
        const topic = `${deployment}.future.${transactions ? "tx" : "plain"}`;
        await log.createTopic({ name: topic, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
        const before = Date.now();
        const year2100 = Date.parse("2100-01-01T00:00:00Z");
        await log.produce([
          { topic, key: Buffer.from("a"), value: Buffer.from("from 2100"), timestamp: year2100 },
          { topic, key: Buffer.from("b"), value: Buffer.from("in time"), timestamp: before - 60_000 },
        ]);
        const consumer = await log.consumer(`${deployment}.future.read.${transactions}`, [topic]);
        const read = await readToEnd(log, consumer, [topic]);
        await consumer.close();
        const stamps = Object.fromEntries(read.map((r) => [Buffer.from(r.value!).toString(), r.timestamp]));
        assert.ok(stamps["from 2100"]! >= before && stamps["from 2100"]! <= Date.now(), `written at the time it was produced: ${stamps["from 2100"]}`);
        assert.equal(stamps["in time"], before - 60_000, "a time in the past is kept");
      } finally {
        await log.close();
      }
    }
  });

  test("a running consumer makes its group active; after close it is not", async () => {
    const log = await KafkaTopicLog.open({ config: testKafkaConfig(), deployment, logger });
    try {
      const topic = `${deployment}.activity`;
      await log.createTopic({ name: topic, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
      const group = `${deployment}.sink.activity`;
      const consumer = await log.consumer(group, [topic]);
      await consumer.seek(topic, 0, { kind: "earliest" });
      const activity = await log.groupActivity(group);
      assert.equal(activity.active, true);
      assert.equal(activity.members.length, 1);
      await consumer.close();
      assert.deepEqual(await log.groupActivity(group), { active: false, members: [], clients: [] });
    } finally {
      await log.close();
    }
  });

  test("unreachable brokers: retried with backoff, not ready, logged with the broker list, then a retriable ConnectionError", async () => {
    const lines: string[] = [];
    const sink = new Writable({ write: (chunk: Buffer, _encoding, done) => (lines.push(chunk.toString()), done()) });
    const options: KafkaLogOptions = {
      config: testKafkaConfig({ brokers: ["127.0.0.1:9"] }),
      deployment,
      logger: createLogger("info", sink),
      retry: { initialMs: 10, maxMs: 50, maxAttempts: 3 },
    };
    await assert.rejects(KafkaTopicLog.open(options), (error: Error & { code?: string; retriable?: boolean }) => {
      assert.equal(error.code, "KAFKA_UNAVAILABLE");
      assert.equal(error.retriable, true);
      assert.match(error.message, /127\.0\.0\.1:9/);
      return true;
    });
    const retries = lines.map((l) => JSON.parse(l) as { msg: string; brokers?: string[]; level: string }).filter((l) => l.msg === "Kafka unreachable; retrying");
    assert.equal(retries.length, 2, "two retries before the third and last attempt");
    assert.deepEqual(retries[0]!.brokers, ["127.0.0.1:9"]);
  });

  test("partitions an operator added to a topic (kafka-topics --alter --partitions) do not stop a restart while they are empty: keys stay in their partitions; written to, refused", async () => {
    const topic = `${deployment}.added.${randomBytes(3).toString("hex")}`;
    const spec = { name: topic, partitions: 2, retentionMs: null, retentionBytes: null, compacted: true };
    const first = await KafkaTopicLog.open({ config: testKafkaConfig(), deployment, logger });
    try {
      await first.createTopic(spec);
    } finally {
      await first.close();
    }
    const kafka = new Kafka({ brokers: testKafkaConfig().brokers, logLevel: 0 });
    const admin = kafka.admin();
    await admin.connect();
    try {
      await admin.createPartitions({ topicPartitions: [{ topic, count: 4 }] });
      const restarted = await KafkaTopicLog.open({ config: testKafkaConfig(), deployment, logger });
      try {
        await restarted.createTopic(spec);
        const keys = Array.from({ length: 40 }, (_, i) => Buffer.from(`key-${i}`));
        await restarted.produce(keys.map((key, i) => ({ topic, key, value: Buffer.from(`v${i}`), timestamp: 1000 + i })));
        const consumer = await restarted.consumer(`${deployment}.added-read`, [topic]);
        const read = await readToEnd(restarted, consumer, [topic]);
        await consumer.close();
        assert.equal(read.length, keys.length);
        for (const record of read) assert.equal(record.partition, partitionForKey(record.key, 2), `${record.key?.toString()} in the partition of 2`);
      } finally {
        await restarted.close();
      }
      const producer = kafka.producer();
      await producer.connect();
      await producer.send({ topic, messages: [{ key: "foreign", value: "x", partition: 3 }] });
      await producer.disconnect();
      const again = await KafkaTopicLog.open({ config: testKafkaConfig(), deployment, logger });
      try {
        await assert.rejects(again.createTopic(spec), (error: Error & { code?: string }) => error.code === "TOPIC_MISMATCH" && /4 partitions exist, 2 configured/.test(error.message));
      } finally {
        await again.close();
      }
    } finally {
      await admin.disconnect();
    }
  });

  test("an existing topic with another partition count is refused, naming the topic and both counts", async () => {
    const log = await KafkaTopicLog.open({ config: testKafkaConfig(), deployment, logger });
    try {
      const topic = `${deployment}.mismatch.${randomBytes(3).toString("hex")}`;
      await log.createTopic({ name: topic, partitions: 2, retentionMs: null, retentionBytes: null, compacted: true });
      await assert.rejects(log.createTopic({ name: topic, partitions: 6, retentionMs: null, retentionBytes: null, compacted: false }), (error: Error & { code?: string }) => {
        assert.equal(error.code, "TOPIC_MISMATCH");
        assert.match(error.message, new RegExp(`${topic.replaceAll(".", "\\.")}.*2 partitions exist, 6 configured; it is compacted, configured not compacted`));
        return true;
      });
    } finally {
      await log.close();
    }
  });
});
