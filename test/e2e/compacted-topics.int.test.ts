/**
 * End to end (issue 14, items 1 and 5): data topics that hold the current state forever.
 * PostgreSQL → embedded log or Kafka → DuckDB, with inserts, updates, key changes, deletes and a
 * TRUNCATE; then compaction runs (the embedded job directly; Kafka's log cleaner, made eager on the
 * test's topics), and both a sink added afterwards (read from the beginning) and a rebuild of the
 * first sink equal PostgreSQL row for row, deletes and the truncate included (the table has
 * REPLICA IDENTITY FULL, so updates carry unchanged TOAST values: see compacted-records.ts). Kafka topics are
 * created compacted with the configured settings; topics an earlier run created with delete
 * retention are reported at start with the kafka-configs command that switches them.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import avro from "avsc";
import kafkajs from "kafkajs";
import type pg from "pg";
import { configSchema } from "../../config/schema.ts";
import { EmbeddedTopicLog } from "../../connectors/embedded/embedded-log.ts";
import { KafkaTopicLog } from "../../connectors/kafka/kafka-log.ts";
import { testKafkaConfig } from "../../connectors/kafka/kafka-test-config.ts";
import { controlTopic } from "../../connectors/topics/names.ts";
import { openTopicLogForCommand } from "../../connectors/topics/open.ts";
import { openRegistry } from "../../daemon/components.ts";
import { createLogger } from "../../runtime/logger.ts";
import { kafka } from "../services/ports.ts";
import {
  assertTablesEqual,
  dropPostgres,
  expectedFor,
  killAllDaemons,
  pgClient,
  pgSourceConfig,
  randomName,
  readDuckDb,
  readPostgres,
  removeDir,
  Rng,
  runSluice,
  SluiceDaemon,
  sleep,
  tempDir,
  waitCaughtUp,
  waitFor,
  Workload,
} from "./helpers.ts";
import type { TableDef } from "./helpers.ts";
import { createSchema, ENUM_LABELS, ordersTable, workloadTables } from "./tables.ts";

const dir = tempDir("compacted-topics");
let client: pg.Client;
const cleanups: { slot: string; publication: string; schema: string }[] = [];
const deployments: string[] = [];

before(async () => {
  client = await pgClient();
});

after(async () => {
  await killAllDaemons();
  for (const names of cleanups) await dropPostgres(client, names);
  await client.end();
  const admin = new kafkajs.Kafka({ brokers: [...kafka.brokers], logLevel: 0 }).admin();
  await admin.connect();
  const topics = (await admin.listTopics()).filter((t) => deployments.some((d) => t.startsWith(`${d}.`)));
  if (topics.length > 0) await admin.deleteTopics({ topics }).catch(() => undefined);
  await admin.disconnect();
  removeDir(dir);
});

function setup(label: string) {
  const schema = randomName(`e2e_${label}`);
  const source = randomName("src");
  const name = randomName("dep");
  deployments.push(name);
  cleanups.push({ slot: `sluice_${source}`, publication: `sluice_${source}`, schema });
  const table = ordersTable(schema);
  return { schema, source, name, table, target: `${schema}_${table.name}`, topic: `${name}.${source}.${schema}.${table.name}` };
}

/** Inserts, updates, key changes and deletes; then TRUNCATE and a new life of the table. All streamed: the daemon's snapshot is done first. */
async function changeEverything(table: TableDef, rng: Rng, daemon: SluiceDaemon | null): Promise<void> {
  if (daemon) await waitFor("the source to stream", async () => (await daemon.status()).sources.some((s) => s.position !== null), { daemon, timeoutMs: 120_000, intervalMs: 200 });
  let workload = new Workload(client, workloadTables([table]), rng, { negativeZero: false, enumLabels: ENUM_LABELS });
  await workload.everyKind();
  for (let i = 0; i < 60; i++) await workload.insert(workload.tables[0]!);
  for (let i = 0; i < 40; i++) await workload.transaction();
  if (daemon) await waitCaughtUp(daemon, client);
  await client.query(`TRUNCATE "${table.schema}"."${table.name}"`);
  workload = new Workload(client, workloadTables([table]), rng, { negativeZero: false, enumLabels: ENUM_LABELS });
  await workload.everyKind();
  for (let i = 0; i < 40; i++) await workload.insert(workload.tables[0]!);
  for (let i = 0; i < 40; i++) await workload.transaction();
}

