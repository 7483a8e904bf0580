/**
 * Issue 15: the topics a Debezium consumer reads. PostgreSQL and MariaDB → the real daemon →
 * embedded topic log; every record is then decoded the way a third-party consumer decodes it —
 * plain avsc from the schema registered under the record's id, no Sluice code — and checked point
 * by point against Debezium's envelope: the value schema is exactly the envelope (no Sluice fields),
 * unchanged TOAST is Debezium's placeholder or copied from `before`, truncates never reach a
 * Debezium consumer as `op: t` (they are in the control topic, for Sluice's sinks; data topics are
 * compacted, the default), a key change
 * is d + tombstone + c with `__debezium.newkey` / `__debezium.oldkey`, the transaction block and
 * the Avro transaction topic, the MySQL source block, snapshot first/last, `ts_ns`, and the Avro
 * default of a column added with DEFAULT. A DuckDB sink in the same run must still equal the source
 * (it applies the truncates and keeps the TOAST value).
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import avro from "avsc";
import type { Type } from "avsc";
import mysql from "mysql2/promise";
import type { Connection } from "mysql2/promise";
import type pg from "pg";
import { configSchema } from "../../config/schema.ts";
import type { StoredRecord } from "../../connectors/contracts.ts";
import { controlTopic } from "../../connectors/topics/names.ts";
import { openTopicLog } from "../../connectors/topics/open.ts";
import { openRegistry } from "../../daemon/components.ts";
import { createLogger } from "../../runtime/logger.ts";
import { mariadb } from "../services/ports.ts";
import { dropPostgres, killAllDaemons, mysqlSourceConfig, pgClient, pgSourceConfig, randomName, removeDir, SluiceDaemon, tempDir, waitFor } from "./helpers.ts";

type Json = Record<string, unknown>;

/** Avro longs as bigint: Debezium's ts_ns (nanoseconds since 1970) is beyond 2^53, as any JavaScript Debezium consumer needs. */
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
const typeHook = (schema: unknown) => (schema === "long" || (typeof schema === "object" && schema !== null && (schema as Json).type === "long") ? exactLong : undefined);

interface Decoded {
  readonly topic: string;
  readonly offset: bigint;
  readonly key: Json | null;
  readonly value: Json | null;
  readonly valueSchemaId: number | null;
  readonly headers: Readonly<Record<string, Buffer>>;
}

/** Reads every record of the deployment's topics after the daemon stopped, and decodes them with avsc from the registered schemas. */
interface TopicsRead {
  readonly records: Decoded[];
  readonly schemaOf: (id: number) => Json;
  readonly typeOf: (id: number) => Type;
  readonly subjects: string[];
  readonly latest: (subject: string) => Json;
  /** A Confluent-framed Avro value (e.g. a header) decoded with its registered schema. */
  readonly decodeFramed: (bytes: Uint8Array) => Promise<{ id: number; value: Json }>;
}

