/**
 * A new capture term fences whoever wrote under the capture's transactional id since this process
 * registered it (issue 17 item 3), on the real broker: process A led, B took over (fencing A), B
 * froze, A leads again. A's term registers the id anew before it reads the checkpoint, so B, waking
 * up before it learns it lost the lease, cannot commit anything. Before, A's term only connected a
 * producer when it had none: it kept its stale one, and B's next commit went through after A had
 * read the checkpoint (both published; the changes in between twice).
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { Kafka, logLevel } from "kafkajs";
import { createLogger } from "../../runtime/logger.ts";
import { SluiceError } from "../errors.ts";
import { KafkaTopicLog } from "./kafka-log.ts";
import { testDeployment, testKafkaConfig } from "./kafka-test-config.ts";

const logger = createLogger("silent");
const config = testKafkaConfig({ transactions: true });
const deployment = testDeployment("terms");
const topic = `${deployment}.src.public.items`;
const record = (value: string) => ({ topic, key: Buffer.from(value), value: Buffer.from(value), timestamp: Date.now() });
const at = (commit: bigint) => ({ source: "src", position: { commit, change: commit } });
const fenced = (error: unknown) => error instanceof SluiceError && error.code === "KAFKA_PRODUCER_FENCED";

after(async () => {
  const admin = new Kafka({ brokers: config.brokers, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${deployment}.`));
  if (topics.length > 0) await admin.deleteTopics({ topics });
  await admin.disconnect();
});

test("a new term fences the leader in between before reading the checkpoint: the woken former leader commits nothing", { timeout: 120_000 }, async () => {
  // Two capture processes of one deployment: one transactional id, the producer connected at the first write (as the daemon opens it).
  const open = () => KafkaTopicLog.open({ config, deployment, logger, access: "command", transactionalId: `${deployment}.capture` });
  const a = await open();
  const b = await open();
  try {
    await a.createTopic({ name: topic, partitions: 2, retentionMs: null, retentionBytes: null, compacted: false });
    await a.claimWriter();
    await a.produce([record("a1")], at(10n));

    // B's term: it fences A and goes on from A's checkpoint.
    await b.claimWriter();
    assert.equal((await b.readCheckpoint("src"))?.position.commit, 10n);
    await b.produce([record("b1")], at(20n));

    // B freezes; A leads again and reads where B left off.
    await a.claimWriter();
    assert.equal((await a.readCheckpoint("src"))?.position.commit, 20n);
    // B wakes up and publishes what it had read: refused.
    await assert.rejects(b.produce([record("b2")], at(30n)), fenced);
    await a.produce([record("a2")], at(30n));
    assert.equal((await a.readCheckpoint("src"))?.position.commit, 30n);
  } finally {
    await b.close().catch(() => undefined);
    await a.close();
  }
});

test("a fenced former leader does not register the transactional id again by reading the checkpoint: the leader's writes go on", { timeout: 120_000 }, async () => {
  // test/e2e/capture-standby.int: the frozen leader woke up, its write was fenced, and its capture (interrupted by its replication
  // connection, which the new leader had ended) read the checkpoint again to reconnect. That read connected a new producer,
  // registering the id anew: it fenced the new leader, which stood by, and the former one led again.
  const open = () => KafkaTopicLog.open({ config, deployment, logger, access: "command", transactionalId: `${deployment}.capture-woken` });
  const a = await open();
  const b = await open();
  try {
    await a.createTopic({ name: `${topic}-woken`, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
    const written = (value: string) => ({ ...record(value), topic: `${topic}-woken` });
    await a.claimWriter();
    await a.produce([written("a1")], at(10n));

    // A freezes; B's term fences it.
    await b.claimWriter();
    assert.equal((await b.readCheckpoint("src"))?.position.commit, 10n);
    await b.produce([written("b1")], at(20n));

    // A wakes up: its write is refused, and so is every later use of the id until it claims a term of its own.
    await assert.rejects(a.produce([written("a2")], at(30n)), fenced);
    await assert.rejects(a.readCheckpoint("src"), fenced);
    await assert.rejects(a.produce([written("a3")], at(30n)), fenced);
    // The leader was not fenced by any of it.
    await b.produce([written("b2")], at(30n));
    assert.equal((await b.readCheckpoint("src"))?.position.commit, 30n);

    // A term of A's own (the lease granted to it again) registers the id anew and writes.
    await a.claimWriter();
    assert.equal((await a.readCheckpoint("src"))?.position.commit, 30n);
    await a.produce([written("a4")], at(40n));
    await assert.rejects(b.produce([written("b3")], at(50n)), fenced);
  } finally {
    await b.close().catch(() => undefined);
    await a.close().catch(() => undefined);
  }
});

test("a producer whose id no term claims (a sink process's own) connects again after a fence: its own aborted transaction does not stop it for good", { timeout: 120_000 }, async () => {
  // The broker aborts a transaction left open past its timeout (a broker down for a minute mid-transaction) and fences the
  // producer's epoch: for an id only this process uses, the next write registers it again, as an outage is waited out.
  // Here a second log with the same id fences the first the same way.
  const open = () => KafkaTopicLog.open({ config, deployment, logger, access: "command", transactionalId: `${deployment}.instance-own` });
  const c = await open();
  const d = await open();
  try {
    await c.createTopic({ name: `${topic}-own`, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
    const written = (value: string) => ({ ...record(value), topic: `${topic}-own` });
    await c.produce([written("c1")], at(10n));
    await d.produce([written("d1")], at(20n));
    await assert.rejects(c.produce([written("c2")], at(30n)), fenced);
    // As capture does after a failed write: the checkpoint read again (registering the id anew), then the next write.
    assert.equal((await c.readCheckpoint("src"))?.position.commit, 20n);
    await c.produce([written("c3")], at(40n));
    assert.equal((await c.readCheckpoint("src"))?.position.commit, 40n);
  } finally {
    await d.close().catch(() => undefined);
    await c.close().catch(() => undefined);
  }
});
