/**
 * End to end, MariaDB: ALTER TABLE ... DROP PRIMARY KEY on a captured table halts that table at capture
 * (its compacted topic cannot take keyless changes), and the other tables and the daemon go on. Found on a
 * live deployment: the source stopped with TOPIC_MISMATCH ("exists with a different layout: it is compacted,
 * configured not compacted"), which named no table, and the daemon with it, again at every start.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import mysql from "mysql2/promise";
import type { Connection } from "mysql2/promise";
import { mariadb } from "../services/ports.ts";
import { killAllDaemons, mysqlSourceConfig, randomName, removeDir, SluiceDaemon, tempDir, waitFor } from "./helpers.ts";
import type { SourceStatus } from "./helpers.ts";

const database = randomName("e2e_dropkey");
const source = randomName("src");
const deployment = randomName("dep");
const dir = tempDir("dropkey");
let admin: Connection;

const config = {
  name: deployment,
  sources: [mysqlSourceConfig(source, [`${database}.*`])],
  topics: { kind: "embedded", path: join(dir, "log.db") },
  sinks: [{ kind: "duckdb", name: "warehouse", path: join(dir, "warehouse.duckdb"), batch: { max_wait: "50ms" } }],
};

before(async () => {
  admin = await mysql.createConnection({ host: mariadb.host, port: mariadb.port, user: mariadb.user, password: mariadb.password });
  await admin.query(`CREATE DATABASE \`${database}\``);
  await admin.query(`CREATE TABLE \`${database}\`.keyed (id INT PRIMARY KEY, v TEXT)`);
  await admin.query(`CREATE TABLE \`${database}\`.ok (id INT PRIMARY KEY, v TEXT)`);
  await admin.query(`INSERT INTO \`${database}\`.keyed VALUES (1, 'a'), (2, 'b')`);
  await admin.query(`INSERT INTO \`${database}\`.ok VALUES (1, 'a')`);
});

after(async () => {
  await killAllDaemons();
  await admin.query(`DROP DATABASE IF EXISTS \`${database}\``);
  await admin.end();
  removeDir(dir);
});

const halted = (status: { sources: SourceStatus[] }) => status.sources[0]?.halted.find((h) => h.table.endsWith(`${database}.keyed`));

async function rows(daemon: SluiceDaemon, table: string): Promise<number> {
  const response = await fetch(`${daemon.url}/sinks/warehouse/query`, { method: "POST", body: `SELECT count(*) AS n FROM "${database}_${table}"`, signal: AbortSignal.timeout(10_000) });
  if (response.status !== 200) return -1;
  return Number(((await response.json()) as { rows: { n: unknown }[] }).rows[0]?.n);
}

test("MariaDB: DROP PRIMARY KEY halts only its table, naming it, and the daemon goes on, also after a restart", { timeout: 180_000 }, async () => {
  const daemon = await SluiceDaemon.start(dir, config, "run1");
  await waitFor("both tables in DuckDB", async () => (await rows(daemon, "keyed")) === 2 && (await rows(daemon, "ok")) === 1, { daemon, timeoutMs: 60_000 });
  await daemon.stop();

  await admin.query(`ALTER TABLE \`${database}\`.keyed DROP PRIMARY KEY`);
  await admin.query(`INSERT INTO \`${database}\`.keyed VALUES (3, 'c')`);
  await admin.query(`INSERT INTO \`${database}\`.ok VALUES (2, 'b')`);
  const again = await SluiceDaemon.start(dir, config, "run2");
  const halt = await waitFor("keyed halted", async () => halted(await again.status()), { daemon: again, timeoutMs: 60_000 });
  assert.equal(halt.code, "SCHEMA_UNSUPPORTED");
  assert.match(halt.error, new RegExp(`table ${database}\\.keyed has no primary key now`));
  await waitFor("the ok row from the binlog in DuckDB", async () => (await rows(again, "ok")) === 2, { daemon: again, timeoutMs: 60_000 });
  await admin.query(`INSERT INTO \`${database}\`.ok VALUES (3, 'c')`);
  await waitFor("the ok row after the halt in DuckDB", async () => (await rows(again, "ok")) === 3, { daemon: again, timeoutMs: 60_000 });
  await again.stop();
});
