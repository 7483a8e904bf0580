/**
 * How long the daemon takes to answer its operator endpoints while it is busy: a snapshot of a big
 * table (PostgreSQL → Kafka on the shared broker → DuckDB, `sluice run` as a child process), then
 * the drain of a backlog written while no sink applied (phase "drain": rows updated in one
 * transaction). A probe asks GET /status, /readyz and /metrics one after the other every
 * --interval-ms during each phase and records each answer's time; from every /metrics answer it
 * takes the daemon's own event-loop delay (sluice_nodejs_eventloop_lag_p99_seconds, _max).
 * With --entry another checkout's daemon/sluice.js runs (compare two builds in turn).
 *
 *   node bench/status-latency.ts [--rows 400000] [--interval-ms 500] [--entry PATH]
 */
import { loadavg } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { metricValue, sleep, SluiceDaemon } from "../test/e2e/helpers.ts";
import { openPipelineBench, percentile } from "./commit-to-visible.ts";

const { values: args } = parseArgs({
  options: {
    rows: { type: "string", default: "400000" },
    "interval-ms": { type: "string", default: "500" },
    entry: { type: "string" },
  },
});
const ROWS = Number(args.rows);
const INTERVAL_MS = Number(args["interval-ms"]);
const log = (text: string) => process.stdout.write(`${text}\n`);

interface Samples {
  status: number[];
  readyz: number[];
  metrics: number[];
  loopP99: number[];
  loopMax: number[];
  lagNull: number;
}

async function timed(daemon: SluiceDaemon, path: string): Promise<{ ms: number; text: string }> {
  const started = performance.now();
  const response = await fetch(`${daemon.url}${path}`, { signal: AbortSignal.timeout(30_000) });
  const text = await response.text();
  return { ms: performance.now() - started, text };
}

/** Probes the endpoints until `done` answers true. */
async function probe(daemon: SluiceDaemon, done: (status: { sources: { snapshots?: { state: string }[] }[]; sinks: { lagRecords: number | null }[] }) => boolean): Promise<Samples> {
  const samples: Samples = { status: [], readyz: [], metrics: [], loopP99: [], loopMax: [], lagNull: 0 };
  for (;;) {
    // Until the daemon listens and logged "sluice started", /status lists no sources or sinks.
    if (!daemon.hasStarted) {
      await sleep(100);
      continue;
    }
    const status = await timed(daemon, "/status");
    samples.status.push(status.ms);
    samples.readyz.push((await timed(daemon, "/readyz")).ms);
    const metrics = await timed(daemon, "/metrics");
    samples.metrics.push(metrics.ms);
    samples.loopP99.push(metricValue(metrics.text, "sluice_nodejs_eventloop_lag_p99_seconds") * 1000);
    samples.loopMax.push(metricValue(metrics.text, "sluice_nodejs_eventloop_lag_max_seconds") * 1000);
    const parsed = JSON.parse(status.text) as Parameters<typeof done>[0];
    if (parsed.sinks.some((s) => s.lagRecords === null)) samples.lagNull += 1;
    if (parsed.sources.length > 0 && parsed.sinks.length > 0 && done(parsed)) return samples;
    await sleep(INTERVAL_MS);
  }
}

function row(phase: string, name: string, values: number[]): string {
  const sorted = [...values].sort((a, b) => a - b);
  const p = (q: number) => (sorted.length ? percentile(sorted, q).toFixed(0) : "-");
  return `| ${phase} | ${name} | ${sorted.length} | ${p(50)} | ${p(90)} | ${sorted.length ? sorted[sorted.length - 1]!.toFixed(0) : "-"} |`;
}

function report(phase: string, s: Samples): void {
  for (const [name, values] of [["GET /status ms", s.status], ["GET /readyz ms", s.readyz], ["GET /metrics ms", s.metrics], ["event-loop delay p99 ms (daemon)", s.loopP99], ["event-loop delay max ms (daemon)", s.loopMax]] as const) log(row(phase, name, values));
  log(`| ${phase} | /status answers with a sink's lagRecords null | ${s.lagNull} | | | |`);
}

const bench = await openPipelineBench("stlat");
try {
  await bench.client.query(`INSERT INTO ${bench.rowsTable} SELECT g, g % 100, repeat('x', 40) || g, g * 1.5, now() FROM generate_series(1, ${ROWS}) g`);
  const config = bench.config([{ kind: "duckdb", name: "duck", path: join(bench.dir, "wh.duckdb") }]);
  log(`rows ${ROWS}, entry ${args.entry ?? "this checkout"}, load ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
  log("| phase | endpoint | answers | p50 | p90 | max |");
  log("| --- | --- | --- | --- | --- | --- |");
  const daemon = await SluiceDaemon.start(bench.dir, config, "stlat", args.entry ? { entry: args.entry } : {});
  const snapshot = await probe(daemon, (s) => s.sources.every((src) => (src.snapshots ?? []).every((p) => p.state === "done")) && s.sinks.every((k) => k.lagRecords === 0));
  report("snapshot", snapshot);
  await bench.client.query(`UPDATE ${bench.rowsTable} SET amount = amount + 1`);
  await sleep(1_000);
  const drain = await probe(daemon, (s) => s.sinks.every((k) => k.lagRecords === 0));
  report("drain", drain);
  log(`load after ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
  await daemon.stop();
} finally {
  await bench.cleanup(log);
}
