/**
 * Record sizes on topics Sluice writes, against the real broker: a topic Sluice creates carries a
 * max.message.bytes that takes what Sluice writes to it (topics.max_record_bytes when its spec
 * names no size: internal topics, the key store, the audit), and a topic that already exists with
 * a smaller one gets batches within it and, for a record above it, RECORD_TOO_LARGE naming the
 * topic before anything is sent. Without a max.message.bytes of its own a topic takes the broker's
 * default (about 1 MiB), and a partition's batch of up to batch_bytes (4 MiB here) was refused
 * whole with KAFKA_MESSAGE_TOO_LARGE, for good.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import kafkajs from "kafkajs";
import { createLogger } from "../../runtime/logger.ts";
import type { ProducedRecord } from "../contracts.ts";
import { readToEnd } from "../topics/contract-suite.ts";
import { captureLeaseTopic, checkpointTopic, instancesTopic, registryTopic, schemaHistoryTopic, topicIdsTopic } from "../topics/names.ts";
import { KafkaTopicLog } from "./kafka-log.ts";
import { deleteKafkaDeployment, testDeployment, testKafkaConfig } from "./kafka-test-config.ts";

const deployment = testDeployment("toplimits");
const logger = createLogger("silent");
const MAX_RECORD_BYTES = 16 * 2 ** 20;
const config = testKafkaConfig({ batch_bytes: 4 * 2 ** 20, linger: 50, max_record_bytes: MAX_RECORD_BYTES });
after(() => deleteKafkaDeployment(deployment));

/** ~3.4 MiB of 250-byte records in one partition: one produce call, one transaction. */
const manySmall = (topic: string): ProducedRecord[] => Array.from({ length: 14_000 }, (_, i) => ({ topic, key: Buffer.from(`k${i}`), value: Buffer.alloc(250, 65 + (i % 26)), timestamp: 1_000 + i }));

async function withAdmin<T>(body: (admin: kafkajs.Admin) => Promise<T>): Promise<T> {
  const admin = new kafkajs.Kafka({ clientId: "sluice-test-limits", brokers: [...config.brokers], logLevel: kafkajs.logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    return await body(admin);
  } finally {
    await admin.disconnect();
  }
}

async function maxMessageBytes(topics: readonly string[]): Promise<Record<string, string | undefined>> {
  return withAdmin(async (admin) => {
    const described = await admin.describeConfigs({ includeSynonyms: false, resources: topics.map((name) => ({ type: kafkajs.ConfigResourceTypes.TOPIC, name, configNames: ["max.message.bytes"] })) });
    return Object.fromEntries(described.resources.map((r) => [r.resourceName, r.configEntries[0]?.configValue]));
  });
}

let reads = 0;
async function readKeys(log: KafkaTopicLog, topic: string): Promise<string[]> {
  const consumer = await log.consumer(`${deployment}.read.${reads++}`, [topic]);
  try {
    return (await readToEnd(log, consumer, [topic])).map((r) => Buffer.from(r.key!).toString());
  } finally {
    await consumer.close();
  }
}

test("a topic created without a size of its own (as the key store's and the audit's) takes batches of batch_bytes above the broker's default", { timeout: 120_000 }, async () => {
  const log = await KafkaTopicLog.open({ config, deployment, logger });
  try {
    const topic = `${deployment}.sluice.keys`;
    await log.createTopic({ name: topic, partitions: 1, retentionMs: null, retentionBytes: null, compacted: true });
    const records = manySmall(topic);
    await log.produce(records, { source: `${deployment}-src`, position: { commit: 3n, change: 3n } });
    assert.deepEqual(await readKeys(log, topic), records.map((r) => Buffer.from(r.key!).toString()), "every record once, in order");
    assert.deepEqual(await maxMessageBytes([topic]), { [topic]: String(MAX_RECORD_BYTES) });
  } finally {
    await log.close();
  }
});

test("Sluice's internal topics get topics.max_record_bytes as max.message.bytes", { timeout: 60_000 }, async () => {
  const log = await KafkaTopicLog.open({ config, deployment, logger });
  await log.close();
  const internal = [checkpointTopic, registryTopic, schemaHistoryTopic, topicIdsTopic, instancesTopic, captureLeaseTopic].map((name) => name(deployment));
  assert.deepEqual(await maxMessageBytes(internal), Object.fromEntries(internal.map((name) => [name, String(MAX_RECORD_BYTES)])));
});

test("a topic that exists with the broker's default limit: batches stay within it, declared or not, and a record above it is refused naming the topic", { timeout: 120_000 }, async () => {
  const declared = `${deployment}.old.declared`;
  const undeclared = `${deployment}.old.undeclared`;
  await withAdmin((admin) => admin.createTopics({ waitForLeaders: true, topics: [declared, undeclared].map((topic) => ({ topic, numPartitions: 1, replicationFactor: 1 })) }));
  const log = await KafkaTopicLog.open({ config, deployment, logger });
  try {
    await log.createTopic({ name: declared, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
    // A command (sluice forget) writes to topics it never declared: the producer learns their limit too.
    for (const topic of [declared, undeclared]) {
      const records = manySmall(topic);
      await log.produce(records);
      assert.equal((await readKeys(log, topic)).length, records.length, topic);
    }
    const limit = log.maxRecordBytes(undeclared)!;
    assert.ok(limit > 0 && limit < 2 * 2 ** 20, `the broker's default, ${limit}`);
    const big: ProducedRecord = { topic: undeclared, key: Buffer.from("big"), value: Buffer.alloc(2 * 2 ** 20, 66), timestamp: 9_000 };
    await assert.rejects(log.produce([big]), (error: Error & { code?: string; context?: Record<string, unknown> }) => {
      assert.equal(error.code, "RECORD_TOO_LARGE");
      assert.match(error.message, new RegExp(`topic "${undeclared.replaceAll(".", "\\.")}".*max\\.message\\.bytes`));
      assert.equal(error.context?.["topic"], undeclared);
      return true;
    });
    // The log goes on: a record within the limit after the refused one is stored.
    await log.produce([{ ...big, key: Buffer.from("small"), value: Buffer.from("s") }]);
    assert.equal((await readKeys(log, undeclared)).at(-1), "small");
  } finally {
    await log.close();
  }
});
