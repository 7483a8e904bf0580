/**
 * Operator commands beside a running daemon on the real broker: a read-only log has no producer
 * (so the daemon's transactional id is never fenced) and refuses writes; a command that writes uses
 * a transactional id of its own.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { Kafka, logLevel } from "kafkajs";
import { createLogger } from "../../runtime/logger.ts";
import { SluiceError } from "../errors.ts";
import { commandTransactionalId, openTopicLogForCommand } from "../topics/open.ts";
import { KafkaTopicLog } from "./kafka-log.ts";
import { testDeployment, testKafkaConfig } from "./kafka-test-config.ts";

const logger = createLogger("silent");
const config = testKafkaConfig({ transactions: true });
const deployment = testDeployment("cmd");
const topic = `${deployment}.src.public.items`;
const record = (value: string) => ({ topic, key: Buffer.from(value), value: Buffer.from(value), timestamp: Date.now() });
const readOnlyRefusal = (error: unknown) => error instanceof SluiceError && error.code === "TOPIC_LOG_READ_ONLY" && /read-only/.test(error.message);

async function deploymentTopics(name: string): Promise<string[]> {
  const admin = new Kafka({ brokers: config.brokers, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    return (await admin.listTopics()).filter((t) => t.startsWith(`${name}.`)).sort();
  } finally {
    await admin.disconnect();
  }
}

after(async () => {
  const admin = new Kafka({ brokers: config.brokers, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${deployment}.`));
  if (topics.length > 0) await admin.deleteTopics({ topics });
  await admin.disconnect();
});

describe("commands beside a running Kafka deployment", { timeout: 120_000 }, () => {
  test("a read-only log reads, refuses writes and never fences the daemon's producer; a writing command has its own id", async () => {
    const daemon = await KafkaTopicLog.open({ config, deployment, logger });
    try {
      await daemon.createTopic({ name: topic, partitions: 2, retentionMs: null, retentionBytes: null, compacted: false });
      await daemon.produce([record("a")], { source: "src", position: { commit: 10n, change: 10n } });
      await daemon.registryJournal.append({ mutations: [] });

      const readOnly = await openTopicLogForCommand(config, deployment, logger, "read-only");
      try {
        assert.ok((await readOnly.topicNames()).includes(topic));
        assert.equal((await readOnly.readCheckpoint("src"))?.position.commit, 10n);
        assert.equal((await readOnly.registryJournal.loadAll()).length, 1);
        await assert.rejects(readOnly.produce([record("x")]), readOnlyRefusal);
        await assert.rejects(readOnly.registryJournal.append({ mutations: [] }), readOnlyRefusal);
        await assert.rejects(readOnly.createTopic({ name: `${deployment}.other`, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false }), readOnlyRefusal);
        await assert.rejects(readOnly.setCommittedOffsets(`${deployment}.sink.local`, [{ topic, partition: 0, offset: 0n }]), readOnlyRefusal);
      } finally {
        await readOnly.close();
      }
      // Before, the command registered the daemon's transactional id: this produce failed with KAFKA_PRODUCER_FENCED.
      await daemon.produce([record("b")], { source: "src", position: { commit: 20n, change: 20n } });

      const writing = await openTopicLogForCommand(config, deployment, logger, "write");
      try {
        await writing.setCommittedOffsets(`${deployment}.sink.local`, [{ topic, partition: 0, offset: 0n }]);
        await writing.produce([record("c")]);
      } finally {
        await writing.close();
      }
      await daemon.produce([record("d")], { source: "src", position: { commit: 30n, change: 30n } });
      assert.equal((await daemon.readCheckpoint("src"))?.position.commit, 30n);
    } finally {
      await daemon.close();
    }
  });

  test("a read-only command on a deployment that never ran creates no topics", async () => {
    const fresh = testDeployment("cmdfresh");
    const readOnly = await openTopicLogForCommand(config, fresh, logger, "read-only");
    try {
      assert.equal(await readOnly.readCheckpoint("src"), null);
      assert.deepEqual(await readOnly.registryJournal.loadAll(), []);
    } finally {
      await readOnly.close();
    }
    assert.deepEqual(await deploymentTopics(fresh), []);
  });

  test("command transactional ids never equal the daemon's or a sink thread's", () => {
    const ids = new Set([commandTransactionalId("dep", "sluice"), commandTransactionalId("dep", "sluice")]);
    assert.equal(ids.size, 2, "two commands at once get two ids");
    for (const id of ids) {
      assert.notEqual(id, "dep.sluice");
      assert.ok(id.startsWith("dep.sluice.command."), id);
      assert.ok(!id.startsWith("dep.sluice.sink."), id);
    }
  });
});