/** Updates then carry unchanged TOAST values (copied from the old row): a compacted topic keeps only a row's latest record, which must be whole. */
async function createTable(schema: string, table: TableDef): Promise<void> {
  await createSchema(client, schema, [table]);
  await client.query(`ALTER TABLE "${schema}"."${table.name}" REPLICA IDENTITY FULL`);
}

async function assertEqualsPostgres(duckPath: string, table: TableDef, target: string, what: string): Promise<void> {
  const read = await readDuckDb(duckPath, [{ def: table, target }]);
  assertTablesEqual(expectedFor("duckdb", table, await readPostgres(client, table)), read[0]!.rows, what);
}

async function waitSinkRows(daemon: SluiceDaemon, sink: string, target: string, table: TableDef): Promise<void> {
  const expected = Number((await client.query(`SELECT count(*) AS n FROM "${table.schema}"."${table.name}"`)).rows[0].n);
  await waitFor(
    `sink ${sink} to hold the source's ${expected} rows`,
    async () => {
      const query = await runSluice(["query", "-c", daemon.configFile, "--sink", sink, "--json", `SELECT count(*)::INT AS n FROM main."${target}"`]);
      return query.code === 0 && (JSON.parse(query.stdout) as { n: number }[])[0]!.n === expected;
    },
    { daemon, timeoutMs: 180_000, intervalMs: 500 },
  );
}

const duckSink = (name: string, path: string) => ({ kind: "duckdb", name, path, batch: { max_rows: 50, max_wait: "50ms" } });

/** Starts the daemon with a sink added, waits until both sinks hold the source's rows, rebuilds the first while it runs, and compares both with PostgreSQL. */
async function addSinkRebuildAndCompare(config: Record<string, unknown>, label: string, first: string, target: string, table: TableDef): Promise<string> {
  const added = join(dir, `${label}-added.duckdb`);
  const daemon = await SluiceDaemon.start(dir, { ...config, sinks: [...(config["sinks"] as unknown[]), duckSink("added", added)] }, `${label}-added`);
  await waitCaughtUp(daemon, client);
  await waitSinkRows(daemon, "added", target, table);
  const rebuild = await runSluice(["replay", "-c", daemon.configFile, "--sink", "warehouse", "--from-beginning", "--rebuild", "--execute"]);
  assert.equal(rebuild.code, 0, rebuild.stdout + rebuild.stderr);
  assert.match(rebuild.stdout, /rebuilt 1 table \(\S+\.orders\) from \d+ records, swapped in/);
  await waitCaughtUp(daemon, client);
  await daemon.stop();
  await assertEqualsPostgres(first, table, target, "the rebuilt sink after compaction");
  await assertEqualsPostgres(added, table, target, "the sink added after compaction");
  return readFileSync(daemon.logFile, "utf8");
}

test("embedded log: after compaction (superseded records and tombstones gone), a sink added later and a rebuild both equal the source", { timeout: 300_000 }, async (t) => {
  const { schema, source, name, table, target, topic } = setup("emb");
  await createTable(schema, table);
  const rng = new Rng();
  t.diagnostic(`seed ${rng.seed}`);
  const logPath = join(dir, "emb-log.db");
  const warehouse = join(dir, "emb-warehouse.duckdb");
  const config = {
    name,
    sources: [pgSourceConfig(source, [`${schema}.*`])],
    topics: { kind: "embedded", path: logPath, retention: { min_compaction_lag: 0, tombstones: "1s" } },
    sinks: [duckSink("warehouse", warehouse)],
  };
  const daemon = await SluiceDaemon.start(dir, config, "emb");
  await changeEverything(table, rng, daemon);
  await waitCaughtUp(daemon, client);
  await daemon.stop();

  // The compaction job, run directly until it has nothing left to do, a day later (tombstones are old).
  const log = EmbeddedTopicLog.open({ path: logPath, logger: createLogger("silent"), maintenanceIntervalMs: 0, tombstoneRetentionMs: 1_000, clock: () => Date.now() + 86_400_000 });
  try {
    assert.equal((await log.listTopics()).find((s) => s.name === topic)?.compacted, true, "the data topic is compacted");
    const before = await countRecords(log, topic);
    let removed = 0;
    for (let idle = 0; idle < 2; ) {
      const result = log.runMaintenance();
      removed += result.compactedRecords;
      idle = result.compactedRecords === 0 && result.deletedBatches === 0 ? idle + 1 : 0;
    }
    const afterCompaction = await countRecords(log, topic);
    t.diagnostic(`records ${before.records} → ${afterCompaction.records} (${removed} removed), tombstones ${before.tombstones} → ${afterCompaction.tombstones}`);
    assert.ok(removed > 0 && afterCompaction.records < before.records, "compaction removed superseded records");
    assert.ok(before.tombstones > 0, "deletes wrote tombstones");
    assert.equal(afterCompaction.tombstones, 0, "tombstones older than topics.retention.tombstones are gone");
    assert.deepEqual((await log.partitionOffsets(topic)).map((p) => p.start), [0n], "compaction never moves the first offset");
    assert.equal((await log.listTopics()).find((s) => s.name === controlTopic(name))?.compacted, true, "the control topic is compacted");
  } finally {
    await log.close();
  }
  // The control topic keeps the table's newest snapshot reset and newest TRUNCATE (one each here).
  assert.deepEqual(assertTruncatesInControlTopic(await opsIn(config, [topic, controlTopic(name)]), topic, controlTopic(name)), ["t", "t"]);

  const logText = await addSinkRebuildAndCompare(config, "emb", warehouse, target, table);
  assert.doesNotMatch(logText, /SINK_HISTORY_INCOMPLETE/);
});

