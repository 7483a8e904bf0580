/**
 * Cost of governance at capture: the real daemon (`sluice run`, capture only, embedded log or `--topics kafka`) drains
 * the same PostgreSQL backlog twice per round — once without governance, once with two personal
 * columns encrypted per data subject (AES-256-GCM, subject `account`: 1,000 subjects; `--hash`:
 * the two columns hashed with HMAC-SHA-256 instead) and three data checks on the table (not_null,
 * range, regex; action warn, none failing) — in alternating order.
 * Prints changes/s and the daemon's CPU-seconds per 100k changes of each, and the ratios governed /
 * plain of each round (the machine is shared: compare ratios measured in one run, not rates
 * between runs; on a loaded machine the CPU ratio is the steadier one). Ends with medians over the
 * rounds: CPU-s per 100k changes of the whole process and by thread (main, V8Worker, seal, the rest)
 * per reader, the rounds' ratios plain / governed of the whole process's CPU per change (the issue's
 * ≥ 0.8× is this ratio where no core is free for the seal workers), of the main thread's and of
 * throughput, and with --before this tree's CPU per change against the other's.
 *
 *   node bench/governance.ts [--changes 60000] [--tx 1000] [--rounds 2] [--hash | --checks-only] [--profile DIR]
 *                            [--threads] [--before DIR] [--memory SIZE] [--read-ahead SIZE] [--node-options OPTS] [--keep-logs DIR]
 *                            [--topics embedded|kafka]
 *
 * --topics kafka: capture publishes to the test services' Kafka broker (acks=all, transactions; the subjects'
 *   keys in its compacted key topic) instead of the embedded log (the default); the broker's CPU is not counted.
 * --profile DIR: the daemons run with --cpu-prof and write their CPU profiles into DIR/plain and DIR/governed.
 * --checks-only: `governed` has the three checks and no personal or hashed column.
 * --threads: also the CPU of each of the daemon's threads by name (main, seal workers, V8Worker: the
 *   garbage collector's and the compilers' helpers) per 100k changes, and of PostgreSQL's walsender
 *   serving the slot ("walsender (PostgreSQL)": the server must run on this machine, read from /proc).
 * --before DIR: each round also drains with another checkout's daemon (`git worktree add DIR <commit>`,
 *   with a node_modules link), alternating with this one's: before/after ratios measured in one run.
 * --warm-up N: besides the whole drain, a steady-state window from the first /metrics sample with at
 *   least N changes captured (default a third of the backlog) to the end: a daemon runs for days, and a
 *   60,000-change drain is about a second of work, much of it the JIT compilers' warm-up (both printed).
 * --memory SIZE: the daemons' `memory` budget (default: the default budget); --read-ahead SIZE: the
 *   source's max_buffer_bytes (default: from the budget).
 * --node-options OPTS: NODE_OPTIONS of the daemons (e.g. --import of a module that turns on --trace-gc);
 *   --keep-logs DIR keeps their logs.
 */
import { copyFileSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type pg from "pg";
import { deleteKafkaDeployment, killAllDaemons, metricValue, pgClient, pgSourceConfig, randomName, removeDir, sleep, SluiceDaemon, tempDir } from "../test/e2e/helpers.ts";
import { kafka } from "../test/services/ports.ts";

const { values: args } = parseArgs({
  options: {
    changes: { type: "string", default: "60000" },
    tx: { type: "string", default: "1000" },
    rounds: { type: "string", default: "2" },
    profile: { type: "string" },
    hash: { type: "boolean", default: false },
    "checks-only": { type: "boolean", default: false },
    threads: { type: "boolean", default: false },
    "node-options": { type: "string" },
    "keep-logs": { type: "string" },
    memory: { type: "string" },
    "read-ahead": { type: "string" },
    before: { type: "string" },
    "warm-up": { type: "string" },
    topics: { type: "string", default: "embedded" },
  },
});
const INSERTS = Math.round((Number(args.changes) * 2) / 3);
const UPDATES = Number(args.changes) - INSERTS;
const CHANGES = INSERTS + UPDATES;
const TX = Number(args.tx);
const ROUNDS = Number(args.rounds);
const WARM_UP = args["warm-up"] === undefined ? Math.round(CHANGES / 3) : Number(args["warm-up"]);
type Reader = "plain" | "governed" | "plain@before" | "governed@before";
/** `--before DIR`: the same drains also by another checkout's daemon (DIR/daemon/sluice.js), alternating with this one's. */
const READERS: Reader[] = args.before === undefined ? ["plain", "governed"] : ["plain", "governed", "plain@before", "governed@before"];
const isGoverned = (reader: Reader) => reader.startsWith("governed");
if (args.topics !== "embedded" && args.topics !== "kafka") throw new Error(`--topics: embedded or kafka, not ${args.topics}`);
const ON_KAFKA = args.topics === "kafka";

const schema = randomName("bench_gov");
const publication = randomName("bench_gov_pub");
const dir = tempDir("bench-governance");
const TABLE = `"${schema}".items`;
const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
const log = (text: string) => process.stdout.write(`${text}\n`);
const slotName = (reader: Reader, round: number) => `${schema}_${reader.replace("@", "_")}_${round}`;

const GOVERNANCE = {
  hash_key_file: "hash.key",
  tables: {
    [`${schema}.items`]: {
      ...(args["checks-only"] ? {} : args.hash ? { transforms: { name: { kind: "hash" }, email: { kind: "hash" } } } : { personal: { subject: "account", columns: ["name", "email"] } }),
      checks: [
        { check: "not_null", column: "account", action: "warn" },
        { check: "range", column: "amount", min: 0, max: 10_000_000, action: "warn" },
        { check: "regex", column: "email", pattern: "^[^@]+@[^@]+$", action: "warn" },
      ],
    },
  },
};

async function setUp(client: pg.Client): Promise<void> {
  await client.query(`CREATE SCHEMA "${schema}"`);
  await client.query(`CREATE TABLE ${TABLE} (id bigint PRIMARY KEY, account integer NOT NULL, name text, email text, amount numeric(12,2), active boolean, created_at timestamptz, note text)`);
  await client.query(`CREATE PUBLICATION ${publication} FOR TABLE ${TABLE}`);
  for (let round = 1; round <= ROUNDS; round++) for (const reader of READERS) await client.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [slotName(reader, round)]);
  for (let from = 1; from <= INSERTS; from += TX) {
    const to = Math.min(INSERTS, from + TX - 1);
    await client.query(
      `INSERT INTO ${TABLE} SELECT g, g % 1000, 'name ' || g, 'user' || g || '@example.com', (g % 100000) / 100.0, g % 2 = 0, now(), md5(g::text) FROM generate_series($1::bigint, $2::bigint) g`,
      [from, to],
    );
  }
  for (let from = 1; from <= UPDATES; from += TX) {
    const to = Math.min(UPDATES, from + TX - 1);
    await client.query(`UPDATE ${TABLE} SET amount = amount + 1, note = md5(note) WHERE id BETWEEN $1 AND $2`, [from, to]);
  }
  log(`backlog: ${fmt(INSERTS)} inserts + ${fmt(UPDATES)} updates of an 8-column table in transactions of ${fmt(TX)} rows`);
}

/** utime + stime of a process and its threads, in seconds; `mainThread`: of its main thread only (capture runs there). */
function cpuOf(pid: number, mainThread = false): number {
  const fields = readFileSync(mainThread ? `/proc/${pid}/task/${pid}/stat` : `/proc/${pid}/stat`, "utf8");
  const rest = fields.slice(fields.lastIndexOf(")") + 2).split(" ");
  return (Number(rest[11]) + Number(rest[12])) / 100;
}

