/**
 * End to end (issue 19): outbox routing. A PostgreSQL outbox table (insert-then-delete), PostgreSQL
 * logical messages with the outbox prefix, and a MariaDB outbox table (insert-only) carry events of
 * two aggregate types while the daemon is killed (-9) and restarted. Every event must land once on
 * its aggregate type's topic, keyed by its aggregate id, with its id and type in headers, the
 * payload as written, in commit order per aggregate; row changes of an ordinary table still flow.
 * Run over the embedded log and over Kafka (3 partitions, transactions).
 */
import assert from "node:assert/strict";
import { randomInt, randomUUID } from "node:crypto";
import { join } from "node:path";
import { after, before, test } from "node:test";
import mysql from "mysql2/promise";
import type { Connection } from "mysql2/promise";
import type pg from "pg";
import { loadConfigFile } from "../../config/load.ts";
import type { StoredRecord } from "../../connectors/contracts.ts";
import { openTopicLogForCommand } from "../../connectors/topics/open.ts";
import { createLogger } from "../../runtime/logger.ts";
import { kafka, mariadb } from "../services/ports.ts";
import { deleteKafkaDeployment, dropPostgres, killAllDaemons, mysqlSourceConfig, pgClient, pgSourceConfig, randomName, removeDir, sleep, SluiceDaemon, tempDir, waitFor } from "./helpers.ts";

const schema = randomName("e2e_outbox");
const database = randomName("e2e_outbox");
const prefix = randomName("events");
const dir = tempDir("outbox");
const AGGREGATE_TYPES = ["order", "customer"] as const;
const runs: { pgSource: string; deployment: string; kafka: boolean }[] = [];

type TopicsConfig = Record<string, unknown>;

/** One daemon's config; `run` names the outbox tables, sources and deployment of one test. */
function setup(run: string, topics: (deployment: string) => TopicsConfig) {
  const pgSource = randomName("pg");
  const mySource = randomName("my");
  const deployment = randomName("dep");
  const pgOutbox = `outbox_${run}`;
  const config = {
    name: deployment,
    sources: [
      pgSourceConfig(pgSource, [`${schema}.*`], {
        outbox: { tables: [`${schema}.${pgOutbox}`], table_mode: "insert-then-delete", message_prefix: `${prefix}_${run}`, topic: "{deployment}.outbox.{source}.{aggregate_type}", aggregate_types: [...AGGREGATE_TYPES] },
      }),
      mysqlSourceConfig(mySource, [`${database}.*`], { outbox: { tables: [`${database}.outbox_${run}`], topic: "{deployment}.outbox.{source}.{aggregate_type}" } }),
    ],
    topics: topics(deployment),
    sinks: [],
  };
  runs.push({ pgSource, deployment, kafka: (config.topics as { kind: string }).kind === "kafka" });
  return { pgSource, mySource, deployment, config, pgOutbox, myOutbox: `outbox_${run}`, messagePrefix: `${prefix}_${run}` };
}

type Setup = ReturnType<typeof setup>;

interface Written {
  readonly id: string;
  readonly source: string;
  readonly aggregateType: string;
  readonly aggregateId: string;
  readonly seq: number;
  readonly via: "table" | "message";
}

let client: pg.Client;
let admin: Connection;

before(async () => {
  client = await pgClient();
  await client.query(`CREATE SCHEMA "${schema}"`);
  await client.query(`CREATE TABLE "${schema}".items (id integer PRIMARY KEY, v text)`);
  admin = await mysql.createConnection({ host: mariadb.host, port: mariadb.port, user: mariadb.user, password: mariadb.password });
  await admin.query(`CREATE DATABASE \`${database}\``);
});

async function createOutboxTables(run: Setup): Promise<void> {
  await client.query(`CREATE TABLE "${schema}".${run.pgOutbox} (id uuid PRIMARY KEY, aggregatetype text NOT NULL, aggregateid text NOT NULL, type text NOT NULL, payload jsonb)`);
  await admin.query(`CREATE TABLE \`${database}\`.${run.myOutbox} (id VARCHAR(36) PRIMARY KEY, aggregatetype VARCHAR(64) NOT NULL, aggregateid VARCHAR(64) NOT NULL, type VARCHAR(64) NOT NULL, payload JSON)`);
}

