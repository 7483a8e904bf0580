/**
 * End to end: a daemon killed (kill -9) while it rebuilds a sink. PostgreSQL → embedded log →
 * DuckDB. After the restart the half-built table is still in the file and receives the sink's
 * writes; the daemon says so at start (a warning naming the sink, the table and what to do), and
 * /status, `sluice status` and a metric show the rebuild interrupted until it is abandoned
 * (`sluice replay --abandon-rebuild`, a dry run first) or run again and swapped in.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type pg from "pg";
import { dropPostgres, killAllDaemons, pgClient, pgSourceConfig, randomName, removeDir, runSluice, SluiceDaemon, sleep, tempDir, waitCaughtUp, waitFor } from "./helpers.ts";

const ROWS = 10_000;
const dir = tempDir("rebuild-interrupted");
const schema = randomName("e2e_rbint");
const source = randomName("src");
const names = { slot: `sluice_${source}`, publication: `sluice_${source}`, schema };
let client: pg.Client;

interface RebuildEntry {
  state: string;
  tables: string[];
  shadows?: string[];
  since?: string;
  recordsDone: number;
  recordsTotal: number | null;
  error: string | null;
}

before(async () => {
  client = await pgClient();
  await client.query(`CREATE SCHEMA "${schema}"`);
  await client.query(`CREATE TABLE "${schema}".items (id integer PRIMARY KEY, note text NOT NULL)`);
});

after(async () => {
  await killAllDaemons();
  await dropPostgres(client, names);
  await client.end();
  removeDir(dir);
});

const config = {
  name: randomName("dep"),
  sources: [pgSourceConfig(source, [`${schema}.*`])],
  topics: { kind: "embedded", path: join(dir, "log.db") },
  sinks: [{ kind: "duckdb", name: "warehouse", path: join(dir, "warehouse.duckdb"), batch: { max_rows: 5_000, max_wait: "50ms" } }],
};

/** The sink lease a killed daemon leaves (embedded log) expires after this: the restart waits it out. */
const options = { env: { SLUICE_SINK_LEASE_MS: "2000" } };

async function rebuildOf(daemon: SluiceDaemon): Promise<RebuildEntry | null> {
  const status = (await (await daemon.get("/status")).json()) as { sinks: { name: string; rebuild?: RebuildEntry | null }[] };
  return status.sinks.find((s) => s.name === "warehouse")?.rebuild ?? null;
}

/** Starts a rebuild through the daemon and kills the daemon (-9) once /status shows it reading, before it is done; false when it finished first. */
async function killDuringRebuild(daemon: SluiceDaemon): Promise<boolean> {
  const command = runSluice(["replay", "-c", daemon.configFile, "--sink", "warehouse", "--from-beginning", "--rebuild", "--execute"]);
  let finished = false;
  void command.finally(() => (finished = true));
  while (!finished) {
    const entry = await rebuildOf(daemon).catch(() => null);
    if (entry?.state === "done") break;
    if (entry?.state === "reading" && entry.recordsTotal !== null && entry.recordsDone < entry.recordsTotal) {
      await daemon.kill();
      await command;
      return true;
    }
    await sleep(10);
  }
  await command;
  return false;
}

/** A daemon killed during a rebuild (the rows doubled each time one finished first), and started again. */
async function interruptedDaemon(label: string, first: SluiceDaemon): Promise<SluiceDaemon> {
  let daemon = first;
  for (let rows = ROWS; !(await killDuringRebuild(daemon)); rows *= 2) {
    assert.ok(rows < 8 * ROWS, "the rebuild finished before it was seen reading, again and again");
    await client.query(`INSERT INTO "${schema}".items SELECT i, 'n' || i FROM generate_series(${rows + 1}, ${2 * rows}) i`);
    await waitCaughtUp(daemon, client);
  }
  daemon = await SluiceDaemon.start(dir, config, label, options);
  await waitFor("the sink to start", async () => (await daemon.status()).sinks.some((s) => s.ready), { daemon, timeoutMs: 60_000, intervalMs: 100 });
  return daemon;
}

async function count(daemon: SluiceDaemon): Promise<number> {
  const query = await runSluice(["query", "-c", daemon.configFile, "--json", `SELECT count(*)::INT AS n FROM main."${schema}_items"`]);
  assert.equal(query.code, 0, query.stderr);
  return (JSON.parse(query.stdout) as { n: number }[])[0]!.n;
}