/** CPU seconds of each thread of a process by thread name (seal workers, the garbage collector's helpers, libuv's pool...). */
function threadCpu(pid: number): Map<string, number> {
  const byName = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
      const name = tid === String(pid) ? "main" : stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      byName.set(name, (byName.get(name) ?? 0) + (Number(rest[11]) + Number(rest[12])) / 100);
    } catch {
      // The thread ended meanwhile.
    }
  }
  return byName;
}

/**
 * The drain, from capture's start to its last durable record: seconds and CPU-seconds per 100k changes.
 * The window opens at the daemon's "capturing" log line (its own timestamp; the CPU is sampled as soon
 * as the line is read, `late` ms after it) and closes at the first /metrics sample with every change
 * captured (sampled every 50 ms). Counting from the first durable record instead, as this benchmark
 * did before, left out the first batch (up to an eighth of the read-ahead) and the changes decoded
 * ahead into the read-ahead, whenever the first sample came after the first batch was durable, so
 * that a drain could look twice as fast as it was.
 */
interface Window {
  seconds: number;
  cpuSeconds: number;
  mainCpuSeconds: number;
  /** CPU-s per 100k changes of each thread by name (threadCpu; the walsender with --threads). */
  threads: Map<string, number>;
}

/** The pid of the walsender serving the slot (PostgreSQL's active_pid), null when none is found in a few tries. */
async function walsenderOf(client: pg.Client, slot: string): Promise<number | null> {
  for (let tries = 0; tries < 20; tries++) {
    const { rows } = await client.query<{ active_pid: number | null }>("SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1", [slot]);
    if (rows[0]?.active_pid) return rows[0].active_pid;
    await sleep(5);
  }
  return null;
}

/** threadCpu, and with --threads the walsender's CPU (0 when its /proc entry cannot be read: a server elsewhere). */
function sampleThreads(pid: number, walsender: number | null): Map<string, number> {
  const threads = threadCpu(pid);
  if (walsender !== null) {
    let used = 0;
    try {
      used = cpuOf(walsender);
    } catch {
      // Not a process of this machine.
    }
    threads.set("walsender (PostgreSQL)", used);
  }
  return threads;
}

/** CPU-s per 100k changes of each thread between two samples, the threads that used none left out. */
function perHundredThousand(now: Map<string, number>, from: Map<string, number>, changes: number): Map<string, number> {
  const per = new Map<string, number>();
  for (const [name, used] of now) {
    const spent = ((used - (from.get(name) ?? 0)) * 100_000) / changes;
    if (spent >= 0.005) per.set(name, spent);
  }
  return per;
}

const showThreads = (threads: Map<string, number>) => [...threads].map(([name, used]) => `${name} ${used.toFixed(2)}`).join(", ");

