/**
 * Reading a compacted topic past a record batch the log cleaner emptied, against the real broker
 * from test/services/. The cleaner keeps the header of a producer's last batch after removing all
 * of its records (the broker keeps that producer's sequence state), so a fetch can answer with a
 * batch of no records; kafkajs decodes it to nothing, and a reader that learns its offsets only
 * from records fetched the same offset again for ever. Fetches of one byte (the broker answers
 * with the first batch whole) make the emptied batch the whole answer, as the end of a cleaned
 * segment or a fetch's size limit does in a deployment.
 */
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, test } from "node:test";
import { Kafka } from "kafkajs";
import { createLogger } from "../../runtime/logger.ts";
import type { StoredRecord } from "../topics/contract.ts";
import { createKafkaClient } from "./kafka-client.ts";
import { KafkaTopicLog } from "./kafka-log.ts";
import { clusterFactory, PartitionReader } from "./partition-reader.ts";
import { testDeployment, testKafkaConfig } from "./kafka-test-config.ts";

const logger = createLogger("warn");
const deployment = testDeployment("emptied");
const brokers = testKafkaConfig().brokers;
const topic = `${deployment}.compacted`;
const KEYS = 5;
/** The broker's cleaner looks for work every log.cleaner.backoff.ms (15 s by default) and other tests' topics queue before ours. */
const CLEANING_TIMEOUT_MS = 150_000;
let end = 0n;

const text = (bytes: Uint8Array | null) => (bytes === null ? null : Buffer.from(bytes).toString("utf8"));
const expected = [...Array.from({ length: KEYS }, (_, i) => `b-${i}`), "b-roll"];

/** The first batch at offset 0 a one-byte fetch answers with: the records kafkajs decodes from it. */
async function firstBatch(kafka: Kafka): Promise<{ offset: string; value: string | null; isControlRecord: boolean }[]> {
  const cluster = clusterFactory(kafka)({ allowAutoTopicCreation: false, isolationLevel: 1 });
  await cluster.connect();
  try {
    await cluster.addTargetTopic(topic);
    const [nodeId] = Object.keys(cluster.findLeaderForPartitions(topic, [0]));
    const broker = await cluster.findBroker({ nodeId: nodeId! });
    const { responses } = await broker.fetch({ isolationLevel: 1, maxWaitTime: 100, minBytes: 1, maxBytes: 1, topics: [{ topic, partitions: [{ partition: 0, fetchOffset: "0", maxBytes: 1 }] }] });
    return responses.flatMap((r) => r.partitions).flatMap((p) => p.messages.map((m) => ({ offset: m.offset, value: text(m.value), isControlRecord: Boolean((m as { isControlRecord?: boolean }).isControlRecord) })));
  } finally {
    await cluster.disconnect();
  }
}

before(async () => {
  const kafka = new Kafka({ brokers, logLevel: 0 });
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({
      waitForLeaders: true,
      topics: [{
        topic, numPartitions: 1, replicationFactor: 1,
        configEntries: [
          { name: "cleanup.policy", value: "compact" },
          { name: "segment.ms", value: "100" },
          { name: "min.cleanable.dirty.ratio", value: "0.01" },
          { name: "min.compaction.lag.ms", value: "0" },
          { name: "delete.retention.ms", value: "100" },
        ],
      }],
    });
    // Producer A writes every key, producer B then writes them all again: A's batch holds only
    // superseded records, and it is A's last, so the cleaner keeps it empty.
    for (const name of ["a", "b"]) {
      const producer = kafka.producer({ transactionalId: `${deployment}.${name}`, idempotent: true, maxInFlightRequests: 1 });
      await producer.connect();
      try {
        const transaction = await producer.transaction();
        await transaction.send({ topic, acks: -1, messages: Array.from({ length: KEYS }, (_, i) => ({ key: `k${i}`, value: `${name}-${i}`, partition: 0 })) });
        await transaction.commit();
        if (name === "b") {
          // A record after segment.ms rolls the segment, so all the above is cleanable.
          await sleep(300);
          const roll = await producer.transaction();
          await roll.send({ topic, acks: -1, messages: [{ key: "roll", value: "b-roll", partition: 0 }] });
          await roll.commit();
        }
      } finally {
        await producer.disconnect();
      }
    }
    end = BigInt((await admin.fetchTopicOffsets(topic))[0]!.high);
    // Cleaned once the first batch no longer holds A's records.
    for (const deadline = Date.now() + CLEANING_TIMEOUT_MS; ; await sleep(500)) {
      const first = await firstBatch(kafka);
      if (!first.some((m) => m.value?.startsWith("a-"))) {
        // A's emptied batch (offsets 0 to KEYS - 1): nothing, or the control record standing for it.
        assert.ok(first.every((m) => m.isControlRecord && m.offset === String(KEYS - 1)), `the first batch is A's emptied batch: ${JSON.stringify(first)}`);
        break;
      }
      if (Date.now() > deadline) throw new Error(`the broker's log cleaner did not clean ${topic} in ${CLEANING_TIMEOUT_MS / 1000} s`);
    }
  } finally {
    await admin.disconnect();
  }
});

after(async () => {
  const admin = new Kafka({ brokers, logLevel: 0 }).admin();
  await admin.connect();
  const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${deployment}.`));
  if (topics.length > 0) await admin.deleteTopics({ topics });
  await admin.disconnect();
});

describe("a compacted topic with a batch the cleaner emptied", { timeout: CLEANING_TIMEOUT_MS + 120_000 }, () => {
  test("the partition reader steps over it and reads the rest", async () => {
    const reader = new PartitionReader({ kafka: createKafkaClient(testKafkaConfig(), logger), brokers, fetchBytes: 1, partitionFetchBytes: 1 });
    try {
      const records = await reader.read(topic, [{ partition: 0, start: 0n, end }]);
      assert.deepEqual(records.map((r) => text(r.value)), expected);
    } finally {
      await reader.close();
    }
  });

  test("a sink's consumer steps over it and reaches the end", async () => {
    const log = await KafkaTopicLog.open({ config: testKafkaConfig(), deployment, logger, access: "read-only", readerLimits: { readAheadBytes: 1, fetchBytes: 1, partitionFetchBytes: 1 } });
    try {
      const consumer = await log.consumer(`${deployment}.sink`, [topic]);
      const read: StoredRecord[] = [];
      try {
        for (const deadline = Date.now() + 60_000; (consumer.position(topic, 0) ?? -1n) < end; ) {
          assert.ok(Date.now() < deadline, `the consumer reached offset ${consumer.position(topic, 0)} of ${end} in 60 s, having read ${JSON.stringify(read.map((r) => text(r.value)))}`);
          read.push(...(await consumer.poll({ maxRecords: 100, maxBytes: 2 ** 20, maxWaitMs: 200 })));
        }
      } finally {
        await consumer.close();
      }
      assert.deepEqual(read.map((r) => text(r.value)), expected);
    } finally {
      await log.close();
    }
  });
});