test("embedded log: a sink stopped while rows were deleted, whose delete records compaction then removed, deletes them from the tombstones", { timeout: 240_000 }, async (t) => {
  const { schema, source, name, table, target, topic } = setup("lag");
  await createTable(schema, table);
  const rng = new Rng();
  t.diagnostic(`seed ${rng.seed}`);
  const logPath = join(dir, "lag-log.db");
  const warehouse = join(dir, "lag-warehouse.duckdb");
  const workload = new Workload(client, workloadTables([table]), rng, { negativeZero: false, enumLabels: ENUM_LABELS });
  for (let i = 0; i < 40; i++) await workload.insert(workload.tables[0]!);
  const base = { name, sources: [pgSourceConfig(source, [`${schema}.*`])], topics: { kind: "embedded", path: logPath, retention: { min_compaction_lag: 0 } } };
  const config = { ...base, sinks: [duckSink("warehouse", warehouse)] };
  const first = await SluiceDaemon.start(dir, config, "lag-1");
  await waitSinkRows(first, "warehouse", target, table);
  await first.stop();

  // Capture alone (the sink is not configured): deletes and updates the sink has not seen.
  const captureOnly = await SluiceDaemon.start(dir, { ...base, sinks: [] }, "lag-2");
  await waitFor("the source to stream", async () => (await captureOnly.status()).sources.some((s) => s.position !== null), { daemon: captureOnly, timeoutMs: 120_000, intervalMs: 200 });
  for (let i = 0; i < 15; i++) await workload.remove(workload.tables[0]!);
  for (let i = 0; i < 10; i++) await workload.update(workload.tables[0]!);
  await waitCaughtUp(captureOnly, client);
  await captureOnly.stop();

  const log = EmbeddedTopicLog.open({ path: logPath, logger: createLogger("silent"), maintenanceIntervalMs: 0, clock: () => Date.now() + 3_600_000 });
  try {
    for (let i = 0; i < 5; i++) log.runMaintenance();
    const left = await countRecords(log, topic);
    t.diagnostic(`after compaction: ${left.records} records, ${left.tombstones} tombstones`);
    assert.ok(left.tombstones >= 15, "the tombstones stay: the sink's group has not read them");
  } finally {
    await log.close();
  }
  const again = await SluiceDaemon.start(dir, config, "lag-3");
  await waitCaughtUp(again, client);
  await waitSinkRows(again, "warehouse", target, table);
  await again.stop();
  await assertEqualsPostgres(warehouse, table, target, "the sink that read the deletes as tombstones only");
});

