/**
 * One large value through the whole daemon (`sluice run`: PostgreSQL capture, the embedded log or
 * Kafka, a DuckDB sink in its thread, the default `memory`): the process's peak RSS against the
 * budget its memory plan took (the least the docs' sizing gives for that `topics.max_record_bytes`),
 * and where the RSS was while the value went through each stage.
 *
 * Per value size N (MiB) and round: a fresh deployment with `topics.max_record_bytes` the smallest
 * whole MiB that holds the record (N + 1 MiB), waits until a small row is in DuckDB, then one row of
 * an N MiB incompressible `text` (or `bytea`) value is inserted, and /proc/<pid>/status (VmRSS,
 * RssAnon) and /metrics (each thread's V8 heap, changes captured and applied) are sampled every 50 ms
 * until the row is in DuckDB and its value's md5 equals PostgreSQL's. Stages: "capture" until the
 * change is counted captured (read, decoded, encoded, written to the topic), "sink" until applied.
 *
 *   node bench/big-value.ts [--mib 16,64] [--rounds 1] [--type text|bytea] [--topics embedded|kafka]
 *     [--before ../other-checkout/daemon/sluice.js]   (each size also with that checkout, alternating)
 *     [--timeline /tmp/big]   (each thread's heap and external memory over time: bench/big-value-hook.ts)
 */
import { readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type pg from "pg";
import { kafka } from "../test/services/ports.ts";
import { deleteKafkaDeployment, dropPostgres, killAllDaemons, metricValue, pgClient, pgSourceConfig, randomName, removeDir, sleep, SluiceDaemon, tempDir, waitFor } from "../test/e2e/helpers.ts";

const { values: args } = parseArgs({
  options: {
    mib: { type: "string", default: "16,64" },
    rounds: { type: "string", default: "1" },
    type: { type: "string", default: "text" },
    topics: { type: "string", default: "embedded" },
    before: { type: "string" },
    /** Per-thread memory timeline files, <prefix>-<N>MiB-<this|before>-<round>.txt (bench/big-value-hook.ts). */
    timeline: { type: "string" },
  },
});
const HOOK = fileURLToPath(new URL("./big-value-hook.ts", import.meta.url));
const SIZES = args.mib.split(",").map(Number);
const ROUNDS = Number(args.rounds);
const TYPE = args.type === "bytea" ? "bytea" : "text";
const KAFKA = args.topics === "kafka";
const MiB = 2 ** 20;
const log = (text: string) => process.stdout.write(`${text}\n`);
const schema = randomName("bench_big");
const dir = tempDir("bench-big-value");

interface Sample {
  readonly rssMiB: number;
  readonly anonMiB: number;
  readonly heapMiB: Record<string, number>;
}

interface Stage {
  peakRssMiB: number;
  peakAnonMiB: number;
  peakHeapMiB: Record<string, number>;
  seconds: number;
}

interface Result {
  readonly label: string;
  readonly mib: number;
  readonly round: number;
  readonly budgetMiB: number;
  readonly idleRssMiB: number;
  readonly peakRssMiB: number;
  readonly stages: Record<"capture" | "sink", Stage>;
  readonly load: number;
}

function procStatus(pid: number, field: string): number {
  return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]) / 1024;
}

/** The value's SQL: N MiB of hex digests (incompressible for pglz and lz4 alike), as text or bytea. */
function valueSql(mib: number): string {
  const digests = TYPE === "text" ? (mib * MiB) / 32 : (mib * MiB) / 16;
  const hex = `(SELECT string_agg(md5(random()::text || g::text), '') FROM generate_series(1, ${digests}) g)`;
  return TYPE === "text" ? hex : `decode(${hex}, 'hex')`;
}

async function query(daemon: SluiceDaemon, sql: string): Promise<Record<string, unknown>[]> {
  const response = await fetch(`${daemon.url}/sinks/warehouse/query`, { method: "POST", body: sql, signal: AbortSignal.timeout(30_000) });
  if (response.status !== 200) throw new Error(`query answered ${response.status}: ${await response.text()}`);
  return ((await response.json()) as { rows: Record<string, unknown>[] }).rows;
}