async function readTopics(config: Json, prefix: string): Promise<TopicsRead> {
  const parsed = configSchema.parse(config);
  const log = await openTopicLog(parsed.topics, parsed.name, createLogger("silent"));
  const { registry } = await openRegistry(parsed, log);
  const schemas = new Map<number, string>();
  const types = new Map<number, Type>();
  const typeOf = (id: number): Type => {
    let type = types.get(id);
    if (!type) types.set(id, (type = avro.Type.forSchema(JSON.parse(schemas.get(id)!) as avro.Schema, { typeHook: typeHook as never, wrapUnions: "auto" })));
    return type;
  };
  const decode = async (bytes: Uint8Array | null): Promise<{ id: number; value: Json } | null> => {
    if (bytes === null) return null;
    const buffer = Buffer.from(bytes);
    assert.equal(buffer[0], 0, "Confluent framing: magic byte 0");
    const id = buffer.readUInt32BE(1);
    if (!schemas.has(id)) schemas.set(id, await registry.getById(id));
    return { id, value: typeOf(id).fromBuffer(buffer.subarray(5)) as Json };
  };
  try {
    const control = controlTopic(parsed.name);
    const topics = (await log.topicNames()).filter((topic) => topic.startsWith(`${prefix}.`) || topic === control);
    const consumer = await log.consumer(randomName("dbz_reader"), topics);
    const stored: StoredRecord[] = [];
    try {
      for (;;) {
        const batch = await consumer.poll({ maxRecords: 10_000, maxBytes: 64 * 2 ** 20, maxWaitMs: 300 });
        if (batch.length === 0) break;
        stored.push(...batch);
      }
    } finally {
      await consumer.close();
    }
    const records: Decoded[] = [];
    for (const record of stored.sort((a, b) => (a.topic === b.topic ? Number(a.offset - b.offset) : a.topic < b.topic ? -1 : 1))) {
      // A control record's key is its table's name, not Avro.
      const key = record.topic === control ? null : await decode(record.key);
      const value = await decode(record.value);
      records.push({
        topic: record.topic,
        offset: record.offset,
        key: key?.value ?? null,
        value: value?.value ?? null,
        valueSchemaId: value?.id ?? null,
        headers: Object.fromEntries(Object.entries(record.headers ?? {}).map(([name, bytes]) => [name, Buffer.from(bytes)])),
      });
    }
    const subjects = await registry.listSubjects();
    const latestSchemas = new Map<string, Json>();
    for (const subject of subjects) latestSchemas.set(subject, JSON.parse((await registry.getLatest(subject))!.schema) as Json);
    // Headers are decoded after the log is closed: every schema they use is fetched now.
    for (const record of records) for (const header of ["__debezium.newkey", "__debezium.oldkey"]) if (record.headers[header]) await decode(record.headers[header]);
    return {
      records,
      schemaOf: (id) => JSON.parse(schemas.get(id)!) as Json,
      typeOf,
      subjects,
      latest: (subject) => latestSchemas.get(subject)!,
      decodeFramed: async (bytes) => (await decode(bytes))!,
    };
  } finally {
    await log.close();
  }
}

const ENVELOPE_FIELDS = ["before", "after", "source", "op", "ts_ms", "ts_us", "ts_ns", "transaction"];

/** What every Debezium consumer relies on, for every value record of a table topic. */
function assertDebeziumEnvelope(records: readonly Decoded[], schemaOf: (id: number) => Json, tableColumns: Readonly<Record<string, readonly string[]>>): void {
  for (const record of records) {
    if (record.value === null) continue;
    const envelope = schemaOf(record.valueSchemaId!);
    assert.deepEqual(
      (envelope.fields as Json[]).map((f) => f.name),
      ENVELOPE_FIELDS,
      `${record.topic}: the value schema is Debezium's envelope`,
    );
    const row = ((envelope.fields as Json[])[0]!.type as Json[])[1] as Json;
    const table = record.topic.split(".").at(-1)!;
    const columns = (row.fields as Json[]).map((f) => f.name as string);
    assert.ok(!columns.some((name) => name.startsWith("__sluice")), `${record.topic}: no Sluice bookkeeping fields in the row record (${columns.join(", ")})`);
    if (tableColumns[table]) assert.deepEqual(columns.slice(0, tableColumns[table].length), tableColumns[table], `${record.topic}: row record = the table's columns`);
    assert.ok(["c", "u", "d", "r"].includes(record.value.op as string), `${record.topic}@${record.offset}: op ${String(record.value.op)} is one a Debezium consumer knows`);
    const source = record.value.source as Json;
    assert.equal(record.value.ts_ns, (record.value.ts_ms as bigint) * 1_000_000n, "envelope ts_ns");
    assert.equal(source.ts_ns, (source.ts_ms as bigint) * 1_000_000n, "source ts_ns");
  }
}

/** A table's truncates: none in its data topic (no keyless record there), all in the control topic, naming the data topic. */
function truncatesOf(records: readonly Decoded[], topic: string, control: string): Json[] {
  assert.ok(!records.some((r) => r.topic === topic && r.key === null), `${topic}: no keyless record (truncates are in ${control})`);
  return records.filter((r) => r.topic === control && r.headers["sluice.topic"]?.toString() === topic).map((r) => r.value!);
}

/**
 * Every transaction seen in the data topics has one BEGIN and one END on the transaction topic, and
 * END's counts are the records a consumer of the data topics meets (value records, not tombstones,
 * not the control topic); its events are numbered 1..n overall and per table. Returns the END of each id.
 */