function median(values: readonly number[]): number {
  const sorted = values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

async function drain(reader: Reader, round: number, client: pg.Client): Promise<Window & { load: number; late: number; steady: Window }> {
  const source = randomName("src");
  const deployment = randomName("bench_gov");
  writeFileSync(join(dir, "hash.key"), "bench-governance-hash-key-0123456789\n");
  writeFileSync(join(dir, "master.key"), `${"5a".repeat(32)}\n`);
  const load = loadavg()[0]!;
  const daemon = await SluiceDaemon.start(
    dir,
    {
      name: deployment,
      sources: [
        pgSourceConfig(source, [`${schema}.*`], {
          slot: slotName(reader, round),
          publication,
          create_slot: false,
          create_publication: false,
          snapshot: { mode: "never" },
          ...(args["read-ahead"] === undefined ? {} : { max_buffer_bytes: args["read-ahead"] }),
          ...(isGoverned(reader) ? { governance: GOVERNANCE } : {}),
        }),
      ],
      topics: ON_KAFKA ? { kind: "kafka", brokers: [...kafka.brokers], transactions: true } : { kind: "embedded", path: join(dir, `${deployment}.db`) },
      ...(isGoverned(reader) && !args.hash && !args["checks-only"] ? { personal_data: { master_key_file: join(dir, "master.key") } } : {}),
      // info: the "capturing" line opens the window.
      logging: { level: "info" },
      ...(args.memory === undefined ? {} : { memory: args.memory }),
    },
    deployment,
    { ...(reader.endsWith("@before") ? { entry: join(args.before!, "daemon", "sluice.js") } : {}), env: { NODE_OPTIONS: [args.profile === undefined ? "" : `--cpu-prof --cpu-prof-dir=${join(args.profile, reader)}`, args["node-options"] ?? ""].join(" ").trim() } },
  );
  try {
    const pid = daemon.child.pid!;
    let line: string | undefined;
    const deadline = performance.now() + 30 * 60_000;
    while ((line = daemon.logTail(4 * 60).split("\n").find((l) => l.includes('"msg":"capturing"'))) === undefined) {
      if (performance.now() > deadline || daemon.exitStatus !== null) throw new Error(`${reader}: capture did not start\n${daemon.logTail()}`);
      await sleep(2);
    }
    const startedAt = Date.parse((JSON.parse(line) as { time: string }).time);
    const walsender = args.threads ? await walsenderOf(client, slotName(reader, round)) : null;
    const start = { cpu: cpuOf(pid), main: cpuOf(pid, true), threads: sampleThreads(pid, walsender) };
    const late = Date.now() - startedAt;
    let unanswered = 0;
    /** The first sample with WARM_UP changes captured: the steady-state window starts there. */
    let warm: { at: number; captured: number; cpu: number; main: number; threads: Map<string, number> } | null = null;
    for (;;) {
      if (performance.now() > deadline) throw new Error(`${reader}: not drained within 30 min\n${daemon.logTail()}`);
      if (daemon.exitStatus !== null) throw new Error(`${reader}: the daemon exited\n${daemon.logTail()}`);
      // On a loaded machine a busy daemon may not answer /metrics within 10 s: skip that sample (a minute of them ends the run).
      const metrics = await daemon.metrics().catch((error: unknown) => {
        if (++unanswered >= 6) throw new Error(`${reader}: the daemon did not answer /metrics (${String(error)})\n${daemon.logTail()}`);
        return null;
      });
      if (metrics === null) continue;
      const captured = metricValue(metrics, "sluice_changes_captured_total");
      if (warm === null && captured >= WARM_UP && captured < CHANGES) warm = { at: Date.now(), captured, cpu: cpuOf(pid), main: cpuOf(pid, true), threads: sampleThreads(pid, walsender) };
      if (captured >= CHANGES) {
        const now = Date.now();
        const seconds = (now - startedAt) / 1000;
        const cpuNow = cpuOf(pid);
        const mainNow = cpuOf(pid, true);
        const threadsNow = sampleThreads(pid, walsender);
        const cpu = cpuNow - start.cpu;
        const main = mainNow - start.main;
        const threads = perHundredThousand(threadsNow, start.threads, CHANGES);
        if (args.threads) log(`  ${reader} CPU-s/100k by thread: ${showThreads(threads)}`);
        // No sample between WARM_UP and the end (a drain faster than the samples): the steady window is empty.
        const steadyChanges = warm === null ? 0 : CHANGES - warm.captured;
        const steady: Window =
          warm === null || steadyChanges <= 0
            ? { seconds: Number.NaN, cpuSeconds: Number.NaN, mainCpuSeconds: Number.NaN, threads: new Map() }
            : {
                seconds: ((now - warm.at) / 1000) * (CHANGES / steadyChanges),
                cpuSeconds: ((cpuNow - warm.cpu) * 100_000) / steadyChanges,
                mainCpuSeconds: ((mainNow - warm.main) * 100_000) / steadyChanges,
                threads: perHundredThousand(threadsNow, warm.threads, steadyChanges),
              };
        if (args.threads && warm !== null && steadyChanges > 0) log(`  ${reader} steady (last ${fmt(steadyChanges)} changes) CPU-s/100k by thread: ${showThreads(steady.threads)}`);
        if (isGoverned(reader)) {
          const checked = metricValue(metrics, "sluice_data_check_rows_total");
          if (checked < CHANGES) throw new Error(`governed: only ${checked} of ${CHANGES} rows were checked`);
        }
        return { seconds, cpuSeconds: (cpu * 100_000) / CHANGES, mainCpuSeconds: (main * 100_000) / CHANGES, threads, load, late, steady };
      }
      await sleep(50);
    }
  } finally {
    await daemon.stop();
    if (ON_KAFKA) await deleteKafkaDeployment(deployment).catch((e: unknown) => log(`cleanup: ${String(e)}`));
    if (args["keep-logs"] !== undefined) copyFileSync(daemon.logFile, join(args["keep-logs"], `${reader}-${round}.log`));
  }
}

async function main(): Promise<void> {
  const client = await pgClient();
  const results: (Window & { reader: Reader; round: number; load: number; steady: Window })[] = [];
  try {
    await setUp(client);
    for (let round = 1; round <= ROUNDS; round++) {
      for (const reader of round % 2 === 1 ? READERS : [...READERS].reverse()) {
        const result = await drain(reader, round, client);
        results.push({ reader, round, ...result });
        log(
          `round ${round} ${reader}: ${fmt(CHANGES / result.seconds)} changes/s, ${result.cpuSeconds.toFixed(2)} CPU-s/100k (main thread ${result.mainCpuSeconds.toFixed(2)}); steady: ${fmt(CHANGES / result.steady.seconds)} changes/s, ${result.steady.cpuSeconds.toFixed(2)} (main ${result.steady.mainCpuSeconds.toFixed(2)}) (load ${result.load.toFixed(1)}; CPU sampled ${result.late} ms after capture started)`,
        );
      }
    }
  } finally {
    await killAllDaemons();
    for (let round = 1; round <= ROUNDS; round++) for (const reader of READERS) await client.query("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active", [slotName(reader, round)]).catch(() => undefined);
    await client.query(`DROP PUBLICATION IF EXISTS ${publication}`).catch(() => undefined);
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => undefined);
    await client.end();
    removeDir(dir);
  }
  for (const [version, window] of (args.before === undefined ? [""] : ["", "@before"]).flatMap((v) => [[v, "whole drain"] as const, [v, "steady"] as const])) {
    log("");
    log(`${version === "" ? "this tree" : args.before}, ${window === "steady" ? `steady state (after the first ${fmt(WARM_UP)} changes)` : "whole drain (from capture's start)"}:`);
    log("| round | plain changes/s | governed changes/s | throughput governed / plain | CPU-s / 100k plain | CPU-s / 100k governed | CPU plain / governed | main thread CPU plain / governed | load (1 min) |");
    log("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (let round = 1; round <= ROUNDS; round++) {
      const pick = (reader: string): Window & { load: number } => {
        const result = results.find((r) => r.round === round && r.reader === reader)!;
        return window === "steady" ? { ...result.steady, load: result.load } : result;
      };
      const plain = pick(`plain${version}`);
      const governed = pick(`governed${version}`);
      log(
        `| ${round} | ${fmt(CHANGES / plain.seconds)} | ${fmt(CHANGES / governed.seconds)} | ${(plain.seconds / governed.seconds).toFixed(2)} | ${plain.cpuSeconds.toFixed(2)} | ${governed.cpuSeconds.toFixed(2)} | ${(plain.cpuSeconds / governed.cpuSeconds).toFixed(2)} | ${(plain.mainCpuSeconds / governed.mainCpuSeconds).toFixed(2)} | ${plain.load.toFixed(1)} / ${governed.load.toFixed(1)} |`,
      );
    }
  }
  summarize(results);
}

