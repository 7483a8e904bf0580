/**
 * Reading a compacted topic past a record batch the log cleaner emptied, against the real broker
 * from test/services/. The cleaner keeps the header of a producer's last batch after removing all
 * of its records (the broker keeps that producer's sequence state), so a fetch can answer with a
 * batch of no records; kafkajs decodes it to nothing, and a reader that learns its offsets only
 * from records fetched the same offset again for ever whenever the emptied batch was all a fetch
 * brought whole: at the end of a cleaned segment, or before a batch larger than the fetch's size.
 */
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, test } from "node:test";
import { Kafka } from "kafkajs";
import { createLogger } from "../../runtime/logger.ts";
import type { StoredRecord } from "../topics/contract.ts";
import { createKafkaClient, guardRequestQueue } from "./kafka-client.ts";
import { KafkaTopicLog } from "./kafka-log.ts";
import { clusterFactory, PartitionReader } from "./partition-reader.ts";
import { deleteKafkaDeployment, testDeployment, testKafkaConfig } from "./kafka-test-config.ts";

const logger = createLogger("warn");
const deployment = testDeployment("emptied");
const brokers = testKafkaConfig().brokers;
const KEYS = 5;
const MiB = 2 ** 20;
/** The broker's cleaner looks for work every log.cleaner.backoff.ms (15 s by default) and other tests' topics queue before ours. */
const CLEANING_TIMEOUT_MS = 150_000;

/**
 * `transactional`: producers A and B write in transactions, and one-byte fetches make A's emptied
 * batch a whole fetch. `plain`: idempotent producers, and B's batch (a value of 1.5 MiB) is larger
 * than the 1 MiB fetches, which then bring A's emptied batch and a cut-off piece of B's: the size
 * limit of a sink under a memory budget meets the emptied batch with no setting made for it.
 */
const topics = { transactional: `${deployment}.transactional`, plain: `${deployment}.plain` } as const;
const BIG = "x".repeat(1.5 * MiB);
const ends = new Map<string, bigint>();

const text = (bytes: Uint8Array | null) => (bytes === null ? null : Buffer.from(bytes).toString("utf8"));
const shown = (value: string | null) => (value !== null && value.length > 100 ? `${value.slice(0, 4)}... (${value.length})` : value);
const expected = (topic: string) => [...Array.from({ length: KEYS }, (_, i) => (topic === topics.plain && i === 0 ? shown(`b-0${BIG}`) : `b-${i}`)), "b-roll"];

/** The first batch at offset 0 a one-byte fetch answers with: the records kafkajs decodes from it. */
async function firstBatch(kafka: Kafka, topic: string): Promise<{ offset: string; value: string | null; isControlRecord: boolean }[]> {
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

/** Producer A writes every key, producer B then writes them all again, then a record that rolls the segment: A's batch holds only superseded records, and it is A's last, so the cleaner keeps it empty. */
async function writeAndClean(kafka: Kafka, topic: string): Promise<void> {
  const transactional = topic === topics.transactional;
  for (const name of ["a", "b"]) {
    const producer = kafka.producer(transactional ? { transactionalId: `${topic}.${name}`, idempotent: true, maxInFlightRequests: 1 } : { idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    try {
      const send = async (messages: { key: string; value: string }[]) => {
        const records = { topic, acks: -1, messages: messages.map((m) => ({ ...m, partition: 0 })) };
        if (!transactional) return void (await producer.send(records));
        const transaction = await producer.transaction();
        await transaction.send(records);
        await transaction.commit();
      };
      await send(Array.from({ length: KEYS }, (_, i) => ({ key: `k${i}`, value: `${name}-${i}${name === "b" && !transactional && i === 0 ? BIG : ""}` })));
      if (name === "b") {
        // A record after segment.ms rolls the segment, so all the above is cleanable.
        await sleep(300);
        await send([{ key: "roll", value: "b-roll" }]);
      }
    } finally {
      await producer.disconnect();
    }
  }
  // Cleaned once the first batch no longer holds A's records.
  for (const deadline = Date.now() + CLEANING_TIMEOUT_MS; ; await sleep(500)) {
    const first = await firstBatch(kafka, topic);
    if (!first.some((m) => m.value?.startsWith("a-"))) {
      // A's emptied batch (offsets 0 to KEYS - 1): nothing, or the control record standing for it.
      assert.ok(first.every((m) => m.isControlRecord && m.offset === String(KEYS - 1)), `the first batch of ${topic} is A's emptied batch: ${JSON.stringify(first)}`);
      return;
    }
    if (Date.now() > deadline) throw new Error(`the broker's log cleaner did not clean ${topic} in ${CLEANING_TIMEOUT_MS / 1000} s`);
  }
}

before(async () => {
  guardRequestQueue();
  const kafka = new Kafka({ brokers, logLevel: 0 });
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({
      waitForLeaders: true,
      topics: Object.values(topics).map((topic) => ({
        topic, numPartitions: 1, replicationFactor: 1,
        configEntries: [
          { name: "cleanup.policy", value: "compact" },
          { name: "segment.ms", value: "100" },
          { name: "min.cleanable.dirty.ratio", value: "0.01" },
          { name: "min.compaction.lag.ms", value: "0" },
          { name: "delete.retention.ms", value: "100" },
          { name: "max.message.bytes", value: String(4 * MiB) },
        ],
      })),
    });
    await Promise.all(Object.values(topics).map((topic) => writeAndClean(kafka, topic)));
    for (const topic of Object.values(topics)) ends.set(topic, BigInt((await admin.fetchTopicOffsets(topic))[0]!.high));
  } finally {
    await admin.disconnect();
  }
});

after(() => deleteKafkaDeployment(deployment));

describe("a compacted topic with a batch the cleaner emptied", { timeout: CLEANING_TIMEOUT_MS + 180_000 }, () => {
  for (const [kind, fetchBytes] of [["transactional", 1], ["plain", MiB]] as const) {
    const topic = topics[kind];
    test(`${kind}: the partition reader steps over it and reads the rest (fetches of ${fetchBytes} bytes)`, async () => {
      const reader = new PartitionReader({ kafka: createKafkaClient(testKafkaConfig(), logger), brokers, fetchBytes, partitionFetchBytes: fetchBytes });
      try {
        const records = await reader.read(topic, [{ partition: 0, start: 0n, end: ends.get(topic)! }]);
        assert.deepEqual(records.map((r) => shown(text(r.value))), expected(topic));
      } finally {
        await reader.close();
      }
    });

    test(`${kind}: a sink's consumer steps over it and reaches the end (fetches of ${fetchBytes} bytes)`, async () => {
      const log = await KafkaTopicLog.open({ config: testKafkaConfig(), deployment, logger, access: "read-only", readerLimits: { readAheadBytes: 1, fetchBytes, partitionFetchBytes: fetchBytes } });
      try {
        const consumer = await log.consumer(`${topic}.sink`, [topic]);
        const read: StoredRecord[] = [];
        try {
          for (const deadline = Date.now() + 60_000; (consumer.position(topic, 0) ?? -1n) < ends.get(topic)!; ) {
            assert.ok(Date.now() < deadline, `the consumer reached offset ${consumer.position(topic, 0)} of ${ends.get(topic)} in 60 s, having read ${JSON.stringify(read.map((r) => shown(text(r.value))))}`);
            read.push(...(await consumer.poll({ maxRecords: 100, maxBytes: 4 * MiB, maxWaitMs: 200 })));
          }
        } finally {
          await consumer.close();
        }
        assert.deepEqual(read.map((r) => shown(text(r.value))), expected(topic));
      } finally {
        await log.close();
      }
    });
  }
});
