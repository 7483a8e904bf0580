/**
 * The whole pipeline under load: PostgreSQL → Kafka (transactions) → ClickHouse + Elasticsearch,
 * through the real daemon (`sluice run` as a child process, default settings) and the real
 * services of test/services/, all on one machine.
 *
 *   node bench/pipeline-throughput.ts [--seconds 10] [--writers 2] [--rate 5000] [--latency-seconds 20]
 *     [--memory 512MiB] [--batch-bytes 8MiB] [--backlog [--changes 200000]] [--entry /other/checkout/daemon/sluice.js]
 *
 * `--memory` sets the daemon's memory budget (default: none, so the default budget, raised to what
 * the process needs); `--batch-bytes` sets both sinks' batch.max_bytes (default: the plan's);
 * `--entry` runs another checkout's daemon (before/after comparisons). `--backlog` measures the
 * sinks alone: a capture-only daemon (`--role capture`) writes the whole backlog (`--changes`) into Kafka and
 * stops, then the full daemon (same config and plan as above) starts and its sinks drain it; rates
 * from the first change applied to the last, and CPU per change of the full daemon's threads.
 *
 * 1. Sustained throughput: `--writers` connections write as fast as they can for `--seconds`
 *    (transactions of 1,000 changes: multi-row INSERTs and UPDATEs of rows written before, one
 *    to one). Reported: the writers' rate, and per stage the changes it handled divided by the
 *    time from the first write until that stage had all of them (capture = in Kafka; each sink =
 *    applied), plus the best 5-s window of each sink (sluice_sink_changes_applied_total). The
 *    writers outrun the pipeline many times over, so the stages work through a backlog of
 *    millions of changes; the CPU each process used meanwhile shows what limits them.
 * 2. Commit → visible latency at a fixed `--rate` (changes/s) for `--latency-seconds` (0 leaves it
 *    out; bench/commit-to-visible.ts, shared with bench/latency.ts, which also measures DuckDB and
 *    where the time goes): every
 *    100 ms one transaction of rate/10 changes, one of them a marker row (its own small table)
 *    whose commit time the writer notes; pollers query ClickHouse's view and Elasticsearch's
 *    alias every 25 ms for new markers. Latency = first seen − commit returned (includes up to
 *    25 ms of polling). Elasticsearch is measured twice: with the default refresh interval (1 s)
 *    and with the markers index at `refresh_interval: 100ms`.
 * 3. Check: row counts in ClickHouse and Elasticsearch equal PostgreSQL's.
 */
