/**
 * Issue 15: an unmodified third-party Debezium consumer reads Sluice's topics. PostgreSQL and
 * MariaDB → the real daemon → Kafka with the default (Debezium-compatible) topics; then Apache
 * Flink's own `debezium-avro-confluent` format (local mini-cluster, test/flink/) materialises every
 * table from its topic, with schemas from the daemon's registry, and each table Flink holds must
 * equal the source row by row. Both databases' workloads are captured first (a test each, the
 * daemons left running), then one Flink run reads every topic of both (one JVM and mini-cluster
 * start instead of two) and a test per database compares. The workload has a snapshot, an update leaving a TOAST value
 * unchanged (REPLICA IDENTITY FULL, and DEFAULT), a primary-key change, a column added with a
 * DEFAULT, a multi-statement transaction over several tables and a truncate, and a table of types;
 * the transaction-metadata topic is read with Flink's plain `avro-confluent` format.
 *
 * What a Debezium consumer cannot see, and neither can Flink on Debezium's own topics:
 * - truncates, skipped by default (`skipped_operations: ["t"]`): Flink keeps the truncated rows;
 * - an update's old row under PostgreSQL's REPLICA IDENTITY DEFAULT (`before` is null): Flink's
 *   format refuses such updates and asks for REPLICA IDENTITY FULL.
 * Both are asserted as such. The first Flink run fetches its jars from Maven Central (cached).
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { TestContext } from "node:test";
import mysql from "mysql2/promise";
import type { Connection } from "mysql2/promise";
import type pg from "pg";
import { kafka, mariadb } from "../services/ports.ts";
import type { FlinkState, FlinkTable } from "../flink/flink.ts";
import { buildFlink, materialiseWithFlink } from "../flink/flink.ts";
import {
  deleteKafkaDeployment,
  dropPostgres,
  killAllDaemons,
  mysqlSourceConfig,
  pgClient,
  pgSourceConfig,
  randomName,
  removeDir,
  Rng,
  SluiceDaemon,
  tempDir,
  waitFor,
  waitSourcesPast,
} from "./helpers.ts";

/** A row as Flink's program prints it: every value as text, arrays as arrays. */
type Row = Record<string, unknown>;

const topicsConfig = { kind: "kafka", brokers: [...kafka.brokers], partitions: 2, transactions: true };

/** Flink's rows, values as the program prints them (text), sorted by `id`. */
function flinkRows(state: FlinkState, table: string): Row[] {
  const result = state[table];
  assert.ok(result, `Flink reported ${table}`);
  assert.equal(result.error, undefined, `Flink's job for ${table} failed: ${result.error}`);
  return result.rows.map((row) => row as Row).sort((a, b) => Number(a.id) - Number(b.id));
}

/** Debezium's ZonedTimestamp text of a UTC timestamp PostgreSQL printed as `YYYY-MM-DDTHH:MI:SS.USZ`: the fraction without trailing zeros. */
function zoned(text: unknown): string | null {
  return typeof text !== "string" ? null : text.replace(/\.?0+Z$/, "Z");
}

/**
 * Rows 2 and 10 of `items` were last written before `tier` was added: their newest records carry no
 * `tier`, and Avro fills a field the writer lacks from the READER's schema, which Flink derives from
 * its DDL (nullable: default null). So Flink shows null where the table has the DEFAULT 'basic',
 * on Debezium's topics too; a reader using the latest registered schema gets 'basic'
 * (debezium-envelope.int.test.ts).
 */
function readerDefaults(items: Row[]): Row[] {
  return items.map((row) => (row.id === "2" || row.id === "10" ? { ...row, tier: null } : row));
}

/** Java's and the databases' texts of one float (`1.0E10`, `1e+10`) as the same text. */
function float(text: unknown): string | null {
  return typeof text === "string" ? String(Number(text)) : null;
}

/** Microseconds of a MySQL TIME text (`-01:02:03.500000`, `838:59:59`), as Debezium's MicroTime. */
function timeMicros(text: unknown): string | null {
  if (typeof text !== "string") return null;
  const [, sign, h, m, sec, frac] = /^(-?)(\d+):(\d+):(\d+)(?:\.(\d+))?$/.exec(text)!;
  const micros = ((BigInt(h!) * 60n + BigInt(m!)) * 60n + BigInt(sec!)) * 1_000_000n + BigInt((frac ?? "").padEnd(6, "0"));
  return String(sign ? -micros : micros);
}

