/** What a sink is told when it resumes behind what the topics still hold (missed-history.ts), against the real Kafka broker and the embedded log. */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { EmbeddedTopicLog } from "../connectors/embedded/embedded-log.ts";
import { KafkaTopicLog } from "../connectors/kafka/kafka-log.ts";
import { testDeployment, testKafkaConfig } from "../connectors/kafka/kafka-test-config.ts";
import type { ProducedRecord } from "../connectors/topics/contract.ts";
import { createLogger } from "../runtime/logger.ts";
import { describeStaleTombstones, staleTombstones } from "./missed-history.ts";

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
    await log.deleteTopic(compacted).catch(() => undefined);
    await log.deleteTopic(plain).catch(() => undefined);
    await log.close();
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
