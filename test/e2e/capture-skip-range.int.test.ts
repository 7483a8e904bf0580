/**
 * End to end: a bad migration writes a value a `halt` data check refuses into hundreds of rows, so
 * the table halts at capture with every one of those changes parked. One `sluice halted skip
 * --source S --table T --all-pending` (a dry run first) skips them all, instead of one change per
 * command; the changes of the table the check accepts (parked among them) and the other table's
 * are published. PostgreSQL → the embedded log → DuckDB, through the CLI against the running daemon.
 * Each skipped change is named (table, key, position) by a marker in the parking topic and a log line.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type pg from "pg";
import { dropPostgres, killAllDaemons, pgClient, pgSourceConfig, randomName, readEmbeddedTopics, removeDir, runSluice, SluiceDaemon, startReady, tempDir, waitFor } from "./helpers.ts";
import type { SourceStatus } from "./helpers.ts";

const schema = randomName("e2e_cap_skip");
const BAD_AMOUNT = "77777.00";
const sources: string[] = [];
const dirs: string[] = [];

let client: pg.Client;

before(async () => {
  client = await pgClient();
  await client.query(`CREATE SCHEMA "${schema}"`);
});

after(async () => {
  await killAllDaemons();
  for (const source of sources) await dropPostgres(client, { slot: `sluice_${source}`, publication: `sluice_${source}` }).catch(() => undefined);
  await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => undefined);
  await client?.end();
  for (const dir of dirs) removeDir(dir);
});

async function duckIds(daemon: SluiceDaemon, table: string): Promise<number[] | null> {
  const response = await fetch(`${daemon.url}/sinks/duck/query`, { method: "POST", body: `SELECT id FROM "${schema}_${table}" ORDER BY id`, signal: AbortSignal.timeout(10_000) });
  if (response.status !== 200) return null;
  return ((await response.json()) as { rows: { id: unknown }[] }).rows.map((r) => Number(r.id));
}

/**
 * A daemon capturing `<prefix>_orders` (a `halt` range check on amount) and `<prefix>_items`; then a good order (id 1),
 * a migration writing BAD_AMOUNT into `bad` rows (ids 2..bad+1), every 50th of them set right again, a good order
 * (id bad+100) and an items row, all committed in that order. Resolves once the orders table halted and every change is parked.
 */
async function haltedByMigration(prefix: string, bad: number) {
  const source = randomName("src");
  const deployment = randomName("dep");
  const dir = tempDir(`capture-skip-${prefix}`);
  sources.push(source);
  dirs.push(dir);
  await client.query(`CREATE TABLE "${schema}".${prefix}_orders (id int PRIMARY KEY, amount numeric(10,2))`);
  await client.query(`CREATE TABLE "${schema}".${prefix}_items (id int PRIMARY KEY)`);
  const table = `${schema}.${prefix}_orders`;
  const config = {
    name: deployment,
    sources: [pgSourceConfig(source, [table, `${schema}.${prefix}_items`], { governance: { tables: { [table]: { checks: [{ check: "range", column: "amount", min: 0, max: 1000, action: "halt" }] } } } })],
    topics: { kind: "embedded", path: join(dir, "log.db") },
    sinks: [{ kind: "duckdb", name: "duck", path: join(dir, "wh.duckdb"), batch: { max_wait: "50ms" } }],
  };
  const daemon = await startReady(dir, config, "run");
  const fixed = Array.from({ length: bad / 50 }, (_, i) => (i + 1) * 50);
  await client.query(`INSERT INTO "${schema}".${prefix}_orders VALUES (1, 10)`);
  await client.query(`INSERT INTO "${schema}".${prefix}_orders SELECT g, ${BAD_AMOUNT} FROM generate_series(2, ${bad + 1}) g`);
  await client.query(`UPDATE "${schema}".${prefix}_orders SET amount = 5 WHERE id = ANY($1)`, [fixed]);
  await client.query(`INSERT INTO "${schema}".${prefix}_orders VALUES (${bad + 100}, 20)`);
  await client.query(`INSERT INTO "${schema}".${prefix}_items VALUES (1)`);
  const halted = async (on: SluiceDaemon) => ((await on.status()).sources as SourceStatus[])[0]?.halted.filter((h) => h.table === table) ?? [];
  await waitFor("the orders table halted at capture", async () => (await halted(daemon)).length > 0, { daemon, timeoutMs: 60_000 });
  // The items row was committed last: once it is captured, every orders change is parked.
  await waitFor("the items row captured", async () => (await daemon.metric("sluice_changes_captured_total", { table: `${schema}.${prefix}_items` })) >= 1, { daemon, timeoutMs: 60_000 });
  return { daemon, source, deployment, dir, config, table, fixed, halted, parkingTopic: `${deployment}.sluice.halted.${source}`, expected: [1, ...fixed, bad + 100] };
}

