/**
 * A topic deleted while capture writes (KafkaTopicLog.createDeletedAgain, as the batching producer calls it on an
 * UNKNOWN_TOPIC_OR_PARTITION answer) against the real broker. Called directly: reaching it through a produce first waits
 * out kafkajs's own retries (~20 s).
 */
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, test } from "node:test";
import { Kafka } from "kafkajs";
import { configSchema } from "../../config/schema.ts";
import { captureEncoder } from "../../daemon/components.ts";
import { createLogger } from "../../runtime/logger.ts";
import { LocalRegistry, openMemoryStore } from "../../schema-registry/index.ts";
import type { OnlineSnapshotting, SnapshotTask } from "../common/incremental-snapshot-state.ts";
import type { ChangeEvent } from "../contracts.ts";
import { RecreatedTopics } from "../../daemon/recreated-topics.ts";
import { registryTopic } from "../topics/names.ts";
import { KafkaTopicLog } from "./kafka-log.ts";
import { testDeployment, testKafkaConfig } from "./kafka-test-config.ts";

const deployment = testDeployment("deltop");
const admin = new Kafka({ brokers: testKafkaConfig().brokers, logLevel: 0 }).admin();

after(async () => {
  const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${deployment}.`));
  if (topics.length > 0) await admin.deleteTopics({ topics });
  await admin.disconnect();
});

async function deleted(topic: string): Promise<void> {
  await admin.deleteTopics({ topics: [topic], timeout: 30_000 });
  while ((await admin.listTopics()).includes(topic)) await sleep(50);
}

test("a deleted data topic is created again as declared and told to onTopicRecreated; a deleted internal topic is refused (TOPIC_DELETED, waited for); a topic another client created again with 1 partition and delete retention is refused (TOPIC_REPLACED, waited for), the registry's journal too", async () => {
  await admin.connect();
  const log = await KafkaTopicLog.open({ config: testKafkaConfig(), deployment, logger: createLogger("error") });
  const look = (topics: string[]) => (log as unknown as { createDeletedAgain(topics: readonly string[]): Promise<void> }).createDeletedAgain(topics);
  // As the batching producer does: a retriable failure (kafkajs's admin failing on a topic it had looked up, renewed) is looked at again at the next retry.
  const lookAgain = async (topics: string[]) => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await look(topics);
      } catch (error) {
        if ((error as { retriable?: boolean }).retriable !== true || attempt === 3) throw error;
      }
    }
  };
  try {
    const data = `${deployment}.pg.public.orders`;
    await log.createTopic({ name: data, partitions: 2, retentionMs: null, retentionBytes: null, compacted: true });
    const told: string[] = [];
    log.onTopicRecreated((topic) => told.push(topic));

    await lookAgain([data]);
    assert.deepEqual(told, [], "a topic still there as written is left to the retry");

    await deleted(data);
    await lookAgain([data]);
    assert.deepEqual(told, [data]);
    assert.deepEqual(await log.listTopics([data]), [{ name: data, partitions: 2, retentionMs: null, retentionBytes: null, compacted: true }]);

    await deleted(registryTopic(deployment));
    await assert.rejects(lookAgain([data, registryTopic(deployment)]), (error: { code?: string; retriable?: boolean; message: string }) => {
      assert.equal(error.code, "TOPIC_DELETED");
      assert.equal(error.retriable, true);
      assert.match(error.message, /schema registry/);
      return true;
    });
    assert.equal((await admin.listTopics()).includes(registryTopic(deployment)), false, "not created again empty");

    await deleted(data);
    // What Kafka's auto.create.topics.enable makes: the broker's default partition count (1 here) and cleanup.policy.
    await admin.createTopics({ topics: [{ topic: data, numPartitions: 1 }] });
    await assert.rejects(lookAgain([data]), { code: "TOPIC_REPLACED", retriable: true });
    assert.deepEqual(told, [data], "not told again");
    // The registry's journal (kept for ever) created again as the broker auto-creates: 1 partition as Sluice's, deleting after 7 days.
    await admin.createTopics({ topics: [{ topic: registryTopic(deployment), numPartitions: 1 }] });
    await assert.rejects(lookAgain([registryTopic(deployment)]), { code: "TOPIC_REPLACED", retriable: true });
  } finally {
    await log.close();
  }
});

test("a data topic deleted while Sluice was stopped is created again at the restart's first write to it, warned TOPIC_DELETED and told to onTopicRecreated (its table read again); a topic never created before is not", async () => {
  await admin.connect();
  const data = `${deployment}.pg.public.stopped`;
  const spec = { name: data, partitions: 1, retentionMs: null, retentionBytes: null, compacted: true };
  const first = await KafkaTopicLog.open({ config: testKafkaConfig(), deployment, logger: createLogger("error") });
  await first.createTopic(spec).finally(() => first.close());
  await deleted(data);

  const lines: string[] = [];
  const log = await KafkaTopicLog.open({ config: testKafkaConfig(), deployment, logger: createLogger("warn", { write: (line: string) => void lines.push(line) }) });
  try {
    const told: string[] = [];
    log.onTopicRecreated((topic) => told.push(topic));
    await log.createTopic({ ...spec, name: `${deployment}.pg.public.fresh` });
    await log.createTopic(spec);
    assert.deepEqual(told, [data]);
    const warned = lines.map((line) => JSON.parse(line) as { code?: string; topic?: string; msg: string }).filter((line) => line.code === "TOPIC_DELETED");
    assert.deepEqual(warned.map((line) => line.topic), [data]);
    assert.match(warned[0]!.msg, /while Sluice was stopped/);
  } finally {
    await log.close();
  }
});

test("a data topic deleted while stopped and created again by a snapshot's first read: the initial snapshot's (exported, MySQL's) is neither warned nor told, it writes every row; an online snapshot's is told (its task looked at), not warned TOPIC_DELETED; a change is both", async () => {
  await admin.connect();
  const config = configSchema.parse({
    name: deployment,
    sources: [{ name: "pg", kind: "postgres", user: "u", database: "shop", tables: ["public.*"] }],
    topics: { kind: "kafka", brokers: testKafkaConfig().brokers },
    sinks: [{ name: "warehouse", kind: "duckdb" }],
  });
  const tables = ["exported", "online", "changed", "empty"];
  const topicOf = (table: string) => `${deployment}.pg.public.${table}`;
  const first = await KafkaTopicLog.open({ config: testKafkaConfig(), deployment, logger: createLogger("error") });
  try {
    for (const table of tables) await first.createTopic({ name: topicOf(table), partitions: 1, retentionMs: null, retentionBytes: null, compacted: true });
  } finally {
    await first.close();
  }
  for (const table of tables) await deleted(topicOf(table));

  const lines: string[] = [];
  const log = await KafkaTopicLog.open({ config: testKafkaConfig(), deployment, logger: createLogger("warn", { write: (line: string) => void lines.push(line) }) });
  try {
    const told: string[] = [];
    log.onTopicRecreated((topic) => told.push(topic));
    const encoder = captureEncoder(config, config.sources[0]!, new LocalRegistry(await openMemoryStore()), log);
    const event = (table: string, op: "r" | "c" | "t", snapshot: Partial<ChangeEvent["source"]>): ChangeEvent => ({
      op,
      key: op === "t" ? {} : { id: 1 },
      before: null,
      after: op === "t" ? null : { id: 1 },
      source: { connector: "postgres", name: "pg", db: "shop", schema: "public", table, position: { commit: 10n, change: 9n }, txId: null, commitTimeMs: 1_000, snapshot: false, ...snapshot },
      schema: { source: "pg", database: "shop", schema: "public", table, sourceKind: "postgres", columns: [{ name: "id", dbType: "integer", nullable: false, primaryKeyIndex: 1 }], key: ["id"] },
    });
    await encoder.encode(event("exported", "r", { snapshot: true, snapshotMarker: "first" }));
    // An empty table's snapshot: the reset closing it is its first record.
    await encoder.encode(event("empty", "t", { snapshot: true }));
    await encoder.encode(event("online", "r", { snapshot: true, snapshotMarker: "incremental" }));
    await encoder.encode(event("changed", "c", {}));
    assert.deepEqual(told.sort(), [topicOf("changed"), topicOf("online")].sort());
    const warned = lines.map((line) => JSON.parse(line) as { code?: string; topic?: string }).filter((line) => line.code === "TOPIC_DELETED");
    assert.deepEqual(warned.map((line) => line.topic), [topicOf("changed")]);
    for (const table of tables) assert.ok((await admin.listTopics()).includes(topicOf(table)), `${table}'s topic created again`);
  } finally {
    await log.close();
  }
});