async function sample(daemon: SluiceDaemon): Promise<{ sample: Sample; captured: number; applied: number } | null> {
  const text = await daemon.metrics().catch(() => null);
  if (text === null) return null;
  const pid = daemon.child.pid!;
  const heapMiB: Record<string, number> = {};
  for (const thread of ["main", "sink warehouse"]) heapMiB[thread] = metricValue(text, "sluice_thread_heap_used_bytes", { thread }) / MiB;
  return {
    sample: { rssMiB: procStatus(pid, "VmRSS"), anonMiB: procStatus(pid, "RssAnon"), heapMiB },
    captured: metricValue(text, "sluice_changes_captured_total", { table: `${schema}.big` }),
    applied: metricValue(text, "sluice_sink_changes_applied_total", { sink: "warehouse" }),
  };
}

function note(stage: Stage, s: Sample): void {
  stage.peakRssMiB = Math.max(stage.peakRssMiB, s.rssMiB);
  stage.peakAnonMiB = Math.max(stage.peakAnonMiB, s.anonMiB);
  for (const [thread, mib] of Object.entries(s.heapMiB)) stage.peakHeapMiB[thread] = Math.max(stage.peakHeapMiB[thread] ?? 0, mib);
}

async function run(client: pg.Client, mib: number, round: number, entry: string | undefined): Promise<Result> {
  const source = randomName("src");
  const deployment = randomName("bench_big");
  const table = `"${schema}".big`;
  await client.query(`TRUNCATE ${table}`);
  const maxRecord = `${mib + 1}MiB`;
  const topics = KAFKA
    ? { kind: "kafka", brokers: [...kafka.brokers], partitions: 1, max_record_bytes: maxRecord }
    : { kind: "embedded", path: join(dir, `${deployment}.db`), max_record_bytes: maxRecord };
  const config = {
    name: deployment,
    sources: [pgSourceConfig(source, [`${schema}.*`])],
    topics,
    sinks: [{ kind: "duckdb", name: "warehouse", path: join(dir, `${deployment}.duckdb`) }],
    logging: { level: "info" },
  };
  const label = `${entry ? "before" : "this"} ${mib} MiB`;
  const load = loadavg()[0]!;
  const env = args.timeline ? { NODE_OPTIONS: `--import ${HOOK}`, SLUICE_BIG_VALUE_TIMELINE: `${args.timeline}-${mib}MiB-${entry ? "before" : "this"}-${round}.txt` } : undefined;
  const daemon = await SluiceDaemon.start(dir, config, deployment, { ...(entry ? { entry } : {}), ...(env ? { env } : {}) });
  try {
    await client.query(`INSERT INTO ${table} VALUES (0, 'small')`);
    await waitFor("the small row in DuckDB", async () => Number((await query(daemon, `SELECT count(*) AS n FROM "${schema}_big"`).catch(() => [{ n: 0 }]))[0]?.["n"]) === 1, { daemon, timeoutMs: 120_000 });
    const planLine = readFileSync(daemon.logFile, "utf8").split("\n").find((l) => l.includes('"msg":"memory budget"')) ?? "{}";
    const budgetMiB = (JSON.parse(planLine) as { memory?: { budgetMiB?: number } }).memory?.budgetMiB ?? Number.NaN;
    await sleep(2_000);
    const idleRssMiB = procStatus(daemon.child.pid!, "VmRSS");
    const hwmBefore = procStatus(daemon.child.pid!, "VmHWM");
    const stages = { capture: { peakRssMiB: 0, peakAnonMiB: 0, peakHeapMiB: {}, seconds: 0 }, sink: { peakRssMiB: 0, peakAnonMiB: 0, peakHeapMiB: {}, seconds: 0 } } satisfies Record<string, Stage>;
    const base = (await sample(daemon))!;
    // Sampled from the insert on: capture starts at its commit.
    const inserted = client.query<{ md5: string }>(`INSERT INTO ${table} VALUES (1, ${valueSql(mib)}) RETURNING md5(b) AS md5`);
    const started = performance.now();
    let capturedAt = 0;
    const deadline = started + 20 * 60_000;
    for (;;) {
      if (performance.now() > deadline) throw new Error(`${label}: not applied within 20 min\n${daemon.logTail()}`);
      if (daemon.exitStatus !== null || daemon.fatalLine !== null) throw new Error(`${label}: the daemon stopped\n${daemon.logTail()}`);
      const now = await sample(daemon);
      if (now === null) continue;
      if (capturedAt === 0 && now.captured > base.captured) capturedAt = performance.now();
      note(capturedAt === 0 ? stages.capture : stages.sink, now.sample);
      if (now.applied > base.applied) break;
      await sleep(50);
    }
    stages.capture.seconds = (capturedAt - started) / 1000;
    stages.sink.seconds = (performance.now() - capturedAt) / 1000;
    const peakRssMiB = procStatus(daemon.child.pid!, "VmHWM");
    const expected = (await inserted).rows[0]!.md5;
    const arrived = await query(daemon, `SELECT md5(b) AS md5, octet_length(b::BLOB)::BIGINT AS n FROM "${schema}_big" WHERE id = 1`);
    if (arrived[0]?.["md5"] !== expected) throw new Error(`${label}: the value in DuckDB differs (${JSON.stringify(arrived)})`);
    if (hwmBefore > peakRssMiB) throw new Error("VmHWM went down");
    await daemon.stop();
    return { label, mib, round, budgetMiB, idleRssMiB, peakRssMiB, stages, load };
  } finally {
    await killAllDaemons();
    await dropPostgres(client, { slot: `sluice_${source}`, publication: `sluice_${source}` }).catch(() => undefined);
    if (KAFKA) await deleteKafkaDeployment(deployment).catch(() => undefined);
  }
}