after(async () => {
  await killAllDaemons();
  for (const run of runs) {
    await dropPostgres(client, { slot: `sluice_${run.pgSource}`, publication: `sluice_${run.pgSource}` });
    if (run.kafka && !process.env["SLUICE_E2E_KEEP"]) await deleteKafkaDeployment(run.deployment).catch(() => undefined);
  }
  await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await client.end();
  await admin.query(`DROP DATABASE IF EXISTS \`${database}\``);
  await admin.end();
  removeDir(dir);
});

/** Every record of the topics, through the topic log as a sink would read it (Kafka: committed transactions only). */
async function readTopics(topicsConfig: TopicsConfig, deployment: string, topics: readonly string[]): Promise<StoredRecord[]> {
  // Read-only, as the CLI reads while the daemon runs (Kafka: a consumer of its own, committed transactions only).
  const log = await openTopicLogForCommand(topicsConfig as never, deployment, createLogger("silent"), "read-only");
  try {
    // Names only: listTopics() describes every topic on the shared broker, one request each.
    const existing = new Set(await log.topicNames());
    const wanted = topics.filter((t) => existing.has(t));
    if (wanted.length === 0) return [];
    // Up to the end offsets taken now (a transaction's commit marker takes the last offset of a Kafka partition).
    const ends = new Map<string, bigint>();
    for (const topic of wanted) for (const end of await log.endOffsets(topic)) ends.set(`${topic}/${end.partition}`, end.offset);
    const consumer = await log.consumer(randomName(`${deployment}.e2e_reader`), wanted);
    const out: StoredRecord[] = [];
    const next = new Map<string, bigint>();
    const done = () => [...ends].every(([partition, end]) => (next.get(partition) ?? 0n) >= end - 1n);
    try {
      let idle = 0;
      while (!done() && idle < 40) {
        const records = await consumer.poll({ maxRecords: 10_000, maxBytes: 64 * 2 ** 20, maxWaitMs: 500 });
        idle = records.length === 0 ? idle + 1 : 0;
        for (const record of records) next.set(`${record.topic}/${record.partition}`, record.offset + 1n);
        out.push(...records);
      }
    } finally {
      await consumer.close();
    }
    return out;
  } finally {
    await log.close();
  }
}

const header = (record: StoredRecord, name: string) => (record.headers?.[name] === undefined ? undefined : Buffer.from(record.headers[name]).toString("utf8"));
const keyText = (record: StoredRecord) => Buffer.from(record.key!).toString("utf8");
const valueText = (record: StoredRecord) => Buffer.from(record.value!).toString("utf8");

/** One transaction per call: 1-3 events for random aggregates; PostgreSQL mixes table rows, messages and an ordinary row. */
class Writer {
  readonly written: Written[] = [];
  private readonly seqs = new Map<string, number>();
  private readonly run: Setup;

  constructor(run: Setup) {
    this.run = run;
  }

  private next(source: string, via: Written["via"]): Written & { payload: string } {
    const aggregateType = AGGREGATE_TYPES[randomInt(AGGREGATE_TYPES.length)]!;
    const aggregateId = `${aggregateType}-${randomInt(4)}`;
    const key = `${source}/${aggregateId}`;
    const seq = (this.seqs.get(key) ?? 0) + 1;
    this.seqs.set(key, seq);
    return { id: randomUUID(), source, aggregateType, aggregateId, seq, via, payload: JSON.stringify({ aggregate: aggregateId, seq, note: "ü" }) };
  }