/** The skip markers in the parking topic: the ids of the skipped changes, in order, and the markers. */
async function skipMarkers(dir: string, parkingTopic: string) {
  const markers = (await readEmbeddedTopics(join(dir, "log.db"), [parkingTopic])).filter((r) => r.headers["sluice.skipped"] !== undefined);
  return { markers, ids: markers.map((m) => (JSON.parse(m.headers["sluice.skipped.key"]!) as { id: number }).id) };
}

test("one 'sluice halted skip --source --all-pending' skips every parked change refused for the halt's reason, names each, and loses nothing else; the dry run says how many and which", { timeout: 120_000 }, async () => {
  const BAD_ROWS = 400;
  const { daemon, source, deployment, dir, table, fixed, halted, parkingTopic, expected } = await haltedByMigration("a", BAD_ROWS);
  const parked = BAD_ROWS + fixed.length + 1;

  const dry = await runSluice(["halted", "-c", daemon.configFile, "skip", "--source", source, "--table", table, "--all-pending"]);
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, new RegExp(`${parked} change\\(s\\) parked in ${deployment}\\.sluice\\.halted\\.${source}`), dry.stdout);
  assert.match(dry.stdout, new RegExp(`Range: \\S+ offsets \\d+ through \\d+: ${parked} parked change\\(s\\) of ${table}, skipped when refused for DATA_CHECK_FAILED, column amount, check range \\(pin it with --through \\d+\\)`), dry.stdout);
  assert.match(dry.stdout, /In the range \(parking offset, op, key, source position\):\n\s+\d+\s+c\s+\{"id":2\}\s+[0-9A-F]+\/[0-9A-F]+/, dry.stdout);
  const through = /pin it with --through (\d+)/.exec(dry.stdout)![1]!;
  assert.equal((await halted(daemon)).length, 1, "a dry run releases nothing");

  const done = await runSluice(["halted", "-c", daemon.configFile, "skip", "--source", source, "--table", table, "--through", through, "--execute"]);
  assert.equal(done.code, 0, done.stderr + done.stdout);
  assert.match(done.stdout, new RegExp(`Done: skipped ${BAD_ROWS} parked change\\(s\\) .*re-published ${fixed.length + 1} parked change\\(s\\); the table is captured again`), done.stdout);
  assert.deepEqual(await halted(daemon), []);

  await waitFor("the accepted orders changes and the items row in DuckDB", async () => JSON.stringify(await duckIds(daemon, "a_orders")) === JSON.stringify(expected) && JSON.stringify(await duckIds(daemon, "a_items")) === "[1]", {
    daemon,
    timeoutMs: 60_000,
  });
  // The table is captured again: a new change goes straight to its topic.
  await client.query(`INSERT INTO "${schema}".a_orders VALUES (${BAD_ROWS + 101}, 30)`);
  await waitFor("a new orders row in DuckDB", async () => (await duckIds(daemon, "a_orders"))?.includes(BAD_ROWS + 101), { daemon, timeoutMs: 60_000 });
  await daemon.stop();

  const { markers, ids } = await skipMarkers(dir, parkingTopic);
  assert.deepEqual(ids, Array.from({ length: BAD_ROWS }, (_, i) => i + 2), "each bad insert skipped once, in order; nothing else");
  for (const marker of markers) {
    assert.match(marker.headers["sluice.skipped.position"]!, /^[0-9A-F]+\/[0-9A-F]+ \(commit [0-9A-F]+\/[0-9A-F]+\)$/);
    assert.match(marker.headers["sluice.skipped"]!, new RegExp(`skipped by an operator \\(sluice halted skip --through ${through}\\)`));
  }
  const log = readFileSync(daemon.logFile, "utf8");
  assert.equal(log.match(/skipped by an operator \(sluice halted skip --through/g)?.length, BAD_ROWS, "a log line per skipped change");
  assert.ok(!log.includes(BAD_AMOUNT.replace(".00", "")), "no refused value in the log");
});