const whole = (n: number) => Math.round(n).toString();
const heapText = (h: Record<string, number>) => Object.entries(h).map(([t, v]) => `${t} ${whole(v)}`).join(", ");

async function main(): Promise<void> {
  const client = await pgClient();
  const results: Result[] = [];
  try {
    await client.query(`CREATE SCHEMA "${schema}"`);
    await client.query(`CREATE TABLE "${schema}".big (id int PRIMARY KEY, b ${TYPE})`);
    for (let round = 1; round <= ROUNDS; round++) {
      for (const mib of SIZES) {
        const entries = args.before ? (round % 2 === 1 ? [args.before, undefined] : [undefined, args.before]) : [undefined];
        for (const entry of entries) {
          const r = await run(client, mib, round, entry);
          results.push(r);
          log(
            `round ${round} ${r.label} ${TYPE} via ${KAFKA ? "kafka" : "embedded"}: peak RSS ${whole(r.peakRssMiB)} MiB = ${(r.peakRssMiB / r.budgetMiB).toFixed(2)}x the plan's ${r.budgetMiB} MiB (idle ${whole(r.idleRssMiB)}); ` +
              `capture ${r.stages.capture.seconds.toFixed(1)} s: RSS ${whole(r.stages.capture.peakRssMiB)} anon ${whole(r.stages.capture.peakAnonMiB)} heaps ${heapText(r.stages.capture.peakHeapMiB)}; ` +
              `sink ${r.stages.sink.seconds.toFixed(1)} s: RSS ${whole(r.stages.sink.peakRssMiB)} anon ${whole(r.stages.sink.peakAnonMiB)} heaps ${heapText(r.stages.sink.peakHeapMiB)}; load ${r.load.toFixed(1)}`,
          );
        }
      }
    }
  } finally {
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => undefined);
    await client.end();
    removeDir(dir);
  }
  log("\n| round | run | value | plan's budget | peak RSS | ratio | peak RSS capture / sink |");
  log("| --- | --- | --- | --- | --- | --- | --- |");
  for (const r of results) {
    log(`| ${r.round} | ${r.label.split(" ")[0]} | ${r.mib} MiB ${TYPE} | ${r.budgetMiB} MiB | ${whole(r.peakRssMiB)} MiB | ${(r.peakRssMiB / r.budgetMiB).toFixed(2)}x | ${whole(r.stages.capture.peakRssMiB)} / ${whole(r.stages.sink.peakRssMiB)} MiB |`);
  }
}

await main();