import { readdirSync, readFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type pg from "pg";
import {
  clickhouseQuery,
  currentLsn,
  esRequest,
  metricValue,
  pgClient,
  sleep,
  SluiceDaemon,
  startReady,
  waitFor,
} from "../test/e2e/helpers.ts";
import { clickhouse, elasticsearch, servicesDir } from "../test/services/ports.ts";
import { clickhouseMarkers, commitToVisible, elasticsearchMarkers, fmt, latencyRow, openPipelineBench } from "./commit-to-visible.ts";

const { values: args } = parseArgs({
  options: {
    seconds: { type: "string", default: "10" },
    writers: { type: "string", default: "2" },
    rate: { type: "string", default: "5000" },
    "latency-seconds": { type: "string", default: "20" },
    memory: { type: "string" },
    "batch-bytes": { type: "string" },
    backlog: { type: "boolean", default: false },
    changes: { type: "string", default: "200000" },
    entry: { type: "string" },
  },
});
const ENTRY = args.entry === undefined ? {} : { entry: args.entry };
const SECONDS = Number(args.seconds);
const WRITERS = Number(args.writers);
const RATE = Number(args.rate);
const LATENCY_SECONDS = Number(args["latency-seconds"]);
const TX_CHANGES = 1_000;

const bench = await openPipelineBench("bench_pipe");
const { schema, database, dir, rowsTable: ROWS, markersTable: MARKERS } = bench;

const log = (text: string) => process.stdout.write(`${text}\n`);

interface Sample {
  readonly at: number;
  readonly captured: number;
  readonly warehouse: number;
  readonly search: number;
  /** Batches each sink applied (sluice_sink_batch_apply_duration_seconds_count; every table). */
  readonly warehouseBatches: number;
  readonly searchBatches: number;
  /** Changes each sink applied, every table. */
  readonly warehouseAll: number;
  readonly searchAll: number;
}

async function sample(daemon: SluiceDaemon): Promise<Sample> {
  const text = await daemon.metrics();
  const table = `${schema}.rows`;
  return {
    at: performance.now(),
    captured: metricValue(text, "sluice_changes_captured_total", { table }),
    warehouse: metricValue(text, "sluice_sink_changes_applied_total", { sink: "warehouse", table }),
    search: metricValue(text, "sluice_sink_changes_applied_total", { sink: "search", table }),
    warehouseBatches: metricValue(text, "sluice_sink_batch_apply_duration_seconds_count", { sink: "warehouse" }),
    searchBatches: metricValue(text, "sluice_sink_batch_apply_duration_seconds_count", { sink: "search" }),
    warehouseAll: metricValue(text, "sluice_sink_changes_applied_total", { sink: "warehouse" }),
    searchAll: metricValue(text, "sluice_sink_changes_applied_total", { sink: "search" }),
  };
}

function bestWindow(samples: readonly Sample[], key: "captured" | "warehouse" | "search", windowMs = 5_000): number {
  let best = 0;
  for (let i = 0; i < samples.length; i++) {
    const j = samples.findIndex((s) => s.at >= samples[i]!.at + windowMs);
    if (j < 0) break;
    best = Math.max(best, ((samples[j]![key] - samples[i]![key]) * 1000) / (samples[j]!.at - samples[i]!.at));
  }
  return best;
}

interface CpuSnapshot {
  /** pid → [consumer, utime + stime in clock ticks] */
  readonly processes: Map<number, [string, number]>;
  /** The daemon's threads by name (V8's helper threads, which run the parallel collector's work, together): clock ticks. */
  readonly threads: Map<string, number>;
  readonly busy: number;
  readonly total: number;
}

/** CPU ticks of each thread of a process, by thread name (`sink <name>` for a sink's thread, MainThread for capture). */
function threadTicks(pid: number): Map<string, number> {
  const threads = new Map<string, number>();
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return threads;
  }
  for (const task of tasks) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${task}/stat`, "utf8");
      const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const key = name.startsWith("V8Worker") ? "V8 helper threads" : name;
      threads.set(key, (threads.get(key) ?? 0) + Number(fields[11]) + Number(fields[12]));
    } catch {
      // the thread ended meanwhile
    }
  }
  return threads;
}

/** CPU time of every process, sorted by consumer: the daemon, each service (by its pid file), PostgreSQL's processes, this benchmark, the rest. */
function cpuSnapshot(daemonPid: number): CpuSnapshot {
  const pidOf = (svc: string) => {
    try {
      return Number(readFileSync(join(servicesDir, "run", `${svc}.pid`), "utf8").trim());
    } catch {
      return -1;
    }
  };
  const named = new Map<number, string>([
    [daemonPid, "sluice daemon"],
    [process.pid, "benchmark"],
    [pidOf("kafka"), "Kafka"],
    [pidOf("elasticsearch"), "Elasticsearch"],
    [pidOf("clickhouse"), "ClickHouse"],
  ]);
  const processes = new Map<number, [string, number]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue;
    }
    const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const pid = Number(entry);
    processes.set(pid, [named.get(pid) ?? (comm === "postgres" ? "PostgreSQL" : "other"), Number(fields[11]) + Number(fields[12])]);
  }
  const cpu = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = cpu.reduce((a, b) => a + b, 0);
  return { processes, threads: threadTicks(daemonPid), busy: total - cpu[3]! - (cpu[4] ?? 0), total };
}

/**
 * CPU-seconds per 100k changes of the daemon's threads between two snapshots: capture on the main
 * thread, each sink's thread, V8's helper threads. CPU per change says more than rates on a
 * loaded machine, where every thread also waits for a core.
 */
function threadReport(before: CpuSnapshot, after: CpuSnapshot, changes: number): string {
  const parts = [...after.threads]
    .map(([name, ticks]) => [name, ticks - (before.threads.get(name) ?? 0)] as const)
    .filter(([, ticks]) => ticks > 0)
    .sort((a, b) => b[1] - a[1])
    .map(([name, ticks]) => `${name === "MainThread" ? "main thread (capture)" : name} ${((ticks / 100) * (100_000 / changes)).toFixed(2)}`);
  return `daemon CPU-seconds per 100k changes while draining, by thread: ${parts.join(", ")}`;
}

/** Cores used per consumer between two snapshots (processes that ended meanwhile are not counted). */
function cpuReport(before: CpuSnapshot, after: CpuSnapshot, seconds: number): string {
  const used = new Map<string, number>();
  for (const [pid, [consumer, ticks]] of after.processes) used.set(consumer, (used.get(consumer) ?? 0) + ticks - (before.processes.get(pid)?.[1] ?? 0));
  const parts = ["sluice daemon", "PostgreSQL", "Kafka", "ClickHouse", "Elasticsearch", "benchmark", "other"].map((k) => `${k} ${((used.get(k) ?? 0) / 100 / seconds).toFixed(2)}`);
  return `CPU while draining, in cores (of ${cpus().length}): ${parts.join(", ")}; machine busy ${((100 * (after.busy - before.busy)) / (after.total - before.total)).toFixed(0)} %`;
}

/**
 * The writers' transactions while `more(changes written so far)`: each writer owns an id range; it inserts new rows
 * and updates the rows it inserted, TX_CHANGES rows a transaction. Returns the changes written.
 */
async function writeChanges(writers: readonly pg.Client[], more: (written: number) => boolean): Promise<number> {
  let written = 0;
  await Promise.all(
    writers.map(async (client, w) => {
      let next = w * 1_000_000_000;
      let updated = w * 1_000_000_000;
      for (let i = 0; more(written); i++) {
        if (i % 2 === 0 || updated + TX_CHANGES > next) {
          const r = await client.query(`INSERT INTO ${ROWS} SELECT g, g % 1000, md5(g::text), (g % 100000) / 100.0, now() FROM generate_series($1::bigint, $2::bigint) g`, [next, next + TX_CHANGES - 1]);
          next += TX_CHANGES;
          written += r.rowCount ?? 0;
        } else {
          const r = await client.query(`UPDATE ${ROWS} SET v = md5(v), amount = amount + 1, at = now() WHERE id BETWEEN $1 AND $2`, [updated, updated + TX_CHANGES - 1]);
          updated += TX_CHANGES;
          written += r.rowCount ?? 0;
        }
      }
    }),
  );
  return written;
}

/** Phase 1: as fast as the writers go. */
async function throughput(daemon: SluiceDaemon): Promise<string[]> {
  const writers = await Promise.all(Array.from({ length: WRITERS }, () => pgClient()));
  const samples: Sample[] = [await sample(daemon)];
  const start = performance.now();
  const deadline = start + SECONDS * 1000;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      await sleep(500);
      samples.push(await sample(daemon));
    }
  })();
  const written = await writeChanges(writers, () => performance.now() < deadline);
  const writeSeconds = (performance.now() - start) / 1000;
  log(`writers: ${fmt(written)} changes in ${writeSeconds.toFixed(1)} s (${fmt(written / writeSeconds)} changes/s)`);
  const cpuBefore = cpuSnapshot(daemon.child.pid!);
  const drainStart = performance.now();
  const done: Partial<Record<"captured" | "warehouse" | "search", number>> = {};
  const drainDeadline = performance.now() + 30 * 60_000;
  while (Object.keys(done).length < 3) {
    if (performance.now() > drainDeadline) throw new Error(`the pipeline did not drain within 30 min: ${JSON.stringify(samples.at(-1))}`);
    await sleep(250);
    const last = samples.at(-1)!;
    for (const key of ["captured", "warehouse", "search"] as const) if (done[key] === undefined && last[key] - samples[0]![key] >= written) done[key] = last.at;
  }
  sampling = false;
  await sampler;
  const cpuAfter = cpuSnapshot(daemon.child.pid!);
  log(cpuReport(cpuBefore, cpuAfter, (performance.now() - drainStart) / 1000));
  log(threadReport(cpuBefore, cpuAfter, written));
  const first = samples[0]!;
  const last = samples.at(-1)!;
  const perBatch = (all: "warehouseAll" | "searchAll", batches: "warehouseBatches" | "searchBatches") => fmt((last[all] - first[all]) / Math.max(1, last[batches] - first[batches]));
  log(`changes per sink batch: ClickHouse ${perBatch("warehouseAll", "warehouseBatches")}, Elasticsearch ${perBatch("searchAll", "searchBatches")}`);
  const peakRss = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${daemon.child.pid!}/status`, "utf8"))?.[1];
  log(`sluice daemon peak RSS so far: ${fmt(Number(peakRss) / 1024)} MiB (capture and two sink threads)`);
  await Promise.all(writers.map((c) => c.end()));
  const row = (label: string, key: "captured" | "warehouse" | "search") => {
    const seconds = (done[key]! - start) / 1000;
    return `| ${label} | ${fmt(written / seconds)} | ${seconds.toFixed(1)} s | ${fmt(bestWindow(samples, key))} |`;
  };
  return [
    `| stage | changes/s (all ${fmt(written)} changes, from the first write) | done after | best 5 s |`,
    "| --- | --- | --- | --- |",
    `| PostgreSQL writers (${WRITERS}) | ${fmt(written / writeSeconds)} | ${writeSeconds.toFixed(1)} s | |`,
    row("captured into Kafka", "captured"),
    row("applied to ClickHouse", "warehouse"),
    row("applied to Elasticsearch", "search"),
  ];
}

