/**
 * Topic log throughput: produce N records of 1 KiB with durability on (a checkpoint with every
 * batch of 1000), then consume them all, for the embedded log, for Kafka through Sluice (with and
 * without transactions), and for a raw kafkajs producer and consumer with the same settings.
 * Up to `--window` produce calls are outstanding at once (default 4), as a pipelining caller would.
 *
 *   node bench/topics-throughput.ts [--records 1000000] [--quick] [--window 4] [--only embedded,kafka,kafka-at-least-once,raw-kafkajs]
 *
 * Kafka runs against the broker of test/services/ (bash test/services/up).
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Kafka, logLevel, Partitioners } from "kafkajs";
import { EmbeddedTopicLog } from "../connectors/embedded/embedded-log.ts";
import { KafkaTopicLog } from "../connectors/kafka/kafka-log.ts";
import { testDeployment } from "../connectors/kafka/kafka-test-config.ts";
import type { ProducedRecord, TopicLog } from "../connectors/topics/contract.ts";
import { partitionForKey } from "../connectors/topics/partitioner.ts";
import { createLogger } from "../runtime/logger.ts";
import { kafka as kafkaService } from "../test/services/ports.ts";

const { values } = parseArgs({
  options: {
    records: { type: "string" },
    quick: { type: "boolean" },
    only: { type: "string" },
    partitions: { type: "string", default: "4" },
    window: { type: "string", default: "4" },
  },
});
const RECORDS = Number(values.records ?? (values.quick ? 100_000 : 1_000_000));
const PARTITIONS = Number(values.partitions);
const WINDOW = Number(values.window);
const BATCH = 1000;
const VALUE_BYTES = 1024;
const only = values.only?.split(",");
const logger = createLogger("warn");

interface Result {
  readonly name: string;
  readonly produceSeconds: number;
  readonly consumeSeconds: number;
}

/** Runs `send(start)` for every batch start, keeping up to WINDOW calls outstanding, in order. */
async function produceAll(send: (start: number, batch: number) => Promise<unknown>): Promise<number> {
  const started = performance.now();
  const outstanding: Promise<unknown>[] = [];
  for (let start = 0, batch = 0; start < RECORDS; start += BATCH, batch++) {
    outstanding.push(send(start, batch));
    if (outstanding.length >= WINDOW) await outstanding.shift();
  }
  await Promise.all(outstanding);
  return (performance.now() - started) / 1000;
}

const value = randomBytes(VALUE_BYTES);
const keys = Array.from({ length: 10_000 }, (_, i) => Buffer.from(`key-${i}`));

function batchAt(topic: string, start: number): ProducedRecord[] {
  const now = Date.now();
  return Array.from({ length: Math.min(BATCH, RECORDS - start) }, (_, i) => ({ topic, key: keys[(start + i) % keys.length]!, value, timestamp: now }));
}

/** Through the TopicLog contract: produce with a checkpoint per batch, then read everything back. */
async function throughLog(name: string, log: TopicLog, topic: string): Promise<Result> {
  await log.createTopic({ name: topic, partitions: PARTITIONS, retentionMs: null, retentionBytes: null, compacted: false });
  const produceSeconds = await produceAll((start, batch) => log.produce(batchAt(topic, start), { source: "bench", position: { commit: BigInt(batch), change: BigInt(batch) } }));
  const consumer = await log.consumer(`bench.${randomBytes(4).toString("hex")}`, [topic]);
  const started = performance.now();
  let consumed = 0;
  while (consumed < RECORDS) consumed += (await consumer.poll({ maxRecords: 5000, maxBytes: 8 * 2 ** 20, maxWaitMs: 1000 })).length;
  const consumeSeconds = (performance.now() - started) / 1000;
  await consumer.close();
  await log.deleteTopic(topic);
  await log.close();
  return { name, produceSeconds, consumeSeconds };
}

