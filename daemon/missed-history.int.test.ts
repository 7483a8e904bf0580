/** What a sink is told when it resumes behind what the topics still hold (missed-history.ts), against the real Kafka broker and the embedded log. */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { Kafka } from "kafkajs";
import { EmbeddedTopicLog } from "../connectors/embedded/embedded-log.ts";
import { KafkaTopicLog } from "../connectors/kafka/kafka-log.ts";
import { deleteKafkaDeployment, testDeployment, testKafkaConfig } from "../connectors/kafka/kafka-test-config.ts";
import type { ProducedRecord } from "../connectors/topics/contract.ts";
import { createLogger } from "../runtime/logger.ts";
import { describeSkipped, describeStaleTombstones, staleTombstones } from "./missed-history.ts";

const logger = createLogger("silent");
const dir = mkdtempSync(join(tmpdir(), "sluice-missed-history-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const HOUR = 3_600_000;
const records = (topic: string, now: number): ProducedRecord[] => [
  { topic, key: Buffer.from("a"), value: Buffer.from("old"), timestamp: now - 3 * HOUR },
  { topic, key: Buffer.from("a"), value: null, timestamp: now - 3 * HOUR },
  { topic, key: Buffer.from("b"), value: Buffer.from("new"), timestamp: now },
];

test("Kafka: a sink resuming before records older than the tombstone retention is named; one past them, or on an uncompacted topic, is not", async () => {
  const deployment = testDeployment("stale");
  const log = await KafkaTopicLog.open({ config: testKafkaConfig(), deployment, logger });
  const compacted = `${deployment}.pg.public.items`;
  const plain = `${deployment}.pg.public.events`;
  try {
    await log.createTopic({ name: compacted, partitions: 1, retentionMs: null, retentionBytes: null, compacted: true });
    await log.createTopic({ name: plain, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
    const now = Date.now();
    await log.produce([...records(compacted, now), ...records(plain, now)]);
    const at = (offset: bigint) => [{ topic: compacted, partition: 0, offset }, { topic: plain, partition: 0, offset }];
    const stale = await staleTombstones(log, [compacted, plain], at(0n), HOUR, now);
    assert.equal(stale.length, 1);
    assert.deepEqual([stale[0]!.topic, stale[0]!.partition, stale[0]!.from], [compacted, 0, 0n]);
    assert.ok(stale[0]!.until >= 2n, "the young record comes after the two old ones (and their transaction's marker)");
    assert.match(describeStaleTombstones("warehouse", stale), /sink warehouse: resumes further behind than the topics keep tombstones .*sluice replay --sink warehouse --from-beginning --rebuild --execute/);
    assert.deepEqual(await staleTombstones(log, [compacted, plain], at(stale[0]!.until), HOUR, now), []);
    assert.deepEqual(await staleTombstones(log, [compacted, plain], [], HOUR, now), [], "a new sink reads everything there is");
  } finally {
    await log.close();
    await deleteKafkaDeployment(deployment);
  }
});

test("embedded: never named, tombstones wait for every sink's group", async () => {
  const log = EmbeddedTopicLog.open({ path: join(dir, "log.db"), logger, maintenanceIntervalMs: 0 });
  try {
    await log.createTopic({ name: "t", partitions: 1, retentionMs: null, retentionBytes: null, compacted: true });
    await log.produce(records("t", Date.now()));
    assert.deepEqual(await staleTombstones(log, ["t"], [{ topic: "t", partition: 0, offset: 0n }], HOUR, Date.now()), []);
  } finally {
    await log.close();
  }
});

test("Kafka: a consumer whose position retention deleted (OFFSET_OUT_OF_RANGE) reads on at the first record kept and tells which offsets it skipped", async () => {
  const deployment = testDeployment("skip");
  const config = testKafkaConfig({ transactions: false });
  const log = await KafkaTopicLog.open({ config, deployment, logger });
  const topic = `${deployment}.pg.public.items`;
  const admin = new Kafka({ brokers: config.brokers, logLevel: 0 }).admin();
  await admin.connect();
  try {
    await log.createTopic({ name: topic, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
    await log.produce(Array.from({ length: 6 }, (_, i) => ({ topic, key: Buffer.from(`k${i}`), value: Buffer.from(`v${i}`), timestamp: Date.now() })));
    // What retention does to a partition a sink lags in (kafka-delete-records does the same): offsets 0 to 3 are gone.
    await admin.fetchTopicMetadata({ topics: [topic] });
    await admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: "4" }] });
    const consumer = await log.consumer(`${deployment}.sink.warehouse`, [topic]);
    try {
      await consumer.seek(topic, 0, { kind: "offset", offset: 1n });
      let read: bigint[] = [];
      for (let i = 0; i < 100 && read.length < 2; i++) read = read.concat((await consumer.poll({ maxRecords: 10, maxBytes: 1 << 20, maxWaitMs: 200 })).map((r) => r.offset));
      assert.deepEqual(read, [4n, 5n]);
      const skipped = consumer.takeSkipped?.() ?? [];
      assert.deepEqual(skipped, [{ topic, partition: 0, from: 1n, to: 4n }]);
      assert.deepEqual(consumer.takeSkipped?.(), [], "told once");
      assert.match(describeSkipped("warehouse", skipped), new RegExp(`^sink warehouse: records were deleted by retention before the sink read them \\(${topic.replaceAll(".", "\\.")}:0 offsets 1 to 3\\)`));
    } finally {
      await consumer.close();
    }
  } finally {
    await log.close();
    await admin.disconnect();
    await deleteKafkaDeployment(deployment);
  }
});

test("embedded: a consumer whose position retention deleted tells which offsets it skipped", async () => {
  const log = EmbeddedTopicLog.open({ path: join(dir, "skip.db"), logger, maintenanceIntervalMs: 0 });
  try {
    await log.createTopic({ name: "s", partitions: 1, retentionMs: HOUR, retentionBytes: null, compacted: false });
    for (let i = 0; i < 4; i++) await log.produce([{ topic: "s", key: Buffer.from(`k${i}`), value: Buffer.from("v"), timestamp: Date.now() - 3 * HOUR }]);
    await log.produce([{ topic: "s", key: Buffer.from("k4"), value: Buffer.from("v"), timestamp: Date.now() }]);
    const consumer = await log.consumer("g", ["s"]);
    await consumer.seek("s", 0, { kind: "offset", offset: 1n });
    log.runMaintenance();
    assert.deepEqual((await consumer.poll({ maxRecords: 10, maxBytes: 1 << 20, maxWaitMs: 0 })).map((r) => r.offset), [4n]);
    assert.deepEqual(consumer.takeSkipped?.(), [{ topic: "s", partition: 0, from: 1n, to: 4n }]);
    await consumer.close();
  } finally {
    await log.close();
  }
});