/**
 * A random workload on `table` (id int key, v int NOT NULL, note text): inserts, updates, deletes
 * and primary-key changes in transactions of 1-5 statements, some notes TOAST-sized. Keeps to
 * statements that succeed, so `rows` stays the table's keys.
 */
async function churn(exec: (sql: string) => Promise<unknown>, rng: Rng, table: string, rows: Set<number>): Promise<void> {
  const note = () => (rng.chance(0.1) ? "NULL" : `'${rng.chance(0.05) ? rng.bytes(6_000).toString("base64") : `n${rng.int(0, 1e6)}`}'`);
  const freeId = () => {
    for (;;) {
      const id = rng.int(1, 80);
      if (!rows.has(id)) return id;
    }
  };
  for (let transaction = 0; transaction < 40; transaction++) {
    await exec("BEGIN");
    for (let statement = rng.int(1, 5); statement > 0; statement--) {
      const existing = [...rows];
      const op = existing.length < 5 ? "insert" : rng.pick(["insert", "update", "update", "note", "delete", "key"]);
      if (op === "insert") {
        const id = freeId();
        await exec(`INSERT INTO ${table} VALUES (${id}, ${rng.int(-1000, 1000)}, ${note()})`);
        rows.add(id);
      } else if (op === "update") await exec(`UPDATE ${table} SET v = v + ${rng.int(1, 9)} WHERE id = ${rng.pick(existing)}`);
      else if (op === "note") await exec(`UPDATE ${table} SET note = ${note()} WHERE id = ${rng.pick(existing)}`);
      else if (op === "delete") {
        const id = rng.pick(existing);
        await exec(`DELETE FROM ${table} WHERE id = ${id}`);
        rows.delete(id);
      } else {
        const [from, to] = [rng.pick(existing), freeId()];
        await exec(`UPDATE ${table} SET id = ${to} WHERE id = ${from}`);
        rows.delete(from);
        rows.add(to);
      }
    }
    await exec("COMMIT");
  }
}

/** The transaction-metadata topic, read with Flink's plain `avro-confluent` format: BEGIN and END of each transaction. */
function transactionTable(topic: string): FlinkTable {
  return {
    name: "transactions",
    topic,
    format: "avro-confluent",
    columns: "`status` STRING NOT NULL, `id` STRING NOT NULL, `event_count` BIGINT, `data_collections` ARRAY<ROW<`data_collection` STRING NOT NULL, `event_count` BIGINT NOT NULL>>, `ts_ms` BIGINT NOT NULL",
    key: ["id", "status"],
  };
}

/** Flink read BEGIN and END of transaction `id`, END counting the events of each table (a key change's delete and create both count). */
function assertTransaction(state: FlinkState, id: string, perTable: Record<string, number>): void {
  const result = state["transactions"];
  assert.ok(result, "Flink reported the transaction topic");
  assert.equal(result.error, undefined, `Flink's job for the transaction topic failed: ${result.error}`);
  const markers = result.rows.filter((row) => row.id === id);
  assert.deepEqual(markers.map((row) => row.status).sort(), ["BEGIN", "END"], `BEGIN and END of ${id} (read: ${JSON.stringify(result.rows.slice(0, 6))})`);
  const begin = markers.find((row) => row.status === "BEGIN")!;
  const end = markers.find((row) => row.status === "END")!;
  assert.deepEqual([begin.event_count, begin.data_collections], [null, null], "BEGIN has no counts");
  const total = Object.values(perTable).reduce((a, b) => a + b, 0);
  assert.equal(end.event_count, String(total), `END of ${id}: its events`);
  const collections = (end.data_collections as unknown[]).map((c) => (Array.isArray(c) ? c : [(c as Row).data_collection, (c as Row).event_count]).join("="));
  assert.deepEqual(collections.sort(), Object.entries(perTable).map(([table, n]) => `${table}=${n}`).sort(), `END of ${id}: events per table`);
}

function byId(rows: Row[]): Row[] {
  return rows.sort((a, b) => Number(a.id) - Number(b.id));
}

function summary(rows: Row[]): string {
  return JSON.stringify(rows.map((row) => Object.fromEntries(Object.entries(row).map(([k, v]) => [k, typeof v === "string" && v.length > 60 ? `${v.slice(0, 20)}…(${v.length})` : v]))), null, 1);
}