function assertTransactionsComplete(records: readonly Decoded[], transactionTopic: string, control: string): Map<string, Json> {
  const markers = records.filter((r) => r.topic === transactionTopic);
  const ends = new Map<string, Json>();
  for (const marker of markers) {
    const id = String(marker.value!.id);
    assert.deepEqual({ ...marker.key }, { id }, "the transaction topic's key is the id");
    if (marker.value!.status === "END") {
      assert.ok(!ends.has(id), `one END for ${id}`);
      ends.set(id, marker.value!);
    }
  }
  const events = new Map<string, Json[]>();
  for (const record of records) {
    const block = record.value?.transaction as Json | null | undefined;
    if (record.topic === transactionTopic || record.topic === control || !block) continue;
    const list = events.get(String(block.id)) ?? [];
    list.push({ table: record.topic.split(".").at(-1), total: block.total_order, inTable: block.data_collection_order, op: record.value!.op });
    events.set(String(block.id), list);
  }
  assert.deepEqual([...events.keys()].sort(), [...ends.keys()].sort(), "a BEGIN/END pair for exactly the transactions with events in the data topics");
  for (const [id, list] of events) {
    const end = ends.get(id)!;
    assert.deepEqual(markers.filter((m) => m.value!.id === id).map((m) => m.value!.status), ["BEGIN", "END"], id);
    assert.equal(end.event_count, BigInt(list.length), `${id}: END counts the transaction's records in the data topics`);
    assert.deepEqual(list.map((e) => e.total).sort((a, b) => Number(a) - Number(b)), list.map((_, i) => BigInt(i + 1)), `${id}: total_order 1..n`);
    const perTable = new Map<string, number>();
    for (const e of list) perTable.set(String(e.table), (perTable.get(String(e.table)) ?? 0) + 1);
    assert.deepEqual(
      (end.data_collections as Json[]).map((c) => `${String(c.data_collection).split(".").at(-1)}=${String(c.event_count)}`).sort(),
      [...perTable].map(([table, n]) => `${table}=${n}`).sort(),
      `${id}: END's counts per table`,
    );
  }
  return ends;
}

function snapshotMarkers(records: readonly Decoded[]): string[] {
  return records.filter((r) => r.value?.op === "r").map((r) => `${r.topic.split(".").at(-1)}:${String((r.value!.source as Json).snapshot)}`);
}

async function queryDuck(daemon: SluiceDaemon, sql: string): Promise<Json[] | null> {
  const response = await fetch(`${daemon.url}/sinks/warehouse/query`, { method: "POST", body: sql, signal: AbortSignal.timeout(10_000) });
  if (response.status !== 200) return null;
  return ((await response.json()) as { rows: Json[] }).rows;
}

