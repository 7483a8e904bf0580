/**
 * End to end (issue 12, item 6; issue 14, item 6), MariaDB: MariaDB → embedded topic log → DuckDB
 * through the real daemon. kill -9 while the snapshot reads the second of two tables, rows deleted,
 * restart: the snapshot resumes instead of starting over (the table it finished is not read again,
 * the table it was reading goes on online after its last stored key, docs/snapshots.md); a second
 * kill while the resumed snapshot reads on, more deletes, restart. DuckDB must end equal to
 * MariaDB, and so must a fresh DuckDB sink that reads every topic from the beginning. Rows
 * published twice: at most one chunk per kill.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import mysql from "mysql2/promise";
import type { Connection } from "mysql2/promise";
import { mariadb } from "../services/ports.ts";
import { assertTablesEqual, killAllDaemons, killDuringSnapshot, mysqlSourceConfig, randomName, readDuckDb, readEmbeddedTopics, removeDir, SluiceDaemon, snapshotRowsPublished, tempDir, waitFor, waitSnapshotDone } from "./helpers.ts";
import type { CanonicalTable, TableDef } from "./helpers.ts";

const database = randomName("e2e_resnapm");
const source = randomName("src");
const deployment = randomName("dep");
const table = (name: string): TableDef => ({
  schema: database,
  name,
  columns: [
    { name: "id", sql: "bigint", kind: "int8" },
    { name: "note", sql: "text", kind: "text" },
    { name: "n", sql: "integer", kind: "int4" },
  ],
  key: ["id"],
});
// Read in this order with parallelism 1: the larger estimate first.
const first = table("first_read");
const second = table("second_read");
const tables = [first, second];
// Enough chunks (CHUNK_ROWS each) for both kills to land inside the second table's read; the first is read whole before it.
const ROWS = { first_read: 5_000, second_read: 3_000 } as const;
const dir = tempDir("resnapm");
const CHUNK_ROWS = 20;
const duckPath = join(dir, "warehouse.duckdb");
const freshPath = join(dir, "fresh.duckdb");
const warehouse = { kind: "duckdb", name: "warehouse", path: duckPath, batch: { max_rows: 500, max_wait: "50ms" } };
const config = {
  name: deployment,
  sources: [
    mysqlSourceConfig(source, [`${database}.*`], { snapshot: { mode: "initial", parallelism: 1, chunk_rows: CHUNK_ROWS }, max_buffer_bytes: 64 * 1024 }),
  ],
  topics: { kind: "embedded", path: join(dir, "log.db") },
  sinks: [warehouse],
};
const topicOf = (def: TableDef) => `${deployment}.${source}.${database}.${def.name}`;
const q = (def: TableDef) => `\`${database}\`.\`${def.name}\``;
let admin: Connection;

before(async () => {
  admin = await mysql.createConnection({ host: mariadb.host, port: mariadb.port, user: mariadb.user, password: mariadb.password });
  await admin.query(`CREATE DATABASE \`${database}\``);
  await admin.query(`USE \`${database}\``); // the seq_1_to_N sequence tables need a current database
  for (const def of tables) {
    await admin.query(`CREATE TABLE ${q(def)} (id BIGINT PRIMARY KEY, note TEXT, n INT)`);
    await admin.query(`INSERT INTO ${q(def)} SELECT seq, CONCAT('row ', seq, REPEAT('.', 40)), seq % 97 FROM seq_1_to_${ROWS[def.name as keyof typeof ROWS]}`);
    await admin.query(`ANALYZE TABLE ${q(def)}`);
  }
});

after(async () => {
  await killAllDaemons();
  await admin.query(`DROP DATABASE IF EXISTS \`${database}\``);
  await admin.end();
  removeDir(dir);
});

async function readMariadb(def: TableDef): Promise<CanonicalTable> {
  const [rows] = await admin.query(`SELECT CAST(id AS CHAR) AS id, note, CAST(n AS CHAR) AS n FROM ${q(def)}`);
  const out: CanonicalTable = new Map();
  for (const row of rows as { id: string; note: string | null; n: string | null }[]) out.set(JSON.stringify([row.id]), { id: row.id, note: row.note, n: row.n });
  return out;
}

const published = (daemon: SluiceDaemon, def: TableDef) => snapshotRowsPublished(daemon, `${database}.${def.name}`);

/** Starts the daemon and SIGKILLs it once this process has published `rows` snapshot rows of `def`; returns what each table published. */
const killDuringSnapshotOf = (def: TableDef, label: string, rows: number) =>
  killDuringSnapshot(dir, config, label, { namespace: database, table: def.name, rows, tables: tables.map((t) => t.name), timeoutMs: 120_000 });

/** Waits until the source is connected and no snapshot of `def` is queued or running (/status), then until every sink applied every record. */
async function waitSnapshotApplied(daemon: SluiceDaemon, def: TableDef): Promise<void> {
  await waitSnapshotDone(daemon, `${database}.${def.name}`);
  await waitFor("every sink to apply every record", async () => (await daemon.status()).sinks.every((s) => s.lagRecords === 0), { daemon, timeoutMs: 120_000 });
}