/** Writes `--changes` changes (the same transactions as throughput(); about: whole transactions), returns how many. */
async function writeBacklog(): Promise<number> {
  const writers = await Promise.all(Array.from({ length: WRITERS }, () => pgClient()));
  const target = Number(args.changes);
  const written = await writeChanges(writers, (done) => done < target);
  await Promise.all(writers.map((c) => c.end()));
  return written;
}

/** --backlog: the whole backlog in Kafka first (capture-only daemon), then the full daemon's sinks drain it. */
async function sinksOnBacklog(config: Record<string, unknown>): Promise<void> {
  const capture = await SluiceDaemon.start(dir, config, "capture", { args: ["--role", "capture"], ...ENTRY });
  // The (empty) initial snapshot first: changes written during it would be read by it instead.
  await waitFor("capture to stream", async () => readFileSync(capture.logFile, "utf8").includes('"msg":"replication stream started"'), { daemon: capture, timeoutMs: 90_000 });
  const written = await writeBacklog();
  await waitFor("capture to store the backlog in Kafka", async () => (await sample(capture)).captured >= written, { daemon: capture, timeoutMs: 30 * 60_000, intervalMs: 500 });
  await capture.stop();
  log(`backlog: ${fmt(written)} changes in Kafka; load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
  const daemon = await SluiceDaemon.start(dir, config, "bench", ENTRY);
  const samples: Sample[] = [];
  let cpuStart: CpuSnapshot | null = null;
  let startedAt = 0;
  const deadline = performance.now() + 30 * 60_000;
  for (;;) {
    if (performance.now() > deadline) throw new Error(`the sinks did not drain within 30 min: ${JSON.stringify(samples.at(-1))}`);
    const s = await sample(daemon);
    if (cpuStart === null && s.warehouse + s.search > 0) {
      cpuStart = cpuSnapshot(daemon.child.pid!);
      startedAt = s.at;
    }
    samples.push(s);
    if (s.warehouse >= written && s.search >= written) break;
    await sleep(cpuStart === null ? 50 : 250);
  }
  const cpuEnd = cpuSnapshot(daemon.child.pid!);
  const doneAt = (key: "warehouse" | "search") => samples.find((s) => s[key] >= written)!.at;
  log(cpuReport(cpuStart!, cpuEnd, (performance.now() - startedAt) / 1000));
  log(threadReport(cpuStart!, cpuEnd, written));
  const first = samples.find((s) => s.warehouse + s.search > 0)!;
  const last = samples.at(-1)!;
  log(`changes per sink batch: ClickHouse ${fmt((last.warehouseAll - first.warehouseAll) / Math.max(1, last.warehouseBatches - first.warehouseBatches))}, Elasticsearch ${fmt((last.searchAll - first.searchAll) / Math.max(1, last.searchBatches - first.searchBatches))}`);
  const peakRss = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${daemon.child.pid!}/status`, "utf8"))?.[1];
  log(`sluice daemon peak RSS: ${fmt(Number(peakRss) / 1024)} MiB`);
  log(await bench.rowCounts());
  await daemon.stop();
  log("| sink | changes/s (from the first change applied) | done after |");
  log("| --- | --- | --- |");
  for (const [label, key] of [["ClickHouse", "warehouse"], ["Elasticsearch", "search"]] as const) {
    const seconds = (doneAt(key) - startedAt) / 1000;
    log(`| ${label} | ${fmt(written / seconds)} | ${seconds.toFixed(1)} s |`);
  }
}

