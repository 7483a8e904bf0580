/**
 * End to end, MariaDB with binlog_row_metadata=MINIMAL (the binlog does not name columns) → Kafka →
 * DuckDB: a row written while the daemon is stopped, then a DDL that moves a column, then a
 * restart. With Kafka the schema history was kept in memory only, so the restart read the tables'
 * current definitions and decoded the earlier row with them: found on a live deployment, the row
 * (2, a=11, b=21) reached every sink as a=21, b=11, without a word. The history now lives in the
 * topic `<deployment>.sluice.schema-history`.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import mysql from "mysql2/promise";
import type { Connection } from "mysql2/promise";
import { startPrivateMariadb } from "../services/private-mariadb.ts";
import type { PrivateMariadb } from "../services/private-mariadb.ts";
import { kafka } from "../services/ports.ts";
import { deleteKafkaDeployment, killAllDaemons, randomName, removeDir, SluiceDaemon, tempDir, waitFor } from "./helpers.ts";

const deployment = randomName("dep");
const dir = tempDir("schema-history-kafka");
let server: PrivateMariadb;
let admin: Connection;

before(async () => {
  server = await startPrivateMariadb(["binlog_row_metadata = MINIMAL"]);
  admin = await mysql.createConnection({ host: server.host, port: server.port, user: server.admin.user, password: server.admin.password, multipleStatements: true });
  await admin.query("CREATE DATABASE d; CREATE TABLE d.t (id INT PRIMARY KEY, a INT, b INT); INSERT INTO d.t VALUES (1, 10, 20)");
});

after(async () => {
  await killAllDaemons();
  await admin?.end();
  await server?.stop();
  await deleteKafkaDeployment(deployment).catch(() => undefined);
  removeDir(dir);
});

async function rows(daemon: SluiceDaemon): Promise<unknown[]> {
  const response = await fetch(`${daemon.url}/sinks/warehouse/query`, { method: "POST", body: "SELECT id, a, b FROM d_t ORDER BY id", signal: AbortSignal.timeout(10_000) });
  if (response.status !== 200) return [];
  return ((await response.json()) as { rows: unknown[] }).rows;
}

test("MariaDB without binlog column metadata, Kafka topics: a row written before a DDL made while the daemon was stopped keeps its values", { timeout: 120_000 }, async () => {
  const config = {
    name: deployment,
    sources: [{ kind: "mysql", name: "m", host: server.host, port: server.port, user: server.admin.user, password: server.admin.password, server_id: 4242, tables: ["d.*"], heartbeat_interval: "1s" }],
    topics: { kind: "kafka", brokers: kafka.brokers, partitions: 1 },
    sinks: [{ kind: "duckdb", name: "warehouse", path: join(dir, "warehouse.duckdb"), batch: { max_wait: "50ms" } }],
  };
  const [[{ metadata }]] = (await admin.query("SELECT @@binlog_row_metadata AS metadata")) as unknown as [[{ metadata: string }]];
  assert.equal(metadata, "MINIMAL");

  let daemon = await SluiceDaemon.start(dir, config, "run1");
  await waitFor("the snapshot in DuckDB", async () => (await rows(daemon)).length === 1 || undefined, { daemon, timeoutMs: 60_000 });
  await daemon.stop();

  await admin.query("INSERT INTO d.t VALUES (2, 11, 21); ALTER TABLE d.t MODIFY b INT AFTER id; INSERT INTO d.t (id, a, b) VALUES (3, 12, 22)");

  daemon = await SluiceDaemon.start(dir, config, "run2");
  await waitFor("the rows written while stopped in DuckDB", async () => (await rows(daemon)).length === 3 || undefined, { daemon, timeoutMs: 60_000 });
  assert.deepEqual(await rows(daemon), [
    { id: 1, a: 10, b: 20 },
    { id: 2, a: 11, b: 21 },
    { id: 3, a: 12, b: 22 },
  ]);
  await daemon.stop();
});
