/**
 * Internal topics deleted while Sluice was stopped, met by the next open of the Kafka topic log (ensureInternalTopics,
 * lost-internal-topics.ts) on the real broker: a lost registry, checkpoints or subject-keys topic is refused unless the
 * loss is accepted; a lost schema history, topic-identity or parking topic is warned; a first start, and topics a newer
 * version added, are created silently.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, test } from "node:test";
import { Kafka, logLevel } from "kafkajs";
import { configSchema } from "../../config/schema.ts";
import { encryptValue, MasterKey, SubjectKeyStore } from "../../daemon/governance/subject-keys.ts";
import { runReplayCommand } from "../../daemon/replay.ts";
import { createLogger } from "../../runtime/logger.ts";
import { openJournalStore } from "../../schema-registry/journal-backend.ts";
import { lostTopicPolicyOf } from "../topics/open.ts";
import { captureLeaseTopic, checkpointTopic, instancesTopic, registryTopic, schemaHistoryTopic, subjectKeysTopic, topicIdsTopic } from "../topics/names.ts";
import { guardRequestQueue } from "./kafka-client.ts";
import { KafkaTopicLog } from "./kafka-log.ts";
import type { LostTopicPolicy } from "./lost-internal-topics.ts";
import { PartitionReader } from "./partition-reader.ts";
import { deleteKafkaDeployment, testDeployment, testKafkaConfig } from "./kafka-test-config.ts";

guardRequestQueue();
const admin = new Kafka({ brokers: testKafkaConfig().brokers, logLevel: logLevel.NOTHING }).admin();
const deployments: string[] = [];
const policy: LostTopicPolicy = { builtinRegistry: true, mysqlSources: ["my"], sources: [{ name: "my", transactionTopic: false, outboxTopic: null }], accept: false };

before(() => admin.connect());
after(async () => {
  await admin.disconnect();
  for (const deployment of deployments) await deleteKafkaDeployment(deployment);
});

async function deleted(...topics: string[]): Promise<void> {
  await admin.deleteTopics({ topics, timeout: 30_000 });
  while ((await admin.listTopics()).some((t) => topics.includes(t))) await sleep(50);
}

/** Opens the log, handing its warnings to `warned`, and closes it again; the open's error is thrown. */
async function openOnce(deployment: string, lostTopics: LostTopicPolicy, use: (log: KafkaTopicLog) => Promise<void> = async () => undefined, warned: string[] = []): Promise<void> {
  const logger = createLogger("warn", { write: (line: string) => void warned.push(line) });
  const log = await KafkaTopicLog.open({ config: testKafkaConfig(), deployment, logger, lostTopics, retry: { initialMs: 100, maxMs: 100, maxAttempts: 1 } });
  try {
    await use(log);
  } finally {
    await log.close();
  }
}

/** A deployment that ran: a data topic with records framed under schema ids 6 (key) and 7 (value), a checkpoint of MySQL source "my", a registry entry. */
async function ranBefore(prefix: string): Promise<{ deployment: string; data: string }> {
  const deployment = testDeployment(prefix);
  deployments.push(deployment);
  const data = `${deployment}.my.shop.orders`;
  await openOnce(deployment, policy, async (log) => {
    await log.createTopic({ name: data, partitions: 2, retentionMs: null, retentionBytes: null, compacted: true });
    await log.registryJournal.append({ mutations: [] });
    const framed = (id: number, body: number) => Buffer.from([0, 0, 0, 0, id, body]);
    await log.produce([1, 2, 3].map((n) => ({ topic: data, key: framed(6, n), value: framed(7, n), timestamp: Date.now() })), { source: "my", position: { commit: 10n, change: 0n } });
  });
  return { deployment, data };
}

