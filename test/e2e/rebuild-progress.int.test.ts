/**
 * End to end (issue 14, item 7): a rebuild's progress while it runs. PostgreSQL → embedded log →
 * DuckDB; `sluice replay --rebuild --execute` through the running daemon; meanwhile /status shows
 * the sink's rebuild reading (records done of the records to read), the metrics carry the same,
 * and once it is swapped in /status, `sluice status` and the metrics show it done, every record read.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type pg from "pg";
import { dropPostgres, killAllDaemons, pgClient, pgSourceConfig, randomName, removeDir, runSluice, SluiceDaemon, tempDir, waitCaughtUp } from "./helpers.ts";

const ROWS = 60_000;
const dir = tempDir("rebuild-progress");
const schema = randomName("e2e_rbprog");
const source = randomName("src");
const names = { slot: `sluice_${source}`, publication: `sluice_${source}`, schema };
let client: pg.Client;

interface RebuildEntry {
  state: string;
  recordsDone: number;
  recordsTotal: number | null;
  recordsPerSecond: number;
  etaSeconds: number | null;
  tables: string[];
  startedAt: string;
}

before(async () => {
  client = await pgClient();
  await client.query(`CREATE SCHEMA "${schema}"`);
  await client.query(`CREATE TABLE "${schema}".items (id integer PRIMARY KEY, note text NOT NULL)`);
  await client.query(`INSERT INTO "${schema}".items SELECT i, repeat('x', 40) || i FROM generate_series(1, ${ROWS}) i`);
  await client.query(`ANALYZE "${schema}".items`);
});

after(async () => {
  await killAllDaemons();
  await dropPostgres(client, names);
  await client.end();
  removeDir(dir);
});

async function rebuildOf(daemon: SluiceDaemon): Promise<RebuildEntry | null> {
  const status = (await (await daemon.get("/status")).json()) as { sinks: { name: string; rebuild?: RebuildEntry | null }[] };
  return status.sinks.find((s) => s.name === "warehouse")?.rebuild ?? null;
}

test("a rebuild shows its records read, the records to read, its rate and step in /status, sluice status and the metrics while it runs", { timeout: 240_000 }, async (t) => {
  const config = {
    name: randomName("dep"),
    sources: [pgSourceConfig(source, [`${schema}.*`], { snapshot: { mode: "initial", chunk_rows: 5_000 } })],
    topics: { kind: "embedded", path: join(dir, "log.db") },
    sinks: [{ kind: "duckdb", name: "warehouse", path: join(dir, "warehouse.duckdb"), batch: { max_rows: 5_000, max_wait: "50ms" } }],
  };
  const daemon = await SluiceDaemon.start(dir, config, "progress");
  await waitCaughtUp(daemon, client, { timeoutMs: 150_000 });
  assert.equal(await rebuildOf(daemon), null, "no rebuild ran yet");

  const command = runSluice(["replay", "-c", daemon.configFile, "--sink", "warehouse", "--from-beginning", "--rebuild", "--execute"]);
  let finished = false;
  void command.finally(() => (finished = true));
  const seen: RebuildEntry[] = [];
  let metricTotal = 0;
  while (!finished) {
    const entry = await rebuildOf(daemon).catch(() => null);
    if (entry !== null && entry.state !== "done") {
      seen.push(entry);
      if (metricTotal === 0) metricTotal = await daemon.metric("sluice_rebuild_records_total", { sink: "warehouse" }).catch(() => 0);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const result = await command;
  assert.equal(result.code, 0, result.stderr);
  t.diagnostic(`${seen.length} samples while it ran: ${JSON.stringify(seen.slice(0, 3))} ... ${JSON.stringify(seen.at(-1))}`);
  assert.ok(seen.length > 0, "the rebuild was seen in /status while it ran");
  const reading = seen.filter((e) => e.state === "reading" && e.recordsTotal !== null);
  assert.ok(reading.length > 0, "seen reading, with the records to read");
  const total = reading[0]!.recordsTotal!;
  assert.ok(total >= ROWS, `records to read ${total}: at least the snapshot's rows`);
  assert.ok(reading.some((e) => e.recordsDone < total), "seen part-way");
  assert.deepEqual(reading.at(-1)!.tables, [`${schema}.items`]);
  for (let i = 1; i < reading.length; i++) assert.ok(reading[i]!.recordsDone >= reading[i - 1]!.recordsDone, "records done never go back");
  assert.equal(metricTotal, total, "the metrics carry the records to read while it runs");

  const done = await rebuildOf(daemon);
  assert.equal(done?.state, "done");
  assert.equal(done?.recordsDone, total, "every record read");
  assert.equal(await daemon.metric("sluice_rebuild_records_done", { sink: "warehouse" }), total);
  assert.equal(await daemon.metric("sluice_rebuild_running", { sink: "warehouse" }), 0);
  const status = await runSluice(["status", "-c", daemon.configFile]);
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, new RegExp(`REBUILD OF.*\\nwarehouse\\s+done\\s+${total} / ${total}\\s+-\\s+-\\s+${schema}\\.items`));
  await daemon.stop();
});
