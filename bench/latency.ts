/**
 * Commit → visible in each sink at a fixed rate, with where the time goes: PostgreSQL → Kafka
 * (3 partitions, transactions) → ClickHouse + Elasticsearch (`refresh_interval: 100ms` unless
 * --es-refresh says otherwise) + DuckDB, through the real daemon (`sluice run` as a child process)
 * and the real services of test/services/.
 *
 *   node bench/latency.ts [--rate 5000] [--seconds 20] [--rounds 1] [--warmup 10] [--es-refresh 100ms] [--config '{"topics":{"linger":5}}'] [--entry /other/checkout/daemon/sluice.js]
 *
 * Each round: `--seconds` of one transaction every 100 ms (rate/10 changes, one of them a marker
 * row; bench/commit-to-visible.ts), markers polled every 25 ms in ClickHouse's view,
 * Elasticsearch's alias and DuckDB (through the daemon's query endpoint), with how long one such
 * read takes (it is part of "visible"; "at the read's start" leaves it out, a lower bound), and
 * probes of the daemon's HTTP answer alone and of a trivial DuckDB query (what the endpoint adds
 * besides the query itself). Then the breakdown from
 * the daemon's histograms over the same interval: commit → captured → durable in Kafka (per
 * source) → polled by the sink → applied to the target (per sink); Elasticsearch's refresh is the
 * rest up to visible. `--config` merges JSON into the daemon's config (e.g. other defaults);
 * `--entry` runs another checkout's daemon (before/after comparisons with the same bench).
 *
 * Before the rounds, `--warmup` seconds at the same rate are written and not counted, and the
 * header says how long Elasticsearch's and ClickHouse's servers have been up: a server started a
 * minute before (its JIT cold) is slow for minutes. A freshly started Elasticsearch took 6–10 s a
 * batch where a warm one took 2–3 under the same load (docs/benchmarks.md, "a freshly started
 * Elasticsearch"), which once read as a regression of the Elasticsearch sink.
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { clickhouseQuery, esRequest, startReady, waitFor } from "../test/e2e/helpers.ts";
import { clickhouse, elasticsearch } from "../test/services/ports.ts";
import {
  clickhouseMarkers,
  commitToVisible,
  duckdbMarkers,
  elasticsearchMarkers,
  fmt,
  histogramDelta,
  histogramMean,
  histogramPercentile,
  latencyRow,
  openPipelineBench,
  percentile,
} from "./commit-to-visible.ts";
import type { HistogramDelta, MarkerReader } from "./commit-to-visible.ts";

const { values: args } = parseArgs({
  options: {
    rate: { type: "string", default: "5000" },
    seconds: { type: "string", default: "20" },
    rounds: { type: "string", default: "1" },
    "es-refresh": { type: "string", default: "100ms" },
    config: { type: "string", default: "{}" },
    entry: { type: "string" },
    warmup: { type: "string", default: "10" },
  },
});
const RATE = Number(args.rate);
const SECONDS = Number(args.seconds);
const ROUNDS = Number(args.rounds);
const WARMUP_SECONDS = Number(args.warmup);
/** A server up for less than this may still be compiling its hot paths (Elasticsearch's JVM). */
const WARM_AFTER_MS = 10 * 60_000;

const SINKS = [
  { name: "warehouse", label: "ClickHouse" },
  { name: "duck", label: "DuckDB" },
  { name: "search", label: `Elasticsearch (refresh ${args["es-refresh"]})` },
] as const;

const log = (text: string) => process.stdout.write(`${text}\n`);

function merge(base: Record<string, unknown>, extra: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(extra)) {
    const current = out[key];
    out[key] = value !== null && typeof value === "object" && !Array.isArray(value) && current !== null && typeof current === "object" && !Array.isArray(current) ? merge(current as Record<string, unknown>, value as Record<string, unknown>) : value;
  }
  return out;
}

/** A reader that notes how long each of its reads takes (part of what "visible" measures: DuckDB's goes through the daemon). */
function timed(reader: MarkerReader): MarkerReader & { readonly readMs: number[] } {
  const readMs: number[] = [];
  return {
    name: reader.name,
    readMs,
    async ids(after) {
      const started = performance.now();
      try {
        return await reader.ids(after);
      } finally {
        readMs.push(performance.now() - started);
      }
    },
  };
}