test("embedded log with cleanup_policy delete: once retention removed records, a sink added later says its history is incomplete", { timeout: 240_000 }, async () => {
  const { schema, source, name, table, target, topic } = setup("gone");
  await createTable(schema, table);
  const workload = new Workload(client, workloadTables([table]), new Rng(), { negativeZero: false, enumLabels: ENUM_LABELS });
  for (let i = 0; i < 30; i++) await workload.insert(workload.tables[0]!);
  const base = { name, sources: [pgSourceConfig(source, [`${schema}.*`])], topics: { kind: "embedded", path: join(dir, "gone-log.db"), retention: { cleanup_policy: "delete", max_age: "2s" } } };
  const first = await SluiceDaemon.start(dir, { ...base, sinks: [duckSink("warehouse", join(dir, "gone-warehouse.duckdb"))] }, "gone-1");
  await waitSinkRows(first, "warehouse", target, table);
  await first.stop();
  // The retention job, run directly every 200 ms until the first records are 2 s old and gone (the daemon runs it every
  // 10 s: rebuild-history.int waits for that one).
  const log = EmbeddedTopicLog.open({ path: join(dir, "gone-log.db"), logger: createLogger("silent"), maintenanceIntervalMs: 0 });
  try {
    await waitFor("retention to remove the first records", async () => {
      log.runMaintenance();
      return (await log.partitionOffsets(topic)).some((p) => p.start > 0n);
    }, { timeoutMs: 60_000, intervalMs: 200 });
  } finally {
    await log.close();
  }
  const added = await SluiceDaemon.start(dir, { ...base, sinks: [duckSink("warehouse", join(dir, "gone-warehouse.duckdb")), duckSink("added", join(dir, "gone-added.duckdb"))] }, "gone-2");
  const warning = await waitFor("the added sink's warning", async () => readFileSync(added.logFile, "utf8").split("\n").find((line) => line.includes("SINK_HISTORY_INCOMPLETE")), { daemon: added, timeoutMs: 60_000, intervalMs: 300 });
  await added.stop();
  const logged = JSON.parse(warning) as { msg: string; partitions: { topic: string; partition: number; start: string; from: string | null }[] };
  assert.match(logged.msg, /^sink added: this new sink starts after records retention removed \(\S+:0 starts at offset [1-9]\d*\): it will miss the rows whose changes are gone.*Re-snapshot the source/);
  assert.deepEqual(logged.partitions.map((p) => [p.topic, p.from]), [[topic, null]]);
  assert.ok(!readFileSync(added.logFile, "utf8").split("\n").some((line) => line.includes("SINK_HISTORY_INCOMPLETE") && line.includes('"sink warehouse')), "the sink that read everything is not warned");
});

/** Every record the topic holds, read with a throwaway group (a poll comes back empty only at the end). */
/** Avro longs as bigint (ts_ns is beyond 2^53). */
const exactLong = avro.types.LongType.__with({
  fromBuffer: (buffer: Buffer) => buffer.readBigInt64LE(),
  toBuffer: (value: bigint) => {
    const buffer = Buffer.alloc(8);
    buffer.writeBigInt64LE(BigInt(value));
    return buffer;
  },
  fromJSON: (value: number) => BigInt(value),
  toJSON: (value: bigint) => Number(value),
  isValid: (value: unknown) => typeof value === "bigint",
  compare: (a: bigint, b: bigint) => (a < b ? -1 : a > b ? 1 : 0),
});
const typeHook = (schema: unknown) => (schema === "long" || (typeof schema === "object" && schema !== null && (schema as { type?: unknown }).type === "long") ? exactLong : undefined);

/**
 * The op of every record of each topic (null: a tombstone), decoded as a third-party consumer
 * decodes them: avsc with the schema registered under the record's id, no Sluice decoder.
 */
async function opsIn(config: Record<string, unknown>, topics: readonly string[]): Promise<Map<string, (string | null)[]>> {
  const parsed = configSchema.parse(config);
  const log = await openTopicLogForCommand(parsed.topics, parsed.name, createLogger("silent"), "read-only");
  const { registry } = await openRegistry(parsed, log);
  const types = new Map<number, avro.Type>();
  const ops = new Map<string, (string | null)[]>(topics.map((topic) => [topic, []]));
  try {
    const consumer = await log.consumer(randomName("ops"), [...topics]);
    try {
      const ends = new Map<string, bigint>();
      for (const topic of topics) for (const end of await log.endOffsets(topic)) ends.set(`${topic}:${end.partition}`, end.offset);
      const done = () => [...ends].every(([key, end]) => end === 0n || (consumer.position(key.slice(0, key.lastIndexOf(":")), Number(key.slice(key.lastIndexOf(":") + 1))) ?? -1n) >= end);
      while (!done()) {
        for (const record of await consumer.poll({ maxRecords: 10_000, maxBytes: 2 ** 26, maxWaitMs: 200 })) {
          if (record.value === null) {
            ops.get(record.topic)!.push(null);
            continue;
          }
          const framed = Buffer.from(record.value);
          const id = framed.readUInt32BE(1);
          let type = types.get(id);
          if (!type) types.set(id, (type = avro.Type.forSchema(JSON.parse(await registry.getById(id)) as avro.Schema, { typeHook: typeHook as never, wrapUnions: "auto" })));
          ops.get(record.topic)!.push(String((type.fromBuffer(framed.subarray(5)) as { op: unknown }).op));
        }
      }
    } finally {
      await consumer.close();
    }
  } finally {
    await log.close();
  }
  return ops;
}