test("a rebuild killed before its swap is reported at start, in /status, sluice status and the metrics until it is abandoned or run again", { timeout: 180_000 }, async () => {
  await client.query(`INSERT INTO "${schema}".items SELECT i, 'n' || i FROM generate_series(1, ${ROWS}) i`);
  const first = await SluiceDaemon.start(dir, config, "first", options);
  await waitCaughtUp(first, client);
  const table = `${schema}.items`;

  let daemon = await interruptedDaemon("second", first);
  const warning = await waitFor(
    "the warning about the interrupted rebuild",
    async () => daemon.logTail(400).split("\n").find((line) => line.includes('"level":"warn"') && line.includes("a rebuild did not finish")),
    { daemon, timeoutMs: 30_000, intervalMs: 100 },
  );
  const logged = JSON.parse(warning) as { msg: string; sink: string; tables: string[]; shadows: string[] };
  assert.equal(logged.sink, "warehouse");
  assert.deepEqual(logged.tables, [table]);
  assert.match(logged.shadows[0]!, /__v2$/);
  assert.match(logged.msg, /sink "warehouse"/);
  assert.match(logged.msg, new RegExp(`--from-beginning --rebuild --table ${table} --execute`));
  assert.match(logged.msg, /--abandon-rebuild --execute/);

  const interrupted = await waitFor("the interrupted rebuild in /status", async () => {
    const entry = await rebuildOf(daemon);
    return entry?.state === "interrupted" ? entry : undefined;
  }, { daemon, timeoutMs: 30_000, intervalMs: 100 });
  assert.deepEqual(interrupted.tables, [table]);
  assert.deepEqual(interrupted.shadows, logged.shadows);
  assert.ok(interrupted.since !== undefined && Date.parse(interrupted.since) <= Date.now(), `since ${interrupted.since}`);
  assert.match(interrupted.error ?? "", /--abandon-rebuild/);
  const status = await runSluice(["status", "-c", daemon.configFile]);
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, new RegExp(`REBUILD OF.*\\nwarehouse\\s+interrupted \\(since ${interrupted.since!.replace(/\./g, "\\.")}\\)\\s+-\\s+-\\s+-\\s+${table.replace(/\./g, "\\.")}\\s`));
  assert.equal(await daemon.metric("sluice_rebuild_interrupted_tables", { sink: "warehouse" }), 1);

  // A dry run says what it would drop and changes nothing.
  const dry = await runSluice(["replay", "-c", daemon.configFile, "--sink", "warehouse", "--abandon-rebuild"]);
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, new RegExp(`drops the half-built ${table.replace(/\./g, "\\.")} \\(${logged.shadows[0]}\\)[^]*Dry run: nothing changed`));
  assert.equal((await rebuildOf(daemon))?.state, "interrupted");
  const abandoned = await runSluice(["replay", "-c", daemon.configFile, "--sink", "warehouse", "--abandon-rebuild", "--execute"]);
  assert.equal(abandoned.code, 0, abandoned.stderr);
  assert.match(abandoned.stdout, /Done \(by the running daemon\): dropped the half-built/);
  assert.equal(await rebuildOf(daemon), null, "nothing interrupted left");
  assert.equal(await daemon.metric("sluice_rebuild_interrupted_tables", { sink: "warehouse" }), 0);
  const again = await runSluice(["replay", "-c", daemon.configFile, "--sink", "warehouse", "--abandon-rebuild"]);
  assert.match(again.stdout, /has no interrupted rebuild: nothing to abandon/);
  const rows = Number((await client.query(`SELECT count(*) AS n FROM "${schema}".items`)).rows[0].n);
  assert.equal(await count(daemon), rows, "the live table serves every row");

  // Killed during a rebuild again; this time the rebuild is run again, which finishes it.
  daemon = await interruptedDaemon("third", daemon);
  await waitFor("the interrupted rebuild in /status", async () => (await rebuildOf(daemon))?.state === "interrupted", { daemon, timeoutMs: 30_000, intervalMs: 100 });
  await client.query(`INSERT INTO "${schema}".items VALUES (0, 'while interrupted')`);
  await waitCaughtUp(daemon, client);
  const rebuilt = await runSluice(["replay", "-c", daemon.configFile, "--sink", "warehouse", "--from-beginning", "--rebuild", "--execute"]);
  assert.equal(rebuilt.code, 0, rebuilt.stderr);
  assert.equal((await rebuildOf(daemon))?.state, "done", "the rebuild run again is listed done, nothing interrupted");
  assert.equal(await daemon.metric("sluice_rebuild_interrupted_tables", { sink: "warehouse" }), 0);
  assert.equal(await count(daemon), rows + 1, "the swapped-in table holds every row");
  await daemon.stop();
});
