/**
 * End to end, MariaDB → embedded topic log → DuckDB through the real daemon: RESET MASTER while
 * Sluice is stopped, with rows updated, deleted and inserted after it. The next start refuses the
 * checkpoint (MYSQL_BINLOG_RESET, naming the remedy); under snapshot.mode: when-needed it takes a
 * new snapshot in binlog history epoch 1, whose rows and reset markers sort above every version
 * of the old binlog, and DuckDB ends equal to the server: no value from before the reset, no row
 * deleted since, every row inserted since. Before the epoch (308e13b), positions of the new binlog
 * sorted below the old ones: a row kept its old value and the new rows were missing (checked with
 * the epoch left at 0: 20 rows with values from before the reset, 20 inserted rows missing, 52
 * deleted rows present). The epoch is in the checkpoint: a start under snapshot.mode: initial
 * again streams on in it.
 * A private MariaDB (RESET MASTER on the shared one would break every other test).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import mysql from "mysql2/promise";
import type { Connection } from "mysql2/promise";
import { startPrivateMariadb } from "../services/private-mariadb.ts";
import type { PrivateMariadb } from "../services/private-mariadb.ts";
import { assertTablesEqual, killAllDaemons, mysqlSourceConfig, readDuckDb, removeDir, SluiceDaemon, tempDir, waitFor, waitSnapshotDone } from "./helpers.ts";
import type { CanonicalTable, TableDef } from "./helpers.ts";

const database = "d";
const def: TableDef = {
  schema: database,
  name: "t",
  columns: [
    { name: "id", sql: "bigint", kind: "int8" },
    { name: "note", sql: "text", kind: "text" },
    { name: "n", sql: "integer", kind: "int4" },
  ],
  key: ["id"],
};
const dir = tempDir("binlogreset");
const duckPath = join(dir, "warehouse.duckdb");
let server: PrivateMariadb;
let admin: Connection;

before(async () => {
  server = await startPrivateMariadb();
  admin = await mysql.createConnection({ host: server.host, port: server.port, user: server.admin.user, password: server.admin.password, multipleStatements: true });
  await admin.query("CREATE DATABASE d; CREATE TABLE d.t (id BIGINT PRIMARY KEY, note TEXT, n INT); USE d");
  await admin.query("INSERT INTO d.t SELECT seq, CONCAT('row ', seq), seq FROM seq_1_to_300");
});

after(async () => {
  await killAllDaemons();
  await admin?.end();
  await server?.stop();
  removeDir(dir);
});

function configWith(mode: string): Record<string, unknown> {
  const source = mysqlSourceConfig("maria", ["d.t"], { host: server.host, port: server.port, user: server.admin.user, password: server.admin.password, snapshot: { mode, parallelism: 1 } });
  return {
    name: "dep",
    sources: [{ ...source, server_id: 4242 }],
    topics: { kind: "embedded", path: join(dir, "log.db") },
    sinks: [{ kind: "duckdb", name: "warehouse", path: duckPath, batch: { max_rows: 500, max_wait: "50ms" } }],
  };
}

async function readServer(): Promise<CanonicalTable> {
  const [rows] = await admin.query("SELECT CAST(id AS CHAR) AS id, note, CAST(n AS CHAR) AS n FROM d.t");
  const out: CanonicalTable = new Map();
  for (const row of rows as { id: string; note: string | null; n: string | null }[]) out.set(JSON.stringify([row.id]), { id: row.id, note: row.note, n: row.n });
  return out;
}

async function readSink(): Promise<CanonicalTable> {
  return (await readDuckDb(duckPath, [{ def, target: `${database}_${def.name}` }]))[0]!.rows;
}

const applied = (daemon: SluiceDaemon) => waitFor("every sink to apply every record", async () => (await daemon.status()).sinks.every((s) => s.ready && s.lagRecords === 0), { daemon, timeoutMs: 60_000 });

/** Changes of d.t with this op the daemon captured since it started. */
function captured(daemon: SluiceDaemon, op: string): Promise<number> {
  return daemon.metric("sluice_changes_captured_total", { table: "d.t", op });
}

test("MariaDB: after RESET MASTER while stopped, snapshot.mode: when-needed takes a new snapshot in the next binlog history epoch and DuckDB equals the server", { timeout: 120_000 }, async () => {
  let daemon = await SluiceDaemon.start(dir, configWith("initial"), "run1");
  await waitSnapshotDone(daemon, "d.t");
  // Streamed before the reset: versions high in the old binlog.
  await admin.query("UPDATE d.t SET n = n + 1000 WHERE id <= 100");
  await waitFor("the updates captured", async () => (await captured(daemon, "u")) >= 100, { daemon, timeoutMs: 30_000 });
  await applied(daemon);
  await daemon.stop();

  await admin.query("RESET MASTER");
  await admin.query("UPDATE d.t SET n = 777777 WHERE id <= 20");
  await admin.query("DELETE FROM d.t WHERE id BETWEEN 200 AND 250");
  await admin.query("INSERT INTO d.t SELECT seq, 'after the reset', 1 FROM seq_1001_to_1020");

  daemon = await SluiceDaemon.start(dir, configWith("initial"), "run2");
  // The source stops for good and the daemon with it.
  await daemon.exited;
  const refused = daemon.fatalLine ?? assert.fail(`no source stopped:\n${daemon.logTail()}`);
  assert.match(refused, /"code":"MYSQL_BINLOG_RESET"/);
  assert.match(refused, /set snapshot\.mode: when-needed and start again/, "the error names the remedy");

  daemon = await SluiceDaemon.start(dir, configWith("when-needed"), "run3");
  await waitSnapshotDone(daemon, "d.t");
  await applied(daemon);
  await daemon.stop();

  // Under the default mode again: the checkpoint's epoch is resumed, changes stream on above the old versions.
  daemon = await SluiceDaemon.start(dir, configWith("initial"), "run4");
  await waitFor("the source to stream", async () => daemon.hasStarted && (await daemon.status()).sources.every((s) => s.ready), { daemon, timeoutMs: 30_000 });
  await admin.query("UPDATE d.t SET n = 5 WHERE id IN (1, 150)");
  await admin.query("DELETE FROM d.t WHERE id IN (2, 1001)");
  await admin.query("INSERT INTO d.t VALUES (2000, 'streamed in epoch 1', 0)");
  await waitFor("the streamed insert captured", async () => (await captured(daemon, "c")) >= 1, { daemon, timeoutMs: 30_000 });
  await applied(daemon);
  await daemon.stop();

  assertTablesEqual(await readServer(), await readSink(), "DuckDB after the reset and the new snapshot");
});
