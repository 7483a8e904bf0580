/**
 * The query endpoint runs on the sink's thread, whose heap the memory budget bounds (tens of MiB):
 * an answer is made a row at a time up to query.max_bytes, so a SELECT of wide rows cannot run
 * that heap out of memory (which ended the thread and stopped the daemon).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { Worker } from "node:worker_threads";

const dir = mkdtempSync(join(tmpdir(), "sluice-read-heap-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Runs one read query in a thread with `heapMiB` of old space, as a sink thread runs; resolves with its answer, or the thread's failure. */
function queryInSmallHeap(sql: string, heapMiB: number): Promise<{ rows: number; truncated: string | null } | { failed: string }> {
  const code = `
    const { parentPort, workerData } = require("node:worker_threads");
    (async () => {
      const { DuckDBInstance } = await import("@duckdb/node-api");
      const { runReadQuery, LOCKED_DOWN_OPTIONS } = await import(workerData.module);
      const instance = await DuckDBInstance.create(workerData.path, { ...LOCKED_DOWN_OPTIONS });
      const answer = await runReadQuery(instance, workerData.sql, { maxRows: 10000, maxBytes: 16 * 2 ** 20, timeoutMs: 60000 }, {});
      instance.closeSync();
      parentPort.postMessage({ rows: answer.rows.length, truncated: answer.truncated });
    })().catch((error) => parentPort.postMessage({ failed: String(error) }));`;
  const worker = new Worker(code, {
    eval: true,
    workerData: { module: new URL("./read-query.ts", import.meta.url).href, path: join(dir, "heap.duckdb"), sql },
    resourceLimits: { maxOldGenerationSizeMb: heapMiB, maxYoungGenerationSizeMb: 8 },
  });
  return new Promise((resolve) => {
    worker.once("message", (answer: { rows: number; truncated: string | null } | { failed: string }) => {
      resolve(answer);
      void worker.terminate();
    });
    worker.once("error", (error) => resolve({ failed: error.message }));
  });
}

test("a SELECT of 200 rows of 1 MB each in a 48 MiB heap is answered cut at query.max_bytes, not with the thread out of memory", { timeout: 120_000 }, async () => {
  const answer = await queryInSmallHeap("SELECT repeat('x', 1000000) AS wide FROM range(200)", 48);
  assert.ok(!("failed" in answer), `the thread failed: ${"failed" in answer ? answer.failed : ""}`);
  assert.ok(answer.rows > 0 && answer.rows < 17, `${answer.rows} rows of 1 MB under 16 MiB`);
  assert.match(answer.truncated ?? "", /would pass 16MiB of JSON \(the sink's query.max_bytes\)/);
});