/** No op t in the data topic (a Debezium consumer fails on it); the truncates are in the control topic. */
function assertTruncatesInControlTopic(ops: Map<string, (string | null)[]>, topic: string, control: string): (string | null)[] {
  assert.ok(ops.get(topic)!.length > 0, `${topic} holds records`);
  assert.deepEqual(ops.get(topic)!.filter((op) => op === "t"), [], `${topic}: no op t record`);
  const truncates = ops.get(control)!;
  assert.ok(truncates.length > 0 && truncates.every((op) => op === "t"), `${control} holds the truncates: ${truncates.join(",")}`);
  return truncates;
}

async function countRecords(log: EmbeddedTopicLog, topic: string): Promise<{ records: number; tombstones: number }> {
  const consumer = await log.consumer(randomName("count"), [topic]);
  let records = 0;
  let tombstones = 0;
  try {
    for (;;) {
      const batch = await consumer.poll({ maxRecords: 10_000, maxBytes: 2 ** 26, maxWaitMs: 50 });
      if (batch.length === 0) break;
      records += batch.length;
      tombstones += batch.filter((r) => r.value === null).length;
    }
  } finally {
    await consumer.close();
  }
  return { records, tombstones };
}

test("Kafka: topics are created compacted with the configured settings; after the log cleaner ran, a sink added later and a rebuild both equal the source", { timeout: 420_000 }, async (t) => {
  const { schema, source, name, table, target, topic } = setup("kafka");
  await createTable(schema, table);
  const rng = new Rng();
  t.diagnostic(`seed ${rng.seed}`);
  const warehouse = join(dir, "kafka-warehouse.duckdb");
  const config = {
    name,
    sources: [pgSourceConfig(source, [`${schema}.*`])],
    topics: { kind: "kafka", brokers: [...kafka.brokers], partitions: 3, transactions: true, retention: { tombstones: "2h", min_compaction_lag: "1s" } },
    sinks: [duckSink("warehouse", warehouse)],
  };
  const daemon = await SluiceDaemon.start(dir, config, "kafka");
  const admin = new kafkajs.Kafka({ brokers: [...kafka.brokers], logLevel: 0 }).admin();
  await admin.connect();
  try {
    await changeEverything(table, rng, daemon);
    await waitCaughtUp(daemon, client);
    await waitSinkRows(daemon, "warehouse", target, table);

    const created = await topicConfig(admin, topic);
    assert.equal(created.get("cleanup.policy"), "compact");
    assert.equal(created.get("delete.retention.ms"), String(2 * 3_600_000));
    assert.equal(created.get("min.compaction.lag.ms"), "1000");
    assert.equal(created.get("max.message.bytes"), String(16 * 2 ** 20));

    // Make the broker's log cleaner eager on this topic (AlterConfigs replaces the whole set, so all of it):
    // segments roll every 100 ms, any dirt is worth cleaning, tombstones go after 100 ms.
    await admin.alterConfigs({
      validateOnly: false,
      resources: [{
        type: kafkajs.ConfigResourceTypes.TOPIC,
        name: topic,
        configEntries: [
          { name: "cleanup.policy", value: "compact" },
          { name: "segment.ms", value: "100" },
          { name: "min.cleanable.dirty.ratio", value: "0.01" },
          { name: "delete.retention.ms", value: "100" },
          { name: "min.compaction.lag.ms", value: "0" },
          { name: "max.message.bytes", value: String(16 * 2 ** 20) },
        ],
      }],
    });
    const written = await readTopic(topic);
    assert.ok(written.tombstones > 0, "deletes wrote tombstones");
    const offsets = await admin.fetchTopicOffsets(topic);
    const total = offsets.reduce((sum, p) => sum + Number(p.high), 0);
    t.diagnostic(`end offsets ${JSON.stringify(offsets)}`);
    // Each append after segment.ms rolls a segment, which the cleaner may then compact: keep writing a little.
    const workload = new Workload(client, workloadTables([table]), rng, { negativeZero: false, enumLabels: ENUM_LABELS });
    const kept = await waitFor(
      "Kafka's log cleaner to compact the topic",
      async () => {
        await workload.insert(workload.tables[0]!);
        await sleep(500);
        const read = await readTopic(topic);
        return read.records < total ? read : undefined;
      },
      { daemon, timeoutMs: 180_000, intervalMs: 1_000 },
    );
    t.diagnostic(`${kept.records} records kept of ${total} written before the cleaner ran`);
    assert.deepEqual((await admin.fetchTopicOffsets(topic)).map((p) => p.low), ["0", "0", "0"], "compaction never moves the first offset");
    assert.equal((await topicConfig(admin, controlTopic(name))).get("cleanup.policy"), "compact", "the control topic is compacted");
    await waitCaughtUp(daemon, client);
    await daemon.stop();
  } finally {
    await admin.disconnect();
  }
  assertTruncatesInControlTopic(await opsIn(config, [topic, controlTopic(name)]), topic, controlTopic(name));

  const logText = await addSinkRebuildAndCompare(config, "kafka", warehouse, target, table);
  assert.doesNotMatch(logText, /SINK_HISTORY_INCOMPLETE/);
});

