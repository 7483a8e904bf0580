/**
 * End to end (issue 18, item 1): column transforms at capture, PostgreSQL and MariaDB in one
 * daemon, embedded topic log and built-in registry, DuckDB, ClickHouse and Elasticsearch sinks.
 * The registered value schema reflects each transform (hashed int → string, dropped column
 * absent, null → nullable) and every sink holds only the transformed values, from the snapshot and
 * from streaming. Then a changed transform (hash of a column the registry has as an int) is a
 * schema change checked like any other: BACKWARD refuses it and the table halts at capture.
 */
import assert from "node:assert/strict";
import { createHmac, randomInt } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import mysql from "mysql2/promise";
import type { Connection } from "mysql2/promise";
import type pg from "pg";
import { clickhouse, elasticsearch, mariadb } from "../services/ports.ts";
import type { SluiceDaemon, SourceStatus } from "./helpers.ts";
import { clickhouseQuery, deleteElasticIndices, dropClickHouseDatabase, dropPostgres, esRequest, killAllDaemons, mysqlSourceConfig, pgClient, pgSourceConfig, randomName, removeDir, startReady, tempDir, waitFor } from "./helpers.ts";

const HASH_KEY = `governance-test-key-${randomInt(1e9)}`;
const pgSchema = randomName("gov_pg");
const myDatabase = randomName("gov_my");
const pgSource = randomName("pgsrc");
const mySource = randomName("mysrc");
const deployment = randomName("dep");
const chDatabase = randomName("gov_ch");
const dir = tempDir("governance");
const names = { slot: `sluice_${pgSource}`, publication: `sluice_${pgSource}`, schema: pgSchema };

const transforms = {
  email: { kind: "hash" },
  score: { kind: "hash" },
  phone: { kind: "mask", keep_last: 4 },
  ssn: { kind: "drop" },
  notes: { kind: "truncate", length: 5 },
  internal: { kind: "null" },
};

function config(scoreTransform: Record<string, unknown> = transforms): Record<string, unknown> {
  writeFileSync(join(dir, "hash.key"), `${HASH_KEY}\n`);
  const governance = (table: string) => ({ hash_key_file: "hash.key", tables: { [table]: { transforms: scoreTransform } } });
  return {
    name: deployment,
    sources: [
      pgSourceConfig(pgSource, [`${pgSchema}.*`], { governance: governance(`${pgSchema}.customers`) }),
      mysqlSourceConfig(mySource, [`${myDatabase}.*`], { governance: governance(`${myDatabase}.customers`) }),
    ],
    topics: { kind: "embedded", path: join(dir, "log.db") },
    sinks: [
      { kind: "duckdb", name: "local", path: join(dir, "warehouse.duckdb"), batch: { max_wait: "50ms" } },
      { kind: "clickhouse", name: "warehouse", url: clickhouse.url, user: clickhouse.username, password: clickhouse.password, database: chDatabase, batch: { max_wait: "100ms" } },
      { kind: "elasticsearch", name: "search", nodes: [elasticsearch.url], batch: { max_wait: "100ms" } },
    ],
  };
}

let client: pg.Client;
let admin: Connection;

interface Person {
  id: number;
  email: string;
  phone: string;
  ssn: string;
  notes: string;
  score: number;
  internal: string;
  other: string;
}

const people: Person[] = [
  { id: 1, email: "ann@example.com", phone: "+33 6 12 34 56 78", ssn: "123-45-6789", notes: "first customer", score: 42, internal: "x1", other: "kept" },
  { id: 2, email: "bob@example.com", phone: "555-0100", ssn: "987-65-4321", notes: "hi", score: 7, internal: "x2", other: "also kept" },
];
const streamed: Person = { id: 3, email: "cid@example.com", phone: "0700 900 123", ssn: "555-55-5555", notes: "streamed row", score: -1, internal: "x3", other: "stream" };

const hmac = (text: string) => createHmac("sha256", HASH_KEY).update(text).digest("hex");

/** The row every sink should hold for a person: only the transforms' results. */
function expected(p: Person): Record<string, string | null> {
  return { id: String(p.id), email: hmac(p.email), score: hmac(String(p.score)), phone: "*".repeat(p.phone.length - 4) + p.phone.slice(-4), notes: p.notes.slice(0, 5), internal: null, other: p.other };
}

const COLUMNS = ["id", "email", "score", "phone", "notes", "internal", "other"] as const;
const canonical = (row: Record<string, unknown>) => Object.fromEntries(COLUMNS.map((c) => [c, row[c] === null || row[c] === undefined ? null : String(row[c])]));

