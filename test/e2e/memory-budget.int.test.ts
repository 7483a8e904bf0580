/**
 * The memory budget (issue 16 item 4) in a real `sluice run` process: PostgreSQL into the embedded
 * log and a DuckDB sink, with `memory` set. The main thread starts with the heap the plan gives it
 * (sluice run re-executes itself with the flags), the sink thread gets its resourceLimits (V8's
 * heap flags would override them: the daemon releases them), DuckDB its memory_limit and the
 * threads the user wrote, and the embedded log's connections their page cache.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type pg from "pg";
import { loadConfigFile } from "../../config/load.ts";
import { planMemory } from "../../config/memory.ts";
import { dropPostgres, killAllDaemons, pgClient, pgSourceConfig, randomName, removeDir, startReady, tempDir, waitFor } from "./helpers.ts";
import type { SluiceDaemon } from "./helpers.ts";

const MiB = 2 ** 20;
const schema = randomName("e2e_mem");
const source = randomName("src");
const names = { slot: `sluice_${source}`, publication: `sluice_${source}`, schema };
const dir = tempDir("memory-budget");
const config = {
  name: randomName("dep"),
  memory: "448MiB",
  sources: [pgSourceConfig(source, [`${schema}.*`])],
  topics: { kind: "embedded", path: join(dir, "log.db") },
  sinks: [{ kind: "duckdb", name: "warehouse", path: join(dir, "warehouse.duckdb"), threads: 2, batch: { max_wait: "50ms" } }],
};
let client: pg.Client;
let daemon: SluiceDaemon | null = null;

// The default budget (no memory key): raised to what capture with a DuckDB sink needs at least.
const defaultSchema = randomName("e2e_memdef");
const defaultSource = randomName("src");
const defaultNames = { slot: `sluice_${defaultSource}`, publication: `sluice_${defaultSource}`, schema: defaultSchema };
const defaultConfig = {
  name: randomName("dep"),
  sources: [pgSourceConfig(defaultSource, [`${defaultSchema}.*`])],
  topics: { kind: "embedded", path: join(dir, "default-log.db") },
  sinks: [{ kind: "duckdb", name: "warehouse", path: join(dir, "default-warehouse.duckdb") }],
};
const ROWS = 40_000;
const UPDATES = 30_000;

before(async () => {
  client = await pgClient();
  await client.query(`CREATE SCHEMA "${schema}"`);
  await client.query(`CREATE TABLE "${schema}".items (id int PRIMARY KEY, note text)`);
  await client.query(`INSERT INTO "${schema}".items SELECT g, 'row ' || g FROM generate_series(1, 200) g`);
});

after(async () => {
  await daemon?.stop().catch(() => undefined);
  await killAllDaemons();
  await dropPostgres(client, names).catch(() => undefined);
  await dropPostgres(client, defaultNames).catch(() => undefined);
  await client.end().catch(() => undefined);
  removeDir(dir);
});

async function query(sql: string): Promise<Record<string, unknown>[]> {
  return queryOn(daemon!, sql);
}

async function queryOn(on: SluiceDaemon, sql: string): Promise<Record<string, unknown>[]> {
  const response = await fetch(`${on.url}/sinks/warehouse/query`, { method: "POST", body: sql, signal: AbortSignal.timeout(30_000) });
  const answer = (await response.json()) as { rows?: Record<string, unknown>[]; error?: string };
  assert.equal(response.status, 200, answer.error);
  return answer.rows!;
}

test("each thread, DuckDB and the embedded log run with their share of memory", { timeout: 300_000 }, async () => {
  daemon = await startReady(dir, config, "sluice");
  const plan = planMemory(loadConfigFile(daemon.configFile, { env: {} }), { sources: [source], sinks: ["warehouse"] });
  assert.equal(plan.budgetBytes, 448 * MiB);

  await waitFor("the snapshot in DuckDB", async () => Number((await query(`SELECT count(*)::INT AS n FROM "${schema}_items"`))[0]!["n"]) === 200, { daemon, timeoutMs: 120_000 });

  // The V8 heap limit of each thread is its share: main from the flags sluice run started node with, the sink thread from resourceLimits.
  const sink = plan.sinks["warehouse"]!;
  assert.equal(await daemon.metric("sluice_thread_heap_limit_bytes", { thread: "main" }), (plan.main.oldMb + plan.main.youngMb) * MiB);
  assert.equal(await daemon.metric("sluice_thread_heap_limit_bytes", { thread: "sink warehouse" }), (sink.heap.oldMb + sink.heap.youngMb) * MiB);
  assert.equal(await daemon.metric("sluice_memory_budget_bytes"), 448 * MiB);
  assert.ok((await daemon.metric("sluice_process_resident_memory_bytes")) > 0);

  // DuckDB: the derived memory_limit, and the threads the config wrote (derived would be 1).
  const [settings] = await query("SELECT current_setting('memory_limit') AS memory_limit, current_setting('threads')::INT AS threads");
  assert.equal(settings!["memory_limit"], `${sink.duckdb!.memoryLimitBytes / MiB}.0 MiB`);
  assert.equal(settings!["threads"], 2);

  // The log names the split, with the embedded log's page cache (each connection sets it: connectors/embedded/memory-pragmas.test.ts).
  const log = readFileSync(daemon.logFile, "utf8").split("\n").filter((line) => line.includes('"msg":"memory budget"'));
  assert.equal(log.length, 1);
  const memory = (JSON.parse(log[0]!) as { memory: Record<string, unknown> }).memory;
  assert.equal(memory["budgetMiB"], 448);
  assert.equal(memory["sqliteCacheMiB"], plan.sqliteCacheBytes! / MiB);
  assert.deepEqual(memory["mainHeapMiB"], { old: plan.main.oldMb, young: plan.main.youngMb });
  assert.doesNotMatch(readFileSync(daemon.logFile, "utf8"), /heap limit is \d+MiB, not the/);
  await daemon.stop();
});

/** The process's peak RSS so far (VmHWM; sluice run re-executes itself in place, so the PID is the daemon's). */
function peakRss(pid: number): number {
  return Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]) * 1024;
}

