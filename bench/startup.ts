/**
 * Launch → first record of `sluice run` (issue 16: ≤ 1 s), and where the time goes.
 *
 * Every start finds a small backlog (100 inserts) waiting behind its own pgoutput slot, and is
 * timed from the spawn of `node daemon/sluice.js run` to its first record:
 *   - embedded, kafka (capture only: PostgreSQL → Avro → embedded log / Kafka with transactions):
 *     the first /metrics sample with sluice_changes_captured_total > 0 (durable and acknowledged);
 *   - embedded-duckdb, kafka-duckdb (the whole pipeline, with a DuckDB sink in its thread): the
 *     first sample with sluice_sink_changes_applied_total > 0 (committed in DuckDB).
 * /metrics is sampled every 50 ms (each sample costs the daemon a rendering: the same for both sides).
 * CPU-seconds are the daemon process's (all threads, /proc/PID/stat) at that sample: steadier
 * than wall time on a shared machine. The phases are the daemon's own log lines (info), as seconds
 * after the spawn: "config" (modules loaded and the config read: the memory plan line), "log"
 * (the topic log open), "started" ("sluice started"), "lease" (Kafka: the capture lease held, the
 * term starts), "capturing" (the source connected).
 *
 *   node bench/startup.ts [--rounds 3] [--readers embedded,kafka,embedded-duckdb,kafka-duckdb]
 *                         [--baseline DIR] [--cold] [--memory 256MiB] [--restart]
 *
 * --baseline DIR: also start another checkout's daemon (`git archive <commit> | tar -x -C DIR`, plus a
 *   node_modules link), in the same rounds, alternating the order: the before/after ratio of a change.
 * Node's module compile cache (enabled by daemon/sluice.js): this checkout's daemons get a cache
 * directory of the bench's own, filled by one start of each reader before the rounds (a restart's case; the heap
 * flags sluice run remembers are kept there too: daemon/memory-exec-start.ts); with
 * --cold, an empty one for every start (the first start after an install). The baseline runs with
 * no NODE_COMPILE_CACHE in its environment (its own sluice.js decides).
 * --memory: `memory` in every config (the process then re-executes itself with heap flags).
 * --restart: each timed start is a restart: the same deployment ran once before (untimed) to its
 *   first record and stopped, so its internal topics hold the schemas, a checkpoint and the topic
 *   identities a restart reads; then another 100 rows were written. Without it every start is a
 *   deployment's first. SLUICE_KAFKA_PORT points the Kafka readers at another broker (e.g. one with
 *   Kafka's default group.initial.rebalance.delay.ms of 3 s; the test broker sets 0).
 * --wal-between MiB: with --restart, that much WAL written in a table outside the publication before the
 *   restart's rows (other writers' changes, which the restarted slot decodes first). Meant for a private
 *   server (SLUICE_PG_PORT etc.): every logical slot of the server decodes that WAL.
 * --trace: print each timed start's log lines (debug level) with their seconds after the spawn, and
 *   before it how much WAL its slot has to decode (from restart_lsn and from the confirmed position).
 */
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { deleteKafkaDeployment, freePort, metricValue, pgClient, pgSourceConfig, randomName, removeDir, REPO, sleep, tempDir } from "../test/e2e/helpers.ts";
import { kafka } from "../test/services/ports.ts";

const { values: args } = parseArgs({
  options: {
    rounds: { type: "string", default: "3" },
    readers: { type: "string", default: "embedded,kafka,embedded-duckdb,kafka-duckdb" },
    baseline: { type: "string" },
    cold: { type: "boolean", default: false },
    memory: { type: "string" },
    restart: { type: "boolean", default: false },
    trace: { type: "boolean", default: false },
    "wal-between": { type: "string", default: "0" },
  },
});
type Reader = "embedded" | "kafka" | "embedded-duckdb" | "kafka-duckdb";
interface Run {
  readonly reader: Reader;
  readonly base: boolean;
}
const ROUNDS = Number(args.rounds);
const READERS = args.readers.split(",") as Reader[];
const RUNS: Run[] = [...READERS.map((reader) => ({ reader, base: false })), ...(args.baseline === undefined ? [] : READERS.map((reader) => ({ reader, base: true })))];
const ROWS = 100;
const WAL_BETWEEN_BYTES = Number(args["wal-between"]) * 2 ** 20;
const PHASES = ["config", "log", "started", "lease", "capturing"] as const;
type Phase = (typeof PHASES)[number];

