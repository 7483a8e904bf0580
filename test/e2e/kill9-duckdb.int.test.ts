/**
 * End to end (issue 5): kill -9 of the daemon at random moments while PostgreSQL keeps writing,
 * three rounds, the daemon restarted each time. Afterwards DuckDB must equal PostgreSQL: nothing
 * lost (capture acknowledged only what the log stored; the sink's offsets commit with its data)
 * and nothing doubled where it shows.
 *
 * Each restart comes at once, as from a supervisor: the new sink takes over the lease its killed
 * predecessor left (a process of this machine that is gone) and catches up on the backlog that
 * built up while the daemon was down and starting.
 */
import assert from "node:assert/strict";
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
  sleep,
  SluiceDaemon,
  tempDir,
  waitCaughtUp,
  waitFor,
  Workload,
} from "./helpers.ts";
import { createSchema, ENUM_LABELS, eventsTable, ordersTable, typesTable, workloadTables } from "./tables.ts";

const schema = randomName("e2e_kill");
const source = randomName("src");
const deployment = randomName("dep");
const names = { slot: `sluice_${source}`, publication: `sluice_${source}`, schema };
const tables = [typesTable(schema), ordersTable(schema), eventsTable(schema)];
const dir = tempDir("kill9");
const duckPath = join(dir, "warehouse.duckdb");
const config = {
  name: deployment,
  sources: [pgSourceConfig(source, [`${schema}.*`])],
  topics: { kind: "embedded", path: join(dir, "log.db") },
  sinks: [{ kind: "duckdb", name: "warehouse", path: duckPath, batch: { max_rows: 500, max_wait: "50ms" } }],
};
let client: pg.Client;
let writerClient: pg.Client;
let daemon: SluiceDaemon | null = null;

before(async () => {
  client = await pgClient();
  writerClient = await pgClient();
  await createSchema(client, schema, tables);
});

after(async () => {
  await killAllDaemons();
  await writerClient.end();
  await dropPostgres(client, names);
  await client.end();
  removeDir(dir);
});

test("kill -9 at random moments while writes continue (3 rounds): DuckDB equals PostgreSQL, nothing lost or doubled", { timeout: 240_000 }, async (t) => {
  const rng = new Rng();
  t.diagnostic(`seed ${rng.seed}`);
  const workload = new Workload(writerClient, workloadTables(tables), rng, { negativeZero: false, enumLabels: ENUM_LABELS });
  await workload.everyKind();
  for (let i = 0; i < 100; i++) for (const table of workload.tables) await workload.insert(table);

  daemon = await SluiceDaemon.start(dir, config, "run0");
  // The writer runs through every kill and restart, paced (~100 transactions/s) so the backlog
  // stays a few thousand changes on this small machine.
  let writing = true;
  const writer = (async () => {
    while (writing) {
      await workload.transaction();
      await sleep(rng.int(0, 15));
    }
  })();
  try {
    for (let round = 1; round <= 3; round++) {
      // Let it make progress first, so each kill lands mid-stream (snapshot, streaming, applying).
      const running = daemon;
      await waitFor("the daemon to be ready", async () => (await running.status()).ready, { daemon: running, timeoutMs: 60_000 });
      await sleep(rng.int(300, 3_000));
      const seen = await running.status();
      await running.kill();
      t.diagnostic(`round ${round}: killed at source position ${seen.sources[0]?.position?.commit ?? "-"}, sink lag ${seen.sinks[0]?.lagRecords}, after ${workload.counts.transactions} transactions`);
      await sleep(rng.int(0, 1_000));
      daemon = await SluiceDaemon.start(dir, config, `run${round}`);
    }
    await sleep(1_000);
  } finally {
    writing = false;
    await writer;
  }
  t.diagnostic(`workload: ${JSON.stringify(workload.counts)}`);
  await waitCaughtUp(daemon, client, { timeoutMs: 120_000 });
  await daemon.stop();
  daemon = null;

  const read = await readDuckDb(duckPath, tables.map((def) => ({ def, target: `${schema}_${def.name}` })));
  for (const [i, def] of tables.entries()) {
    const expected = expectedFor("duckdb", def, await readPostgres(client, def));
    assert.ok(expected.size > 50, `${def.name} has rows to compare`);
    assertTablesEqual(expected, read[i]!.rows, `DuckDB ${def.name} after three kill -9`);
  }
});
