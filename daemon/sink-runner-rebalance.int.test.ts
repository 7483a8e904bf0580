/**
 * A sink whose consumer group has another member (a second sink instance, or the member of a
 * process killed with -9 that the group keeps until its session times out) gets only some of the
 * partitions: seeking one it was not given answers PARTITION_NOT_ASSIGNED. That must not stop the
 * sink (it did in 5 of 74 restarts after kill -9): it reads what it was given and, once the other
 * member leaves, everything (issue 12, item 4). Real Kafka from test/services, unique names.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { Kafka, logLevel } from "kafkajs";
import { testDeployment, testKafkaConfig } from "../connectors/kafka/kafka-test-config.ts";
import { KafkaTopicLog } from "../connectors/kafka/kafka-log.ts";
import { createLogger } from "../runtime/logger.ts";
import { SinkRunner } from "./sink-runner.ts";
import { event, jsonRecord, kafkaRunnerDefaults, MemoryTransactionalSink } from "./sink-runner-test-support.ts";

const logger = createLogger("warn");
const deployment = testDeployment("rebalance");
const topic = `${deployment}.pg.public.items`;
const group = `${deployment}.sink.mem`;
const ROWS = 40;

after(async () => {
  const admin = new Kafka({ brokers: testKafkaConfig().brokers, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${deployment}.`));
  if (topics.length > 0) await admin.deleteTopics({ topics }).catch(() => undefined);
  await admin.deleteGroups([group]).catch(() => undefined);
  await admin.disconnect();
});

test("a partition held by another member of the group (PARTITION_NOT_ASSIGNED on seek) does not stop the sink; it reads everything once the member leaves", { timeout: 180_000 }, async () => {
  const config = testKafkaConfig({ partitions: 2 });
  const log = await KafkaTopicLog.open({ config, deployment, logger });
  const kafka = new Kafka({ brokers: config.brokers, logLevel: logLevel.NOTHING });
  // Its fetches wait at most 200 ms (kafkajs's default is 5 s): it rejoins a rebalance, and leaves, after its fetch in flight.
  const other = kafka.consumer({ groupId: group, sessionTimeout: 10_000, heartbeatInterval: 1_000, maxWaitTimeInMs: 200 });
  try {
    await log.createTopic({ name: topic, partitions: 2, retentionMs: null, retentionBytes: null, compacted: false });
    await log.produce(Array.from({ length: ROWS }, (_, i) => jsonRecord(topic, event("items", i + 1))));
    const ends = await log.endOffsets(topic);
    assert.ok(ends.every((e) => e.offset > 0n), "both partitions have records");

    // The other member joins first and holds its partitions without consuming them.
    const joined = new Promise<void>((resolve) => other.on(other.events.GROUP_JOIN, () => resolve()));
    await other.connect();
    await other.subscribe({ topics: [topic], fromBeginning: true });
    await other.run({ autoCommit: false, eachBatchAutoResolve: false, eachBatch: async ({ pause }) => void pause() });
    await joined;

    // Offsets stored for both partitions, so the runner seeks both.
    const sink = new MemoryTransactionalSink("mem", [0, 1].map((partition) => ({ topic, partition, offset: 0n })));
    const runner = new SinkRunner({ ...kafkaRunnerDefaults, sink, log, group, topics: async () => [topic], deadLetterTopic: `${deployment}.dlq.mem`, logger });
    const stop = new AbortController();
    let failure: unknown = null;
    const running = runner.run(stop.signal).catch((error: unknown) => (failure = error));
    const waitUntil = async (what: string, done: () => boolean, timeoutMs: number) => {
      const deadline = Date.now() + timeoutMs;
      while (!done() && failure === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      assert.equal(failure, null, `the sink stopped while waiting for ${what}: ${String(failure)}`);
      assert.ok(done(), `timed out waiting for ${what} (rows ${sink.rows.size})`);
    };
    // Sharing the group, the sink gets one partition and reads it.
    await waitUntil("the rows of the sink's own partition", () => sink.rows.size > 0 && runner.ready(), 60_000);
    assert.ok(sink.rows.size < ROWS, "the other member still holds a partition");
    await other.disconnect();
    await waitUntil("every row once the other member left", () => sink.rows.size === ROWS, 90_000);
    stop.abort(new Error("stop"));
    await running;
    assert.equal(failure, null);
  } finally {
    await other.disconnect().catch(() => undefined);
    await log.close();
  }
});
