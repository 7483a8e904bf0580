/**
 * The commit → stage latency histograms take one observation per transaction of a batch (a run of
 * changes with one commit time), leave snapshot reads out, and stay bounded per batch.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Worker } from "node:worker_threads";
import type { ChangeEvent } from "../connectors/contracts.ts";
import { commitTimesOf, countPerTableAndOp, observeStages, SluiceMetrics } from "./metrics.ts";

function event(commitTimeMs: number, snapshot = false): ChangeEvent {
  return { op: snapshot ? "r" : "c", source: { commitTimeMs, snapshot } } as unknown as ChangeEvent;
}

test("one commit time per transaction; snapshot reads left out", () => {
  const events = [event(100), event(100), event(100), event(5, true), event(5, true), event(130), event(160), event(160)];
  assert.deepEqual(commitTimesOf(events), [100, 130, 160]);
});

test("at most 64 commit times a batch, spread over the whole batch", () => {
  const times = commitTimesOf(Array.from({ length: 1_000 }, (_, i) => event(i)));
  assert.equal(times.length, 64);
  assert.equal(times[0], 0);
  assert.ok(times.at(-1)! >= 900, `the last sample (${times.at(-1)}) comes from the end of the batch`);
});

test("each stage is observed as the time from each transaction's commit, in seconds", async () => {
  const metrics = new SluiceMetrics({ processMetrics: false });
  observeStages(metrics.sinkLatency, { sink: "w" }, [event(1_000), event(1_000), event(1_100)], { polled: 1_200, applied: 1_300 });
  const text = await metrics.registry.metrics();
  assert.match(text, /^sluice_sink_latency_seconds_count\{sink="w",stage="polled"\} 2$/m);
  const sum = (stage: string) => Number(new RegExp(`^sluice_sink_latency_seconds_sum\\{sink="w",stage="${stage}"\\} (\\S+)$`, "m").exec(text)?.[1]);
  assert.ok(Math.abs(sum("polled") - (0.2 + 0.1)) < 1e-9, `polled: ${sum("polled")}`);
  assert.ok(Math.abs(sum("applied") - (0.3 + 0.2)) < 1e-9, `applied: ${sum("applied")}`);
});

test("changes are counted per table and op across runs that come back", () => {
  const items = { schema: "s", table: "items" };
  const orders = { schema: "s", table: "orders" };
  const change = (schema: object, op: string) => ({ op, schema }) as unknown as ChangeEvent;
  const events = [change(items, "c"), change(items, "c"), change(items, "u"), change(orders, "c"), change(items, "c"), change(orders, "d"), change(orders, "c")];
  const counts = countPerTableAndOp(events).map(({ table, op, count }) => `${table} ${op} ${count}`).sort();
  assert.deepEqual(counts, ["s.items c 3", "s.items u 1", "s.orders c 2", "s.orders d 1"]);
});

test("a sink thread's metrics (no process metrics) load prom-client's metric classes, not its whole package", async () => {
  // A thread of its own: its modules are its own, whatever this process loaded.
  const code = `
    const { parentPort, workerData } = require("node:worker_threads");
    import(workerData).then(async ({ SluiceMetrics }) => {
      const metrics = new SluiceMetrics({ processMetrics: false });
      metrics.sinkApplied.inc({ sink: "s", table: "t", op: "c" }, 2);
      const json = await metrics.registry.getMetricsAsJSON();
      const loaded = Object.keys(require.cache).filter((file) => file.includes("/prom-client/")).map((file) => file.slice(file.indexOf("/prom-client/") + 1));
      parentPort.postMessage({ loaded, applied: json.find((m) => m.name === "sluice_sink_changes_applied_total").values });
    });`;
  const worker = new Worker(code, { eval: true, workerData: new URL("./metrics.ts", import.meta.url).href });
  const answer = await new Promise<{ loaded: string[]; applied: { value: number }[] }>((resolve, reject) => {
    worker.once("message", resolve);
    worker.once("error", reject);
  });
  await worker.terminate();
  assert.deepEqual(answer.applied.map((v) => v.value), [2]);
  assert.ok(answer.loaded.includes("prom-client/lib/counter.js"), answer.loaded.join(", "));
  for (const whole of ["prom-client/index.js", "prom-client/lib/defaultMetrics.js", "prom-client/lib/cluster.js"]) assert.ok(!answer.loaded.includes(whole), `loaded ${whole}`);
});