before(async () => {
  client = await pgClient();
  await client.query(`CREATE SCHEMA "${pgSchema}"`);
  await client.query(
    `CREATE TABLE "${pgSchema}".customers (id int PRIMARY KEY, email varchar(100) NOT NULL, phone text, ssn text, notes text, score int NOT NULL, internal text NOT NULL, other text)`,
  );
  admin = await mysql.createConnection({ host: mariadb.host, port: mariadb.port, user: mariadb.user, password: mariadb.password });
  await admin.query(`CREATE DATABASE \`${myDatabase}\``);
  await admin.query(
    `CREATE TABLE \`${myDatabase}\`.customers (id INT PRIMARY KEY, email VARCHAR(100) NOT NULL, phone VARCHAR(30), ssn VARCHAR(20), notes TEXT, score INT NOT NULL, internal TEXT NOT NULL, other TEXT)`,
  );
  for (const p of people) await insert(p);
});

after(async () => {
  await killAllDaemons();
  await dropPostgres(client, names).catch(() => undefined);
  await client.end();
  await admin.query(`DROP DATABASE IF EXISTS \`${myDatabase}\``);
  await admin.end();
  await dropClickHouseDatabase(chDatabase).catch(() => undefined);
  await deleteElasticIndices(`${pgSchema}_`).catch(() => undefined);
  await deleteElasticIndices(`${myDatabase}_`).catch(() => undefined);
  removeDir(dir);
});

async function insert(p: Person): Promise<void> {
  const values = [p.id, p.email, p.phone, p.ssn, p.notes, p.score, p.internal, p.other];
  await client.query(`INSERT INTO "${pgSchema}".customers VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, values);
  await admin.query(`INSERT INTO \`${myDatabase}\`.customers VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, values);
}

/** The value schema's row record (Debezium envelope: defined in `before`, which `after` names). */
async function rowFields(daemon: SluiceDaemon, source: string, schema: string): Promise<{ name: string; type: unknown }[]> {
  const subject = `${deployment}.${source}.${schema}.customers-value`;
  const response = await fetch(`${daemon.url}/registry/subjects/${encodeURIComponent(subject)}/versions/latest`, { signal: AbortSignal.timeout(10_000) });
  assert.equal(response.status, 200, `registry subject ${subject}: ${await response.clone().text()}`);
  const envelope = JSON.parse(((await response.json()) as { schema: string }).schema) as { fields: { name: string; type: unknown }[] };
  const beforeField = envelope.fields.find((f) => f.name === "before");
  assert.ok(beforeField, `no before field in ${subject}`);
  const record = (beforeField.type as unknown[]).find((t) => typeof t === "object" && t !== null) as { fields: { name: string; type: unknown }[] };
  return record.fields;
}

const typeName = (type: unknown): string => {
  const branches = Array.isArray(type) ? type : [type];
  return branches
    .map((t) => (typeof t === "string" ? t : ((t as { type: string }).type ?? "?")))
    .filter((t) => t !== "null")
    .join("|");
};
const nullable = (type: unknown) => Array.isArray(type) && type.includes("null");

async function duckRows(daemon: SluiceDaemon, schema: string): Promise<Record<string, string | null>[] | null> {
  const response = await fetch(`${daemon.url}/sinks/local/query`, { method: "POST", body: `SELECT * FROM "${schema}_customers" ORDER BY id`, signal: AbortSignal.timeout(10_000) });
  if (response.status !== 200) return null;
  return ((await response.json()) as { rows: Record<string, unknown>[] }).rows.map(canonical);
}

async function clickhouseRows(schema: string): Promise<Record<string, string | null>[] | null> {
  try {
    const text = (await clickhouseQuery(`SELECT * FROM \`${chDatabase}\`.\`${schema}_customers\` ORDER BY id FORMAT JSONEachRow`)).toString("utf8");
    return text
      .split("\n")
      .filter((line) => line.trim() !== "")
      .map((line) => canonical(JSON.parse(line) as Record<string, unknown>));
  } catch {
    return null;
  }
}

async function elasticRows(schema: string): Promise<{ rows: Record<string, string | null>[]; sources: Record<string, unknown>[] } | null> {
  const alias = `${schema}_customers`.toLowerCase();
  await esRequest("POST", `/${alias}/_refresh`);
  const answer = await esRequest("POST", `/${alias}/_search`, { size: 100, sort: [{ id: "asc" }] });
  if (answer.status !== 200) return null;
  const sources = (answer.json as { hits: { hits: { _source: Record<string, unknown> }[] } }).hits.hits.map((h) => h._source);
  return { rows: sources.map(canonical), sources };
}