async function embedded(): Promise<Result> {
  const dir = mkdtempSync(join("/var/tmp", "sluice-bench-"));
  try {
    const log = EmbeddedTopicLog.open({ path: join(dir, "sluice.db"), logger });
    return await throughLog("embedded (SQLite WAL, synchronous=FULL)", log, "bench.embedded");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function kafkaConfig(transactions: boolean) {
  return {
    kind: "kafka" as const,
    brokers: [...kafkaService.brokers],
    client_id: "sluice-bench",
    partitions: PARTITIONS,
    replication_factor: 1,
    compression: "none" as const,
    linger: 5,
    batch_bytes: 2 ** 20,
    max_in_flight: 5,
    transactions,
    retention: { cleanup_policy: "compact" as const, max_age: 0, tombstones: 86_400_000, min_compaction_lag: 0 },
    max_record_bytes: 16 * 2 ** 20,
  };
}

async function sluiceKafka(transactions: boolean): Promise<Result> {
  const deployment = testDeployment("bench");
  const log = await KafkaTopicLog.open({ config: kafkaConfig(transactions), deployment, logger });
  const name = transactions ? "kafka via Sluice (acks=all, idempotent, transactions: exactly-once)" : "kafka via Sluice (acks=all, idempotent, no transactions: at-least-once)";
  const result = await throughLog(name, log, `${deployment}.bench`);
  await dropTopics(deployment);
  return result;
}

/** The same work with kafkajs alone: idempotent producer, acks=all, same batches, eachBatch consumer. */
async function rawKafkajs(): Promise<Result> {
  const kafka = new Kafka({ clientId: "raw-bench", brokers: [...kafkaService.brokers], logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  const topic = `rawbench.${randomBytes(4).toString("hex")}`;
  await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: PARTITIONS, replicationFactor: 1 }] });
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 5, createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const produceSeconds = await produceAll((start) => {
    const messages = batchAt(topic, start).map((r) => ({ key: r.key as Buffer, value: r.value as Buffer, timestamp: String(r.timestamp), partition: partitionForKey(r.key, PARTITIONS) }));
    return producer.sendBatch({ acks: -1, topicMessages: [{ topic, messages }] });
  });
  const consumer = kafka.consumer({ groupId: `rawbench.${randomBytes(4).toString("hex")}`, maxBytes: 8 * 2 ** 20 });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  let consumed = 0;
  let done!: () => void;
  const allConsumed = new Promise<void>((resolve) => (done = resolve));
  const started = performance.now();
  await consumer.run({
    eachBatch: async ({ batch }) => {
      consumed += batch.messages.length;
      if (consumed >= RECORDS) done();
    },
  });
  await allConsumed;
  const consumeSeconds = (performance.now() - started) / 1000;
  await consumer.disconnect();
  await producer.disconnect();
  await admin.deleteTopics({ topics: [topic] });
  await admin.disconnect();
  return { name: "raw kafkajs (acks=all, idempotent, sendBatch of 1000)", produceSeconds, consumeSeconds };
}

async function dropTopics(deployment: string): Promise<void> {
  const admin = new Kafka({ brokers: [...kafkaService.brokers], logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${deployment}.`));
  if (topics.length > 0) await admin.deleteTopics({ topics });
  await admin.disconnect();
}

const runs: [string, () => Promise<Result>][] = [
  ["embedded", embedded],
  ["kafka", () => sluiceKafka(true)],
  ["kafka-at-least-once", () => sluiceKafka(false)],
  ["raw-kafkajs", rawKafkajs],
];

const rate = (seconds: number) => `${Math.round(RECORDS / seconds).toLocaleString("en")} records/s, ${((RECORDS * VALUE_BYTES) / seconds / 1e6).toFixed(1)} MB/s`;
console.log(`${RECORDS.toLocaleString("en")} records of ${VALUE_BYTES} B values, ${PARTITIONS} partitions, batches of ${BATCH} (a checkpoint with each), up to ${WINDOW} produce calls outstanding; node ${process.version}`);
console.log("MB/s counts values only. produce = until every record is acknowledged durable; consume = reading them all back; both = N / (produce + consume time).\n");
for (const [key, run] of runs) {
  if (only && !only.includes(key)) continue;
  const result = await run();
  console.log(`${result.name}\n  produce: ${rate(result.produceSeconds)} (${result.produceSeconds.toFixed(2)} s)\n  consume: ${rate(result.consumeSeconds)} (${result.consumeSeconds.toFixed(2)} s)\n  both:    ${rate(result.produceSeconds + result.consumeSeconds)}`);
}
