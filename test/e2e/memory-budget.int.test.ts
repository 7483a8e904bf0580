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
  sinks: [{ kind: "duckdb", name: "warehouse", path: join(dir, "warehouse.duckdb"), threads: 1, batch: { max_wait: "50ms" } }],
};
let client: pg.Client;
let daemon: SluiceDaemon | null = null;

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
  await client.end().catch(() => undefined);
  removeDir(dir);
});

async function query(sql: string): Promise<Record<string, unknown>[]> {
  const response = await fetch(`${daemon!.url}/sinks/warehouse/query`, { method: "POST", body: sql, signal: AbortSignal.timeout(30_000) });
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

  // DuckDB: the derived memory_limit, and the threads the config wrote (derived would be 2).
  const [settings] = await query("SELECT current_setting('memory_limit') AS memory_limit, current_setting('threads')::INT AS threads");
  assert.equal(settings!["memory_limit"], `${sink.duckdb!.memoryLimitBytes / MiB}.0 MiB`);
  assert.equal(settings!["threads"], 1);

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