describe("PostgreSQL topics read as Debezium's", () => {
  const schema = randomName("dbz_pg");
  const source = randomName("src");
  const deployment = randomName("dep");
  const names = { slot: `sluice_${source}`, publication: `sluice_${source}`, schema };
  const dir = tempDir("dbz_pg");
  const big = randomBytes(9_000).toString("base64");
  let client: pg.Client;
  const config = {
    name: deployment,
    sources: [pgSourceConfig(source, [`${schema}.*`], { transaction_metadata: true })],
    // The default cleanup policy (compact): truncates go to the control topic.
    topics: { kind: "embedded", path: join(dir, "log.db") },
    sinks: [{ kind: "duckdb", name: "warehouse", path: join(dir, "warehouse.duckdb"), batch: { max_wait: "100ms" } }],
  };

  before(async () => {
    client = await pgClient();
    await client.query(`CREATE SCHEMA ${schema}`);
    await client.query(`CREATE TABLE ${schema}.docs (id int PRIMARY KEY, title text NOT NULL, body text)`);
    await client.query(`CREATE TABLE ${schema}.full_docs (id int PRIMARY KEY, title text NOT NULL, body text)`);
    await client.query(`ALTER TABLE ${schema}.full_docs REPLICA IDENTITY FULL`);
    await client.query(`CREATE TABLE ${schema}.items (id int PRIMARY KEY, name text NOT NULL)`);
    await client.query(`CREATE TABLE ${schema}.clock (id int PRIMARY KEY, at timetz, ats timetz[])`);
    await client.query(`INSERT INTO ${schema}.clock VALUES (1, '10:23:54.5+05:30', '{10:00:00+02,NULL,08:00:00+00}')`);
    await client.query(`INSERT INTO ${schema}.docs VALUES (1, 't1', $1)`, [big]);
    await client.query(`INSERT INTO ${schema}.full_docs VALUES (1, 't1', $1)`, [big]);
    await client.query(`INSERT INTO ${schema}.items VALUES (1, 'a'), (2, 'b'), (3, 'c')`);
  });

  after(async () => {
    await killAllDaemons();
    await dropPostgres(client, names);
    await client.end();
    removeDir(dir);
  });

  test("every point of the envelope, decoded with plain avsc from the registered schemas; DuckDB still equals PostgreSQL", { timeout: 180_000 }, async () => {
    const daemon = await SluiceDaemon.start(dir, config);
    const t = (name: string) => `"${schema}_${name}"`;
    await waitFor("the snapshot in DuckDB", async () => Number((await queryDuck(daemon, `SELECT count(*) AS n FROM ${t("items")}`))?.[0]?.n) === 3, { daemon, timeoutMs: 90_000 });

    await client.query(`UPDATE ${schema}.docs SET title = 't2' WHERE id = 1`);
    await client.query(`UPDATE ${schema}.full_docs SET title = 't2' WHERE id = 1`);
    await client.query("BEGIN");
    const txid = (await client.query<{ id: string }>("SELECT txid_current()::text AS id")).rows[0]!.id;
    await client.query(`UPDATE ${schema}.items SET id = 10 WHERE id = 1`);
    await client.query(`INSERT INTO ${schema}.docs VALUES (2, 'x', 'y')`);
    await client.query(`UPDATE ${schema}.items SET name = 'b2' WHERE id = 2`);
    await client.query("COMMIT");
    await client.query(`ALTER TABLE ${schema}.items ADD COLUMN tier text DEFAULT 'basic'`);
    await client.query(`INSERT INTO ${schema}.items (id, name) VALUES (20, 'n')`);
    await client.query(`TRUNCATE ${schema}.items`);
    await client.query(`INSERT INTO ${schema}.items VALUES (30, 'after', 'gold')`);
    await client.query(`INSERT INTO ${schema}.clock (id, at) VALUES (2, '23:59:59.999999+14:00'), (3, '00:00:00-12:00'), (4, '24:00:00+00'), (5, '24:00:00-12:00'), (6, '04:53:54.5+00')`);
    const clockSource = (await client.query<{ id: number; at: string }>(`SELECT id, at::text AS at FROM ${schema}.clock ORDER BY id`)).rows;

    await waitFor(
      "DuckDB to hold the source's rows",
      async () => {
        const items = await queryDuck(daemon, `SELECT id, name, tier FROM ${t("items")} ORDER BY id`);
        const docs = await queryDuck(daemon, `SELECT id, title, body FROM ${t("docs")} ORDER BY id`);
        const clock = await queryDuck(daemon, `SELECT count(*) AS n FROM ${t("clock")}`);
        return JSON.stringify(items) === JSON.stringify([{ id: 30, name: "after", tier: "gold" }]) && docs?.length === 2 && docs[0]?.title === "t2" && Number(clock?.[0]?.n) === 6;
      },
      { daemon, timeoutMs: 90_000 },
    );
    const docs = await queryDuck(daemon, `SELECT id, title, body FROM ${t("docs")} ORDER BY id`);
    assert.deepEqual(docs, [
      { id: 1, title: "t2", body: big },
      { id: 2, title: "x", body: "y" },
    ], "Sluice's sink kept the unchanged TOAST value");
    const fullDocs = await queryDuck(daemon, `SELECT id, title, body FROM ${t("full_docs")}`);
    assert.deepEqual(fullDocs, [{ id: 1, title: "t2", body: big }]);
    const clockStored = await queryDuck(daemon, `SELECT id, CAST("at" AS VARCHAR) AS "at" FROM ${t("clock")} ORDER BY id`);
    assert.deepEqual(
      clockStored?.map((r) => `${String(r.id)} ${String(r.at)}`),
      // Sluice writes offsets as ±hh:mm (PostgreSQL's text drops ":00").
      clockSource.map((r) => `${r.id} ${r.at.replace(/([+-]\d\d)$/, "$1:00")}`),
      "DuckDB keeps each timetz with its own offset (from the sluice.special header)",
    );
    await daemon.stop();

    const prefix = `${deployment}.${source}`;
    const read = await readTopics(config, prefix);
    const { records, schemaOf } = read;
    const topic = (name: string) => `${prefix}.${schema}.${name}`;
    const of = (name: string) => records.filter((r) => r.topic === topic(name));
    assertDebeziumEnvelope(records.filter((r) => r.topic !== `${prefix}.transaction` && r.topic !== controlTopic(deployment)), schemaOf, { docs: ["id", "title", "body"], full_docs: ["id", "title", "body"], items: ["id", "name"], clock: ["id", "at", "ats"] });

    // timetz: Debezium's ZonedTime (the time in UTC, ISO-8601), its own offset in the sluice.special header.
    const clockRow = ((read.latest(`${topic("clock")}-value`).fields as Json[])[0]!.type as Json[])[1] as Json;
    const zonedTime = { type: "string", "connect.name": "io.debezium.time.ZonedTime", "connect.version": 1 };
    assert.deepEqual(((clockRow.fields as Json[]).find((f) => f.name === "at")!.type as Json[])[1], zonedTime);
    const clock = of("clock").map((r) => [(r.value!.after as Json).id, (r.value!.after as Json).at, r.headers["sluice.special"] ? JSON.parse(r.headers["sluice.special"].toString()) : null]);
    assert.deepEqual(clock, [
      [1, "04:53:54.5Z", { after: { at: "10:23:54.5+05:30", "ats[0]": "10:00:00+02:00" } }],
      [2, "09:59:59.999999Z", { after: { at: "23:59:59.999999+14:00" } }],
      [3, "12:00:00Z", { after: { at: "00:00:00-12:00" } }],
      [4, "24:00:00Z", null],
      [5, "12:00:00Z", { after: { at: "24:00:00-12:00" } }],
      [6, "04:53:54.5Z", null],
    ]);
    assert.deepEqual([...((of("clock")[0]!.value!.after as Json).ats as unknown[])], ["08:00:00Z", null, "08:00:00Z"]);

    // Unchanged TOAST: Debezium's placeholder under the default replica identity, the value from before under FULL.
    const docUpdate = of("docs").find((r) => r.value?.op === "u")!;
    assert.equal((docUpdate.value!.after as Json).body, "__debezium_unavailable_value");
    assert.equal((docUpdate.value!.after as Json).title, "t2");
    assert.deepEqual(JSON.parse(docUpdate.headers["sluice.unchanged"]!.toString()), { after: ["body"] }, "Sluice's bookkeeping is in a header");
    const fullUpdate = of("full_docs").find((r) => r.value?.op === "u")!;
    assert.equal((fullUpdate.value!.before as Json).body, big);
    assert.equal((fullUpdate.value!.after as Json).body, big, "copied from before, as Debezium");
    assert.equal(fullUpdate.headers["sluice.unchanged"], undefined);

    // A key change: delete (header newkey), its tombstone, create (header oldkey).
    const items = of("items");
    const deleteAt = items.findIndex((r) => r.value?.op === "d" && (r.value.before as Json).id === 1);
    assert.ok(deleteAt >= 0, "the key change's delete");
    const [deleted, tombstone, created] = items.slice(deleteAt, deleteAt + 3) as [Decoded, Decoded, Decoded];
    assert.deepEqual({ ...(await read.decodeFramed(deleted.headers["__debezium.newkey"]!)).value }, { id: 10 });
    assert.deepEqual([tombstone.value, { ...tombstone.key }], [null, { id: 1 }]);
    assert.equal(created.value?.op, "c");
    assert.equal((created.value!.after as Json).id, 10);
    assert.deepEqual({ ...(await read.decodeFramed(created.headers["__debezium.oldkey"]!)).value }, { id: 1 });

    // The transaction block on every event of the transaction, and the transaction topic in Avro.
    const inTransaction = records.filter((r) => (r.value?.transaction as Json | null)?.id === txid);
    assert.deepEqual(
      inTransaction.map((r) => {
        const block = r.value!.transaction as Json;
        return `${r.topic.split(".").at(-1)}:${String(r.value!.op)}:${String(block.total_order)}:${String(block.data_collection_order)}`;
      }).sort(),
      ["docs:c:3:1", "items:c:2:2", "items:d:1:1", "items:u:4:3"],
    );
    const markers = records.filter((r) => r.topic === `${prefix}.transaction`);
    const ofTx = markers.filter((r) => r.value?.id === txid);
    assert.deepEqual(
      ofTx.map((r) => r.value!.status),
      ["BEGIN", "END"],
    );
    assert.equal(ofTx[1]!.value!.event_count, 4n);
    assert.deepEqual(
      (ofTx[1]!.value!.data_collections as Json[]).map((c) => `${String(c.data_collection)}=${String(c.event_count)}`).sort(),
      [`${schema}.docs=1`, `${schema}.items=3`],
    );
    assert.deepEqual({ ...ofTx[0]!.key }, { id: txid });
    assert.ok(read.subjects.includes(`${prefix}.transaction-value`) && read.subjects.includes(`${prefix}.transaction-key`), "the transaction topic's subjects are registered");
    // Every transaction complete, counts as the data topics hold them (the TRUNCATE's transaction, skipped, has none).
    assertTransactionsComplete(records, `${prefix}.transaction`, controlTopic(deployment));

    // Truncates: no op t reaches a Debezium consumer; the control topic holds them (the snapshot's reset, then TRUNCATE).
    const carried = truncatesOf(records, topic("items"), controlTopic(deployment));
    assert.deepEqual(
      carried.map((v) => `${String(v.op)}:${String((v.source as Json).snapshot)}`),
      ["t:true", "t:false"],
    );

    // Snapshot first/last: one first, one last over the snapshot; each table starts and ends marked.
    const marked = snapshotMarkers(records);
    assert.equal(marked.filter((m) => m.endsWith(":first")).length, 1, marked.join(" "));
    assert.equal(marked.filter((m) => m.endsWith(":last")).length, 1, marked.join(" "));
    const itemReads = marked.filter((m) => m.startsWith("items:"));
    assert.match(itemReads[0]!, /:first(_in_data_collection)?$/);
    assert.equal(itemReads[1], "items:true");
    assert.match(itemReads[2]!, /:last(_in_data_collection)?$/);

    // The added column's default is the Avro default: records written before it read as 'basic'.
    const latest = read.latest(`${topic("items")}-value`);
    const row = ((latest.fields as Json[])[0]!.type as Json[])[1] as Json;
    const tier = (row.fields as Json[]).find((f) => f.name === "tier")!;
    assert.deepEqual([tier.type, tier.default], [["string", "null"], "basic"]);
    const old = items.find((r) => r.value?.op === "r")!;
    const reader = avro.Type.forSchema(latest as avro.Schema, { typeHook: typeHook as never, wrapUnions: "auto" });
    const resolved = reader.fromBuffer(read.typeOf(old.valueSchemaId!).toBuffer(old.value), reader.createResolver(read.typeOf(old.valueSchemaId!))) as Json;
    assert.equal((resolved.after as Json).tier, "basic");
  });
});

