/**
 * Capture writes each batch in a Kafka transaction: its commit marker takes the offset after the
 * last record, so a partition's end is the last record + 2. A sink that applied the records and
 * then idles must still store the offset past the marker, or its lag (sluice status, the lag
 * metric, the e2e tests' wait for lag 0) stays at 1 until the next change. Real Kafka from
 * test/services, unique names.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { Kafka, logLevel } from "kafkajs";
import type { Sink, SinkChange, SinkWriteResult } from "../connectors/contracts.ts";
import { testDeployment, testKafkaConfig } from "../connectors/kafka/kafka-test-config.ts";
import { KafkaTopicLog } from "../connectors/kafka/kafka-log.ts";
import { createLogger } from "../runtime/logger.ts";
import { SinkRunner } from "./sink-runner.ts";
import { event, jsonRecord, kafkaRunnerDefaults, MemoryTransactionalSink } from "./sink-runner-test-support.ts";

const logger = createLogger("warn");
const deployment = testDeployment("markers");
const ROWS = 5;

after(async () => {
  const admin = new Kafka({ brokers: testKafkaConfig().brokers, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${deployment}.`));
  if (topics.length > 0) await admin.deleteTopics({ topics }).catch(() => undefined);
  const groups = (await admin.listGroups()).groups.map((g) => g.groupId).filter((g) => g.startsWith(`${deployment}.`));
  if (groups.length > 0) await admin.deleteGroups(groups).catch(() => undefined);
  await admin.disconnect();
});

class PlainSink implements Sink {
  readonly name = "plain";
  readonly rows = new Set<number>();
  async open(): Promise<void> {}
  async close(): Promise<void> {}
  async write(changes: readonly SinkChange[]): Promise<SinkWriteResult> {
    for (const { event: e } of changes) this.rows.add(Number(e.key["id"]));
    return { failures: [] };
  }
}

function runner(log: KafkaTopicLog, sink: Sink, group: string, topic: string): SinkRunner {
  return new SinkRunner({ ...kafkaRunnerDefaults, sink, log, group, topics: async () => [topic], deadLetterTopic: `${deployment}.dlq`, logger });
}

async function produceTransaction(log: KafkaTopicLog, topic: string): Promise<void> {
  await log.produce(Array.from({ length: ROWS }, (_, i) => jsonRecord(topic, event("items", i + 1))));
}

/** Polls the group's lag until it is 0 or a generous bound passes (lag 1 for good was the defect), and returns the last one read. */
async function lagSettles(log: KafkaTopicLog, group: string, topic: string, running: () => unknown): Promise<bigint> {
  let lag = -1n;
  for (let i = 0; i < 150 && running() === null; i++) {
    lag = (await log.groupLag(group, [topic])).reduce((sum, p) => sum + p.lag, 0n);
    if (lag === 0n) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.equal(running(), null, `the sink stopped: ${String(running())}`);
  return lag;
}

test("a sink that applied a transaction's records fetched before its commit marker stores the offset past the marker once idle: lag 0", { timeout: 120_000 }, async () => {
  const topic = `${deployment}.pg.public.items`;
  const group = `${deployment}.sink.plain`;
  // Fetches of one byte bring one record batch each: the records, then (a fetch later) the commit marker alone.
  const log = await KafkaTopicLog.open({ config: testKafkaConfig(), deployment, logger, readerLimits: { readAheadBytes: 1 << 20, fetchBytes: 1, partitionFetchBytes: 1 } });
  const stop = new AbortController();
  let failure: unknown = null;
  let running: Promise<unknown> | undefined;
  try {
    await log.createTopic({ name: topic, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
    const sink = new PlainSink();
    const sinkRunner = runner(log, sink, group, topic);
    running = sinkRunner.run(stop.signal).catch((error: unknown) => (failure = error));
    // Written while the sink waits at the partition's end, so the records are handed over as soon as they are fetched, before the marker is.
    for (let i = 0; i < 600 && !sinkRunner.ready() && failure === null; i++) await new Promise((resolve) => setTimeout(resolve, 100));
    await new Promise((resolve) => setTimeout(resolve, 500));
    await produceTransaction(log, topic);
    const [end] = await log.endOffsets(topic);
    assert.equal(end!.offset, BigInt(ROWS) + 1n, "the records, then the commit marker");
    for (let i = 0; i < 600 && sink.rows.size < ROWS && failure === null; i++) await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(sink.rows.size, ROWS, "every row applied");
    assert.equal(await lagSettles(log, group, topic, () => failure), 0n, "the group's offset reaches the partition's end, past the commit marker");
  } finally {
    stop.abort(new Error("stop"));
    await running;
    await log.close();
  }
});

test("a sink restarted at the offset of a transaction's commit marker (its target's offset) stores the offset past it: lag 0", { timeout: 120_000 }, async () => {
  const topic = `${deployment}.pg.public.kept`;
  const group = `${deployment}.sink.kept`;
  const log = await KafkaTopicLog.open({ config: testKafkaConfig(), deployment, logger });
  const stop = new AbortController();
  let failure: unknown = null;
  let running: Promise<unknown> | undefined;
  try {
    await log.createTopic({ name: topic, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
    await produceTransaction(log, topic);
    const [end] = await log.endOffsets(topic);
    // The target applied every record before the restart and keeps the offset after the last one: the marker's.
    const sink = new MemoryTransactionalSink("kept", [{ topic, partition: 0, offset: end!.offset - 1n }]);
    running = runner(log, sink, group, topic).run(stop.signal).catch((error: unknown) => (failure = error));
    assert.equal(await lagSettles(log, group, topic, () => failure), 0n, "the group's offset reaches the partition's end, past the commit marker");
    assert.deepEqual(sink.offsets.map((o) => o.offset), [end!.offset], "and so does the target's");
    assert.equal(sink.rows.size, 0, "nothing applied again");
  } finally {
    stop.abort(new Error("stop"));
    await running;
    await log.close();
  }
});