async function sinksHold(daemon: SluiceDaemon, schema: string, want: Person[]): Promise<void> {
  const wanted = JSON.stringify(want.map(expected));
  await waitFor(`DuckDB ${schema}_customers transformed`, async () => JSON.stringify(await duckRows(daemon, schema)) === wanted, { daemon, timeoutMs: 90_000 });
  await waitFor(`ClickHouse ${schema}_customers transformed`, async () => JSON.stringify(await clickhouseRows(schema)) === wanted, { daemon, timeoutMs: 90_000 });
  await waitFor(`Elasticsearch ${schema}_customers transformed`, async () => JSON.stringify((await elasticRows(schema))?.rows) === wanted, { daemon, timeoutMs: 90_000 });
  // The dropped column is nowhere, and no sink ever saw a clear value.
  const duck = await fetch(`${daemon.url}/sinks/local/query`, { method: "POST", body: `SELECT * FROM "${schema}_customers"`, signal: AbortSignal.timeout(10_000) });
  const duckText = await duck.text();
  const es = JSON.stringify((await elasticRows(schema))!.sources);
  const ch = (await clickhouseQuery(`SELECT * FROM \`${chDatabase}\`.\`${schema}_customers\` FORMAT JSONEachRow`)).toString("utf8");
  for (const text of [duckText, es, ch]) {
    assert.doesNotMatch(text, /"ssn"/, "the dropped column reached a sink");
    for (const p of want) {
      assert.ok(!text.includes(p.email) && !text.includes(p.ssn) && !text.includes(p.notes.length > 5 ? p.notes : "\u0000"), `a clear value of row ${p.id} reached a sink: ${text.slice(0, 300)}`);
    }
  }
}

test("transforms: registry schemas and every sink (DuckDB, ClickHouse, Elasticsearch) see only their results, PostgreSQL and MariaDB", { timeout: 420_000 }, async () => {
  let daemon = await startReady(dir, config(), "run1");
  for (const [source, schema] of [
    [pgSource, pgSchema],
    [mySource, myDatabase],
  ] as const) {
    await sinksHold(daemon, schema, people);
    const fields = await rowFields(daemon, source, schema);
    const byName = new Map(fields.map((f) => [f.name, f.type]));
    assert.deepEqual(
      fields.map((f) => f.name),
      ["id", "email", "phone", "notes", "score", "internal", "other"],
      `${source}: ssn is dropped from the registered schema`,
    );
    assert.equal(typeName(byName.get("score")), "string", `${source}: a hashed int is a string`);
    assert.equal(nullable(byName.get("score")), false);
    assert.equal(typeName(byName.get("email")), "string");
    assert.equal(nullable(byName.get("internal")), true, `${source}: a nulled NOT NULL column becomes nullable`);
    assert.equal(typeName(byName.get("id")), "int");
  }

  // Streaming: an insert and an update go through the same transforms.
  await insert(streamed);
  await client.query(`UPDATE "${pgSchema}".customers SET email = 'ann2@example.com', ssn = '000-00-0000' WHERE id = 1`);
  await admin.query(`UPDATE \`${myDatabase}\`.customers SET email = 'ann2@example.com', ssn = '000-00-0000' WHERE id = 1`);
  // An ssn no sink text can hold by chance ("000" alone is in a random hash or number now and then, and failed the "no clear value" check).
  const updated = [{ ...people[0]!, email: "ann2@example.com", ssn: "000-00-0000" }, people[1]!, streamed];
  await sinksHold(daemon, pgSchema, updated);
  await sinksHold(daemon, myDatabase, updated);
  await daemon.stop();

  // A transform change is a schema change: hashing `other` is fine (string → string), un-hashing
  // `score` makes it an int again, which BACKWARD refuses for the subject that has it as a string.
  const { score: _score, ...withoutScore } = transforms;
  daemon = await startReady(dir, config({ ...withoutScore }), "run2");
  await client.query(`UPDATE "${pgSchema}".customers SET other = 'changed' WHERE id = 2`);
  const halt = await waitFor(
    "the PostgreSQL table halted by the transform change",
    async () => ((await daemon.status()).sources as SourceStatus[]).find((s) => s.name === pgSource)?.halted.find((h) => h.table === `${pgSchema}.customers`),
    { daemon, timeoutMs: 90_000 },
  );
  assert.equal(halt.code, "SCHEMA_INCOMPATIBLE");
  await daemon.stop();
});