/** How long the target servers have been up, as a line (a JVM started minutes ago is still slow). */
async function serverUptimes(): Promise<string> {
  const minutes = (ms: number) => `${(ms / 60_000).toFixed(1)} min${ms < WARM_AFTER_MS ? " (started recently: figures may show its warm-up, not Sluice)" : ""}`;
  const parts: string[] = [];
  try {
    const nodes = (await esRequest("GET", "/_nodes/stats/jvm?filter_path=nodes.*.jvm.uptime_in_millis")).json as { nodes: Record<string, { jvm: { uptime_in_millis: number } }> };
    parts.push(`Elasticsearch ${minutes(Math.min(...Object.values(nodes.nodes).map((n) => n.jvm.uptime_in_millis)))}`);
  } catch (error) {
    parts.push(`Elasticsearch ? (${String(error)})`);
  }
  try {
    parts.push(`ClickHouse ${minutes(Number((await clickhouseQuery("SELECT uptime()")).toString().trim()) * 1000)}`);
  } catch (error) {
    parts.push(`ClickHouse ? (${String(error)})`);
  }
  return `servers up: ${parts.join(", ")}`;
}

/** One row of the breakdown: mean, p50 and p99 of a commit → stage histogram, and the mean of the stage on its own. */
function stageRow(label: string, h: HistogramDelta, previousMean: number): string {
  const mean = histogramMean(h);
  return `| ${label} | ${fmt(mean - previousMean)} ms | ${fmt(mean)} ms | ${fmt(histogramPercentile(h, 50))} ms | ${fmt(histogramPercentile(h, 99))} ms | ${h.count} |`;
}