const schema = randomName("bench_start");
const publication = randomName("bench_start_pub");
const dir = tempDir("bench-startup");
const log = (text: string) => process.stdout.write(`${text}\n`);
const label = (run: Run) => `${run.base ? "baseline" : "this"} ${run.reader}`;
const slotName = (run: Run, round: number) => `${schema}_${run.reader.replace("-", "_")}_${run.base ? "b" : "t"}_${round}`;

interface Result {
  readonly run: Run;
  readonly round: number;
  readonly seconds: number;
  readonly cpuSeconds: number;
  readonly phases: Partial<Record<Phase, number>>;
  readonly load: number;
}

/** utime + stime of a process and its threads, in seconds. */
function cpuOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Seconds after `launchedMs` (wall clock) of the first log line of each phase. */
function phasesOf(output: string, launchedMs: number): Partial<Record<Phase, number>> {
  const phases: Partial<Record<Phase, number>> = {};
  for (const line of output.split("\n")) {
    if (!line.startsWith("{")) continue;
    const entry = JSON.parse(line) as { time?: string; msg?: string; component?: string };
    const phase: Phase | null =
      entry.component === "memory" ? "config"
      : entry.msg === "embedded topic log open" || entry.msg === "Kafka topic log connected" ? "log"
      : entry.msg === "sluice started" ? "started"
      : entry.component === "capture-lease" && entry.msg?.startsWith("capture lease held") ? "lease"
      : entry.msg === "capturing" ? "capturing"
      : null;
    if (phase !== null && phases[phase] === undefined && entry.time) phases[phase] = (Date.parse(entry.time) - launchedMs) / 1000;
  }
  return phases;
}

/** The log lines as `seconds component message`, for --trace. */
function traceOf(output: string, launchedMs: number): string {
  return output
    .split("\n")
    .filter((line) => line.startsWith("{") && !line.includes('"component":"kafkajs"'))
    .map((line) => {
      const entry = JSON.parse(line) as { time?: string; msg?: string; component?: string; group?: string };
      return `  ${((Date.parse(entry.time ?? "") - launchedMs) / 1000).toFixed(3)} ${entry.component ?? "-"} ${entry.msg ?? ""}${entry.group ? ` (${entry.group})` : ""}`;
    })
    .join("\n");
}

async function start(run: Run, round: number, cacheDir: string): Promise<Result> {
  const deployment = randomName("bench_start");
  if (args.restart) {
    // The untimed first start: the timed one below is this deployment's restart.
    // Until every row behind its slot is captured: the timed restart then starts where the rows written for it begin (stopped at its
    // first batch, the restart decoded all WAL written since that batch, other writers' included).
    await launch(run, round, cacheDir, deployment, { cleanup: false, until: inserted - (insertedAtSlot.get(slotName(run, round)) ?? 0) });
    const client = await pgClient();
    try {
      if (WAL_BETWEEN_BYTES > 0) await writeOtherWal(client, WAL_BETWEEN_BYTES);
      await client.query(`INSERT INTO "${schema}".items SELECT g, g % 100, 'name ' || g, g / 100.0, now() FROM generate_series(${nextId}, ${nextId + ROWS - 1}) g`);
      nextId += ROWS;
      inserted += ROWS;
    } finally {
      await client.end();
    }
  }
  if (args.trace) log(`  slot ${slotName(run, round)} before the timed start: ${await slotBacklog(slotName(run, round))}`);
  return launch(run, round, cacheDir, deployment, { cleanup: true });
}

/**
 * The WAL a start's slot has to decode before it reaches the rows waiting for it: from its restart_lsn
 * (where the server starts decoding) and from its confirmed flush position, to the current WAL position.
 * On a shared server, other writers' WAL between them is decoded too (only its changes are left out).
 */
async function slotBacklog(slot: string): Promise<string> {
  const client = await pgClient();
  try {
    const { rows } = await client.query<{ restart: string; confirmed: string }>(
      "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::text AS restart, pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::text AS confirmed FROM pg_replication_slots WHERE slot_name = $1",
      [slot],
    );
    const row = rows[0];
    return row ? `${(Number(row.restart) / 2 ** 20).toFixed(1)} MiB of WAL from its restart_lsn, ${(Number(row.confirmed) / 2 ** 20).toFixed(1)} MiB from its confirmed flush position` : "no such slot";
  } finally {
    await client.end();
  }
}

/**
 * Writes `bytes` of WAL in a table outside the publication: changes no slot hands on, which a
 * restarted slot still decodes on its way to the rows behind them (what other writers on a shared
 * server do between two starts).
 */
