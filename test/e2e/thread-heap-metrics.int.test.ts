/** /metrics shows the process's RSS and the V8 heap of each thread: the main thread and every sink's own. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type pg from "pg";
import { dropPostgres, killAllDaemons, metricValue, pgClient, pgSourceConfig, randomName, removeDir, startReady, tempDir, waitFor } from "./helpers.ts";

const schema = randomName("e2e_heap");
const source = randomName("src");
const dir = tempDir("thread-heap");
let client: pg.Client;

before(async () => {
  client = await pgClient();
  await client.query(`CREATE SCHEMA "${schema}"`);
  await client.query(`CREATE TABLE "${schema}".items (id bigint PRIMARY KEY, name text)`);
});

after(async () => {
  await killAllDaemons();
  await dropPostgres(client, { slot: `sluice_${source}`, publication: `sluice_${source}`, schema });
  await client.end();
  removeDir(dir);
});

test("/metrics: RSS, and heap in use and heap limit of the main thread and of each sink thread", { timeout: 120_000 }, async () => {
  const daemon = await startReady(dir, {
    name: randomName("dep"),
    sources: [pgSourceConfig(source, [`${schema}.*`])],
    topics: { kind: "embedded", path: join(dir, "log.db") },
    sinks: [{ kind: "duckdb", name: "warehouse", path: join(dir, "warehouse.duckdb") }],
  }, "heap");
  await waitFor("the daemon to start its sink", async () => daemon.hasStarted || undefined, { daemon, timeoutMs: 90_000 });
  const text = await daemon.metrics();
  assert.ok(metricValue(text, "sluice_process_resident_memory_bytes") > 0, "RSS");
  for (const thread of ["main", "sink warehouse"]) {
    const used = metricValue(text, "sluice_thread_heap_used_bytes", { thread });
    const limit = metricValue(text, "sluice_thread_heap_limit_bytes", { thread });
    assert.ok(used > 0, `heap in use of thread ${thread}:\n${daemon.logTail()}\n${text.split("\n").filter((l) => l.includes("heap")).join("\n")}`);
    assert.ok(limit > used, `heap limit of thread ${thread}`);
  }
  await daemon.stop();
});