describe("MariaDB topics read as Debezium's", () => {
  const database = randomName("dbz_my");
  const source = randomName("src");
  const deployment = randomName("dep");
  const dir = tempDir("dbz_my");
  let admin: Connection;
  const config = {
    name: deployment,
    sources: [
      mysqlSourceConfig(source, [`${database}.*`], { transaction_metadata: true }),
    ],
    // The default cleanup policy (compact): truncates go to the control topic.
    topics: { kind: "embedded", path: join(dir, "log.db") },
    sinks: [{ kind: "duckdb", name: "warehouse", path: join(dir, "warehouse.duckdb"), batch: { max_wait: "100ms" } }],
  };

  before(async () => {
    admin = await mysql.createConnection({ host: mariadb.host, port: mariadb.port, user: mariadb.user, password: mariadb.password });
    await admin.query(`CREATE DATABASE \`${database}\``);
    await admin.query(`CREATE TABLE \`${database}\`.items (id INT PRIMARY KEY, name VARCHAR(20) NOT NULL)`);
    await admin.query(`CREATE TABLE \`${database}\`.tags (id INT PRIMARY KEY, tag VARCHAR(20))`);
    await admin.query(`INSERT INTO \`${database}\`.items VALUES (1, 'a'), (2, 'b'), (3, 'c')`);
    await admin.query(`INSERT INTO \`${database}\`.tags VALUES (1, 'x')`);
  });

  after(async () => {
    await killAllDaemons();
    await admin.query(`DROP DATABASE IF EXISTS \`${database}\``);
    await admin.end();
    removeDir(dir);
  });

  test("source block from the binlog, key change headers, truncate kept from Debezium consumers, snapshot first/last, added column default", { timeout: 180_000 }, async () => {
    const daemon = await SluiceDaemon.start(dir, config);
    const t = (name: string) => `"${database}_${name}"`;
    await waitFor("the snapshot in DuckDB", async () => Number((await queryDuck(daemon, `SELECT count(*) AS n FROM ${t("items")}`))?.[0]?.n) === 3, { daemon, timeoutMs: 90_000 });
    const table = `\`${database}\`.items`;
    await admin.query(`UPDATE ${table} SET id = 10 WHERE id = 1`);
    await admin.query(`INSERT INTO ${table} VALUES (4, 'd'), (5, 'e')`);
    // A transaction over two tables, for the transaction block and the transaction topic.
    const tags = `\`${database}\`.tags`;
    await admin.query("BEGIN");
    await admin.query(`INSERT INTO ${tags} VALUES (2, 'y'), (3, 'z')`);
    await admin.query(`UPDATE ${table} SET name = 'b2' WHERE id = 2`);
    await admin.query(`DELETE FROM ${tags} WHERE id = 1`);
    await admin.query(`INSERT INTO ${table} VALUES (6, 'f')`);
    await admin.query("COMMIT");
    const [[{ gtid }]] = (await admin.query("SELECT @@last_gtid AS gtid")) as unknown as [[{ gtid: string }]];
    await admin.query(`ALTER TABLE ${table} ADD COLUMN tier VARCHAR(10) DEFAULT 'basic'`);
    await admin.query(`INSERT INTO ${table} (id, name) VALUES (20, 'n')`);
    await admin.query(`TRUNCATE TABLE ${table}`);
    await admin.query(`INSERT INTO ${table} VALUES (30, 'after', 'gold')`);
    await waitFor(
      "DuckDB to hold the source's rows",
      async () => JSON.stringify(await queryDuck(daemon, `SELECT id, name, tier FROM ${t("items")} ORDER BY id`)) === JSON.stringify([{ id: 30, name: "after", tier: "gold" }]),
      { daemon, timeoutMs: 90_000 },
    );
    await daemon.stop();
    const [[{ serverId }]] = (await admin.query("SELECT @@server_id AS serverId")) as unknown as [[{ serverId: number }]];

    const prefix = `${deployment}.${source}`;
    const read = await readTopics(config, prefix);
    const { records, schemaOf } = read;
    const topic = `${prefix}.${database}.items`;
    assertDebeziumEnvelope(records.filter((r) => r.topic !== controlTopic(deployment) && r.topic !== `${prefix}.transaction`), schemaOf, { items: ["id", "name"], tags: ["id", "tag"] });

    // Transaction metadata: the GTID is the id; each event's place in the transaction, overall and in its table.
    const inTransaction = records.filter((r) => (r.value?.transaction as Json | null | undefined)?.id === gtid);
    assert.deepEqual(
      inTransaction
        .map((r) => {
          const block = r.value!.transaction as Json;
          return `${r.topic.split(".").at(-1)}:${String(r.value!.op)}:${String(block.total_order)}:${String(block.data_collection_order)}`;
        })
        .sort(),
      ["items:c:5:2", "items:u:3:1", "tags:c:1:1", "tags:c:2:2", "tags:d:4:3"],
    );
    for (const r of inTransaction) assert.equal((r.value!.source as Json).gtid, gtid, "source.gtid is the transaction id");
    const ofGtid = records.filter((r) => r.topic === `${prefix}.transaction` && r.value?.id === gtid);
    assert.deepEqual(ofGtid.map((r) => r.value!.status), ["BEGIN", "END"]);
    assert.deepEqual([ofGtid[0]!.value!.event_count, ofGtid[0]!.value!.data_collections], [null, null], "BEGIN has no counts");
    assert.equal(ofGtid[1]!.value!.event_count, 5n);
    assert.deepEqual(
      (ofGtid[1]!.value!.data_collections as Json[]).map((c) => `${String(c.data_collection)}=${String(c.event_count)}`).sort(),
      [`${database}.items=2`, `${database}.tags=3`],
    );
    assert.ok(read.subjects.includes(`${prefix}.transaction-value`) && read.subjects.includes(`${prefix}.transaction-key`), "the transaction topic's subjects are registered");
    assert.equal(read.latest(`${prefix}.transaction-value`)["connect.name"], "io.debezium.connector.common.TransactionMetadataValue");
    const ends = assertTransactionsComplete(records, `${prefix}.transaction`, controlTopic(deployment));
    const truncateGtid = String(((truncatesOf(records, topic, controlTopic(deployment)).find((v) => (v.source as Json).snapshot === "false")!.source as Json).gtid));
    assert.ok(!ends.has(truncateGtid), "TRUNCATE's transaction (a skipped operation only) has no markers");
    const items = records.filter((r) => r.topic === topic);

    // The source block of binlog events: the server, the file, the rows event, the row in it, the GTID.
    const streamed = items.filter((r) => r.value !== null && (r.value.source as Json).snapshot === "false");
    assert.ok(streamed.length >= 5);
    for (const record of streamed) {
      const s = record.value!.source as Json;
      assert.equal(s.connector, "mysql");
      assert.equal(s.server_id, BigInt(serverId));
      assert.match(String(s.file), /\.\d{6}$/, "the binlog file");
      assert.ok((s.pos as bigint) > 4n, "the rows event's offset");
      assert.match(String(s.gtid), /^\d+-\d+-\d+$/, "MariaDB GTID");
    }
    // Snapshot reads: the binlog file and position the snapshot was read at, server 0, row 0, no GTID (Debezium's).
    const reads = items.filter((r) => r.value?.op === "r");
    assert.equal(reads.length, 3);
    for (const record of reads) {
      const s = record.value!.source as Json;
      assert.match(String(s.file), /\.\d{6}$/, "the snapshot's binlog file");
      assert.ok((s.pos as bigint) > 0n, "the snapshot's binlog position");
      assert.deepEqual([s.server_id, s.row, s.gtid], [0n, 0, null]);
    }
    const pair = streamed.filter((r) => r.value!.op === "c" && [4, 5].includes((r.value!.after as Json).id as number));
    assert.deepEqual(
      pair.map((r) => (r.value!.source as Json).row),
      [0, 1],
      "two rows of one rows event: row 0 and 1, same pos",
    );
    assert.equal((pair[0]!.value!.source as Json).pos, (pair[1]!.value!.source as Json).pos);

    // Key change.
    const deleteAt = items.findIndex((r) => r.value?.op === "d" && (r.value.before as Json).id === 1);
    const [deleted, tombstone, created] = items.slice(deleteAt, deleteAt + 3) as [Decoded, Decoded, Decoded];
    assert.deepEqual({ ...(await read.decodeFramed(deleted.headers["__debezium.newkey"]!)).value }, { id: 10 });
    assert.equal(tombstone.value, null);
    assert.deepEqual({ ...(await read.decodeFramed(created.headers["__debezium.oldkey"]!)).value }, { id: 1 });

    // Truncates: the snapshot's reset and TRUNCATE TABLE, both in the control topic, none in the data topic.
    const carried = truncatesOf(records, topic, controlTopic(deployment));
    assert.deepEqual(
      carried.map((v) => `${String(v.op)}:${String((v.source as Json).snapshot)}`),
      ["t:true", "t:false"],
    );

    // Snapshot marks.
    const marked = snapshotMarkers(records);
    assert.equal(marked.filter((m) => m.endsWith(":first")).length, 1, marked.join(" "));
    assert.equal(marked.filter((m) => m.endsWith(":last")).length, 1, marked.join(" "));

    // The added column's default.
    const latest = read.latest(`${topic}-value`);
    const row = ((latest.fields as Json[])[0]!.type as Json[])[1] as Json;
    const tier = (row.fields as Json[]).find((f) => f.name === "tier")!;
    assert.deepEqual([tier.type, tier.default], [["string", "null"], "basic"]);
  });
});