test("with the default budget, capture and a DuckDB sink stay under what the plan names, through a snapshot and a backlog", { timeout: 600_000 }, async () => {
  await client.query(`CREATE SCHEMA "${defaultSchema}"`);
  await client.query(`CREATE TABLE "${defaultSchema}".items (id bigint PRIMARY KEY, account integer, name text, email text, amount numeric(12,2), active boolean, created_at timestamptz, note text)`);
  await client.query(
    `INSERT INTO "${defaultSchema}".items SELECT g, g % 1000, 'name ' || g, 'user' || g || '@example.com', (g % 100000) / 100.0, g % 2 = 0, now(), md5(g::text) FROM generate_series(1, ${ROWS}) g`,
  );
  const count = async (on: SluiceDaemon, where: string) => Number((await queryOn(on, `SELECT count(*)::INT AS n FROM "${defaultSchema}_items" WHERE ${where}`))[0]!["n"]);
  const first = await startReady(dir, defaultConfig, "default-snapshot");
  daemon = first;
  const plan = planMemory(loadConfigFile(first.configFile, { env: {} }), { sources: [defaultSource], sinks: ["warehouse"] });
  assert.equal(plan.budgetFrom, "raised");
  const sink = plan.sinks["warehouse"]!;
  await waitFor("the snapshot in DuckDB", async () => (await count(first, "true")) === ROWS, { daemon: first, timeoutMs: 300_000 });
  assert.equal(await first.metric("sluice_memory_budget_bytes"), plan.budgetBytes);

  // DuckDB under a tight budget: one thread, and its allocator hands freed memory back at an eighth of its limit.
  const [settings] = await queryOn(first, "SELECT current_setting('threads')::INT AS threads, current_setting('memory_limit') AS memory_limit, current_setting('allocator_flush_threshold') AS flush");
  assert.equal(settings!["threads"], 1);
  assert.equal(settings!["memory_limit"], `${sink.duckdb!.memoryLimitBytes / MiB}.0 MiB`);
  assert.equal(settings!["flush"], `${sink.duckdb!.memoryLimitBytes / MiB / 8}.0 MiB`);
  const snapshotPeak = peakRss(first.child.pid!);
  await first.stop();

  for (let from = 1; from <= UPDATES; from += 10_000) {
    await client.query(`UPDATE "${defaultSchema}".items SET amount = amount + 1, note = md5(note) WHERE id BETWEEN $1 AND $2`, [from, from + 9_999]);
  }
  const second = await startReady(dir, defaultConfig, "default-backlog");
  daemon = second;
  await waitFor("the backlog in DuckDB", async () => (await count(second, "amount * 100 <> id % 100000")) === UPDATES, { daemon: second, timeoutMs: 300_000 });
  const backlogPeak = peakRss(second.child.pid!);
  await second.stop();

  // RSS stays under the budget the plan names (the heaps at their limits plus the measured reserves).
  assert.ok(snapshotPeak < plan.budgetBytes, `snapshot: peak RSS ${Math.round(snapshotPeak / MiB)} MiB of a ${plan.budgetBytes / MiB} MiB budget`);
  assert.ok(backlogPeak < plan.budgetBytes, `backlog: peak RSS ${Math.round(backlogPeak / MiB)} MiB of a ${plan.budgetBytes / MiB} MiB budget`);
});