test("a first start creates the internal topics without a word, beside another producer's framed topics under the same prefix", async () => {
  const deployment = testDeployment("lostfirst");
  deployments.push(deployment);
  // Debezium with topic.prefix = the deployment's name, on a shared cluster: <prefix>.<schema>.<table>, Confluent-framed.
  const foreign = `${deployment}.public.orders`;
  await admin.createTopics({ topics: [{ topic: foreign, numPartitions: 1 }] });
  const producer = new Kafka({ brokers: testKafkaConfig().brokers, logLevel: logLevel.NOTHING }).producer();
  await producer.connect();
  try {
    await producer.send({ topic: foreign, messages: [{ key: Buffer.from([0, 0, 0, 0, 3, 1]), value: Buffer.from([0, 0, 0, 0, 4, 1]) }] });
  } finally {
    await producer.disconnect();
  }
  const warned: string[] = [];
  await openOnce(deployment, policy, undefined, warned);
  assert.deepEqual(warned, []);
  assert.ok((await admin.listTopics()).includes(registryTopic(deployment)));
});

test("the registry's journal deleted while stopped: the start is refused naming the records' topics and schema ids, not created empty (again when created empty by hand); accepted, the new registry keeps its ids above them", async () => {
  const { deployment, data } = await ranBefore("lostreg");
  await deleted(registryTopic(deployment));
  await assert.rejects(openOnce(deployment, policy), (error: { code?: string; retriable?: boolean; message: string }) => {
    assert.equal(error.code, "INTERNAL_TOPIC_LOST");
    assert.notEqual(error.retriable, true);
    assert.ok(error.message.includes(registryTopic(deployment)), error.message);
    assert.ok(error.message.includes(`records in ${data} reference schema ids 6, 7`), error.message);
    assert.match(error.message, /--accept-lost-topics/);
    return true;
  });
  assert.equal((await admin.listTopics()).includes(registryTopic(deployment)), false, "not created again empty");

  // Created again empty (by hand, or a process that crashed before it kept the ids): the same.
  await admin.createTopics({ topics: [{ topic: registryTopic(deployment), numPartitions: 1, configEntries: [{ name: "retention.ms", value: "-1" }] }] });
  await assert.rejects(openOnce(deployment, policy), { code: "INTERNAL_TOPIC_LOST" });

  await openOnce(deployment, { ...policy, accept: true }, async (log) => {
    const store = await openJournalStore(log.registryJournal);
    assert.equal(await store.nextId(), 10_008, "new schemas take ids above those the sampled records name, with a margin for older records");
  });
  await openOnce(deployment, policy);
});

test("the checkpoints deleted while stopped: refused, not created empty; accepted, created again", async () => {
  const { deployment } = await ranBefore("lostcp");
  await deleted(checkpointTopic(deployment));
  await assert.rejects(openOnce(deployment, policy), (error: { code?: string; message: string }) => {
    assert.equal(error.code, "INTERNAL_TOPIC_LOST");
    assert.ok(error.message.includes(`${checkpointTopic(deployment)} (the sources' checkpoints`), error.message);
    assert.match(error.message, /snapshot\.mode/);
    return true;
  });
  assert.equal((await admin.listTopics()).includes(checkpointTopic(deployment)), false);
  await openOnce(deployment, { ...policy, accept: true });
  assert.ok((await admin.listTopics()).includes(checkpointTopic(deployment)));
});

test("the schema history and topic identities deleted while stopped are warned with their consequence and created again; the announcements and the capture lease silently", async () => {
  const { deployment, data } = await ranBefore("lostwarn");
  await deleted(schemaHistoryTopic(deployment), topicIdsTopic(deployment), instancesTopic(deployment), captureLeaseTopic(deployment));
  const warned: string[] = [];
  await openOnce(deployment, policy, undefined, warned);
  const lost = warned.map((line) => JSON.parse(line) as { code?: string; topic?: string; msg: string }).filter((line) => line.code === "INTERNAL_TOPIC_LOST");
  assert.deepEqual(lost.map((line) => line.topic).sort(), [schemaHistoryTopic(deployment), topicIdsTopic(deployment)].sort());
  assert.match(lost.find((line) => line.topic === schemaHistoryTopic(deployment))!.msg, /MySQL source\(s\) my have checkpoints/);
  assert.ok(lost.find((line) => line.topic === topicIdsTopic(deployment))!.msg.includes(`data topics ${data} do`));
  const topics = await admin.listTopics();
  for (const topic of [schemaHistoryTopic(deployment), topicIdsTopic(deployment), instancesTopic(deployment), captureLeaseTopic(deployment)]) assert.ok(topics.includes(topic), topic);

  // A PostgreSQL-only deployment keeps no schema history: its topic missing says nothing.
  await deleted(schemaHistoryTopic(deployment));
  const quiet: string[] = [];
  await openOnce(deployment, { ...policy, mysqlSources: [] }, undefined, quiet);
  assert.deepEqual(quiet, []);
});