test("Kafka: data topics an earlier run created with delete retention are reported at start with the command that switches them; capture goes on", { timeout: 240_000 }, async () => {
  const { schema, source, name, table, target, topic } = setup("legacy");
  await createSchema(client, schema, [table]);
  const rng = new Rng();
  const workload = new Workload(client, workloadTables([table]), rng, { negativeZero: false, enumLabels: ENUM_LABELS });
  for (let i = 0; i < 20; i++) await workload.insert(workload.tables[0]!);
  const warehouse = join(dir, "legacy-warehouse.duckdb");
  const base = { name, sources: [pgSourceConfig(source, [`${schema}.*`])], sinks: [duckSink("warehouse", warehouse)] };
  const topics = { kind: "kafka", brokers: [...kafka.brokers], partitions: 1, transactions: true };
  const old = await SluiceDaemon.start(dir, { ...base, topics: { ...topics, retention: { cleanup_policy: "delete", max_age: "30d" } } }, "legacy-old");
  await waitSinkRows(old, "warehouse", target, table);
  await waitCaughtUp(old, client);
  await old.stop();

  const admin = new kafkajs.Kafka({ brokers: [...kafka.brokers], logLevel: 0 }).admin();
  await admin.connect();
  try {
    assert.equal((await topicConfig(admin, topic)).get("cleanup.policy"), "delete");
    const daemon = await SluiceDaemon.start(dir, { ...base, topics: { ...topics, retention: { tombstones: "3d", min_compaction_lag: "10m" } } }, "legacy-new");
    for (let i = 0; i < 5; i++) await workload.insert(workload.tables[0]!);
    await waitCaughtUp(daemon, client);
    await waitSinkRows(daemon, "warehouse", target, table);
    await daemon.stop();
    const warning = readFileSync(daemon.logFile, "utf8").split("\n").find((line) => line.includes("was created with cleanup.policy=delete"));
    assert.ok(warning, "a warning names the topic created with delete retention");
    const logged = JSON.parse(warning) as { topic: string; fix: string; msg: string };
    assert.equal(logged.topic, topic);
    assert.equal(
      logged.fix,
      `kafka-configs.sh --bootstrap-server ${kafka.brokers[0]} --alter --entity-type topics --entity-name ${topic} --add-config cleanup.policy=compact,delete.retention.ms=${3 * 86_400_000},min.compaction.lag.ms=${600_000}`,
    );
    // Sluice left the topic as it was.
    assert.equal((await topicConfig(admin, topic)).get("cleanup.policy"), "delete");
  } finally {
    await admin.disconnect();
  }
  await assertEqualsPostgres(warehouse, table, target, "the sink reading the topic created with delete retention");
});

async function topicConfig(admin: kafkajs.Admin, topic: string): Promise<Map<string, string>> {
  const described = await admin.describeConfigs({ includeSynonyms: false, resources: [{ type: kafkajs.ConfigResourceTypes.TOPIC, name: topic }] });
  return new Map((described.resources[0]?.configEntries ?? []).map((e) => [e.configName, e.configValue]));
}

/** Every record of the topic (committed ones, as sinks read them). */
async function readTopic(topic: string): Promise<{ records: number; tombstones: number }> {
  const log = await KafkaTopicLog.open({ config: testKafkaConfig(), deployment: randomName("count"), logger: createLogger("silent"), access: "read-only" });
  try {
    const records = await log.readWholeTopic(topic);
    return { records: records.length, tombstones: records.filter((r) => r.value === null).length };
  } finally {
    await log.close();
  }
}