async function main(): Promise<void> {
  const { client } = bench;
  try {
    const batch = args["batch-bytes"] === undefined ? {} : { batch: { max_bytes: args["batch-bytes"] } };
    const config = bench.config([
      { kind: "clickhouse", name: "warehouse", url: clickhouse.url, user: clickhouse.username, password: clickhouse.password, database, ...batch },
      { kind: "elasticsearch", name: "search", nodes: [elasticsearch.url], ...batch },
    ]);
    const budgeted = args.memory === undefined ? config : { ...config, memory: args.memory };
    if (args.backlog) return await sinksOnBacklog(budgeted);
    const daemon = await startReady(dir, budgeted, "bench");
    await waitFor("the marker table to reach both sinks", async () => {
      const ch = (await clickhouseQuery(`SELECT count() FROM \`${database}\`.\`${schema}_markers\``).catch(() => Buffer.from("0"))).toString().trim();
      const es = await esRequest("GET", `/${schema}_markers/_count`);
      return ch === "1" && es.status === 200;
    }, { daemon, timeoutMs: 120_000 });
    log(`PostgreSQL → Kafka (3 partitions, transactions) → ClickHouse 18.16 + Elasticsearch; memory ${args.memory ?? "default"}, sinks' batch.max_bytes ${args["batch-bytes"] ?? "planned"}; ${WRITERS} writers for ${SECONDS} s, then ${RATE} changes/s for ${LATENCY_SECONDS} s; load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);

    const table = await throughput(daemon);
    const lsn = await currentLsn(client);
    log(`(drained; WAL at ${lsn})`);

    // Phase 2 (bench/commit-to-visible.ts); --latency-seconds 0 leaves it out.
    const readers = [clickhouseMarkers("ch", database, `${schema}_markers`), elasticsearchMarkers("es", `${schema}_markers`)];
    const probe = (label: string, markerBase: number) => commitToVisible({ rowsTable: ROWS, markersTable: MARKERS, rate: RATE, seconds: LATENCY_SECONDS, markerBase, readers, label, log });
    const defaultRefresh = LATENCY_SECONDS > 0 ? await probe("Elasticsearch refresh 1 s (default)", 1_000_000) : null;
    if (LATENCY_SECONDS > 0) {
      const settings = await esRequest("PUT", `/${schema}_markers/_settings`, { index: { refresh_interval: "100ms" } });
      if (settings.status !== 200) throw new Error(`setting refresh_interval: ${settings.text}`);
    }
    const fastRefresh = LATENCY_SECONDS > 0 ? await probe("Elasticsearch refresh 100 ms", 2_000_000) : null;

    // Check: every row arrived.
    const counts = await bench.rowCounts();
    await daemon.stop();
    log(counts);

    const expected = LATENCY_SECONDS * 10;
    log("");
    log(table.join("\n"));
    if (!defaultRefresh || !fastRefresh) return;
    log("");
    log(`| commit → visible at ${fmt(RATE)} changes/s | p50 | p99 | max | markers |`);
    log("| --- | --- | --- | --- | --- |");
    log(latencyRow("ClickHouse", defaultRefresh.get("ch")!, expected));
    log(latencyRow("Elasticsearch, refresh 1 s (default)", defaultRefresh.get("es")!, expected));
    log(latencyRow("ClickHouse (second run)", fastRefresh.get("ch")!, expected));
    log(latencyRow("Elasticsearch, refresh 100 ms", fastRefresh.get("es")!, expected));
  } finally {
    await bench.cleanup(log);
  }
}

await main();
