/**
 * End to end (issue 12, item 5): PostgreSQL → embedded topic log → DuckDB through the real daemon,
 * then the log file is replaced while DuckDB keeps the sink's offsets. Sluice starts over on the
 * new file (new slot, new snapshot: the same topic names, other records at the old offsets). The
 * sink must refuse (SINK_LOG_MISMATCH) instead of resuming at the old offsets and skipping the new
 * snapshot's first records, while the daemon and capture keep running; `sluice replay --rebuild
 * --execute` against the running daemon then rebuilds it, and DuckDB equals PostgreSQL.
 */
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type pg from "pg";
import {
  assertTablesEqual,
  dropPostgres,
  expectedFor,
  killAllDaemons,
  pgClient,
  pgSourceConfig,
  randomName,
  readDuckDb,
  readPostgres,
  removeDir,
  Rng,
  runSluice,
  SluiceDaemon,
  tempDir,
  waitCaughtUp,
  waitFor,
  Workload,
} from "./helpers.ts";
import { createSchema, ENUM_LABELS, ordersTable, workloadTables } from "./tables.ts";

const schema = randomName("e2e_relog");
const source = randomName("src");
const deployment = randomName("dep");
const names = { slot: `sluice_${source}`, publication: `sluice_${source}`, schema };
const tables = [ordersTable(schema)];
const dir = tempDir("relog");
const duckPath = join(dir, "warehouse.duckdb");
const logPath = join(dir, "log.db");
const config = {
  name: deployment,
  sources: [pgSourceConfig(source, [`${schema}.*`])],
  topics: { kind: "embedded", path: logPath },
  sinks: [{ kind: "duckdb", name: "warehouse", path: duckPath, batch: { max_rows: 50, max_wait: "50ms" } }],
};
let client: pg.Client;

before(async () => {
  client = await pgClient();
  await createSchema(client, schema, tables);
});

after(async () => {
  await killAllDaemons();
  await dropPostgres(client, names);
  await client.end();
  removeDir(dir);
});

test("a replaced embedded log file: the sink refuses instead of skipping, the daemon keeps running, a rebuild brings DuckDB back to PostgreSQL", { timeout: 300_000 }, async (t) => {
  const rng = new Rng();
  t.diagnostic(`seed ${rng.seed}`);
  const workload = new Workload(client, workloadTables(tables), rng, { negativeZero: false, enumLabels: ENUM_LABELS });
  for (let i = 0; i < 120; i++) await workload.insert(workload.tables[0]!);

  let daemon = await SluiceDaemon.start(dir, config, "first");
  await waitCaughtUp(daemon, client);
  await daemon.stop();

  // The log file is replaced (deleted here: Sluice starts a new one); PostgreSQL changes meanwhile.
  for (const suffix of ["", "-wal", "-shm"]) rmSync(`${logPath}${suffix}`, { force: true });
  for (let i = 0; i < 40; i++) await workload.transaction();
  for (let i = 0; i < 60; i++) await workload.insert(workload.tables[0]!);

  daemon = await SluiceDaemon.start(dir, config, "second");
  const refused = await waitFor(
    "the sink to refuse its offsets from the old log",
    async () => (await daemon.status()).sinks.find((s) => s.name === "warehouse" && !s.ready && /^refused: /.test((s as { waiting?: string }).waiting ?? "")),
    { daemon, timeoutMs: 120_000 },
  );
  const waiting = (refused as { waiting?: string }).waiting ?? "";
  assert.match(waiting, /sink warehouse: its stored offsets were taken from another topic log/);
  // (Not "sluice replay": /status redacts the config's secrets, and the test database's password is "sluice".)
  assert.match(waiting, /replay -c CONFIG --sink warehouse --from-beginning --rebuild( --table \S+)* --execute/);
  // Capture goes on meanwhile: the new snapshot and later changes reach the new log.
  await workload.transaction();
  await waitFor("capture to keep going", async () => (await daemon.status()).sources.every((s) => s.ready), { daemon, timeoutMs: 60_000 });

  const rebuild = await runSluice(["replay", "-c", daemon.configFile, "--sink", "warehouse", "--from-beginning", "--rebuild", "--execute"]);
  assert.equal(rebuild.code, 0, `sluice replay --rebuild failed:\n${rebuild.stdout}\n${rebuild.stderr}`);
  t.diagnostic(rebuild.stdout.trim());
  for (let i = 0; i < 10; i++) await workload.transaction();
  // A refused sink checks its offsets again every 5 s; after the rebuild it reads on.
  await waitFor("the sink to read on after the rebuild", async () => (await daemon.status()).sinks.find((s) => s.name === "warehouse")?.ready === true, { daemon, timeoutMs: 60_000 });
  await waitCaughtUp(daemon, client);
  await daemon.stop();

  const read = await readDuckDb(duckPath, tables.map((def) => ({ def, target: `${schema}_${def.name}` })));
  for (const [i, def] of tables.entries()) assertTablesEqual(expectedFor("duckdb", def, await readPostgres(client, def)), read[i]!.rows, `DuckDB ${def.name} after the rebuild`);
});
