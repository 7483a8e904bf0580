/**
 * Cost of governance at capture: the real daemon (`sluice run`, capture only, embedded log) drains
 * the same PostgreSQL backlog twice per round — once without governance, once with two personal
 * columns encrypted per data subject (AES-256-GCM, subject `account`: 1,000 subjects; `--hash`:
 * the two columns hashed with HMAC-SHA-256 instead) and three data checks on the table (not_null,
 * range, regex; action warn, none failing) — in alternating order.
 * Prints changes/s and the daemon's CPU-seconds per 100k changes of each, and the ratios governed /
 * plain of each round (the machine is shared: compare ratios measured in one run, not rates
 * between runs; on a loaded machine the CPU ratio is the steadier one).
 *
 *   node bench/governance.ts [--changes 60000] [--tx 1000] [--rounds 2] [--hash] [--profile DIR]
 *
 * --profile DIR: the daemons run with --cpu-prof and write their CPU profiles into DIR/plain and DIR/governed.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type pg from "pg";
import { killAllDaemons, metricValue, pgClient, pgSourceConfig, randomName, removeDir, sleep, SluiceDaemon, tempDir } from "../test/e2e/helpers.ts";

const { values: args } = parseArgs({
  options: {
    changes: { type: "string", default: "60000" },
    tx: { type: "string", default: "1000" },
    rounds: { type: "string", default: "2" },
    profile: { type: "string" },
    hash: { type: "boolean", default: false },
  },
});
const INSERTS = Math.round((Number(args.changes) * 2) / 3);
const UPDATES = Number(args.changes) - INSERTS;
const CHANGES = INSERTS + UPDATES;
const TX = Number(args.tx);
const ROUNDS = Number(args.rounds);
type Reader = "plain" | "governed";
const READERS: Reader[] = ["plain", "governed"];

const schema = randomName("bench_gov");
const publication = randomName("bench_gov_pub");
const dir = tempDir("bench-governance");
const TABLE = `"${schema}".items`;
const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
const log = (text: string) => process.stdout.write(`${text}\n`);
const slotName = (reader: Reader, round: number) => `${schema}_${reader}_${round}`;

const GOVERNANCE = {
  hash_key_file: "hash.key",
  tables: {
    [`${schema}.items`]: {
      ...(args.hash ? { transforms: { name: { kind: "hash" }, email: { kind: "hash" } } } : { personal: { subject: "account", columns: ["name", "email"] } }),
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

/** Seconds from the first durable record to the last (sampled every 50 ms), scaled to the whole backlog. */
async function drain(reader: Reader, round: number): Promise<{ seconds: number; cpuSeconds: number; mainCpuSeconds: number; load: number }> {
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
          ...(reader === "governed" ? { governance: GOVERNANCE } : {}),
        }),
      ],
      topics: { kind: "embedded", path: join(dir, `${deployment}.db`) },
      ...(reader === "governed" && !args.hash ? { personal_data: { master_key_file: join(dir, "master.key") } } : {}),
      logging: { level: "warn" },
    },
    deployment,
    args.profile === undefined ? {} : { env: { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${join(args.profile, reader)}` } },
  );
  try {
    const pid = daemon.child.pid!;
    let first: { at: number; captured: number; cpu: number; main: number } | null = null;
    let beforeFirst = { at: performance.now(), captured: 0, cpu: cpuOf(pid), main: cpuOf(pid, true) };
    let unanswered = 0;
    const deadline = performance.now() + 30 * 60_000;
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
      const at = performance.now();
      const cpu = cpuOf(pid);
      const main = cpuOf(pid, true);
      if (first === null && captured === 0) beforeFirst = { at, captured, cpu, main };
      if (first === null && captured >= CHANGES) first = beforeFirst;
      if (first === null && captured > 0) first = { at, captured, cpu, main };
      if (first !== null && captured >= CHANGES) {
        if (reader === "governed") {
          const checked = metricValue(metrics, "sluice_data_check_rows_total");
          if (checked < CHANGES) throw new Error(`governed: only ${checked} of ${CHANGES} rows were checked`);
        }
        const counted = captured - first.captured;
        return { seconds: ((at - first.at) / 1000) * (CHANGES / counted), cpuSeconds: ((cpu - first.cpu) * 100_000) / counted, mainCpuSeconds: ((main - first.main) * 100_000) / counted, load };
      }
      await sleep(50);
    }
  } finally {
    await daemon.stop();
  }
}

async function main(): Promise<void> {
  const client = await pgClient();
  const results: { reader: Reader; round: number; seconds: number; cpuSeconds: number; mainCpuSeconds: number; load: number }[] = [];
  try {
    await setUp(client);
    for (let round = 1; round <= ROUNDS; round++) {
      for (const reader of round % 2 === 1 ? READERS : [...READERS].reverse()) {
        const result = await drain(reader, round);
        results.push({ reader, round, ...result });
        log(`round ${round} ${reader}: ${fmt(CHANGES / result.seconds)} changes/s, ${result.cpuSeconds.toFixed(2)} CPU-s/100k (main thread ${result.mainCpuSeconds.toFixed(2)}) (load ${result.load.toFixed(1)})`);
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
  log("");
  log("| round | plain changes/s | governed changes/s | throughput governed / plain | CPU-s / 100k plain | CPU-s / 100k governed | CPU plain / governed | main thread CPU plain / governed | load (1 min) |");
  log("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
  for (let round = 1; round <= ROUNDS; round++) {
    const plain = results.find((r) => r.round === round && r.reader === "plain")!;
    const governed = results.find((r) => r.round === round && r.reader === "governed")!;
    log(
      `| ${round} | ${fmt(CHANGES / plain.seconds)} | ${fmt(CHANGES / governed.seconds)} | ${(plain.seconds / governed.seconds).toFixed(2)} | ${plain.cpuSeconds.toFixed(2)} | ${governed.cpuSeconds.toFixed(2)} | ${(plain.cpuSeconds / governed.cpuSeconds).toFixed(2)} | ${(plain.mainCpuSeconds / governed.mainCpuSeconds).toFixed(2)} | ${plain.load.toFixed(1)} / ${governed.load.toFixed(1)} |`,
    );
  }
}

await main();