test("a daemon killed (-9) during a bulk skip leaves it done or re-runnable: after the restart the same command finishes it, each refused change skipped once, each accepted one published once", { timeout: 180_000 }, async (t) => {
  const BAD_ROWS = 2_000;
  const { daemon, source, deployment, dir, config, table, halted, parkingTopic, expected } = await haltedByMigration("b", BAD_ROWS);
  const skip = ["halted", "skip", "--source", source, "--table", table, "--all-pending", "--execute"];
  const running = runSluice([...skip, "-c", daemon.configFile]);
  // Killed as soon as the log names a skipped change. The daemon gets through thousands of changes between two looks at
  // its log, so the kill lands at the skip's start (0 skipped in each run seen) or after its end; the kill between two of
  // its writes is capture-skip-range.test.ts's (a write that fails), made deterministic there.
  await waitFor("the bulk skip under way", async () => daemon.logTail(50).includes("skipped by an operator"), { daemon, timeoutMs: 60_000, intervalMs: 1 });
  await daemon.kill();
  const cut = await running;
  const finished = cut.code === 0;
  t.diagnostic(finished ? "the skip finished before the kill" : `killed during the skip: ${(await skipMarkers(dir, parkingTopic)).ids.length} of ${BAD_ROWS} skipped by then`);

  const again = await SluiceDaemon.start(dir, config, "run2");
  // Capture resumes only after the start re-published what it could: the table halts again at its first change not yet skipped, or flows.
  await client.query(`INSERT INTO "${schema}".b_items VALUES (2)`);
  await waitFor("the restart past its parked changes", async () => (await again.metric("sluice_changes_captured_total", { table: `${schema}.b_items` })) >= 1, { daemon: again, timeoutMs: 60_000 });
  if ((await halted(again)).length > 0) {
    const rerun = await runSluice([...skip, "-c", again.configFile]);
    assert.equal(rerun.code, 0, rerun.stderr + rerun.stdout);
  } else {
    assert.ok(finished || (await skipMarkers(dir, parkingTopic)).ids.length === BAD_ROWS, "the table flows only once every refused change was skipped");
  }
  await waitFor("the accepted orders changes in DuckDB", async () => JSON.stringify(await duckIds(again, "b_orders")) === JSON.stringify(expected), { daemon: again, timeoutMs: 60_000 });
  await again.stop();

  const { ids } = await skipMarkers(dir, parkingTopic);
  assert.deepEqual(ids, Array.from({ length: BAD_ROWS }, (_, i) => i + 2), "each bad insert skipped exactly once, in order");
  const published = (await readEmbeddedTopics(join(dir, "log.db"), [`${deployment}.${source}.${schema}.b_orders`], { decode: true })).filter((r) => r.event !== null);
  assert.deepEqual(
    published.map((r) => Number(r.event!.key["id"])),
    expected,
    "each accepted change published exactly once, in order",
  );
});
