/**
 * End to end: a changed primary key, the path docs/operations.md ("Type and key changes a sink
 * cannot take") gives. PostgreSQL → embedded log → ClickHouse, registry at NONE (under BACKWARD
 * the key subject refuses a widened key and capture halts instead). `DROP CONSTRAINT pkey, ADD
 * PRIMARY KEY (id, v)`: the sink halts the table (its target is keyed by id). A rebuild alone is
 * refused before the swap (changes under the old key cannot be given the new one) and the live
 * table serves on; after `sluice snapshot --table T --execute` (read entirely under the new key,
 * after every change under the old one) the rebuild leaves those changes out and succeeds,
 * `sluice halted retry` releases the table, and ClickHouse holds the source's rows, the ones the
 * old key folded into one apart. The slot's restart position has not moved since it was created,
 * so the online snapshot's reset sits below the initial snapshot's rows (and has their version).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type pg from "pg";
import { clickhouse } from "../services/ports.ts";
import type { TableDef } from "./helpers.ts";
import {
  dropClickHouseDatabase,
  dropPostgres,
  killAllDaemons,
  pgClient,
  pgSourceConfig,
  randomName,
  readClickHouse,
  readPostgres,
  removeDir,
  runSluice,
  snapshotRowsPublished,
  startReady,
  tempDir,
  waitEqual,
  waitFor,
  waitSourcesPast,
} from "./helpers.ts";

const schema = randomName("e2e_rekey");
const source = randomName("src");
const deployment = randomName("dep");
const chDatabase = randomName("e2e_rekey");
const names = { slot: `sluice_${source}`, publication: `sluice_${source}`, schema };
const dir = tempDir("rekey");
const config = {
  name: deployment,
  sources: [pgSourceConfig(source, [`${schema}.*`])],
  topics: { kind: "embedded", path: join(dir, "log.db") },
  schema_registry: { kind: "builtin", compatibility: "NONE" },
  sinks: [{ kind: "clickhouse", name: "warehouse", url: clickhouse.url, user: clickhouse.username, password: clickhouse.password, database: chDatabase, batch: { max_wait: "50ms" } }],
};
// Read by (id, v): rows the new key tells apart stay apart in the comparison.
const pairs: TableDef = {
  schema,
  name: "pairs",
  key: ["id", "v"],
  columns: [
    { name: "id", sql: "integer", kind: "int4" },
    { name: "v", sql: "integer", kind: "int4" },
    { name: "name", sql: "text", kind: "text" },
  ],
};
const table = `${schema}.pairs`;
const target = `${schema}_pairs`;
let client: pg.Client;

before(async () => {
  client = await pgClient();
  await client.query(`CREATE SCHEMA "${schema}"`);
  await client.query(`CREATE TABLE "${schema}".pairs (id integer PRIMARY KEY, v integer NOT NULL, name text)`);
});

after(async () => {
  await killAllDaemons();
  await dropPostgres(client, names);
  await client.end();
  await dropClickHouseDatabase(chDatabase);
  removeDir(dir);
});

test("a changed key: the sink halts, a rebuild is refused until a finished snapshot under the new key covers the old key's changes, then rebuild and retry release it", { timeout: 600_000 }, async (t) => {
  await client.query(`INSERT INTO "${schema}".pairs SELECT g, 1, 'n' || g FROM generate_series(1, 10) g`);
  await client.query(`UPDATE "${schema}".pairs SET v = 2 WHERE id = 1`);
  await client.query(`DELETE FROM "${schema}".pairs WHERE id = 2`);
  const daemon = await startReady(dir, config, "rekey");
  await waitEqual("ClickHouse (before the key change)", () => readPostgres(client, pairs), () => readClickHouse(chDatabase, target, pairs), { daemon, timeoutMs: 60_000 });

  await client.query(`ALTER TABLE "${schema}".pairs DROP CONSTRAINT pairs_pkey, ADD PRIMARY KEY (id, v)`);
  await client.query(`INSERT INTO "${schema}".pairs VALUES (1, 3, 'second of 1'), (3, 9, 'second of 3'), (100, 1, 'new')`);
  await client.query(`DELETE FROM "${schema}".pairs WHERE id = 4`);
  await waitSourcesPast(daemon, client);
  const halted = await waitFor(`the sink to halt ${table}`, async () => (await daemon.status()).sinks[0]?.halted.find((h) => h.table === table), { daemon, timeoutMs: 60_000 });
  t.diagnostic(`halted: ${halted.error}`);
  assert.match(halted.error, /the key changed from \(id\) to \(id, v\); re-snapshot the table, then rebuild/);

  const refused = await runSluice(["replay", "-c", daemon.configFile, "--sink", "warehouse", "--from-beginning", "--rebuild", "--execute"]);
  t.diagnostic(refused.stderr.trim());
  assert.notEqual(refused.code, 0, "a rebuild over changes under the old key is refused");
  assert.match(refused.stderr, /refused before the swap: .*the key is \(id\) in the record at .*:\d+:\d+ and \(id, v\) in the table's newest schema/);
  assert.equal((await readClickHouse(chDatabase, target, pairs)).size, 9, "the live table serves on as it was");

  const snapshotted = await snapshotRowsPublished(daemon, table);
  const snapshot = await runSluice(["snapshot", "-c", daemon.configFile, "--table", table, "--execute"]);
  assert.equal(snapshot.code, 0, snapshot.stderr);
  const rows = Number((await client.query(`SELECT count(*) AS n FROM "${schema}".pairs`)).rows[0].n);
  await waitFor("the snapshot's rows", async () => (await snapshotRowsPublished(daemon, table)) >= snapshotted + rows, { daemon, timeoutMs: 120_000 });
  await waitFor("the snapshot to finish", async () => (await runSluice(["snapshot", "-c", daemon.configFile, "list"])).stdout.includes("no online snapshot queued or running"), { daemon, timeoutMs: 120_000 });

  const rebuilt = await runSluice(["replay", "-c", daemon.configFile, "--sink", "warehouse", "--from-beginning", "--rebuild", "--execute"]);
  assert.equal(rebuilt.code, 0, `rebuild failed: ${rebuilt.stderr}\n${rebuilt.stdout}`);
  const released = await runSluice(["halted", "-c", daemon.configFile, "retry", "--sink", "warehouse", "--table", table, "--execute"]);
  assert.equal(released.code, 0, released.stderr);
  await client.query(`INSERT INTO "${schema}".pairs VALUES (1, 4, 'third of 1')`);
  await client.query(`DELETE FROM "${schema}".pairs WHERE id = 3 AND v = 9`);
  await waitSourcesPast(daemon, client);
  await waitEqual("ClickHouse (after the snapshot, the rebuild and the release)", () => readPostgres(client, pairs), () => readClickHouse(chDatabase, target, pairs), { daemon, timeoutMs: 60_000 });
  assert.deepEqual((await daemon.status()).sinks[0]?.halted, []);
});
