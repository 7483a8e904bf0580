/**
 * Moving a consumer group's committed offsets on the real Kafka (sluice replay): every partition of
 * every topic named ends at its new offset in one pass, partitions not named keep theirs, and a group
 * with a running member is refused.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Kafka, logLevel } from "kafkajs";
import type { Admin } from "kafkajs";
import { setGroupOffsets } from "./group-offsets.ts";
import { testDeployment, testKafkaConfig } from "./kafka-test-config.ts";

const deployment = testDeployment("groupoffsets");
const topics = [`${deployment}.a`, `${deployment}.b`];
const group = `${deployment}.sink.test`;
const kafka = new Kafka({ brokers: testKafkaConfig().brokers, logLevel: logLevel.NOTHING });
let admin: Admin;

before(async () => {
  admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ waitForLeaders: true, topics: topics.map((topic) => ({ topic, numPartitions: 3 })) });
  const producer = kafka.producer();
  await producer.connect();
  for (const topic of topics) for (let partition = 0; partition < 3; partition++) await producer.send({ topic, messages: Array.from({ length: 10 }, (_v, i) => ({ partition, value: `${i}` })) });
  await producer.disconnect();
});

after(async () => {
  await admin.deleteGroups([group]).catch(() => undefined);
  await admin.deleteTopics({ topics }).catch(() => undefined);
  await admin.disconnect();
});

async function committed(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const { topic, partitions } of await admin.fetchOffsets({ groupId: group, topics })) for (const p of partitions) out[`${topic}:${p.partition}`] = p.offset;
  return out;
}

test("sets the offsets of several topics' partitions at once; partitions not named keep theirs", async () => {
  await setGroupOffsets(kafka, admin, group, topics.flatMap((topic) => [0, 1, 2].map((partition) => ({ topic, partition, offset: "7" }))));
  assert.deepEqual(Object.values(await committed()), Array(6).fill("7"));
  const [a, b] = topics as [string, string];
  await setGroupOffsets(kafka, admin, group, [{ topic: a, partition: 1, offset: "0" }, { topic: b, partition: 2, offset: "10" }]);
  assert.deepEqual(await committed(), { [`${a}:0`]: "7", [`${a}:1`]: "0", [`${a}:2`]: "7", [`${b}:0`]: "7", [`${b}:1`]: "7", [`${b}:2`]: "10" });
});

test("a group with a running member is refused and keeps its offsets", async () => {
  const before = await committed();
  const member = kafka.consumer({ groupId: group });
  await member.connect();
  try {
    await member.subscribe({ topics });
    let joined!: () => void;
    const ready = new Promise<void>((resolve) => (joined = resolve));
    member.on(member.events.GROUP_JOIN, () => joined());
    // It must not commit what it reads itself: the offsets compared below are the ones setGroupOffsets must leave alone.
    await member.run({ autoCommit: false, eachMessage: async () => undefined });
    await ready;
    await assert.rejects(setGroupOffsets(kafka, admin, group, [{ topic: topics[0]!, partition: 0, offset: "1" }]), /must have no running instances/);
  } finally {
    await member.disconnect();
  }
  assert.deepEqual(await committed(), before);
});
