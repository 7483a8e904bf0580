/**
 * End to end (issue 12, item 2), MariaDB: a zero date under `zero_dates: error` halts only its
 * table at capture (AVRO_VALUE_INVALID naming the column and the value, the change parked), both
 * from the snapshot and from the binlog; the other table flows on and the daemon keeps running.
 * Before, the source stopped with MYSQL_ZERO_DATE and every table with it, again at every start.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import mysql from "mysql2/promise";
import type { Connection } from "mysql2/promise";
import { mariadb } from "../services/ports.ts";
import { killAllDaemons, mysqlSourceConfig, randomName, removeDir, SluiceDaemon, tempDir, waitFor } from "./helpers.ts";
import type { SourceStatus } from "./helpers.ts";

const database = randomName("e2e_zero");
const source = randomName("src");
const deployment = randomName("dep");
const dir = tempDir("zero");
let admin: Connection;

const config = {
  name: deployment,
  sources: [
    mysqlSourceConfig(source, [`${database}.*`], { zero_dates: "error" }),
  ],
  topics: { kind: "embedded", path: join(dir, "log.db") },
  sinks: [{ kind: "duckdb", name: "warehouse", path: join(dir, "warehouse.duckdb"), batch: { max_wait: "50ms" } }],
};

before(async () => {
  admin = await mysql.createConnection({ host: mariadb.host, port: mariadb.port, user: mariadb.user, password: mariadb.password });
  await admin.query("SET SESSION sql_mode = ''");
  await admin.query(`CREATE DATABASE \`${database}\``);
  await admin.query(`CREATE TABLE \`${database}\`.dates (id INT PRIMARY KEY, d DATE)`);
  await admin.query(`CREATE TABLE \`${database}\`.ok (id INT PRIMARY KEY, v TEXT)`);
  await admin.query(`INSERT INTO \`${database}\`.dates VALUES (1, '2024-01-01'), (2, '0000-00-00')`);
  await admin.query(`INSERT INTO \`${database}\`.ok VALUES (1, 'a')`);
});

after(async () => {
  await killAllDaemons();
  await admin.query(`DROP DATABASE IF EXISTS \`${database}\``);
  await admin.end();
  removeDir(dir);
});

const halted = (status: { sources: SourceStatus[] }) =>
  status.sources[0]?.halted.find((h) => h.table.endsWith(`${database}.dates`)) as (SourceStatus["halted"][number] & { column?: string; value?: string }) | undefined;

async function okRows(daemon: SluiceDaemon): Promise<number> {
  const response = await fetch(`${daemon.url}/sinks/warehouse/query`, { method: "POST", body: `SELECT count(*) AS n FROM "${database}_ok"`, signal: AbortSignal.timeout(10_000) });
  if (response.status !== 200) return -1;
  return Number(((await response.json()) as { rows: { n: unknown }[] }).rows[0]?.n);
}

test("MariaDB: a zero date under zero_dates: error halts only its table, from the snapshot and the binlog, with column and value", { timeout: 180_000 }, async () => {
  const daemon = await SluiceDaemon.start(dir, config, "run1");
  const fromSnapshot = await waitFor("dates halted by the snapshot's zero date", async () => halted(await daemon.status()), { daemon, timeoutMs: 60_000 });
  assert.equal(fromSnapshot.code, "AVRO_VALUE_INVALID");
  assert.equal(fromSnapshot.column, "d");
  assert.equal(fromSnapshot.value, 'string "0000-00-00"');
  assert.match(fromSnapshot.error, /column `d`: cannot be encoded as (date|int \(Date\)): a zero date.*zero_dates/);
  await waitFor("the ok table in DuckDB", async () => (await okRows(daemon)) === 1, { daemon, timeoutMs: 60_000 });

  // From the binlog too, and the other table still flows.
  await admin.query(`INSERT INTO \`${database}\`.dates VALUES (3, '2024-00-15')`);
  await admin.query(`INSERT INTO \`${database}\`.ok VALUES (2, 'b')`);
  await waitFor("the ok row from the binlog in DuckDB", async () => (await okRows(daemon)) === 2, { daemon, timeoutMs: 60_000 });
  assert.equal(await daemon.metric("sluice_capture_table_halts_total", { code: "AVRO_VALUE_INVALID" }), 1);
  await daemon.stop();

  // A restart halts the table again from its parked changes; the daemon keeps running.
  const again = await SluiceDaemon.start(dir, config, "run2");
  await waitFor("dates halted again after the restart", async () => halted(await again.status()), { daemon: again, timeoutMs: 60_000 });
  await admin.query(`INSERT INTO \`${database}\`.ok VALUES (3, 'c')`);
  await waitFor("the ok row after the restart in DuckDB", async () => (await okRows(again)) === 3, { daemon: again, timeoutMs: 60_000 });
  await again.stop();
});