test("MariaDB: a snapshot resumed after kill -9 reads no finished table again and leaves no rows the source deleted meanwhile, also for a sink replaying from the beginning", { timeout: 300_000 }, async (t) => {
  const run1 = await killDuringSnapshotOf(second, "run1", 200);
  t.diagnostic(`killed with ${JSON.stringify(run1)} rows published`);
  assert.ok(run1[first.name]! >= ROWS.first_read, "the first table was published whole before the kill");
  assert.ok(run1[second.name]! < ROWS.second_read, "the kill landed inside the snapshot of the second table");

  // Deleted while no daemon runs: the binlog from the snapshot's start carries these.
  await admin.query(`DELETE FROM ${q(first)} WHERE id % 7 = 0`);
  await admin.query(`DELETE FROM ${q(second)} WHERE id % 5 = 0 OR id <= 50`);

  // The resumed snapshot reads the rest of the second table online: killed again part-way through it.
  const run2 = await killDuringSnapshotOf(second, "run2", run1[second.name]! + 300 > ROWS.second_read ? 50 : 300);
  t.diagnostic(`run 2 published ${JSON.stringify(run2)} before its kill`);
  assert.equal(run2[first.name], 0, "the table the snapshot finished is not read again");
  await admin.query(`DELETE FROM ${q(first)} WHERE id % 3 = 0 OR id <= 100`);
  await admin.query(`DELETE FROM ${q(second)} WHERE id > ${ROWS.second_read - 300}`);
  await admin.query(`INSERT INTO ${q(second)} SELECT seq, CONCAT('late ', seq), 1 FROM seq_${ROWS.second_read + 1}_to_${ROWS.second_read + 500}`);

  let daemon = await SluiceDaemon.start(dir, config, "run3");
  await waitSnapshotApplied(daemon, second);
  assert.equal(await published(daemon, first), 0, "the finished table is not read again after the second kill either");

  // Rows published twice (the log stores a batch and its checkpoint together): at most the chunk in flight at each kill.
  const reads = new Map<string, number>();
  for (const record of await readEmbeddedTopics(join(dir, "log.db"), [topicOf(second)], { decode: true })) {
    if (record.event?.op === "r") reads.set(String(record.event.key["id"]), (reads.get(String(record.event.key["id"])) ?? 0) + 1);
  }
  const twice = [...reads.values()].filter((n) => n > 1).length;
  t.diagnostic(`${second.name}: ${reads.size} rows read, ${twice} of them twice`);
  assert.ok(twice <= 2 * CHUNK_ROWS, `${twice} rows of ${second.name} published twice: more than one chunk (${CHUNK_ROWS}) per kill`);

  // Streamed after the completed snapshot: the resets never touch these.
  await admin.query(`DELETE FROM ${q(second)} WHERE id % 13 = 0`);
  await admin.query(`INSERT INTO ${q(first)} SELECT seq, 'streamed', 2 FROM seq_${ROWS.first_read + 1}_to_${ROWS.first_read + 300}`);
  const marker = ROWS.second_read + 1000;
  await admin.query(`INSERT INTO ${q(second)} VALUES (${marker}, 'marker', 0)`);
  // The 500 late rows came from the binlog in this run too.
  await waitFor("the marker row in the log", async () => (await daemon.metric("sluice_changes_captured_total", { table: `${database}.${second.name}`, op: "c" })) >= 501, { daemon, timeoutMs: 60_000 });
  await waitFor("every sink to apply every record", async () => (await daemon.status()).sinks.every((s) => s.lagRecords === 0), { daemon, timeoutMs: 120_000 });
  await daemon.stop();

  const expected = await Promise.all(tables.map(readMariadb));
  const read = await readDuckDb(duckPath, tables.map((def) => ({ def, target: `${database}_${def.name}` })));
  for (const [i, def] of tables.entries()) assertTablesEqual(expected[i]!, read[i]!.rows, `DuckDB ${def.name} after the restarted snapshot`);

  daemon = await SluiceDaemon.start(dir, { ...config, sinks: [warehouse, { ...warehouse, name: "fresh", path: freshPath }] }, "fresh");
  await waitFor("every sink to apply every record", async () => {
    const status = await daemon.status();
    return status.sinks.length === 2 && status.sinks.every((s) => s.ready && s.lagRecords === 0);
  }, { daemon, timeoutMs: 120_000 });
  await daemon.stop();
  const fresh = await readDuckDb(freshPath, tables.map((def) => ({ def, target: `${database}_${def.name}` })));
  for (const [i, def] of tables.entries()) assertTablesEqual(expected[i]!, fresh[i]!.rows, `a fresh DuckDB sink replaying ${def.name} from the beginning`);
});
