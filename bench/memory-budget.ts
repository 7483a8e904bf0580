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
  },
});
const ROWS = Number(args.rows);
const CHANGES = Number(args.changes);
const ROUNDS = Number(args.rounds);
/** default (no memory key), unbounded (memory: 16GiB), or a budget such as 512MiB. */
type Mode = string;
const MODES = args.modes.split(",");
const memoryOf = (mode: Mode): Record<string, unknown> => (mode === "default" ? {} : { memory: mode === "unbounded" ? "16GiB" : mode });

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
  readonly load: number;
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

/** Starts the daemon, waits until its sink applied `expected` changes; rate from the first applied change to the last, and the process's peak RSS. */
async function drain(config: Record<string, unknown>, label: string, expected: number): Promise<{ phase: Phase; daemon: SluiceDaemon }> {
  const load = loadavg()[0]!;
  const daemon = await SluiceDaemon.start(dir, config, label);
  let first: { at: number; applied: number } | null = null;
  const peakHeap: Record<string, number> = {};
  let before = { at: performance.now(), applied: 0 };
  const deadline = performance.now() + 30 * 60_000;
  for (;;) {
    if (performance.now() > deadline) throw new Error(`${label}: not applied within 30 min\n${daemon.logTail()}`);
    if (daemon.exitStatus !== null || daemon.fatalLine !== null) throw new Error(`${label}: the daemon stopped\n${daemon.logTail()}`);
    // A busy daemon may answer /metrics slowly: a missed sample is skipped.
    const text = await daemon.metrics().catch(() => null);
    if (text === null) continue;
    const applied = metricValue(text, "sluice_sink_changes_applied_total", { sink: "warehouse" });
    for (const thread of ["main", "sink warehouse"]) peakHeap[thread] = Math.max(peakHeap[thread] ?? 0, metricValue(text, "sluice_thread_heap_used_bytes", { thread }) / 2 ** 20);
    const at = performance.now();
    if (first === null && applied === 0) before = { at, applied };
    if (first === null && applied >= expected) first = before;
    if (first === null && applied > 0) first = { at, applied };
    if (first !== null && applied >= expected) {
      const rss = Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${daemon.child.pid!}/status`, "utf8"))?.[1]) / 1024;
      const counted = applied - first.applied;
      return { phase: { perSecond: counted / ((at - first.at) / 1000), peakRssMiB: rss, peakHeapMiB: peakHeap, load }, daemon };
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
    topics: { kind: "embedded", path: join(dir, `${deployment}.db`) },
    sinks: [{ kind: "duckdb", name: "warehouse", path: join(dir, `${deployment}.duckdb`) }],
    logging: { level: "info" },
  };
  try {
    const first = await drain(config, `${deployment}-snapshot`, ROWS);
    const planLine = readFileSync(first.daemon.logFile, "utf8").split("\n").find((l) => l.includes('"msg":"memory budget"')) ?? "{}";
    const memory = (JSON.parse(planLine) as { memory?: { mainHeapMiB?: { old: number; young: number }; sinks?: Record<string, { heapMiB: { old: number; young: number }; duckdbMemoryLimitMiB?: number }>; budgetMiB?: number } }).memory;
    const sink = memory?.sinks?.["warehouse"];
    const plan = `budget ${memory?.budgetMiB} MiB: main heap ${memory?.mainHeapMiB?.old}+${memory?.mainHeapMiB?.young}, sink heap ${sink?.heapMiB.old}+${sink?.heapMiB.young}, DuckDB ${sink?.duckdbMemoryLimitMiB} MiB`;
    await first.daemon.stop();
    await writeBacklog(client);
    const second = await drain(config, `${deployment}-backlog`, CHANGES);
    await second.daemon.stop();
    return { mode, round, snapshot: first.phase, backlog: second.phase, plan };
  } finally {
    await killAllDaemons();
    await dropPostgres(client, { slot: `sluice_${source}`, publication: `sluice_${source}` }).catch(() => undefined);
    await client.query(`VACUUM ${TABLE}`);
  }
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
          `round ${round} ${mode}: snapshot ${fmt(result.snapshot.perSecond)} rows/s (peak RSS ${fmt(result.snapshot.peakRssMiB)} MiB, heap in use ${JSON.stringify(result.snapshot.peakHeapMiB, (_k, v: unknown) => (typeof v === "number" ? Math.round(v) : v))}, load ${result.snapshot.load.toFixed(2)}), ` +
            `backlog ${fmt(result.backlog.perSecond)} changes/s (peak RSS ${fmt(result.backlog.peakRssMiB)} MiB, heap in use ${JSON.stringify(result.backlog.peakHeapMiB, (_k, v: unknown) => (typeof v === "number" ? Math.round(v) : v))}, load ${result.backlog.load.toFixed(2)}); ${result.plan}`,
        );
      }
    }
  } finally {
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => undefined);
    await client.end();
    removeDir(dir);
  }
  log("\n| round | mode | snapshot rows/s | backlog changes/s | peak RSS snapshot / backlog |");
  log("| --- | --- | --- | --- | --- |");
  for (const r of results) log(`| ${r.round} | ${r.mode} | ${fmt(r.snapshot.perSecond)} | ${fmt(r.backlog.perSecond)} | ${fmt(r.snapshot.peakRssMiB)} / ${fmt(r.backlog.peakRssMiB)} MiB |`);
  if (MODES.includes("default") && MODES.includes("unbounded")) {
    log("\nratio default / unbounded (same round): snapshot, backlog");
    for (let round = 1; round <= ROUNDS; round++) {
      const d = results.find((r) => r.round === round && r.mode === "default")!;
      const u = results.find((r) => r.round === round && r.mode === "unbounded")!;
      log(`round ${round}: ${(d.snapshot.perSecond / u.snapshot.perSecond).toFixed(2)}×, ${(d.backlog.perSecond / u.backlog.perSecond).toFixed(2)}×`);
    }
  }
}

await main();