async function writeOtherWal(client: Awaited<ReturnType<typeof pgClient>>, bytes: number): Promise<void> {
  const { rows } = await client.query<{ lsn: string }>("SELECT pg_current_wal_lsn()::text AS lsn");
  for (;;) {
    await client.query(`INSERT INTO "${schema}".other_writes (pad) SELECT repeat(md5(g::text), 16) FROM generate_series(1, 5000) g`);
    const written = await client.query<{ bytes: string }>("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1)::text AS bytes", [rows[0]!.lsn]);
    if (Number(written.rows[0]!.bytes) >= bytes) return;
  }
}

/** Ids of the rows written before each restart (after the backlog and the warm-up row). */
let nextId = ROWS + 2;
/** Rows written to the captured table so far, and how many of them were written before each slot was made. */
let inserted = 0;
const insertedAtSlot = new Map<string, number>();

/** Timed to the first record (or to `until` changes). */
async function launch(run: Run, round: number, cacheDir: string, deployment: string, options: { cleanup: boolean; until?: number }): Promise<Result> {
  const port = await freePort();
  const kafkaTopics = run.reader.startsWith("kafka");
  const config = {
    name: deployment,
    sources: [pgSourceConfig("src", [`${schema}.*`], { slot: slotName(run, round), publication, create_slot: false, create_publication: false, snapshot: { mode: "never" } })],
    topics: kafkaTopics ? { kind: "kafka", brokers: [...kafka.brokers], transactions: true } : { kind: "embedded", path: join(dir, `${deployment}.db`) },
    sinks: run.reader.endsWith("-duckdb") ? [{ kind: "duckdb", name: "warehouse", path: join(dir, `${deployment}.duckdb`) }] : [],
    logging: { level: args.trace ? "debug" : "info" },
    http: { listen: `127.0.0.1:${port}` },
    ...(args.memory === undefined ? {} : { memory: args.memory }),
  };
  const file = join(dir, `${deployment}.yaml`);
  writeFileSync(file, JSON.stringify(config));
  const env: Record<string, string | undefined> = { ...process.env };
  delete env["NODE_COMPILE_CACHE"];
  const cache = run.base ? null : args.cold ? tempDir("bench-startup-cache") : cacheDir;
  if (cache !== null) env["NODE_COMPILE_CACHE"] = cache;
  const entry = run.base ? join(args.baseline!, "daemon/sluice.js") : join(REPO, "daemon/sluice.js");
  const metric = run.reader.endsWith("-duckdb") ? "sluice_sink_changes_applied_total" : "sluice_changes_captured_total";
  const load = loadavg()[0]!;
  const launchedMs = Date.now();
  const launched = performance.now();
  const child = spawn(process.execPath, [entry, "run", "-c", file], { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
  try {
    for (;;) {
      if (child.exitCode !== null || performance.now() - launched > 120_000) throw new Error(`${label(run)}: no first record (exit ${child.exitCode})\n${output.slice(-4000)}`);
      const text = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(10_000) }).then((r) => r.text(), () => null);
      const at = performance.now();
      if (text !== null && metricValue(text, metric) >= Math.max(1, options.until ?? 1)) {
        if (args.trace && options.cleanup) log(traceOf(output, launchedMs));
        return { run, round, seconds: (at - launched) / 1000, cpuSeconds: cpuOf(child.pid!), phases: phasesOf(output, launchedMs), load };
      }
      await sleep(50);
    }
  } finally {
    if (child.exitCode === null) {
      child.kill("SIGTERM");
      await new Promise((resolve) => child.once("exit", resolve));
    }
    if (kafkaTopics && options.cleanup) await deleteKafkaDeployment(deployment).catch((e: unknown) => log(`cleanup: ${String(e)}`));
    if (cache !== null && cache !== cacheDir) removeDir(cache);
  }
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

async function main(): Promise<void> {
  const client = await pgClient();
  const results: Result[] = [];
  const cacheDir = tempDir("bench-startup-cache");
  const slots = Array.from({ length: ROUNDS }, (_, i) => RUNS.map((run) => slotName(run, i + 1))).flat();
  try {
    await client.query(`CREATE SCHEMA "${schema}"`);
    await client.query(`CREATE TABLE "${schema}".items (id bigint PRIMARY KEY, account integer NOT NULL, name text, amount numeric(12,2), created_at timestamptz)`);
    await client.query(`CREATE PUBLICATION ${publication} FOR TABLE "${schema}".items`);
    await client.query(`CREATE TABLE "${schema}".other_writes (id bigserial PRIMARY KEY, pad text)`);
    for (const slot of slots) {
      await client.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [slot]);
      insertedAtSlot.set(slot, inserted);
    }
    await client.query(`INSERT INTO "${schema}".items SELECT g, g % 100, 'name ' || g, g / 100.0, now() FROM generate_series(1, ${ROWS}) g`);
    inserted += ROWS;
    if (!args.cold) {
      // Fills this checkout's compile cache (and its remembered heap flags) with one start of each reader: the rounds then
      // time a restart, not the first start after an install. (One start of the first reader left the Kafka modules cold.)
      const warm: Run[] = READERS.map((reader) => ({ reader, base: false }));
      for (const run of warm) {
        await client.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [slotName(run, 0)]);
        insertedAtSlot.set(slotName(run, 0), inserted);
      }
      await client.query(`INSERT INTO "${schema}".items VALUES (${ROWS + 1}, 0, 'warm', 0, now())`);
      inserted += 1;
      for (const run of warm) await start(run, 0, cacheDir);
    }
    log(`${ROWS} rows behind ${slots.length} slots; load average ${loadavg().map((l) => l.toFixed(1)).join(" ")}; compile cache ${args.cold ? "empty at every start" : "filled by one start of each reader before"}${args.memory ? `; memory ${args.memory}` : ""}${args.restart ? "; every timed start a restart" : ""}; Kafka ${kafka.brokers.join(",")}`);
    for (let round = 1; round <= ROUNDS; round++) {
      const order = round % 2 === 1 ? RUNS : [...RUNS].reverse();
      for (const run of order) {
        const result = await start(run, round, cacheDir);
        results.push(result);
        const phases = PHASES.map((p) => `${p} ${result.phases[p]?.toFixed(2) ?? "—"}`).join(", ");
        log(`round ${round} ${label(run)}: first record ${result.seconds.toFixed(2)} s, CPU ${result.cpuSeconds.toFixed(2)} s (${phases}; load ${result.load.toFixed(1)})`);
      }
    }
  } finally {
    await client.end().catch(() => undefined);
    const cleanup = await pgClient();
    const all = [...slots, ...READERS.map((reader) => slotName({ reader, base: false }, 0))];
    for (let attempt = 0; attempt < 20; attempt++) {
      await cleanup.query("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = ANY($1) AND NOT active", [all]);
      if ((await cleanup.query("SELECT 1 FROM pg_replication_slots WHERE slot_name = ANY($1)", [all])).rowCount === 0) break;
      await sleep(500);
    }
    await cleanup.query(`DROP PUBLICATION IF EXISTS ${publication}`);
    await cleanup.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await cleanup.end();
    removeDir(dir);
    removeDir(cacheDir);
  }
  log("");
  log(`| round | daemon | launch → first record | CPU-s | ${PHASES.join(" | ")} | load (1 min) |`);
  log(`| --- | --- | --- | --- | ${PHASES.map(() => "---").join(" | ")} | --- |`);
  for (const r of results) log(`| ${r.round} | ${label(r.run)} | ${r.seconds.toFixed(2)} s | ${r.cpuSeconds.toFixed(2)} | ${PHASES.map((p) => r.phases[p]?.toFixed(2) ?? "—").join(" | ")} | ${r.load.toFixed(1)} |`);
  log("");
  for (const reader of READERS) {
    const mine = results.filter((r) => r.run.reader === reader && !r.run.base);
    const line = `${reader}: median first record ${median(mine.map((r) => r.seconds)).toFixed(2)} s, CPU ${median(mine.map((r) => r.cpuSeconds)).toFixed(2)} s`;
    const base = results.filter((r) => r.run.reader === reader && r.run.base);
    if (base.length === 0) {
      log(line);
      continue;
    }
    // Per round, this checkout's figure over the baseline's (the two ran back to back).
    const ratios = (pick: (r: Result) => number) => mine.map((r) => pick(r) / pick(base.find((b) => b.round === r.round)!)).map((x) => x.toFixed(2)).join(", ");
    log(`${line}; baseline ${median(base.map((r) => r.seconds)).toFixed(2)} s, CPU ${median(base.map((r) => r.cpuSeconds)).toFixed(2)} s; this / baseline per round: wall ${ratios((r) => r.seconds)}, CPU ${ratios((r) => r.cpuSeconds)}`);
  }
}

await main();
