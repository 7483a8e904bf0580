/**
 * An online snapshot through the whole daemon (`sluice run` as a child process, real services of
 * test/services/): PostgreSQL → the embedded log (or Kafka with --topics kafka) → DuckDB, the
 * source with snapshot.mode never so the big tables reach the sink only through
 * `sluice snapshot --table T --execute`. Three phases:
 *  1. streaming alone: commit → visible in DuckDB at --rate changes/s for --seconds
 *     (bench/commit-to-visible.ts: one transaction every 100 ms, its marker polled every 25 ms);
 *  2. an online snapshot of one big table alone: rows/s to the sink, from the command's "Queued"
 *     to the last of its rows visible in DuckDB (and the rate the daemon reported for its read);
 *  3. an online snapshot of another big table of the same size while the writer streams: rows/s
 *     again, and commit → visible for the markers committed until its last row was visible.
 * The writer changes its own table (new rows and updates), not the tables being read. The daemon's
 * commit → durable (capture) and commit → applied (sink) histograms of phases 1 and 3 say where
 * the streamed changes waited.
 *
 *   node bench/daemon-snapshot.ts [--rows 100000] [--rate 5000] [--seconds 10] [--chunk-rows 10000] [--topics embedded|kafka]
 */
import { loadavg } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { SnapshotProgressEntry } from "../daemon/snapshot-progress.ts";
import type { SluiceDaemon } from "../test/e2e/helpers.ts";
import { runSluice, sleep, startReady, waitFor } from "../test/e2e/helpers.ts";
import { commitToVisible, duckdbMarkers, fmt, histogramDelta, histogramPercentile, latencyRow, openPipelineBench, percentile } from "./commit-to-visible.ts";

const { values: args } = parseArgs({
  options: {
    rows: { type: "string", default: "100000" },
    rate: { type: "string", default: "5000" },
    seconds: { type: "string", default: "10" },
    "chunk-rows": { type: "string", default: "10000" },
    topics: { type: "string", default: "embedded" },
  },
});
const ROWS = Number(args.rows);
const RATE = Number(args.rate);
const SECONDS = Number(args.seconds);
const CHUNK_ROWS = Number(args["chunk-rows"]);
if (args.topics !== "embedded" && args.topics !== "kafka") throw new Error(`--topics embedded or kafka, not ${args.topics}`);

const log = (text: string) => process.stdout.write(`${text}\n`);
const load = () => loadavg().map((l) => l.toFixed(2)).join(" ");

async function duckCount(daemon: SluiceDaemon, view: string): Promise<number> {
  const response = await fetch(`${daemon.url}/sinks/duck/query`, { method: "POST", body: `SELECT count(*)::VARCHAR AS n FROM main."${view}"`, signal: AbortSignal.timeout(30_000) });
  const body = (await response.json()) as { rows?: { n: string }[]; error?: string };
  if (response.status !== 200) return 0; // the table is not there before its first chunk
  return Number(body.rows?.[0]?.n ?? 0);
}

interface SnapshotRun {
  readonly rowsPerSecond: number;
  readonly seconds: number;
  /** The daemon's own figure for reading the table: rows over its started → finished time. */
  readonly readRowsPerSecond: number;
}

/** Queues an online snapshot of `table` with the CLI and waits until all its rows are visible in DuckDB. */
async function snapshotToSink(daemon: SluiceDaemon, schema: string, table: string): Promise<SnapshotRun> {
  const run = await runSluice(["snapshot", "-c", daemon.configFile, "--table", `${schema}.${table}`, "--execute"]);
  if (run.code !== 0 || !run.stdout.includes("Queued as")) throw new Error(`sluice snapshot: exit ${run.code}\n${run.stdout}\n${run.stderr}`);
  const queuedAt = performance.now();
  let seen = 0;
  await waitFor(`${fmt(ROWS)} rows of ${table} in DuckDB`, async () => (seen = await duckCount(daemon, `${schema}_${table}`)) >= ROWS, {
    daemon,
    timeoutMs: 30 * 60_000,
    intervalMs: 100,
    lastSeen: () => seen,
  });
  const seconds = (performance.now() - queuedAt) / 1000;
  let entry: SnapshotProgressEntry | undefined;
  await waitFor(`the daemon to list the snapshot of ${table} as done`, async () => {
    const status = await daemon.status();
    entry = status.sources.flatMap((s) => (s as { snapshots?: SnapshotProgressEntry[] }).snapshots ?? []).find((p) => p.table === `${schema}.${table}` && p.state === "done");
    return entry !== undefined;
  }, { daemon, timeoutMs: 60_000, intervalMs: 200 });
  const readSeconds = entry?.startedAt != null && entry.finishedAt != null ? (Date.parse(entry.finishedAt) - Date.parse(entry.startedAt)) / 1000 : Number.NaN;
  return { rowsPerSecond: ROWS / seconds, seconds, readRowsPerSecond: (entry?.rowsDone ?? Number.NaN) / readSeconds };
}