test("a data topic deleted while stopped part-way through its table's snapshot: the resumed task's first read creates it, the rows before its last key are missing, so the table is read again and warned; a task not past its first chunk asks for nothing", async () => {
  await admin.connect();
  const config = configSchema.parse({
    name: deployment,
    sources: [{ name: "pg", kind: "postgres", user: "u", database: "shop", tables: ["public.*"] }],
    topics: { kind: "kafka", brokers: testKafkaConfig().brokers },
    sinks: [{ name: "warehouse", kind: "duckdb" }],
  });
  const topicOf = (table: string) => `${deployment}.pg.public.${table}`;
  const first = await KafkaTopicLog.open({ config: testKafkaConfig(), deployment, logger: createLogger("error") });
  try {
    for (const table of ["resumed", "fresh"]) await first.createTopic({ name: topicOf(table), partitions: 1, retentionMs: null, retentionBytes: null, compacted: true });
  } finally {
    await first.close();
  }
  for (const table of ["resumed", "fresh"]) await deleted(topicOf(table));

  // The initial snapshot resumed as online tasks: one had stored rows up to id 41 before the stop, the other none. As the
  // engine does, each has recorded the chunk being written (up to 80, up to 40) before capture writes its first row.
  const stored = [
    { id: "initial-1", table: "public.resumed", where: null, lastKey: ["41"], origin: "initial", startedAtMs: 1 },
    { id: "initial-2", table: "public.fresh", where: null, lastKey: null, origin: "initial", startedAtMs: null },
  ] as unknown as SnapshotTask[];
  const tasks = stored.map((task) => ({ ...task, lastKey: task.id === "initial-1" ? ["80"] : ["40"] }));
  const asked: string[] = [];
  const snapshots = {
    plan: async () => Promise.reject(new Error("not asked")),
    request: async (table: string) => (asked.push(table), { task: { id: `again-${table}`, table } as unknown as SnapshotTask }),
    list: () => ({ tasks, failed: [] }),
    stored: (id: string) => stored.find((task) => task.id === id) ?? null,
  } as unknown as OnlineSnapshotting;
  const lines: string[] = [];
  const logger = createLogger("warn", { write: (line: string) => void lines.push(line) });
  const recreated = new RecreatedTopics({ deployment, sources: ["pg"], snapshots: () => snapshots, logger });
  const log = await KafkaTopicLog.open({ config: testKafkaConfig(), deployment, logger });
  try {
    const looked: Promise<void>[] = [];
    log.onTopicRecreated((topic) => void looked.push(recreated.recreated(topic)));
    const encoder = captureEncoder(config, config.sources[0]!, new LocalRegistry(await openMemoryStore()), log);
    for (const [table, id] of [["resumed", 42], ["fresh", 1]] as const) {
      await encoder.encode({
        op: "r",
        key: { id },
        before: null,
        after: { id },
        source: { connector: "postgres", name: "pg", db: "shop", schema: "public", table, position: { commit: 10n, change: 9n }, txId: null, commitTimeMs: 1_000, snapshot: true, snapshotMarker: "incremental" },
        schema: { source: "pg", database: "shop", schema: "public", table, sourceKind: "postgres", columns: [{ name: "id", dbType: "integer", nullable: false, primaryKeyIndex: 1 }], key: ["id"] },
      });
    }
    await Promise.all(looked);
    assert.deepEqual(asked, ["public.resumed"]);
    const warned = lines.map((line) => JSON.parse(line) as { code?: string; topic?: string }).filter((line) => line.code === "TOPIC_RECREATED");
    assert.deepEqual(warned.map((line) => line.topic), [topicOf("resumed")]);
    assert.deepEqual(recreated.warnings("pg").map((w) => w.table), ["public.resumed"]);
  } finally {
    await log.close();
  }
});