/** Threads of the summary by name; the daemon's other threads are summed as "other". */
const SUMMARY_THREADS = ["main", "V8Worker", "seal"] as const;
const WALSENDER = "walsender (PostgreSQL)";

/**
 * Medians over the rounds: CPU-s per 100k changes of the whole process and of its threads, per
 * reader and window, and the rounds' ratios governed / plain of the whole process (the issue's
 * figure on a machine without a free core), of the main thread and of throughput; with --before,
 * this tree's CPU per change against the other's, round by round.
 */
function summarize(results: readonly (Window & { reader: Reader; round: number; steady: Window })[]): void {
  const windows = [["whole drain", (r: Window & { steady: Window }) => r as Window] as const, ["steady", (r: Window & { steady: Window }) => r.steady] as const];
  const range = (all: number[]) => {
    const values = all.filter((v) => !Number.isNaN(v));
    return values.length === 0 ? "—" : `${median(values).toFixed(2)} (${Math.min(...values).toFixed(2)}–${Math.max(...values).toFixed(2)})`;
  };
  log("");
  log(`Medians over ${ROUNDS} round${ROUNDS === 1 ? "" : "s"} (range in brackets), CPU-s per 100k changes; the threads are the daemon's (V8Worker: V8's collector and compiler helpers of every isolate), the walsender is PostgreSQL's (--threads):`);
  log(`| window | reader | whole process | ${SUMMARY_THREADS.join(" | ")} | other threads | walsender | changes/s |`);
  log(`| --- | --- | --- | ${SUMMARY_THREADS.map(() => "---").join(" | ")} | --- | --- | --- |`);
  for (const [name, pick] of windows) {
    for (const reader of READERS) {
      // A steady window without a sample (a drain faster than the samples) counts in no median.
      const runs = results.filter((r) => r.reader === reader).map(pick).filter((w) => !Number.isNaN(w.cpuSeconds));
      if (runs.length === 0) continue;
      const thread = (t: string) => median(runs.map((w) => w.threads.get(t) ?? 0)).toFixed(2);
      const other = median(runs.map((w) => [...w.threads].filter(([t]) => !(SUMMARY_THREADS as readonly string[]).includes(t) && t !== WALSENDER).reduce((sum, [, used]) => sum + used, 0))).toFixed(2);
      log(`| ${name} | ${reader} | ${range(runs.map((w) => w.cpuSeconds))} | ${SUMMARY_THREADS.map(thread).join(" | ")} | ${other} | ${args.threads ? thread(WALSENDER) : "—"} | ${fmt(median(runs.map((w) => CHANGES / w.seconds)))} |`);
    }
  }
  const ratio = (window: (r: Window & { steady: Window }) => Window, top: Reader, bottom: Reader, of: (w: Window) => number) => {
    const values: number[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const a = results.find((r) => r.round === round && r.reader === top);
      const b = results.find((r) => r.round === round && r.reader === bottom);
      if (a && b) values.push(of(window(a)) / of(window(b)));
    }
    return range(values);
  };
  log("");
  log("Ratios, median of the rounds' (each round's readers drained next to each other):");
  log("| window | tree | CPU per change plain / governed, whole process | main thread | throughput governed / plain |");
  log("| --- | --- | --- | --- | --- |");
  for (const [name, pick] of windows) {
    for (const version of args.before === undefined ? [""] : ["", "@before"]) {
      const plain = `plain${version}` as Reader;
      const governed = `governed${version}` as Reader;
      log(`| ${name} | ${version === "" ? "this tree" : args.before} | ${ratio(pick, plain, governed, (w) => w.cpuSeconds)} | ${ratio(pick, plain, governed, (w) => w.mainCpuSeconds)} | ${ratio(pick, plain, governed, (w) => w.seconds)} |`);
    }
  }
  if (args.before === undefined) return;
  log("");
  log(`This tree against ${args.before}, CPU per change, median of the rounds' ratios (below 1: this tree spends less):`);
  log("| window | reader | whole process | main thread |");
  log("| --- | --- | --- | --- |");
  for (const [name, pick] of windows) {
    for (const reader of ["plain", "governed"] as const) {
      log(`| ${name} | ${reader} | ${ratio(pick, reader, `${reader}@before`, (w) => w.cpuSeconds)} | ${ratio(pick, reader, `${reader}@before`, (w) => w.mainCpuSeconds)} |`);
    }
  }
}

await main();
