/**
 * The memory budget (issue 16 item 4): peak RSS of the whole daemon (`sluice run`: capture, the
 * embedded log, a DuckDB sink in its thread) with the default budget, and its throughput as a
 * ratio to the same run with an unbounded budget (`memory: 16GiB`).
 *
 * Each run, per mode and round (modes alternate their order every round):
 * 1. snapshot: a fresh source (its own slot) reads the whole table (`--rows`, 8 columns) into
 *    DuckDB; timed from the first applied row to the last (sluice_sink_changes_applied_total);
 * 2. backlog: the daemon stops, `--changes` updates are written (transactions of 10,000 rows),
 *    the daemon starts again and drains them into DuckDB; timed the same way;
 * the peak RSS (VmHWM) of each daemon process, and the 1-minute load average at each start.
 *
 *   node bench/memory-budget.ts [--rows 1000000] [--changes 500000] [--rounds 2] [--modes default,unbounded,512MiB]
 *     [--before ../other-checkout/daemon/sluice.js]   (each mode also as "before:<mode>" with that checkout)
 *     [--sink-batch-bytes 2MiB]   (the sink's batch.max_bytes in modes named <mode>+batch)
 *     [--max-record-bytes 1MiB]   (topics.max_record_bytes, which sets DuckDB's least memory_limit)
 *     [--daemon-env MALLOC_MMAP_THRESHOLD_=131072,...]   (the daemon's environment in modes named <mode>+env)
 */
import { readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type pg from "pg";
import { dropPostgres, killAllDaemons, metricValue, pgClient, pgSourceConfig, randomName, removeDir, sleep, SluiceDaemon, tempDir } from "../test/e2e/helpers.ts";

const { values: args } = parseArgs({
  options: {
    rows: { type: "string", default: "1000000" },
    changes: { type: "string", default: "500000" },
    rounds: { type: "string", default: "2" },
    modes: { type: "string", default: "default,unbounded" },
    /** The sink's batch.max_bytes in modes named "<mode>+batch" (e.g. --modes default,default+batch --sink-batch-bytes 2MiB). */
    "sink-batch-bytes": { type: "string" },
    /** topics.max_record_bytes (sets DuckDB's least memory_limit), e.g. 1MiB; default the config's default. */
    "max-record-bytes": { type: "string" },
    /** Environment variables (NAME=value, comma-separated) of the daemon in modes named "<mode>+env". */
    "daemon-env": { type: "string" },
    /** Another checkout's daemon/sluice.js: each mode also runs with it, as "before:<mode>" (same table, alternating). */
    before: { type: "string" },
  },
});
const ROWS = Number(args.rows);
const CHANGES = Number(args.changes);
const ROUNDS = Number(args.rounds);
/** default (no memory key), unbounded (memory: 16GiB), or a budget such as 512MiB. */
type Mode = string;
const MODES = args.modes.split(",").flatMap((mode) => (args.before ? [`before:${mode}`, mode] : [mode]));
const budgetOf = (mode: Mode) => mode.replace(/^before:/, "").replace(/(\+batch|\+env)+$/, "");
const memoryOf = (mode: Mode): Record<string, unknown> => (budgetOf(mode) === "default" ? {} : { memory: budgetOf(mode) === "unbounded" ? "16GiB" : budgetOf(mode) });
const daemonEnv = Object.fromEntries((args["daemon-env"] ?? "").split(",").filter(Boolean).map((pair) => [pair.slice(0, pair.indexOf("=")), pair.slice(pair.indexOf("=") + 1)]));
const entryOf = (mode: Mode) => ({ ...(mode.startsWith("before:") && args.before ? { entry: args.before } : {}), ...(mode.endsWith("+env") ? { env: daemonEnv } : {}) });

const schema = randomName("bench_mem");
const TABLE = `"${schema}".items`;
const dir = tempDir("bench-memory");
const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
const log = (text: string) => process.stdout.write(`${text}\n`);

interface Phase {
  readonly perSecond: number;
  readonly peakRssMiB: number;
  /** Most V8 heap in use seen per thread (the /metrics samples). */
  readonly peakHeapMiB: Record<string, number>;
  /** Most DuckDB memory seen (sum of duckdb_memory()'s memory_usage_bytes, through the query endpoint). */
  readonly peakDuckdbMiB: number;
  /** RSS when the daemon first answered /metrics (modules loaded, before most of the work). */
  readonly startRssMiB: number;
  readonly load: number;
  /** Process CPU (every thread: JavaScript, GC, DuckDB, SQLite) from the first applied change to the last, per 100k changes. */
  readonly cpuPer100k: number;
  /** Changes per sink batch (sluice_sink_batch_apply_duration_seconds_count over the phase). */
  readonly perBatch: number;
}

interface Result {
  readonly mode: Mode;
  readonly round: number;
  readonly snapshot: Phase;
  readonly backlog: Phase;
  readonly plan: string;
}

async function setUp(client: pg.Client): Promise<void> {
  await client.query(`CREATE SCHEMA "${schema}"`);
  await client.query(`CREATE TABLE ${TABLE} (id bigint PRIMARY KEY, account integer NOT NULL, name text, email text, amount numeric(12,2), active boolean, created_at timestamptz, note text)`);
  const started = performance.now();
  for (let from = 1; from <= ROWS; from += 50_000) {
    await client.query(
      `INSERT INTO ${TABLE} SELECT g, g % 1000, 'name ' || g, 'user' || g || '@example.com', (g % 100000) / 100.0, g % 2 = 0, now(), md5(g::text) FROM generate_series($1::bigint, $2::bigint) g`,
      [from, Math.min(ROWS, from + 49_999)],
    );
  }
  log(`table: ${fmt(ROWS)} rows of 8 columns, written in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

async function writeBacklog(client: pg.Client): Promise<void> {
  for (let done = 0; done < CHANGES; done += 10_000) {
    const from = (done % ROWS) + 1;
    await client.query(`UPDATE ${TABLE} SET amount = amount + 1, note = md5(note) WHERE id BETWEEN $1 AND $2`, [from, from + Math.min(10_000, CHANGES - done) - 1]);
  }
}

/** CPU-seconds the process used so far, all threads. */
function processCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function vmRssMiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]) / 1024;
}

/** DuckDB's own count of the memory it holds (its buffer manager's tags), in MiB. */
async function duckdbMemoryMiB(daemon: SluiceDaemon): Promise<number> {
  const response = await fetch(`${daemon.url}/sinks/warehouse/query`, { method: "POST", body: "SELECT sum(memory_usage_bytes)::BIGINT AS bytes FROM duckdb_memory()", signal: AbortSignal.timeout(5_000) });
  const answer = (await response.json()) as { rows?: { bytes: number | string }[] };
  return Number(answer.rows?.[0]?.bytes ?? 0) / 2 ** 20;
}

/** Starts the daemon, waits until its sink applied `expected` changes; rate from the first applied change to the last, and the process's peak RSS. */
async function drain(config: Record<string, unknown>, label: string, expected: number, mode: Mode): Promise<{ phase: Phase; daemon: SluiceDaemon }> {
  const load = loadavg()[0]!;
  const daemon = await SluiceDaemon.start(dir, config, label, entryOf(mode));
  let first: { at: number; applied: number; cpu: number; batches: number } | null = null;
  const peakHeap: Record<string, number> = {};
  let peakDuckdb = 0;
  let startRss = 0;
  let lastDuckdbSample = 0;
  let before = { at: performance.now(), applied: 0, cpu: 0, batches: 0 };
  const deadline = performance.now() + 30 * 60_000;
  for (;;) {
    if (performance.now() > deadline) throw new Error(`${label}: not applied within 30 min\n${daemon.logTail()}`);
    if (daemon.exitStatus !== null || daemon.fatalLine !== null) throw new Error(`${label}: the daemon stopped\n${daemon.logTail()}`);
    // A busy daemon may answer /metrics slowly: a missed sample is skipped.
    const text = await daemon.metrics().catch(() => null);
    if (text === null) continue;
    const applied = metricValue(text, "sluice_sink_changes_applied_total", { sink: "warehouse" });
    if (startRss === 0) startRss = vmRssMiB(daemon.child.pid!);
    if (performance.now() - lastDuckdbSample > 1_000) {
      lastDuckdbSample = performance.now();
      peakDuckdb = Math.max(peakDuckdb, await duckdbMemoryMiB(daemon).catch(() => 0));
    }
    for (const thread of ["main", "sink warehouse"]) peakHeap[thread] = Math.max(peakHeap[thread] ?? 0, metricValue(text, "sluice_thread_heap_used_bytes", { thread }) / 2 ** 20);
    const at = performance.now();
    const cpu = processCpuSeconds(daemon.child.pid!);
    const batches = metricValue(text, "sluice_sink_batch_apply_duration_seconds_count", { sink: "warehouse" });
    if (first === null && applied === 0) before = { at, applied, cpu, batches };
    if (first === null && applied >= expected) first = before;
    if (first === null && applied > 0) first = { at, applied, cpu, batches };
    if (first !== null && applied >= expected) {
      const rss = Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${daemon.child.pid!}/status`, "utf8"))?.[1]) / 1024;
      const counted = applied - first.applied;
      return { phase: { perSecond: counted / ((at - first.at) / 1000), peakRssMiB: rss, peakHeapMiB: peakHeap, peakDuckdbMiB: peakDuckdb, startRssMiB: startRss, load, cpuPer100k: ((cpu - first.cpu) / counted) * 100_000, perBatch: counted / Math.max(1, batches - first.batches) }, daemon };
    }
    await sleep(200);
  }
}