function assertSameRows(actual: Row[], expected: Row[], what: string): void {
  assert.equal(actual.length, expected.length, `${what}: row count\nFlink: ${summary(actual)}\nsource: ${summary(expected)}`);
  for (let i = 0; i < expected.length; i++) assert.deepEqual(actual[i], expected[i], `${what}: row ${expected[i]!.id}\nFlink: ${summary([actual[i]!])}\nsource: ${summary([expected[i]!])}`);
}

/** A database's captured workload: the tables Flink is to read, from the registry of the daemon that wrote them, and what to assert of what Flink made of them. */
interface Captured {
  readonly tables: readonly FlinkTable[];
  readonly registry: string;
  readonly daemon: SluiceDaemon;
  readonly check: (state: FlinkState) => void;
}
type Database = "PostgreSQL" | "MariaDB";
const workloads = new Map<Database, Captured>();
const flinkDir = tempDir("flink");
/** Each database's cleanup, run after Flink has read both (a describe's own after() would run before that). */
const cleanups: (() => Promise<void>)[] = [];
let flinkRun: Promise<FlinkState> | null = null;

/**
 * One Flink run reads the topics of every database's workload (one JVM and mini-cluster start, not one per
 * database): its tables named `<database>_<table>`, each with its daemon's registry. The daemons stop after it.
 */
function readWithFlink(t: TestContext): Promise<FlinkState> {
  flinkRun ??= (async () => {
    const tables = [...workloads].flatMap(([database, { tables, registry }]) => tables.map((table) => ({ ...table, name: `${database}_${table.name}`, registry })));
    const started = Date.now();
    try {
      const state = await materialiseWithFlink({ brokers: kafka.brokers.join(","), tables, timeoutSeconds: 240 }, join(flinkDir, "flink.json"));
      t.diagnostic(`Flink read ${tables.length} topics through in ${Date.now() - started} ms`);
      return state;
    } finally {
      for (const { daemon } of workloads.values()) await daemon.stop();
    }
  })();
  return flinkRun;
}

/** What Flink made of one database's tables, by their own names. */
function stateOf(state: FlinkState, database: Database): FlinkState {
  return Object.fromEntries(Object.entries(state).flatMap(([name, table]) => (name.startsWith(`${database}_`) ? [[name.slice(database.length + 1), table]] : [])));
}

before(async () => {
  // The first build fetches ~160 MB of jars: outside every test's own timeout.
  await buildFlink();
});

after(async () => {
  for (const cleanup of cleanups) await cleanup();
  removeDir(flinkDir);
});