async function main(): Promise<void> {
  const bench = await openPipelineBench("bench_lat");
  const { client, schema, source, database, dir, rowsTable: ROWS, markersTable: MARKERS } = bench;
  try {
    await client.query(`INSERT INTO ${ROWS} VALUES (0, 0, '', 0, now())`);
    const config = merge(
      bench.config([
        { kind: "clickhouse", name: "warehouse", url: clickhouse.url, user: clickhouse.username, password: clickhouse.password, database },
        { kind: "duckdb", name: "duck", path: join(dir, "warehouse.duckdb") },
        { kind: "elasticsearch", name: "search", nodes: [elasticsearch.url], refresh_interval: args["es-refresh"] },
      ]),
      JSON.parse(args.config) as Record<string, unknown>,
    );
    const daemon = await startReady(dir, config, "bench", args.entry === undefined ? {} : { entry: args.entry });
    const readers = [
      clickhouseMarkers("warehouse", database, `${schema}_markers`),
      duckdbMarkers("duck", daemon.url, "duck", `${schema}_markers`),
      elasticsearchMarkers("search", `${schema}_markers`),
    ].map(timed);
    await waitFor("the marker row to reach every sink", async () => {
      for (const reader of readers) if ((await reader.ids(-1).catch(() => [])).length === 0) return false;
      return true;
    }, { daemon, timeoutMs: 120_000 });
    // What a DuckDB read costs besides the read itself: the daemon's HTTP answer alone (main thread), and a trivial query through the sink's thread.
    const probes = [
      { label: "GET /healthz (the daemon's main thread)", ms: [] as number[], call: () => fetch(`${daemon.url}/healthz`).then((r) => r.text()) },
      { label: "POST /sinks/duck/query SELECT 1 (main thread, sink thread, DuckDB)", ms: [] as number[], call: () => fetch(`${daemon.url}/sinks/duck/query`, { method: "POST", body: "SELECT 1 AS one" }).then((r) => r.text()) },
    ];
    let probing = false;
    const probeLoop = async () => {
      while (probing) {
        for (const probe of probes) {
          const started = performance.now();
          await probe.call().catch(() => undefined);
          probe.ms.push(performance.now() - started);
        }
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    };
    const load = await import("node:os").then((os) => os.loadavg().map((l) => l.toFixed(2)).join(" "));
    log(`PostgreSQL → Kafka (3 partitions, transactions) → ClickHouse + DuckDB + Elasticsearch; ${RATE} changes/s for ${SECONDS} s × ${ROUNDS}; load average ${load}; extra config ${args.config}; daemon ${args.entry ?? "this checkout's"}`);
    log(await serverUptimes());
    if (WARMUP_SECONDS > 0) {
      // Not counted: the daemon's threads, the JITs of Node and of the servers, and the targets' new tables warm up.
      const warm = await commitToVisible({ rowsTable: ROWS, markersTable: MARKERS, rate: RATE, seconds: WARMUP_SECONDS, markerBase: 500_000, readers, label: "warm-up", log });
      log(`warm-up (${WARMUP_SECONDS} s, not counted): p50 ${SINKS.map((sink) => `${sink.label} ${fmt(percentile([...warm.get(sink.name)!].sort((a, b) => a - b), 50))} ms`).join(", ")}`);
    }

    for (let round = 1; round <= ROUNDS; round++) {
      for (const reader of readers) reader.readMs.length = 0;
      for (const probe of probes) probe.ms.length = 0;
      const before = await daemon.metrics();
      probing = true;
      const probed = probeLoop();
      const atReadStart = new Map<string, number[]>();
      const seen = await commitToVisible({ rowsTable: ROWS, markersTable: MARKERS, rate: RATE, seconds: SECONDS, markerBase: round * 1_000_000, readers, label: `round ${round}`, log, atReadStart });
      probing = false;
      await probed;
      const after = await daemon.metrics();
      const expected = SECONDS * 10;
      log("");
      log(`| commit → visible at ${fmt(RATE)} changes/s (round ${round}) | p50 | p99 | max | markers | one read by the poller: p50 / p99 | at the read's start: p50 / p99 |`);
      log("| --- | --- | --- | --- | --- | --- | --- |");
      for (const sink of SINKS) {
        const reads = [...readers.find((r) => r.name === sink.name)!.readMs].sort((a, b) => a - b);
        const fromStart = atReadStart.get(sink.name) ?? [];
        log(`${latencyRow(sink.label, seen.get(sink.name)!, expected)} ${fmt(percentile(reads, 50))} / ${fmt(percentile(reads, 99))} ms | ${fmt(percentile(fromStart, 50))} / ${fmt(percentile(fromStart, 99))} ms |`);
      }
      log("");
      log(`| probe every 25 ms during round ${round} | p50 | p99 | calls |`);
      log("| --- | --- | --- | --- |");
      for (const probe of probes) {
        const sorted = [...probe.ms].sort((a, b) => a - b);
        log(`| ${probe.label} | ${fmt(percentile(sorted, 50))} ms | ${fmt(percentile(sorted, 99))} ms | ${sorted.length} |`);
      }
      log("");
      log(`| daemon's histograms (round ${round}), per transaction | stage alone (mean) | commit → here (mean) | p50 | p99 | observations |`);
      log("| --- | --- | --- | --- | --- | --- |");
      const captured = histogramDelta(before, after, "sluice_capture_latency_seconds", { source, stage: "captured" });
      const durable = histogramDelta(before, after, "sluice_capture_latency_seconds", { source, stage: "durable" });
      log(stageRow("captured (source read and batching)", captured, 0));
      log(stageRow("durable in Kafka (encode, transaction commit)", durable, histogramMean(captured)));
      for (const sink of SINKS) {
        const polled = histogramDelta(before, after, "sluice_sink_latency_seconds", { sink: sink.name, stage: "polled" });
        const applied = histogramDelta(before, after, "sluice_sink_latency_seconds", { sink: sink.name, stage: "applied" });
        log(stageRow(`${sink.label}: polled (fetch, batch wait)`, polled, histogramMean(durable)));
        log(stageRow(`${sink.label}: applied (decode, write, commit)`, applied, histogramMean(polled)));
      }
      log("");
    }
    const counts = await bench.rowCounts();
    await daemon.stop();
    log(counts);
  } finally {
    await bench.cleanup(log);
  }
}

await main();