async function run(client: pg.Client, mode: Mode, round: number): Promise<Result> {
  const source = randomName("src");
  const deployment = randomName("bench_mem");
  const config = {
    name: deployment,
    ...memoryOf(mode),
    sources: [pgSourceConfig(source, [`${schema}.*`])],
    topics: { kind: "embedded", path: join(dir, `${deployment}.db`), ...(args["max-record-bytes"] ? { max_record_bytes: args["max-record-bytes"] } : {}) },
    sinks: [{ kind: "duckdb", name: "warehouse", path: join(dir, `${deployment}.duckdb`), ...(mode.replace(/\+env$/, "").endsWith("+batch") ? { batch: { max_bytes: args["sink-batch-bytes"] } } : {}) }],
    logging: { level: "info" },
  };
  try {
    const first = await drain(config, `${deployment}-snapshot`, ROWS, mode);
    const planLine = readFileSync(first.daemon.logFile, "utf8").split("\n").find((l) => l.includes('"msg":"memory budget"')) ?? "{}";
    const memory = (JSON.parse(planLine) as { memory?: { mainHeapMiB?: { old: number; young: number }; sources?: Record<string, { readAheadMiB: number }>; sinks?: Record<string, { heapMiB: { old: number; young: number }; batchMiB: number; duckdbMemoryLimitMiB?: number; duckdbThreads?: number }>; budgetMiB?: number } }).memory;
    const sink = memory?.sinks?.["warehouse"];
    const plan =
      `budget ${memory?.budgetMiB} MiB: main heap ${memory?.mainHeapMiB?.old}+${memory?.mainHeapMiB?.young} (read-ahead ${memory?.sources?.[source]?.readAheadMiB} MiB), ` +
      `sink heap ${sink?.heapMiB.old}+${sink?.heapMiB.young} (batch ${sink?.batchMiB} MiB), DuckDB ${sink?.duckdbMemoryLimitMiB} MiB, ${sink?.duckdbThreads} threads`;
    await first.daemon.stop();
    await writeBacklog(client);
    const second = await drain(config, `${deployment}-backlog`, CHANGES, mode);
    await second.daemon.stop();
    return { mode, round, snapshot: first.phase, backlog: second.phase, plan };
  } finally {
    await killAllDaemons();
    await dropPostgres(client, { slot: `sluice_${source}`, publication: `sluice_${source}` }).catch(() => undefined);
    await client.query(`VACUUM ${TABLE}`);
  }
}

function phaseText(phase: Phase): string {
  const heap = JSON.stringify(phase.peakHeapMiB, (_k, v: unknown) => (typeof v === "number" ? Math.round(v) : v));
  return `${phase.cpuPer100k.toFixed(2)} CPU-s per 100k, ${fmt(phase.perBatch)} changes a batch, peak RSS ${fmt(phase.peakRssMiB)} MiB (${fmt(phase.startRssMiB)} at start), heap in use ${heap}, DuckDB ${fmt(phase.peakDuckdbMiB)} MiB, load ${phase.load.toFixed(2)}`;
}

async function main(): Promise<void> {
  const client = await pgClient();
  const results: Result[] = [];
  try {
    await setUp(client);
    for (let round = 1; round <= ROUNDS; round++) {
      for (const mode of round % 2 === 1 ? MODES : [...MODES].reverse()) {
        const result = await run(client, mode, round);
        results.push(result);
        log(
          `round ${round} ${mode}: snapshot ${fmt(result.snapshot.perSecond)} rows/s (${phaseText(result.snapshot)}), backlog ${fmt(result.backlog.perSecond)} changes/s (${phaseText(result.backlog)}); ${result.plan}`,
        );
      }
    }
  } finally {
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => undefined);
    await client.end();
    removeDir(dir);
  }
  log("\n| round | mode | snapshot rows/s | backlog changes/s | CPU-s per 100k snapshot / backlog | peak RSS snapshot / backlog |");
  log("| --- | --- | --- | --- | --- | --- |");
  for (const r of results) {
    log(`| ${r.round} | ${r.mode} | ${fmt(r.snapshot.perSecond)} | ${fmt(r.backlog.perSecond)} | ${r.snapshot.cpuPer100k.toFixed(2)} / ${r.backlog.cpuPer100k.toFixed(2)} | ${fmt(r.snapshot.peakRssMiB)} / ${fmt(r.backlog.peakRssMiB)} MiB |`);
  }
  for (const prefix of args.before ? ["before:", ""] : [""]) {
    if (!MODES.includes(`${prefix}default`) || !MODES.includes(`${prefix}unbounded`)) continue;
    log(`\nratio ${prefix}default / ${prefix}unbounded (same round): snapshot, backlog`);
    for (let round = 1; round <= ROUNDS; round++) {
      const d = results.find((r) => r.round === round && r.mode === `${prefix}default`)!;
      const u = results.find((r) => r.round === round && r.mode === `${prefix}unbounded`)!;
      log(`round ${round}: ${(d.snapshot.perSecond / u.snapshot.perSecond).toFixed(2)}×, ${(d.backlog.perSecond / u.backlog.perSecond).toFixed(2)}×`);
    }
  }
}

await main();