describe("Flink's debezium-avro-confluent format materialises PostgreSQL tables from Sluice's topics", () => {
  const schema = randomName("flink_pg");
  const source = randomName("src");
  const deployment = randomName("dep");
  const names = { slot: `sluice_${source}`, publication: `sluice_${source}`, schema };
  const dir = tempDir("flink_pg");
  const big = randomBytes(9_000).toString("base64");
  let client: pg.Client;
  const config = { name: deployment, sources: [pgSourceConfig(source, [`${schema}.*`], { transaction_metadata: true })], topics: topicsConfig };

  before(async () => {
    client = await pgClient();
    await client.query(`CREATE SCHEMA ${schema}`);
    // REPLICA IDENTITY FULL: Flink's format needs every update's old row.
    await client.query(`CREATE TABLE ${schema}.docs (id int PRIMARY KEY, title text NOT NULL, body text, price numeric(12,2), flag boolean, born date, seen timestamptz, meta jsonb)`);
    await client.query(`ALTER TABLE ${schema}.docs REPLICA IDENTITY FULL`);
    await client.query(`CREATE TABLE ${schema}.plain_docs (id int PRIMARY KEY, title text NOT NULL, body text)`);
    await client.query(`CREATE TABLE ${schema}.items (id int PRIMARY KEY, name text NOT NULL)`);
    // REPLICA IDENTITY DEFAULT without updates: a delete's before holds only the key, which is all Flink needs.
    await client.query(`CREATE TABLE ${schema}.logs (id int PRIMARY KEY, line text NOT NULL, at date NOT NULL)`);
    await client.query(`CREATE TABLE ${schema}.churn (id int PRIMARY KEY, v int NOT NULL, note text)`);
    await client.query(`ALTER TABLE ${schema}.churn REPLICA IDENTITY FULL`);
    await client.query(`INSERT INTO ${schema}.churn SELECT i, i, 'n' || i FROM generate_series(1, 20) AS i`);
    await client.query(`ALTER TABLE ${schema}.items REPLICA IDENTITY FULL`);
    await client.query(`CREATE TABLE ${schema}.events (id int PRIMARY KEY, what text)`);
    await client.query(`ALTER TABLE ${schema}.events REPLICA IDENTITY FULL`);
    await client.query(`INSERT INTO ${schema}.docs VALUES (1, 't1', $1, 12.5, true, '2024-02-29', '2023-11-14 22:13:20.123456+00', '{"a": [1, 2.5, "x"], "b": null}'), (2, 'small', 'short', NULL, NULL, NULL, NULL, NULL)`, [big]);
    await client.query(`INSERT INTO ${schema}.plain_docs VALUES (1, 't1', $1)`, [big]);
    await client.query(`INSERT INTO ${schema}.items VALUES (1, 'a'), (2, 'b'), (3, 'c')`);
    await client.query(`INSERT INTO ${schema}.events VALUES (1, 'old 1'), (2, 'old 2')`);
    await client.query(`INSERT INTO ${schema}.logs VALUES (1, 'one', '2020-01-01'), (2, 'two', '2020-01-02')`);
    await client.query(`CREATE TYPE ${schema}.mood AS ENUM ('sad', 'happy')`);
    await client.query(
      `CREATE TABLE ${schema}.kinds (id int PRIMARY KEY, sm smallint, bi bigint, f4 real, f8 float8, u uuid, b bytea, ts timestamp(6), tms timestamp(3), t time(6), tags text[], nums int[], mood ${schema}.mood, iv interval, bits bit(1))`,
    );
    await client.query(`ALTER TABLE ${schema}.kinds REPLICA IDENTITY FULL`);
    await client.query(
      `INSERT INTO ${schema}.kinds VALUES
         (1, -32768, -9223372036854775808, 3.4028235e38, 1e308, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\\x00ff10', '1970-01-01 00:00:00.000001', '2024-02-29 23:59:59.999', '23:59:59.999999', '{a,NULL,"x y"}', '{1,NULL,-3}', 'happy', '3 days 04:05:06.789', B'1'),
         (2, NULL, NULL, 'NaN', '-Infinity', NULL, '\\x', '1900-01-01 12:00:00', NULL, '00:00:00', '{}', '{}', NULL, '-1 day', B'0')`,
    );
  });

  cleanups.push(async () => {
    await killAllDaemons();
    await dropPostgres(client, names);
    await client.end();
    await deleteKafkaDeployment(deployment).catch(() => undefined);
    removeDir(dir);
  });

  test("snapshot, unchanged TOAST, key change, added column with a default, a transaction and a truncate, captured", { timeout: 600_000 }, async () => {
    const daemon = await SluiceDaemon.start(dir, config);
    await waitSourcesPast(daemon, client, 180_000);
    const s = schema;
    // Unchanged TOAST: the body is not in the WAL record, only the title changed.
    await client.query(`UPDATE ${s}.docs SET title = 't2', price = 13.75 WHERE id = 1`);
    await client.query(`UPDATE ${s}.plain_docs SET title = 't2' WHERE id = 1`);
    // A primary-key change.
    await client.query(`UPDATE ${s}.items SET id = 10 WHERE id = 1`);
    // A multi-statement transaction over five tables.
    await client.query("BEGIN");
    const txid = (await client.query<{ id: string }>("SELECT txid_current()::text AS id")).rows[0]!.id;
    await client.query(`INSERT INTO ${s}.items VALUES (4, 'd')`);
    await client.query(`UPDATE ${s}.items SET name = 'b2' WHERE id = 2`);
    await client.query(`DELETE FROM ${s}.items WHERE id = 3`);
    await client.query(`UPDATE ${s}.docs SET flag = false, born = '1999-12-31' WHERE id = 2`);
    await client.query(`INSERT INTO ${s}.events VALUES (3, 'old 3')`);
    await client.query(`INSERT INTO ${s}.logs VALUES (3, 'three', '2020-01-03')`);
    await client.query(`UPDATE ${s}.kinds SET f8 = -0.0, nums = '{7}', ts = '2262-04-11 23:47:16.854775' WHERE id = 1`);
    await client.query(`INSERT INTO ${s}.kinds VALUES (3, 32767, 9223372036854775807, '-Infinity', 2.5e-300, '00000000-0000-0000-0000-000000000000', NULL, NULL, '1969-12-31 23:59:59.999', NULL, NULL, '{NULL}', 'sad', '00:00:00.000001', NULL)`);
    await client.query(`DELETE FROM ${s}.logs WHERE id = 1`);
    await client.query("COMMIT");
    // A column added with a default: rows written before it read as 'basic' from their old records.
    await client.query(`ALTER TABLE ${s}.items ADD COLUMN tier text DEFAULT 'basic'`);
    await client.query(`INSERT INTO ${s}.items VALUES (5, 'e', 'gold')`);
    await client.query(`UPDATE ${s}.items SET tier = 'silver' WHERE id = 4`);
    // A truncate, then new rows: a Debezium consumer does not see the truncate.
    const truncated = (await client.query<Row>(`SELECT id::text, what FROM ${s}.events ORDER BY id`)).rows;
    await client.query(`TRUNCATE ${s}.events`);
    await client.query(`INSERT INTO ${s}.events VALUES (7, 'new 7')`);
    const rng = new Rng();
    await churn((sql) => client.query(sql), rng, `${s}.churn`, new Set(Array.from({ length: 20 }, (_, i) => i + 1)));
    await client.query(`INSERT INTO ${s}.docs VALUES (3, 'last', 'x', 0.01, true, '0001-01-01', '2038-01-19 03:14:08+00', '[]')`);
    await waitSourcesPast(daemon, client, 180_000);

    const docs = byId(
      (
        await client.query<Row>(
          `SELECT id::text, title, body, price::text, flag::text, born::text, to_char(seen AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS seen, meta::text FROM ${s}.docs`,
        )
      ).rows,
    ).map((row) => ({ ...row, seen: zoned(row.seen) }));
    const items = byId((await client.query<Row>(`SELECT id::text, name, tier FROM ${s}.items`)).rows);
    const events = byId((await client.query<Row>(`SELECT id::text, what FROM ${s}.events`)).rows);
    const logs = byId((await client.query<Row>(`SELECT id::text, line, at::text FROM ${s}.logs`)).rows);
    const churned = byId((await client.query<Row>(`SELECT id::text, v::text, note FROM ${s}.churn`)).rows);
    const micros = (column: string, unit = 1_000_000) => `(extract(epoch from ${column}) * ${unit})::bigint::text AS ${column}`;
    const kinds = byId(
      (
        await client.query<Row>(
          `SELECT id::text, sm::text, bi::text, f4::text, f8::text, u::text, encode(b, 'hex') AS b, ${micros("ts")}, ${micros("tms", 1000)}, ${micros("t")},
                  to_json(tags)::text AS tags, to_json(nums)::text AS nums, mood::text, ${micros("iv")}, (bits = B'1')::text AS bits FROM ${s}.kinds`,
        )
      ).rows,
    ).map((row) => ({
      ...row,
      f4: float(row.f4),
      f8: float(row.f8),
      tags: row.tags === null ? null : JSON.parse(row.tags as string),
      nums: row.nums === null ? null : (JSON.parse(row.nums as string) as (number | null)[]).map((n) => (n === null ? null : String(n))),
    }));
    const prefix = `${deployment}.${source}.${s}`;
    const tables: FlinkTable[] = [
      {
        name: "docs",
        topic: `${prefix}.docs`,
        columns: "`id` INT NOT NULL, `title` STRING NOT NULL, `body` STRING, `price` DECIMAL(12, 2), `flag` BOOLEAN, `born` DATE, `seen` STRING, `meta` STRING",
        key: ["id"],
      },
      { name: "items", topic: `${prefix}.items`, columns: "`id` INT NOT NULL, `name` STRING NOT NULL, `tier` STRING", key: ["id"] },
      // The truncated rows stay in Flink: truncates are skipped for Debezium consumers.
      { name: "events", topic: `${prefix}.events`, columns: "`id` INT NOT NULL, `what` STRING", key: ["id"] },
      { name: "logs", topic: `${prefix}.logs`, columns: "`id` INT NOT NULL, `line` STRING NOT NULL, `at` DATE NOT NULL", key: ["id"] },
      { name: "churn", topic: `${prefix}.churn`, columns: "`id` INT NOT NULL, `v` INT NOT NULL, `note` STRING", key: ["id"] },
      // Debezium's adaptive temporal types: Timestamp (ms), MicroTimestamp, MicroTime and MicroDuration are longs.
      {
        name: "kinds",
        topic: `${prefix}.kinds`,
        columns:
          "`id` INT NOT NULL, `sm` SMALLINT, `bi` BIGINT, `f4` FLOAT, `f8` DOUBLE, `u` STRING, `b` BYTES, `ts` BIGINT, `tms` BIGINT, `t` BIGINT, `tags` ARRAY<STRING>, `nums` ARRAY<INT>, `mood` STRING, `iv` BIGINT, `bits` BOOLEAN",
        key: ["id"],
      },
      { name: "plain_docs", topic: `${prefix}.plain_docs`, columns: "`id` INT NOT NULL, `title` STRING NOT NULL, `body` STRING", key: ["id"] },
      transactionTable(`${deployment}.${source}.transaction`),
    ];
    workloads.set("PostgreSQL", {
      tables,
      registry: `${daemon.url}/registry`,
      daemon,
      check: (state) => {
        assertSameRows(flinkRows(state, "docs"), docs, "docs (REPLICA IDENTITY FULL, unchanged TOAST copied from before)");
        assertSameRows(flinkRows(state, "items"), readerDefaults(items), "items (key change, transaction, added column with DEFAULT)");
        assertSameRows(flinkRows(state, "events"), byId([...truncated, ...events]), "events (the truncate is not seen, as on Debezium's topics)");
        assertSameRows(flinkRows(state, "logs"), logs, "logs (REPLICA IDENTITY DEFAULT, inserts and deletes)");
        assertSameRows(
          flinkRows(state, "kinds").map((row) => ({ ...row, f4: float(row.f4), f8: float(row.f8) })),
          kinds,
          "kinds",
        );
        assertSameRows(flinkRows(state, "churn"), churned, `churn (random workload, seed ${rng.seed})`);
        assertTransaction(state, txid, { [`${s}.items`]: 3, [`${s}.docs`]: 1, [`${s}.events`]: 1, [`${s}.logs`]: 2, [`${s}.kinds`]: 2 });
        // REPLICA IDENTITY DEFAULT: the update has no old row, as from Debezium, and Flink's format says what to do.
        assert.match(String(state["plain_docs"]?.error), /REPLICA IDENTITY to FULL/, "Flink refuses an update without its old row, as on Debezium's topics");
      },
    });
  });
});