test("a command that may write (sluice replay --execute) refuses the same way, judged by the config: a remote registry leaves the registry's topic unused", async () => {
  const { deployment } = await ranBefore("lostcmd");
  await deleted(registryTopic(deployment));
  const replay = async (registry: object) => {
    const config = configSchema.parse({
      name: deployment,
      sources: [{ name: "my", kind: "postgres", user: "u", database: "shop", tables: ["shop.*"] }],
      topics: { kind: "kafka", brokers: testKafkaConfig().brokers },
      schema_registry: registry,
      sinks: [{ name: "warehouse", kind: "duckdb" }],
    });
    let stderr = "";
    const code = await runReplayCommand(["--sink", "warehouse", "--from-beginning", "--execute"], config, { stdout: () => undefined, stderr: (text) => void (stderr += text) }, createLogger("silent"));
    return { code, stderr };
  };
  const refused = await replay({ kind: "builtin" });
  assert.equal(refused.code, 1);
  assert.ok(refused.stderr.includes(`${registryTopic(deployment)} (the built-in schema registry) is gone`), refused.stderr);
  assert.equal((await admin.listTopics()).includes(registryTopic(deployment)), false);
  assert.equal((await replay({ kind: "remote", url: "http://127.0.0.1:1" })).code, 0);
});

test("the highest schema id the registry issued is recorded outside its topic: its loss accepted, new ids are above it though no sampled record names it", async () => {
  const { deployment } = await ranBefore("lostids");
  await openOnce(deployment, policy, async (log) => {
    // An id far above those the data topic's last records name (6, 7), used only by records older than the sample.
    const store = await openJournalStore(log.registryJournal);
    await store.apply([{ op: "register", subject: `${deployment}.my.shop.old-value`, version: 1, id: 25_000, schema: '"string"' }]);
  });
  await deleted(registryTopic(deployment));
  await openOnce(deployment, { ...policy, accept: true }, async (log) => {
    const store = await openJournalStore(log.registryJournal);
    assert.ok((await store.nextId()) > 25_000, `next id ${await store.nextId()} is above the highest issued, 25000`);
  });
});

/** A deployment with personal columns that ran: a data topic holding a record whose personal value is sealed with subject 1042's key. */
async function ranSealed(prefix: string): Promise<{ deployment: string; data: string; personal: LostTopicPolicy }> {
  const deployment = testDeployment(prefix);
  deployments.push(deployment);
  const config = configSchema.parse({
    name: deployment,
    personal_data: { master_key_file: "/nonexistent/master.key" },
    sources: [{ name: "pg", kind: "postgres", user: "u", database: "shop", tables: ["public.*"], governance: { tables: { "public.customers": { personal: { subject: "id", columns: ["email"] } } } } }],
    topics: { kind: "kafka", brokers: testKafkaConfig().brokers },
    sinks: [{ name: "warehouse", kind: "duckdb" }],
  });
  const personal = lostTopicPolicyOf(config);
  const data = `${deployment}.pg.public.customers`;
  await openOnce(deployment, personal, async (log) => {
    await log.createTopic({ name: data, partitions: 1, retentionMs: null, retentionBytes: null, compacted: true });
    await log.registryJournal.append({ mutations: [] });
    const keys = await SubjectKeyStore.open(log, subjectKeysTopic(deployment), MasterKey.generate());
    await keys.createKeys("pg", ["1042"]);
    const sealed = encryptValue(Buffer.from("ann@example.com"), (await keys.keyIfKnown("pg", "1042"))!, "public.customers.email", "1042");
    await keys.close();
    const value = Buffer.concat([Buffer.from([0, 0, 0, 0, 7]), Buffer.from(sealed)]);
    // Later changes without a personal value (deletes, tombstones) after it.
    await log.produce(
      [{ topic: data, key: Buffer.from([0, 0, 0, 0, 6, 1]), value, timestamp: Date.now() }, ...Array.from({ length: 10 }, (_, n) => ({ topic: data, key: Buffer.from([0, 0, 0, 0, 6, n + 2]), value: null, timestamp: Date.now() }))],
      { source: "pg", position: { commit: 10n, change: 0n } },
    );
  });
  return { deployment, data, personal };
}