  async postgres(): Promise<void> {
    const events = Array.from({ length: 1 + randomInt(3) }, () => this.next(this.run.pgSource, randomInt(2) === 0 ? "table" : "message"));
    await client.query("BEGIN");
    for (const e of events) {
      if (e.via === "table") {
        await client.query(`INSERT INTO "${schema}".${this.run.pgOutbox} VALUES ($1, $2, $3, $4, $5)`, [e.id, e.aggregateType, e.aggregateId, `${e.aggregateType}.changed`, e.payload]);
        await client.query(`DELETE FROM "${schema}".${this.run.pgOutbox} WHERE id = $1`, [e.id]);
      } else {
        const content = JSON.stringify({ id: e.id, aggregatetype: e.aggregateType, aggregateid: e.aggregateId, type: `${e.aggregateType}.changed`, payload: JSON.parse(e.payload) });
        await client.query("SELECT pg_logical_emit_message(true, $1, $2)", [this.run.messagePrefix, content]);
      }
    }
    await client.query(`INSERT INTO "${schema}".items VALUES ($1, 'x') ON CONFLICT (id) DO UPDATE SET v = excluded.v || 'x'`, [randomInt(50)]);
    await client.query("COMMIT");
    this.written.push(...events);
  }

  /** True once each source has an event in `published`; then forgets each source's events before its first published one. */
  streaming(sources: readonly string[], published: ReadonlySet<string | undefined>): boolean {
    const first = sources.map((source) => this.written.findIndex((e) => e.source === source && published.has(e.id)));
    if (first.some((index) => index < 0)) return false;
    const keep = this.written.filter((e) => this.written.indexOf(e) >= first[sources.indexOf(e.source)]!);
    this.written.splice(0, this.written.length, ...keep);
    return true;
  }

  async mysql(): Promise<void> {
    const events = Array.from({ length: 1 + randomInt(3) }, () => this.next(this.run.mySource, "table"));
    await admin.beginTransaction();
    for (const e of events) {
      await admin.query(`INSERT INTO \`${database}\`.${this.run.myOutbox} VALUES (?, ?, ?, ?, ?)`, [e.id, e.aggregateType, e.aggregateId, `${e.aggregateType}.changed`, e.payload]);
    }
    await admin.commit();
    this.written.push(...events);
  }
}

const scenarios: [string, (deployment: string) => TopicsConfig][] = [
  ["embedded log", () => ({ kind: "embedded", path: join(dir, `${randomName("log")}.db`) })],
  ["Kafka, 3 partitions, transactions", () => ({ kind: "kafka", brokers: [...kafka.brokers], partitions: 3, transactions: true, retention: { max_age: 0 } })],
];