async function main(): Promise<void> {
  const bench = await openPipelineBench("bench_dsnap");
  const { client, schema, dir, rowsTable, markersTable } = bench;
  let daemon: SluiceDaemon | null = null;
  try {
    for (const table of ["snap_a", "snap_b"]) {
      await client.query(`CREATE TABLE "${schema}".${table} (id bigint PRIMARY KEY, account integer, v text, amount numeric(12,2), at timestamptz)`);
      await client.query(`INSERT INTO "${schema}".${table} SELECT g, g % 1000, md5(g::text), g % 10000 / 100.0, now() FROM generate_series(1, ${ROWS}) g`);
      await client.query(`ANALYZE "${schema}".${table}`);
    }
    await client.query(`INSERT INTO ${rowsTable} VALUES (0, 0, '', 0, now())`);
    const base = bench.config([{ kind: "duckdb", name: "duck", path: join(dir, "warehouse.duckdb") }]);
    const sources = (base["sources"] as Record<string, unknown>[]).map((s) => ({ ...s, snapshot: { mode: "never", chunk_rows: CHUNK_ROWS } }));
    const topics = args.topics === "kafka" ? base["topics"] : { kind: "embedded", path: join(dir, "log", "sluice.db"), partitions: 3 };
    daemon = await startReady(dir, { ...base, sources, topics }, "bench");
    const markers = duckdbMarkers("duck", daemon.url, "duck", `${schema}_markers`);
    // The source starts streaming at its slot: a marker committed now shows the path is live.
    await waitFor("a marker in DuckDB", async () => {
      await client.query(`INSERT INTO ${markersTable} VALUES (1, now()) ON CONFLICT (id) DO UPDATE SET sent_at = now()`);
      return (await markers.ids(0).catch(() => [])).length > 0;
    }, { daemon, timeoutMs: 120_000, intervalMs: 1_000 });
    log(`PostgreSQL → ${args.topics === "kafka" ? "Kafka (3 partitions, transactions)" : "embedded log (3 partitions)"} → DuckDB; snapshots of ${fmt(ROWS)}-row tables (chunk_rows ${fmt(CHUNK_ROWS)}), writer at ${fmt(RATE)} changes/s; load average ${load()}`);

    const stages = (before: string, after: string) => {
      const durable = histogramDelta(before, after, "sluice_capture_latency_seconds", { source: bench.source, stage: "durable" });
      const applied = histogramDelta(before, after, "sluice_sink_latency_seconds", { sink: "duck", stage: "applied" });
      return ` ${fmt(histogramPercentile(durable, 50))} / ${fmt(histogramPercentile(durable, 99))} ms | ${fmt(histogramPercentile(applied, 50))} / ${fmt(histogramPercentile(applied, 99))} ms |`;
    };
    let metrics = await daemon.metrics();
    const alone = (await commitToVisible({ rowsTable, markersTable, rate: RATE, seconds: SECONDS, markerBase: 1_000_000, readers: [markers], label: "streaming alone", log })).get("duck")!;
    const aloneStages = stages(metrics, await daemon.metrics());
    log(`load average ${load()}`);

    const snapshotAlone = await snapshotToSink(daemon, schema, "snap_a");
    log(`snapshot alone: ${fmt(snapshotAlone.rowsPerSecond)} rows/s to the sink (${snapshotAlone.seconds.toFixed(1)} s), read at ${fmt(snapshotAlone.readRowsPerSecond)} rows/s by the daemon's status; load average ${load()}`);

    let done = false;
    let transactions = 0;
    const during = commitToVisible({
      rowsTable,
      markersTable,
      rate: RATE,
      seconds: 3600,
      markerBase: 2_000_000,
      readers: [markers],
      label: "during the snapshot",
      log,
      stop: () => done || (transactions++, false),
    });
    // The writer is up to speed before the snapshot starts.
    await sleep(1_000);
    metrics = await daemon.metrics();
    const snapshotStreaming = await snapshotToSink(daemon, schema, "snap_b").finally(() => (done = true));
    const duringLatency = (await during).get("duck")!;
    const duringStages = stages(metrics, await daemon.metrics());
    log(`snapshot while streaming: ${fmt(snapshotStreaming.rowsPerSecond)} rows/s to the sink (${snapshotStreaming.seconds.toFixed(1)} s), read at ${fmt(snapshotStreaming.readRowsPerSecond)} rows/s by the daemon's status; load average ${load()}`);

    log("");
    log(`| commit → visible in DuckDB at ${fmt(RATE)} changes/s | p50 | p99 | max | markers | daemon: commit → durable p50 / p99 | commit → applied p50 / p99 |`);
    log("| --- | --- | --- | --- | --- | --- | --- |");
    log(`${latencyRow("without a snapshot", alone, SECONDS * 10)}${aloneStages}`);
    log(`${latencyRow("during the snapshot", duringLatency, transactions)}${duringStages}`);
    log("");
    log(`streaming p99 during / without the snapshot: ${(percentile(duringLatency, 99) / percentile(alone, 99)).toFixed(2)}x; snapshot rows/s to the sink with / without streaming: ${(snapshotStreaming.rowsPerSecond / snapshotAlone.rowsPerSecond).toFixed(2)}`);
    await daemon.stop();
  } catch (error) {
    if (daemon !== null) log(`daemon exit status ${JSON.stringify(daemon.exitStatus)}; its log ends:\n${daemon.logTail(40)}`);
    throw error;
  } finally {
    await bench.cleanup(log);
  }
}

await main();