test("the subjects' keys deleted while stopped, where records hold sealed personal values: refused naming what is lost, not created (nor when created again empty); without personal_data not judged; accepted, created again", async () => {
  const { deployment, data, personal } = await ranSealed("lostkeys");
  assert.equal(personal.personalData, true);
  await deleted(subjectKeysTopic(deployment));
  const refusedFor = (how: string) => (error: { code?: string; retriable?: boolean; message: string }) => {
    assert.equal(error.code, "INTERNAL_TOPIC_LOST");
    assert.notEqual(error.retriable, true);
    assert.ok(error.message.includes(`${subjectKeysTopic(deployment)} (the data subjects' keys of the personal columns) is ${how}, while records in ${data} hold personal values`), error.message);
    assert.match(error.message, /cannot be decrypted/);
    assert.match(error.message, /--accept-lost-topics/);
    return true;
  };
  await assert.rejects(openOnce(deployment, personal), refusedFor("gone"));
  assert.equal((await admin.listTopics()).includes(subjectKeysTopic(deployment)), false, "not created again empty");

  await admin.createTopics({ topics: [{ topic: subjectKeysTopic(deployment), numPartitions: 1, configEntries: [{ name: "cleanup.policy", value: "compact" }] }] });
  await assert.rejects(openOnce(deployment, personal), refusedFor("empty"));
  await openOnce(deployment, { ...personal, personalData: false });

  const warned: string[] = [];
  await openOnce(deployment, { ...personal, accept: true }, async (log) => {
    const keys = await SubjectKeyStore.open(log, subjectKeysTopic(deployment), MasterKey.generate());
    assert.equal(await keys.keyIfKnown("pg", "1042"), null, "the key is gone for good");
    await keys.close();
  }, warned);
  assert.ok(warned.some((line) => line.includes("loss accepted") && line.includes(subjectKeysTopic(deployment))), warned.join("\n"));
});

test("personal columns configured on a deployment that never sealed a value (just configured, an upgrade), or a first start: the missing key topic says nothing", async () => {
  const other = testDeployment("nokeys");
  deployments.push(other);
  const plain: LostTopicPolicy = { builtinRegistry: true, mysqlSources: [], sources: [{ name: "pg", transactionTopic: false, outboxTopic: null }], personalData: true, accept: false };
  const first: string[] = [];
  await openOnce(other, plain, undefined, first);
  assert.deepEqual(first, []);
  await openOnce(other, plain, async (log) => {
    await log.createTopic({ name: `${other}.pg.public.customers`, partitions: 1, retentionMs: null, retentionBytes: null, compacted: true });
    await log.registryJournal.append({ mutations: [] });
    await log.produce([{ topic: `${other}.pg.public.customers`, key: Buffer.from([0, 0, 0, 0, 6, 1]), value: Buffer.from([0, 0, 0, 0, 7, 2, 0x41]), timestamp: Date.now() }], { source: "pg", position: { commit: 10n, change: 0n } });
  });
  const warned: string[] = [];
  await openOnce(other, plain, undefined, warned);
  assert.deepEqual(warned, []);
  assert.equal((await admin.listTopics()).includes(subjectKeysTopic(other)), false, "left to the key store");
});