for (const [label, topicsOf] of scenarios) {
  test(`${label}: outbox events from a PostgreSQL table, PostgreSQL logical messages and a MariaDB table on the right topics with the right keys, in commit order per aggregate, none lost or doubled across kill -9`, { timeout: 300_000 }, async (t) => {
    const run = setup(label.startsWith("Kafka") ? "kafka" : "embedded", topicsOf);
    const { config, deployment, pgSource, mySource } = run;
    await createOutboxTables(run);
    const writer = new Writer(run);
    let daemon = await SluiceDaemon.start(dir, config, `${deployment}-1`);
    const topics = [pgSource, mySource].flatMap((source) => AGGREGATE_TYPES.map((type) => `${deployment}.outbox.${source}.${type}`));
    const topicsConfig = loadConfigFile(daemon.configFile).topics;
    // Streaming first: events committed before a source's initial snapshot are not published (the
    // snapshot skips outbox rows), and a restart before the snapshot is checkpointed takes a new one.
    // Warm-up events until one of each source is on its topic; the ones before it are dropped.
    await waitFor(
      "a warm-up event of each source on its topic",
      async () => {
        await writer.postgres();
        await writer.mysql();
        const ids = new Set((await readTopics(topicsConfig, deployment, topics)).map((r) => header(r, "id")));
        return writer.streaming([pgSource, mySource], ids);
      },
      { daemon, timeoutMs: 120_000, intervalMs: 1_000 },
    );

    let writing = true;
    const load = (async () => {
      while (writing) {
        await writer.postgres();
        await writer.mysql();
        await sleep(5);
      }
    })();
    for (let round = 1; round <= 2; round++) {
      await sleep(2_000);
      await daemon.kill();
      t.diagnostic(`kill -9 #${round} after ${writer.written.length} events written`);
      daemon = await SluiceDaemon.start(dir, config, `${deployment}-${round + 1}`);
    }
    await sleep(1_000);
    writing = false;
    await load;
    // Every event written so far must reach its topic (after a kill -9 a restarted daemon may first wait
    // for the dead one's capture lease to expire); then a graceful stop and the final read.
    const wanted = writer.written.slice();
    let lastCount = 0;
    await waitFor(
      `all ${wanted.length} events on their topics`,
      async () => {
        const ids = new Set((await readTopics(topicsConfig, deployment, topics)).map((r) => header(r, "id")));
        lastCount = wanted.filter((e) => ids.has(e.id)).length;
        return lastCount === wanted.length;
      },
      { daemon, timeoutMs: Number(process.env["OUTBOX_WAIT_MS"] ?? 180_000), intervalMs: 500, lastSeen: () => `${lastCount} of ${wanted.length}; sources ${JSON.stringify(daemon.logTail(5))}` },
    );
    await daemon.stop();
    const records = await readTopics(topicsConfig, deployment, topics);
    t.diagnostic(`${wanted.length} events written, ${records.length} records read`);

    const byId = new Map(records.map((r) => [header(r, "id"), r]));
    assert.equal(byId.size, records.length, "no event is published twice");
    assert.equal(records.length, wanted.length, "exactly the events written");
    for (const event of wanted) {
      const record = byId.get(event.id);
      assert.ok(record !== undefined, `event ${event.id} (${event.source} ${event.aggregateId} #${event.seq}, via ${event.via}) is lost`);
      assert.equal(record.topic, `${deployment}.outbox.${event.source}.${event.aggregateType}`);
      assert.equal(keyText(record), event.aggregateId);
      assert.equal(header(record, "type"), `${event.aggregateType}.changed`);
      assert.deepEqual(JSON.parse(valueText(record)), { aggregate: event.aggregateId, seq: event.seq, note: "ü" });
    }
    // Commit order per aggregate: within a topic partition, each aggregate's events follow one another (seq +1; warm-up events dropped before the first).
    const seen = new Map<string, number>(
      [...new Map(wanted.map((e) => [`${deployment}.outbox.${e.source}.${e.aggregateType}/${e.aggregateId}`, e.seq] as const)).keys()].map((key) => [key, Math.min(...wanted.filter((e) => `${deployment}.outbox.${e.source}.${e.aggregateType}/${e.aggregateId}` === key).map((e) => e.seq)) - 1]),
    );
    const ordered = [...records].sort((a, b) => (a.topic === b.topic ? (a.partition === b.partition ? Number(a.offset - b.offset) : a.partition - b.partition) : a.topic < b.topic ? -1 : 1));
    for (const record of ordered) {
      const key = `${record.topic}/${keyText(record)}`;
      const seq = (JSON.parse(valueText(record)) as { seq: number }).seq;
      assert.equal(seq, (seen.get(key) ?? 0) + 1, `${key}: events in commit order`);
      seen.set(key, seq);
    }
    assert.ok(wanted.some((e) => e.via === "message") && wanted.some((e) => e.via === "table" && e.source === pgSource), "both PostgreSQL paths were exercised");
    // The outbox tables have no row-change topics; the ordinary table has.
    const rowTopics = await readTopics(topicsConfig, deployment, [`${deployment}.${pgSource}.${schema}.${run.pgOutbox}`, `${deployment}.${mySource}.${database}.${run.myOutbox}`, `${deployment}.${pgSource}.${schema}.items`]);
    assert.deepEqual([...new Set(rowTopics.map((r) => r.topic))], [`${deployment}.${pgSource}.${schema}.items`]);
  });
}
