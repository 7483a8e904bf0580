/**
 * End to end (issue 12, item 6), MariaDB: MariaDB → embedded topic log → DuckDB through the real
 * daemon. kill -9 while the snapshot reads the second of two tables, rows deleted, restart: the
 * snapshot taken again must leave DuckDB equal to MariaDB, and so must a fresh DuckDB sink that
 * reads every topic from the beginning.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import mysql from "mysql2/promise";
import type { Connection } from "mysql2/promise";
import { mariadb } from "../services/ports.ts";
import { assertTablesEqual, killAllDaemons, mysqlSourceConfig, randomName, readDuckDb, removeDir, SluiceDaemon, tempDir, waitFor } from "./helpers.ts";
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
const ROWS = { first_read: 12_000, second_read: 6_000 } as const;
const dir = tempDir("resnapm");
const duckPath = join(dir, "warehouse.duckdb");
const freshPath = join(dir, "fresh.duckdb");
const warehouse = { kind: "duckdb", name: "warehouse", path: duckPath, batch: { max_rows: 500, max_wait: "50ms" } };
const config = {
  name: deployment,
  sources: [
    mysqlSourceConfig(source, [`${database}.*`], { snapshot: { mode: "initial", parallelism: 1, chunk_rows: 20 }, max_buffer_bytes: 64 * 1024 }),
  ],
  topics: { kind: "embedded", path: join(dir, "log.db") },
  sinks: [warehouse],
};
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

const published = (daemon: SluiceDaemon, def: TableDef) => daemon.metric("sluice_changes_captured_total", { table: `${database}.${def.name}`, op: "r" });

/** Waits until the daemon's snapshot has published every row the tables hold (nothing writes meanwhile) and the sinks applied them. */
async function waitSnapshotApplied(daemon: SluiceDaemon): Promise<void> {
  for (const def of tables) {
    const rows = (await readMariadb(def)).size;
    await waitFor(`the snapshot of ${def.name} (${rows} rows)`, async () => (await published(daemon, def)) >= rows, { daemon, timeoutMs: 120_000 });
  }
  await waitFor("every sink to apply every record", async () => (await daemon.status()).sinks.every((s) => s.lagRecords === 0), { daemon, timeoutMs: 120_000 });
}

test("MariaDB: a snapshot restarted after kill -9 leaves no rows the source deleted meanwhile, also for a sink replaying from the beginning", { timeout: 300_000 }, async (t) => {
  let daemon = await SluiceDaemon.start(dir, config, "run1");
  const seen = await waitFor(
    `snapshot rows of ${second.name} in the log`,
    async () => {
      const count = await published(daemon, second);
      return count >= 200 && count;
    },
    { daemon, timeoutMs: 120_000, intervalMs: 20 },
  );
  await daemon.kill();
  t.diagnostic(`killed with ${seen} of ${ROWS.second_read} rows of ${second.name} published`);
  assert.ok(seen < ROWS.second_read, "the kill landed inside the snapshot of the second table");

  await admin.query(`DELETE FROM ${q(first)} WHERE id % 7 = 0`);
  await admin.query(`DELETE FROM ${q(second)} WHERE id % 5 = 0 OR id <= 50`);

  daemon = await SluiceDaemon.start(dir, config, "run2");
  await waitSnapshotApplied(daemon);
  // Streamed after the completed snapshot: the resets never touch these.
  await admin.query(`DELETE FROM ${q(second)} WHERE id % 13 = 0`);
  await admin.query(`INSERT INTO ${q(first)} SELECT seq, 'streamed', 2 FROM seq_${ROWS.first_read + 1}_to_${ROWS.first_read + 300}`);
  const marker = ROWS.second_read + 1;
  await admin.query(`INSERT INTO ${q(second)} VALUES (${marker}, 'marker', 0)`);
  await waitFor("the marker row in the log", async () => (await daemon.metric("sluice_changes_captured_total", { table: `${database}.${second.name}`, op: "c" })) >= 1, { daemon, timeoutMs: 60_000 });
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
