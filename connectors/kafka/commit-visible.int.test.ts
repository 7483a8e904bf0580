/**
 * A write with transactions is durable when read_committed readers see it, not when Kafka acknowledges the commit
 * (BatchingProducerOptions.untilVisible), on the real broker. CI's test/e2e/kafka-outage.int failed because a single
 * Kafka 4.3 broker acknowledged a commit during its controlled shutdown and then completed the transaction without
 * writing its commit markers: the records stayed in an open (hanging) transaction, capture had acknowledged
 * PostgreSQL up to their checkpoint, and the restart read the checkpoint before it (PG_SLOT_UNUSABLE). That broker
 * state cannot be made on demand; its effect can: another producer's transaction left open in the checkpoint topic
 * holds the last stable offset, so the checkpoint committed after it is invisible to readers just the same.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { Kafka, logLevel } from "kafkajs";
import { createLogger } from "../../runtime/logger.ts";
import { checkpointTopic } from "../topics/names.ts";
import { KafkaTopicLog } from "./kafka-log.ts";
import { deleteKafkaDeployment, testDeployment, testKafkaConfig } from "./kafka-test-config.ts";

const logger = createLogger("silent");
const config = testKafkaConfig({ transactions: true });
const deployment = testDeployment("visible");
const topic = `${deployment}.src.public.items`;
const record = (value: string) => ({ topic, key: Buffer.from(value), value: Buffer.from(value), timestamp: Date.now() });
const at = (commit: bigint) => ({ source: "src", position: { commit, change: commit } });

after(() => deleteKafkaDeployment(deployment));

test("a committed checkpoint readers cannot see is not reported durable: the write fails, and nothing is acknowledged beyond what a restart reads", { timeout: 120_000 }, async () => {
  // 2 s instead of the 10 s default: the open transaction holds the commit back for good, so any wait shows the same.
  const open = () => KafkaTopicLog.open({ config, deployment, logger, access: "command", transactionalId: `${deployment}.capture`, visibleWithinMs: 2_000 });
  const log = await open();
  const other = new Kafka({ clientId: "sluice-test-open-transaction", brokers: config.brokers, logLevel: logLevel.NOTHING }).producer({ transactionalId: `${deployment}.other`, maxInFlightRequests: 1, idempotent: true });
  let left: Awaited<ReturnType<typeof other.transaction>> | null = null;
  try {
    await log.createTopic({ name: topic, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
    await log.claimWriter();
    await log.produce([record("a")], at(10n));
    assert.equal((await log.readCheckpoint("src"))?.position.commit, 10n);

    // A transaction left open in the checkpoint topic: nothing after it is visible to read_committed readers until it ends.
    await other.connect();
    left = await other.transaction();
    const [opened] = await left.send({ topic: checkpointTopic(deployment), messages: [{ key: "another writer", value: "open" }] });
    const openedAt = opened?.baseOffset ?? "";

    // Kafka commits this write, but no reader sees it: it must not count as durable (capture would acknowledge its source).
    // The error names the partition held back, where it is stuck (the open transaction's first offset) and how to abort that.
    await assert.rejects(log.produce([record("b")], at(20n)), (error: unknown) => {
      const { code, retriable, message } = error as { code?: string; retriable?: boolean; message: string };
      return code === "KAFKA_COMMIT_NOT_VISIBLE" && retriable === true &&
        message.includes(`${checkpointTopic(deployment)} partition 0 (record at offset `) &&
        message.includes(`last stable offset stuck at ${openedAt})`) &&
        message.includes(`abort --topic ${checkpointTopic(deployment)} --partition 0 --start-offset ${openedAt}`);
    });

    // What a restart reads meanwhile: the checkpoint before it.
    const restarted = await open();
    try {
      await restarted.claimWriter();
      assert.equal((await restarted.readCheckpoint("src"))?.position.commit, 10n);
    } finally {
      await restarted.close();
    }
  } finally {
    await left?.abort().catch(() => undefined);
    await other.disconnect().catch(() => undefined);
    await log.close().catch(() => undefined);
  }
});

test("a write committed while the log closes is durable once seen, not refused because the log is closing", { timeout: 60_000 }, async () => {
  const log = await KafkaTopicLog.open({ config, deployment, logger, access: "command", transactionalId: `${deployment}.closing` });
  await log.createTopic({ name: topic, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
  await log.claimWriter();
  // Handed over, then the log closes at once: close() flushes the producer, which commits this write during the close.
  const written = log.produce([record("c")], { source: "closing", position: { commit: 30n, change: 30n } });
  const closed = log.close();
  await written;
  await closed;
  const reopened = await KafkaTopicLog.open({ config, deployment, logger, access: "command", transactionalId: `${deployment}.closing` });
  try {
    await reopened.claimWriter();
    assert.equal((await reopened.readCheckpoint("closing"))?.position.commit, 30n);
  } finally {
    await reopened.close();
  }
});