test("a parking topic deleted while stopped is warned with what may be lost when its source's data topics exist; at a first start it is created silently", async () => {
  const { deployment, data } = await ranBefore("lostpark");
  const parking = `${deployment}.sluice.halted.my`;
  const spec = { name: parking, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false };
  const warned: string[] = [];
  await openOnce(deployment, policy, (log) => log.createTopic(spec), warned);
  const lost = warned.map((line) => JSON.parse(line) as { code?: string; topic?: string; msg: string }).filter((line) => line.topic === parking);
  assert.equal(lost.length, 1, warned.join("\n"));
  assert.equal(lost[0]!.code, "INTERNAL_TOPIC_LOST");
  assert.ok(lost[0]!.msg.includes(`data topics ${data} do`), lost[0]!.msg);
  assert.match(lost[0]!.msg, /If changes were parked in it .* they are lost/);

  const first = testDeployment("firstpark");
  deployments.push(first);
  const quiet: string[] = [];
  await openOnce(first, policy, (log) => log.createTopic({ ...spec, name: `${first}.sluice.halted.my` }), quiet);
  assert.deepEqual(quiet, []);
});

/** Counts the records (and their key and value bytes) every PartitionReader read hands over, by topic, until restored. */
function countReads(): { read: (topic: string) => { records: number; bytes: number }; restore: () => void } {
  const original = PartitionReader.prototype.each;
  const counts = new Map<string, { records: number; bytes: number }>();
  const read = (topic: string) => counts.get(topic) ?? { records: 0, bytes: 0 };
  PartitionReader.prototype.each = function (topic, ranges, visit, limits) {
    return original.call(this, topic, ranges, (partition, records) => {
      const count = read(topic);
      counts.set(topic, { records: count.records + records.length, bytes: count.bytes + records.reduce((sum, r) => sum + (r.key?.byteLength ?? 0) + (r.value?.byteLength ?? 0), 0) });
      return visit(partition, records);
    }, limits);
  };
  return { read, restore: () => void (PartitionReader.prototype.each = original) };
}

/**
 * A deployment with personal columns that ran (its internal topics there, no key topic), and data topics of 64 records of
 * `bytes` random bytes each, written 4 to a batch; in `sealedTable`'s, the first of them holds a sealed value.
 */
async function personalDeployment(prefix: string, tables: readonly string[], bytes: number, sealedTable?: string): Promise<{ deployment: string; personal: LostTopicPolicy; topics: string[] }> {
  const deployment = testDeployment(prefix);
  deployments.push(deployment);
  const personal: LostTopicPolicy = { builtinRegistry: false, mysqlSources: [], sources: [{ name: "pg", transactionTopic: false, outboxTopic: null }], personalData: true, accept: false };
  await openOnce(deployment, personal);
  const topics = tables.map((table) => `${deployment}.pg.public.${table}`);
  await admin.createTopics({ topics: topics.map((topic) => ({ topic, numPartitions: 1 })), waitForLeaders: true });
  const producer = new Kafka({ brokers: testKafkaConfig().brokers, logLevel: logLevel.NOTHING }).producer();
  await producer.connect();
  try {
    for (const topic of topics) {
      for (let n = 0; n < 64; n += 4) {
        const messages = Array.from({ length: 4 }, (_, i) => ({
          key: Buffer.from(`${n + i}`),
          value: topic.endsWith(`.${sealedTable}`) && n + i === 0 ? Buffer.concat([Buffer.from("sluice-enc:v2:"), randomBytes(bytes)]) : randomBytes(bytes),
        }));
        await producer.send({ topic, messages });
      }
    }
  } finally {
    await producer.disconnect();
  }
  return { deployment, personal, topics };
}

test("the look for sealed values ends at the first one: the rest of its topic and the topics after it are not read", async () => {
  // The sealed value is the first record of the first topic read: a response holds 4 of its records (256 KiB).
  const { deployment, personal, topics } = await personalDeployment("sealedfirst", ["a_customers", "b_orders", "c_items"], 64 * 1024, "a_customers");
  const [first, ...others] = topics as [string, ...string[]];
  const reads = countReads();
  try {
    await assert.rejects(openOnce(deployment, personal), (error: { code?: string; message: string }) => {
      assert.equal(error.code, "INTERNAL_TOPIC_LOST");
      assert.ok(error.message.includes(`while records in ${first} hold personal values`), error.message);
      return true;
    });
  } finally {
    reads.restore();
  }
  assert.ok(reads.read(first).records <= 16, `records read of ${first}: ${reads.read(first).records} of 64`);
  for (const topic of others) assert.equal(reads.read(topic).records, 0, `${topic} read after a sealed value was found`);
});

