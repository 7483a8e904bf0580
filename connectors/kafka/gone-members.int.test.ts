/**
 * A sink process restarted after kill -9 gets its group's partitions without waiting for its killed
 * predecessor's session to time out: the predecessor's member (its client id names a process of
 * this machine that no longer runs) is removed from the group before the new consumer joins. So is
 * the member of this process's own consumer that failed while Kafka was gone (it could not leave),
 * and only its own: another process's member in the group stays. A consumer whose first join
 * fails is not handed out to wait for partitions that never come.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { after, test } from "node:test";
import { Kafka, logLevel } from "kafkajs";
import { createLogger } from "../../runtime/logger.ts";
import { SluiceError } from "../errors.ts";
import type { TopicConsumer } from "../topics/contract.ts";
import { cuttableSockets, DESCRIBE_GROUPS, JOIN_GROUP } from "./cuttable-sockets.ts";
import { KafkaTopicLog } from "./kafka-log.ts";
import { testDeployment, testKafkaConfig } from "./kafka-test-config.ts";

const deployment = testDeployment("gone");
const topic = `${deployment}.items`;
const group = `${deployment}.sink.warehouse`;
const sharedGroup = `${deployment}.sink.shared`;

after(async () => {
  const admin = new Kafka({ brokers: testKafkaConfig().brokers, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${deployment}.`));
  if (topics.length > 0) await admin.deleteTopics({ topics }).catch(() => undefined);
  await admin.deleteGroups([group, sharedGroup]).catch(() => undefined);
  await admin.disconnect();
});

test("a consumer restarted after kill -9 removes its killed predecessor's member from the group and gets its partitions", { timeout: 180_000 }, async () => {
  const lines: string[] = [];
  const log = await KafkaTopicLog.open({ config: testKafkaConfig(), deployment, logger: createLogger("info", { write: (line: string) => void lines.push(line) }) });
  try {
    await log.createTopic({ name: topic, partitions: 2, retentionMs: null, retentionBytes: null, compacted: false });
    // The killed process's member has a 5 min session: without its removal the new consumer would get nothing for that long.
    const script = `
      const { KafkaTopicLog } = await import(${JSON.stringify(new URL("./kafka-log.ts", import.meta.url).href)});
      const { testKafkaConfig } = await import(${JSON.stringify(new URL("./kafka-test-config.ts", import.meta.url).href)});
      const { createLogger } = await import(${JSON.stringify(new URL("../../runtime/logger.ts", import.meta.url).href)});
      const log = await KafkaTopicLog.open({ config: testKafkaConfig(), deployment: ${JSON.stringify(deployment)}, logger: createLogger("warn") });
      const consumer = await log.consumer(${JSON.stringify(group)}, [${JSON.stringify(topic)}]);
      await consumer.seek(${JSON.stringify(topic)}, 0, { kind: "earliest" });
      console.log("assigned " + consumer.assignment().length);
      setInterval(() => undefined, 1_000);
    `;
    const admin = new Kafka({ brokers: testKafkaConfig().brokers, logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    const members = async () => ((await admin.describeGroups([group])).groups[0]?.members ?? []).map((m) => m.memberId);
    const killed = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, SLUICE_KAFKA_SESSION_MS: "300000" } });
    const exited = once(killed, "exit");
    try {
      const [line] = (await once(killed.stdout, "data")) as [Buffer];
      assert.equal(line.toString().trim(), "assigned 2");
    } finally {
      killed.kill("SIGKILL");
      await exited;
    }
    const predecessor = await members();
    assert.equal(predecessor.length, 1);
    const consumer = await log.consumer(group, [topic]);
    try {
      // Removed before the new member joined (else the coordinator waits for it to rejoin up to its rebalance timeout, 60 s).
      const removed = lines.map((line) => JSON.parse(line) as { msg: string; members?: string[] }).find((entry) => entry.msg.startsWith("removed the group members of processes on this machine that are gone"));
      assert.deepEqual(removed?.members, predecessor);
      assert.ok(!(await members()).includes(predecessor[0]!));
      // seek waits for the group to assign this member partitions (at most 60 s, KAFKA_GROUP_JOIN_TIMEOUT).
      await consumer.seek(topic, 0, { kind: "earliest" });
      assert.equal(consumer.assignment().length, 2);
    } finally {
      await consumer.close();
      await admin.disconnect();
    }
  } finally {
    await log.close();
  }
});

/** Polls until the consumer reports its failure. */
async function untilFailed(consumer: TopicConsumer): Promise<SluiceError> {
  for (;;) {
    try {
      await consumer.poll({ maxRecords: 100, maxBytes: 2 ** 20, maxWaitMs: 200 });
    } catch (error) {
      assert.ok(error instanceof SluiceError);
      return error;
    }
  }
}

