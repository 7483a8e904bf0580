/**
 * Commit → durable in Kafka at a fixed rate, capture only (no sinks): the "captured" and
 * "durable" stages of bench/latency.ts without the sinks' threads and servers competing for the
 * machine, for one or more daemons in turn (before/after comparisons in one run).
 *
 *   node bench/capture-latency.ts [--rate 5000] [--seconds 15] [--entries A/daemon/sluice.js,B/daemon/sluice.js,...]
 *
 * Each entry gets its own deployment, slot and tables (bench/commit-to-visible.ts), one
 * transaction every 100 ms (rate/10 changes) for `--seconds`, then the daemon's
 * sluice_capture_latency_seconds histograms over that interval: commit → captured (source read
 * and batching) and commit → durable (encoded, stored in Kafka with its checkpoint), per batch.
 * Give an entry twice, alternating (A,B,B,A), on a shared machine.
 */
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import { SluiceDaemon, waitFor } from "../test/e2e/helpers.ts";
import { commitToVisible, histogramDelta, histogramMean, histogramPercentile, openPipelineBench } from "./commit-to-visible.ts";

const { values: args } = parseArgs({
  options: {
    rate: { type: "string", default: "5000" },
    seconds: { type: "string", default: "15" },
    entries: { type: "string", default: "" },
  },
});
const entries = args.entries === "" ? [undefined] : args.entries.split(",");
const ms = (n: number) => `${Math.round(n)} ms`;

console.log(`| daemon | load (1 min) | commit → captured: mean / p50 / p99 | durable stage alone (mean) | commit → durable: mean / p50 / p99 | batches |`);
console.log("| --- | --- | --- | --- | --- | --- |");
for (const entry of entries) {
  const bench = await openPipelineBench("bench_caplat");
  try {
    await bench.client.query(`INSERT INTO ${bench.rowsTable} VALUES (0, 0, '', 0, now())`);
    const daemon = await SluiceDaemon.start(bench.dir, bench.config([]), "bench", entry === undefined ? {} : { entry });
    await waitFor("the source to be ready", async () => daemon.hasStarted && (await daemon.status()).sources.every((s) => s.ready), { daemon, timeoutMs: 90_000 });
    // The first transactions create the topics and register the schemas: not counted.
    await commitToVisible({ rowsTable: bench.rowsTable, markersTable: bench.markersTable, rate: Number(args.rate), seconds: 2, markerBase: 0, readers: [], label: "warm-up", log: () => undefined });
    const before = await daemon.metrics();
    const load = loadavg()[0]!.toFixed(1);
    await commitToVisible({ rowsTable: bench.rowsTable, markersTable: bench.markersTable, rate: Number(args.rate), seconds: Number(args.seconds), markerBase: 1_000_000, readers: [], label: "timed", log: () => undefined });
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const after = await daemon.metrics();
    const captured = histogramDelta(before, after, "sluice_capture_latency_seconds", { source: bench.source, stage: "captured" });
    const durable = histogramDelta(before, after, "sluice_capture_latency_seconds", { source: bench.source, stage: "durable" });
    const triple = (h: typeof captured) => `${ms(histogramMean(h))} / ${ms(histogramPercentile(h, 50))} / ${ms(histogramPercentile(h, 99))}`;
    console.log(`| ${entry ?? "this checkout"} | ${load} | ${triple(captured)} | ${ms(histogramMean(durable) - histogramMean(captured))} | ${triple(durable)} | ${durable.count} |`);
    await daemon.stop();
  } finally {
    await bench.cleanup(() => undefined);
  }
}