test("without a sealed value, the look reads no more than its bound of record bytes, however many the topics' last records hold", async () => {
  const { deployment, personal, topics } = await personalDeployment("sealedbound", ["a_customers", "b_orders", "c_items"], 16 * 1024);
  const reads = countReads();
  const warned: string[] = [];
  try {
    const logger = createLogger("warn", { write: (line: string) => void warned.push(line) });
    const log = await KafkaTopicLog.open({ config: testKafkaConfig(), deployment, logger, lostTopics: personal, sealedScanBytes: 256 * 1024, retry: { initialMs: 100, maxMs: 100, maxAttempts: 1 } });
    await log.close();
  } finally {
    reads.restore();
  }
  assert.deepEqual(warned, []);
  const bytes = topics.reduce((sum, topic) => sum + reads.read(topic).bytes, 0);
  // The bound, and at most one fetch response past it (4 records to a batch: 64 KiB); the topics hold 3 MiB.
  assert.ok(bytes >= 256 * 1024 && bytes <= 256 * 1024 + 256 * 1024, `record bytes read: ${bytes}`);
  assert.equal(reads.read(topics[2]!).records, 0, "the last topic not read");
});

test("the look for sealed values reads the topics of the tables with personal columns first: a loss is caught when large other topics sort before them", async () => {
  // a_events and b_logs (1 MiB each) sort before z_people, whose first record is sealed; the bound (256 KiB) ends the look inside a_events when read in name order.
  const { deployment, personal, topics } = await personalDeployment("sealedorder", ["a_events", "b_logs", "z_people"], 16 * 1024, "z_people");
  const people = topics[2]!;
  const withTables: LostTopicPolicy = { ...personal, personalTopics: [people, `${deployment}.sluice.halted.pg`, `${deployment}.dlq.pg`] };
  const reads = countReads();
  try {
    const logger = createLogger("warn", { write: () => undefined });
    const open = KafkaTopicLog.open({ config: testKafkaConfig(), deployment, logger, lostTopics: withTables, sealedScanBytes: 256 * 1024, retry: { initialMs: 100, maxMs: 100, maxAttempts: 1 } });
    await assert.rejects(open.then((log) => log.close()), (error: { code?: string; message: string }) => {
      assert.equal(error.code, "INTERNAL_TOPIC_LOST");
      assert.ok(error.message.includes(`while records in ${people} hold personal values`), error.message);
      return true;
    });
  } finally {
    reads.restore();
  }
  assert.equal(reads.read(topics[0]!).records, 0, "the other topics not read");
});

test("the config's personal tables name the topics read first: their data topics, their sources' parking and dead-letter topics, the sinks' dead-letter topics", () => {
  const config = configSchema.parse({
    name: "shop",
    personal_data: { master_key_file: "/nonexistent/master.key" },
    sources: [
      { name: "pg", kind: "postgres", host: "h", database: "d", user: "u", tables: ["public.*"], governance: { tables: { "public.people": { personal: { subject: "id", columns: ["email"] } }, "public.orders": { checks: [] } } } },
      { name: "other", kind: "postgres", host: "h", database: "d", user: "u", tables: ["public.*"] },
    ],
    sinks: [{ name: "wh", kind: "duckdb", path: "/tmp/x.duckdb" }, { name: "only", kind: "duckdb", path: "/tmp/y.duckdb", sources: ["other"] }],
  });
  assert.deepEqual(lostTopicPolicyOf(config).personalTopics, ["shop.pg.public.people", "shop.sluice.halted.pg", "shop.dlq.pg", "shop.dlq.wh"]);
});