test("a consumer whose group member failed with Kafka gone is opened again without waiting for that member's session, also when a look at the group fails; a peer process's member stays", { timeout: 180_000 }, async () => {
  const lines: string[] = [];
  const logger = createLogger("info", { write: (line: string) => void lines.push(line) });
  const sockets = cuttableSockets();
  const log = await KafkaTopicLog.open({ config: testKafkaConfig(), deployment, logger, access: "command", socketFactory: sockets.factory });
  // Another process running the same sink (scale-out): its connections are not cut.
  const peerLog = await KafkaTopicLog.open({ config: testKafkaConfig(), deployment, logger: createLogger("warn"), access: "command" });
  const admin = new Kafka({ brokers: testKafkaConfig().brokers, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  const members = async () => ((await admin.describeGroups([sharedGroup])).groups[0]?.members ?? []).map((m) => m.memberId);
  // A 1 min session: the failed member would stay in the group that long, and the next join would wait for it as long.
  const session = process.env["SLUICE_KAFKA_SESSION_MS"];
  process.env["SLUICE_KAFKA_SESSION_MS"] = "60000";
  const consumers: TopicConsumer[] = [];
  try {
    await log.createTopic({ name: `${topic}.shared`, partitions: 2, retentionMs: null, retentionBytes: null, compacted: false });
    const peer = await peerLog.consumer(sharedGroup, [`${topic}.shared`]);
    consumers.push(peer);
    const failing = await log.consumer(sharedGroup, [`${topic}.shared`]);
    consumers.push(failing);
    const former = failing.groupMembersSeen!().own.at(-1)!;
    assert.ok((await members()).includes(former));
    sockets.cut(true);
    assert.equal((await untilFailed(failing)).retriable, true);
    await failing.close();
    sockets.cut(false);
    // Its leave failed with the connections cut: the coordinator still has it.
    assert.ok((await members()).includes(former));
    // The first look at the group fails, as while a restarted broker's coordinator loads the group: looked at again.
    sockets.cutAtRequest(DESCRIBE_GROUPS);
    const again = await log.consumer(sharedGroup, [`${topic}.shared`]);
    consumers.push(again);
    const removed = lines.map((line) => JSON.parse(line) as { msg: string; members?: string[] }).find((entry) => entry.msg.startsWith("removed the group members"));
    assert.deepEqual(removed?.members, [former]);
    const now = await members();
    assert.ok(!now.includes(former));
    assert.ok(now.includes(peer.groupMembersSeen!().own.at(-1)!), "the peer's member stays");
    assert.equal(now.length, 2);
  } finally {
    if (session === undefined) delete process.env["SLUICE_KAFKA_SESSION_MS"];
    else process.env["SLUICE_KAFKA_SESSION_MS"] = session;
    sockets.cut(false);
    for (const consumer of consumers) await consumer.close().catch(() => undefined);
    await admin.disconnect();
    await peerLog.close();
    await log.close();
  }
});

test("a consumer whose first join fails is not handed out: opening it fails at once, retriable, and the next one reads", { timeout: 120_000 }, async () => {
  const sockets = cuttableSockets();
  const log = await KafkaTopicLog.open({ config: testKafkaConfig(), deployment, logger: createLogger("warn"), access: "command", socketFactory: sockets.factory });
  const joinGroup = `${deployment}.sink.join`;
  try {
    await log.createTopic({ name: `${topic}.join`, partitions: 2, retentionMs: null, retentionBytes: null, compacted: false });
    sockets.cutAtRequest(JOIN_GROUP);
    // Before, it was handed out failed, and the sink's first seek waited 60 s for partitions that never came (KAFKA_GROUP_JOIN_TIMEOUT).
    await assert.rejects(log.consumer(joinGroup, [`${topic}.join`]), (error) => error instanceof SluiceError && error.retriable && error.code === "KAFKA_UNAVAILABLE");
    const consumer = await log.consumer(joinGroup, [`${topic}.join`]);
    try {
      await consumer.seek(`${topic}.join`, 0, { kind: "earliest" });
      assert.equal(consumer.assignment().length, 2);
    } finally {
      await consumer.close();
    }
  } finally {
    await log.close();
    const admin = new Kafka({ brokers: testKafkaConfig().brokers, logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    await admin.deleteGroups([joinGroup]).catch(() => undefined);
    await admin.disconnect();
  }
});