describe("Flink's debezium-avro-confluent format materialises MariaDB tables from Sluice's topics", () => {
  const database = randomName("flink_my");
  const source = randomName("src");
  const deployment = randomName("dep");
  const dir = tempDir("flink_my");
  let admin: Connection;
  const config = { name: deployment, sources: [mysqlSourceConfig(source, [`${database}.*`], { transaction_metadata: true })], topics: topicsConfig };
  const big = randomBytes(40_000).toString("base64");

  before(async () => {
    admin = await mysql.createConnection({ host: mariadb.host, port: mariadb.port, user: mariadb.user, password: mariadb.password, dateStrings: true, supportBigNumbers: true, bigNumberStrings: true });
    await admin.query(`CREATE DATABASE \`${database}\``);
    await admin.query(`CREATE TABLE \`${database}\`.docs (id INT PRIMARY KEY, title VARCHAR(20) NOT NULL, body LONGTEXT, price DECIMAL(12,2), born DATE, seen TIMESTAMP(6) NULL, at DATETIME(6))`);
    await admin.query(`CREATE TABLE \`${database}\`.items (id INT PRIMARY KEY, name VARCHAR(20) NOT NULL)`);
    await admin.query(`CREATE TABLE \`${database}\`.events (id INT PRIMARY KEY, what VARCHAR(20))`);
    await admin.query(`CREATE TABLE \`${database}\`.churn (id INT PRIMARY KEY, v INT NOT NULL, note MEDIUMTEXT)`);
    await admin.query(`INSERT INTO \`${database}\`.churn VALUES ${Array.from({ length: 20 }, (_, i) => `(${i + 1}, ${i + 1}, 'n${i + 1}')`).join(", ")}`);
    await admin.query(`INSERT INTO \`${database}\`.docs VALUES (1, 't1', ?, 12.5, '2024-02-29', '2023-11-14 22:13:20.123456', '2023-11-14 22:13:20.5'), (2, 'small', 'short', NULL, NULL, NULL, NULL)`, [big]);
    await admin.query(`INSERT INTO \`${database}\`.items VALUES (1, 'a'), (2, 'b'), (3, 'c')`);
    await admin.query(`INSERT INTO \`${database}\`.events VALUES (1, 'old 1'), (2, 'old 2')`);
    await admin.query(
      `CREATE TABLE \`${database}\`.kinds (id INT PRIMARY KEY, ti TINYINT, ub BIGINT UNSIGNED, d DOUBLE, bl BLOB, j JSON, e ENUM('sad', 'happy'), st SET('x', 'y', 'z'), y YEAR, tm TIME(6), dt DATETIME)`,
    );
    await admin.query(
      `INSERT INTO \`${database}\`.kinds VALUES
         (1, -128, 18446744073709551615, 1e308, X'00ff10', '{"a": [1, 2.5], "b": null}', 'happy', 'x,z', 2155, '-838:59:59.000000', '1000-01-01 00:00:00'),
         (2, NULL, 0, -2.5e-300, X'', '[]', NULL, '', 1901, '00:00:00.000001', '9999-12-31 23:59:59')`,
    );
  });

  cleanups.push(async () => {
    await killAllDaemons();
    await admin.query(`DROP DATABASE IF EXISTS \`${database}\``);
    await admin.end();
    await deleteKafkaDeployment(deployment).catch(() => undefined);
    removeDir(dir);
  });

  test("snapshot, key change, added column with a default, a transaction and a truncate, captured", { timeout: 600_000 }, async () => {
    await admin.query("SET time_zone = '+00:00'");
    const daemon = await SluiceDaemon.start(dir, config);
    const d = `\`${database}\``;
    const captured = (table: string, op: string) => daemon.metric("sluice_changes_captured_total", { table: `${database}.${table}`, op });
    // The snapshot first: changes made before it would reach the topics only as its reads.
    for (const [table, rows] of [["docs", 2], ["items", 3], ["events", 2], ["kinds", 2], ["churn", 20]] as const) {
      await waitFor(`the snapshot of ${table}`, async () => (await captured(table, "r")) >= rows, { daemon, timeoutMs: 180_000 });
    }
    await admin.query(`UPDATE ${d}.docs SET title = 't2', price = 13.75 WHERE id = 1`);
    await admin.query(`UPDATE ${d}.items SET id = 10 WHERE id = 1`);
    await admin.query("BEGIN");
    await admin.query(`INSERT INTO ${d}.items VALUES (4, 'd')`);
    await admin.query(`UPDATE ${d}.items SET name = 'b2' WHERE id = 2`);
    await admin.query(`DELETE FROM ${d}.items WHERE id = 3`);
    await admin.query(`UPDATE ${d}.docs SET born = '1999-12-31', at = '1970-01-01 00:00:00' WHERE id = 2`);
    await admin.query(`INSERT INTO ${d}.events VALUES (3, 'old 3')`);
    await admin.query(`UPDATE ${d}.kinds SET d = -0.0, st = 'y', tm = '838:59:59.999999' WHERE id = 1`);
    await admin.query(`INSERT INTO ${d}.kinds VALUES (3, 127, 9223372036854775808, NULL, NULL, NULL, 'sad', NULL, NULL, NULL, '1970-01-01 00:00:00')`);
    await admin.query("COMMIT");
    const [[{ gtid }]] = (await admin.query("SELECT @@last_gtid AS gtid")) as unknown as [[{ gtid: string }]];
    await admin.query(`ALTER TABLE ${d}.items ADD COLUMN tier VARCHAR(10) DEFAULT 'basic'`);
    await admin.query(`INSERT INTO ${d}.items VALUES (5, 'e', 'gold')`);
    await admin.query(`UPDATE ${d}.items SET tier = 'silver' WHERE id = 4`);
    const [truncated] = (await admin.query(`SELECT CAST(id AS CHAR) AS id, what FROM ${d}.events ORDER BY id`)) as unknown as [Row[]];
    await admin.query(`TRUNCATE TABLE ${d}.events`);
    await admin.query(`INSERT INTO ${d}.events VALUES (7, 'new 7')`);
    const rng = new Rng();
    await churn((sql) => admin.query(sql), rng, `${d}.churn`, new Set(Array.from({ length: 20 }, (_, i) => i + 1)));
    await admin.query(`INSERT INTO ${d}.docs VALUES (3, 'last', 'x', 0.01, '1000-01-01', '2038-01-19 03:14:07.999999', '9999-12-31 23:59:59.999999')`);

    await waitFor("the last insert captured", async () => (await captured("docs", "c")) >= 1, { daemon, timeoutMs: 180_000 });

    const [docRows] = (await admin.query(
      `SELECT CAST(id AS CHAR) AS id, title, body, CAST(price AS CHAR) AS price, CAST(born AS CHAR) AS born, DATE_FORMAT(seen, '%Y-%m-%dT%H:%i:%s.%fZ') AS seen, CAST(TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', at) AS CHAR) AS at FROM ${d}.docs`,
    )) as unknown as [Row[]];
    const docs = byId(docRows).map((row) => ({ ...row, seen: zoned(row.seen) }));
    const [itemRows] = (await admin.query(`SELECT CAST(id AS CHAR) AS id, name, tier FROM ${d}.items`)) as unknown as [Row[]];
    const items = byId(itemRows);
    const [eventRows] = (await admin.query(`SELECT CAST(id AS CHAR) AS id, what FROM ${d}.events`)) as unknown as [Row[]];
    const [churnRows] = (await admin.query(`SELECT CAST(id AS CHAR) AS id, CAST(v AS CHAR) AS v, note FROM ${d}.churn`)) as unknown as [Row[]];
    const churned = byId(churnRows);
    const [kindRows] = (await admin.query(
      `SELECT CAST(id AS CHAR) AS id, CAST(ti AS CHAR) AS ti, CAST(ub AS CHAR) AS ub, CAST(d AS CHAR) AS d, LOWER(HEX(bl)) AS bl, CAST(j AS CHAR) AS j, e, st, CAST(y AS CHAR) AS y, CAST(tm AS CHAR) AS tm,
              CAST(TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', dt) DIV 1000 AS CHAR) AS dt FROM ${d}.kinds`,
    )) as unknown as [Row[]];
    const kinds = byId(kindRows).map((row) => ({ ...row, d: float(row.d), tm: timeMicros(row.tm) }));
    const prefix = `${deployment}.${source}.${database}`;
    const tables: FlinkTable[] = [
      // DATETIME(6) is Debezium's MicroTimestamp: microseconds since 1970 as a long, read as BIGINT.
      {
        name: "docs",
        topic: `${prefix}.docs`,
        columns: "`id` INT NOT NULL, `title` STRING NOT NULL, `body` STRING, `price` DECIMAL(12, 2), `born` DATE, `seen` STRING, `at` BIGINT",
        key: ["id"],
      },
      { name: "items", topic: `${prefix}.items`, columns: "`id` INT NOT NULL, `name` STRING NOT NULL, `tier` STRING", key: ["id"] },
      { name: "events", topic: `${prefix}.events`, columns: "`id` INT NOT NULL, `what` STRING", key: ["id"] },
      { name: "churn", topic: `${prefix}.churn`, columns: "`id` INT NOT NULL, `v` INT NOT NULL, `note` STRING", key: ["id"] },
      // BIGINT UNSIGNED is Debezium's precise DECIMAL(20, 0); TIME is MicroTime and DATETIME Timestamp (ms), longs.
      {
        name: "kinds",
        topic: `${prefix}.kinds`,
        columns: "`id` INT NOT NULL, `ti` TINYINT, `ub` DECIMAL(20, 0), `d` DOUBLE, `bl` BYTES, `j` STRING, `e` STRING, `st` STRING, `y` INT, `tm` BIGINT, `dt` BIGINT",
        key: ["id"],
      },
      transactionTable(`${deployment}.${source}.transaction`),
    ];
    workloads.set("MariaDB", {
      tables,
      registry: `${daemon.url}/registry`,
      daemon,
      check: (state) => {
        assertSameRows(flinkRows(state, "docs"), docs, "docs");
        assertSameRows(flinkRows(state, "items"), readerDefaults(items), "items (key change, transaction, added column with DEFAULT)");
        assertSameRows(flinkRows(state, "events"), byId([...truncated, ...eventRows]), "events (the truncate is not seen, as on Debezium's topics)");
        assertSameRows(flinkRows(state, "kinds").map((row) => ({ ...row, d: float(row.d) })), kinds, "kinds");
        assertSameRows(flinkRows(state, "churn"), churned, `churn (random workload, seed ${rng.seed})`);
        assertTransaction(state, gtid, { [`${database}.items`]: 3, [`${database}.docs`]: 1, [`${database}.events`]: 1, [`${database}.kinds`]: 2 });
      },
    });
  });
});

describe("Flink's debezium-avro-confluent format reads both databases' topics in one run", () => {
  for (const database of ["PostgreSQL", "MariaDB"] as const) {
    test(`Flink's tables equal ${database}'s`, { timeout: 600_000 }, async (t) => {
      const workload = workloads.get(database);
      assert.ok(workload, `the ${database} workload was captured (its test above failed)`);
      workload.check(stateOf(await readWithFlink(t), database));
    });
  }
});
