/**
 * The headline capture benchmark: the whole capture path of the real daemon (`sluice run`, a
 * capture-only config: pgoutput decoding → Avro → durable topic with acknowledgements → slot
 * acknowledged) against PostgreSQL's own `pg_recvlogical` draining the same backlog.
 *
 * 1. An 8-column table, a publication and one pgoutput slot per reader and round are created,
 *    then the backlog is written (inserts, then updates of half of those rows, in transactions of
 *    `--tx` rows), so every reader starts with the whole backlog waiting behind its slot.
 * 2. Each round drains one slot per reader, in alternating order (round 2 reverses round 1):
 *    - Sluice with the embedded log (SQLite, synchronous=FULL) and with Kafka (acks=all,
 *      idempotence, transactions: the defaults): timed from the first durable record (the first
 *      /metrics sample, every 50 ms, with sluice_changes_captured_total > 0) to the last one; CPU-seconds of the
 *      daemon over the same interval, per 100k changes; the daemon's peak RSS (VmHWM), and launch
 *      → first record;
 *    - `pg_recvlogical -f /dev/null` and `pg_recvlogical -f - | cat > /dev/null` up to the
 *      backlog's end LSN: timed from launch to exit (includes its connection, tens of ms); CPU of
 *      pg_recvlogical (and cat) from the shell's `times`.
 * 3. Ratios to each pg_recvlogical run of the same round, and the 1-minute load average when each
 *    reader started (this machine is shared: compare ratios, not rates, between runs).
 *
 *   node bench/capture-drain.ts [--changes 150000] [--tx 1000] [--rounds 3] [--readers embedded,kafka,devnull,pipe] [--profile DIR] [--compression none|gzip|lz4|zstd] [--sample-ms 50]
 *
 * --sample-ms: how often the daemon's /metrics is sampled (default 50, the figures of earlier runs). Each scrape
 * renders every metric and runs the slot-lag query in the daemon, on its main thread: a build that answers
 * more of them during the drain (one that turns its event loop more often) pays more for the benchmark's own
 * polling; a longer interval keeps that out of a before/after comparison (the drain is then timed to ±interval).
 *
 * Each Kafka drain's line also gives the local broker's CPU (its process, found by `kafka.Kafka` in
 * its command line) per 100k changes over the same interval: the broker is shared, so the figure
 * means something only when nothing else uses it (the idle broker itself takes ~0.045 CPU-s a second).
 * --compression: the Kafka topics' record batch compression (default: the config's, none).
 *
 * Reader `debezium` (not in the default list): Debezium 3.6.1's embedded engine with a Kafka
 * producer, acks=all, idempotence (bench/debezium/: fetched from Maven Central and compiled on first
 * use; needs mvn and a JDK 17+), timed from its first acknowledged record to its last the same way.
 *
 * --profile DIR: the daemons run with --cpu-prof and write their CPU profiles into DIR.
 * --baseline DIR: also drain with the daemon of another checkout (e.g. `git worktree add DIR <commit>`
 *   and a node_modules link), in the same rounds: the before/after ratio of a change.
 */
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type pg from "pg";
import { currentLsn, deleteKafkaDeployment, killAllDaemons, metricValue, pgClient, pgSourceConfig, randomName, removeDir, sleep, SluiceDaemon, tempDir } from "../test/e2e/helpers.ts";
import { kafka, postgres } from "../test/services/ports.ts";
import { formatLsn } from "../connectors/postgres/lsn.ts";
import { drainWithDebezium } from "./debezium/debezium.ts";

const { values: args } = parseArgs({
  options: {
    changes: { type: "string", default: "150000" },
    tx: { type: "string", default: "1000" },
    rounds: { type: "string", default: "3" },
    readers: { type: "string", default: "embedded,kafka,devnull,pipe" },
    profile: { type: "string" },
    baseline: { type: "string" },
    compression: { type: "string" },
    "sample-ms": { type: "string", default: "50" },
  },
});
const SAMPLE_MS = Number(args["sample-ms"]);
const INSERTS = Math.round((Number(args.changes) * 2) / 3);
const UPDATES = Number(args.changes) - INSERTS;
const CHANGES = INSERTS + UPDATES;
const TX = Number(args.tx);
const ROUNDS = Number(args.rounds);
type Reader = "embedded" | "kafka" | "embedded-base" | "kafka-base" | "devnull" | "pipe" | "debezium";
const READERS = args.readers.split(",") as Reader[];
if (args.baseline !== undefined) READERS.push(...READERS.filter((r) => r === "embedded" || r === "kafka").map((r) => `${r}-base` as Reader));
const PG_RECVLOGICAL = `${process.env["SLUICE_PG_BIN"] ?? "/usr/lib/postgresql/15/bin"}/pg_recvlogical`;

const schema = randomName("bench_drain");
const publication = randomName("bench_drain_pub");
const dir = tempDir("bench-drain");
const TABLE = `"${schema}".items`;
const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
const log = (text: string) => process.stdout.write(`${text}\n`);

interface Result {
  readonly reader: Reader;
  readonly round: number;
  readonly seconds: number;
  readonly cpuSeconds: number;
  readonly peakRssMiB: number | null;
  readonly firstRecordSeconds: number | null;
  readonly load: number;
  /** Sluice only, per 100k changes over the timed interval: the main thread's CPU, V8's helper threads' (collector), the other threads'; collections counted by kind (prom-client's gc histogram) and their seconds. */
  readonly threads?: { readonly main: number; readonly v8: number; readonly other: number };
  readonly gc?: { readonly minor: number; readonly major: number; readonly seconds: number };
  /** Sluice → Kafka only: the broker's CPU-seconds per 100k changes over the timed interval (the broker is shared: meaningful when nothing else uses it). */
  readonly brokerCpuSeconds?: number;
}

/** The local Kafka broker's process (the test services' `kafka.Kafka`), or null when it runs elsewhere. */
function kafkaBrokerPid(): number | null {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0").includes("kafka.Kafka")) return Number(entry);
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return null;
}

const slotName = (reader: Reader, round: number) => `${schema}_${reader.replace("-", "_")}_${round}`;

async function setUp(client: pg.Client): Promise<bigint> {
  await client.query(`CREATE SCHEMA "${schema}"`);
  await client.query(`CREATE TABLE ${TABLE} (id bigint PRIMARY KEY, account integer NOT NULL, name text, email text, amount numeric(12,2), active boolean, created_at timestamptz, note text)`);
  await client.query(`CREATE PUBLICATION ${publication} FOR TABLE ${TABLE}`);
  for (let round = 1; round <= ROUNDS; round++) for (const reader of READERS) await client.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [slotName(reader, round)]);
  const started = performance.now();
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
  const end = await currentLsn(client);
  log(`backlog: ${fmt(INSERTS)} inserts + ${fmt(UPDATES)} updates of an 8-column table in transactions of ${fmt(TX)} rows, written in ${((performance.now() - started) / 1000).toFixed(1)} s; ${ROUNDS * READERS.length} slots behind it`);
  return end;
}

/** utime + stime of a process and its threads, in seconds. */
function cpuOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** CPU seconds of each thread of a process: the main thread as "main", V8's helpers as "v8", the rest as "other". */
function threadCpuOf(pid: number): { main: number; v8: number; other: number } {
  const out = { main: 0, v8: 0, other: 0 };
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
    } catch {
      continue; // the thread ended meanwhile
    }
    const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const seconds = (Number(fields[11]) + Number(fields[12])) / 100;
    if (Number(tid) === pid) out.main += seconds;
    else if (comm.startsWith("V8")) out.v8 += seconds;
    else out.other += seconds;
  }
  return out;
}

function gcOf(metrics: string): { minor: number; major: number; seconds: number } {
  const count = (kind: string) => metricValue(metrics, "sluice_nodejs_gc_duration_seconds_count", { kind });
  return { minor: count("minor"), major: count("major"), seconds: metricValue(metrics, "sluice_nodejs_gc_duration_seconds_sum") };
}

async function sluice(reader: "embedded" | "kafka" | "embedded-base" | "kafka-base", round: number): Promise<Result> {
  const source = randomName("src");
  const deployment = randomName("bench_drain");
  const topics = reader.startsWith("embedded") ? { kind: "embedded", path: join(dir, `${deployment}.db`) } : { kind: "kafka", brokers: [...kafka.brokers], transactions: true, ...(args.compression === undefined ? {} : { compression: args.compression }) };
  const load = loadavg()[0]!;
  const launched = performance.now();
  const daemon = await SluiceDaemon.start(dir, {
    name: deployment,
    sources: [pgSourceConfig(source, [`${schema}.*`], { slot: slotName(reader, round), publication, create_slot: false, create_publication: false, snapshot: { mode: "never" } })],
    topics,
    logging: { level: "warn" },
  }, deployment, {
    ...(args.profile === undefined ? {} : { env: { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${args.profile}` } }),
    ...(reader.endsWith("-base") ? { entry: join(args.baseline!, "daemon/sluice.js") } : {}),
  });
  try {
    const pid = daemon.child.pid!;
    const broker = reader.startsWith("kafka") ? kafkaBrokerPid() : null;
    type Sample = { at: number; captured: number; cpu: number; brokerCpu: number; threads: ReturnType<typeof threadCpuOf>; gc: ReturnType<typeof gcOf> };
    let first: Sample | null = null;
    let beforeFirst: Sample = { at: launched, captured: 0, cpu: 0, brokerCpu: broker === null ? 0 : cpuOf(broker), threads: { main: 0, v8: 0, other: 0 }, gc: { minor: 0, major: 0, seconds: 0 } };
    const deadline = performance.now() + 30 * 60_000;
    for (;;) {
      if (performance.now() > deadline) throw new Error(`${reader}: not drained within 30 min\n${daemon.logTail()}`);
      if (daemon.exitStatus !== null) throw new Error(`${reader}: the daemon exited\n${daemon.logTail()}`);
      let metrics: string;
      try {
        metrics = await daemon.metrics();
      } catch (error) {
        await sleep(500);
        throw new Error(`${reader}: the metrics request failed (${String(error)}; daemon exit status ${String(daemon.exitStatus)})\n${daemon.logTail()}`, { cause: error });
      }
      const captured = metricValue(metrics, "sluice_changes_captured_total");
      const at = performance.now();
      const cpu = cpuOf(pid);
      const sample = { at, captured, cpu, brokerCpu: broker === null ? 0 : cpuOf(broker), threads: threadCpuOf(pid), gc: gcOf(metrics) };
      if (first === null && captured === 0) beforeFirst = sample;
      // A backlog drained between two samples is timed from the last sample before any record.
      if (first === null && captured >= CHANGES) first = beforeFirst;
      if (first === null && captured > 0) first = sample;
      if (first !== null && captured >= CHANGES) {
        const rss = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
        // Per 100k changes between the two samples (the first sample already holds `first.captured`).
        const counted = captured - first.captured;
        return {
          reader,
          round,
          seconds: ((at - first.at) / 1000) * (CHANGES / counted),
          cpuSeconds: ((cpu - first.cpu) * 100_000) / counted,
          peakRssMiB: Number(rss) / 1024,
          firstRecordSeconds: (first.at - launched) / 1000,
          load,
          threads: {
            main: ((sample.threads.main - first.threads.main) * 100_000) / counted,
            v8: ((sample.threads.v8 - first.threads.v8) * 100_000) / counted,
            other: ((sample.threads.other - first.threads.other) * 100_000) / counted,
          },
          gc: { minor: sample.gc.minor - first.gc.minor, major: sample.gc.major - first.gc.major, seconds: sample.gc.seconds - first.gc.seconds },
          ...(broker === null ? {} : { brokerCpuSeconds: ((sample.brokerCpu - first.brokerCpu) * 100_000) / counted }),
        };
      }
      await sleep(SAMPLE_MS);
    }
  } finally {
    await daemon.stop();
    if (reader.startsWith("kafka")) await deleteKafkaDeployment(deployment).catch((e: unknown) => log(`cleanup: ${String(e)}`));
  }
}

async function recvlogical(reader: "devnull" | "pipe", round: number, endLsn: bigint): Promise<Result> {
  const command = [
    `"${PG_RECVLOGICAL}" -h ${postgres.host} -p ${postgres.port} -U ${postgres.user} -d ${postgres.database}`,
    `-S ${slotName(reader, round)} --start --no-loop --endpos=${formatLsn(endLsn)}`,
    `-o proto_version=1 -o publication_names=${publication}`,
    reader === "devnull" ? "-f /dev/null" : "-f - | cat > /dev/null",
  ].join(" ");
  const load = loadavg()[0]!;
  const started = performance.now();
  const stderr = await new Promise<string>((resolve, reject) => {
    const child = spawn("sh", ["-c", `${command}; s=$?; times >&2; exit $s`], { env: { ...process.env, PGPASSWORD: postgres.password }, stdio: ["ignore", "ignore", "pipe"] });
    let text = "";
    child.stderr.on("data", (chunk: Buffer) => (text += chunk.toString("utf8")));
    child.on("error", reject);
    child.on("exit", (code) => (code === 0 ? resolve(text) : reject(new Error(`pg_recvlogical exited with ${code}: ${text}`))));
  });
  const seconds = (performance.now() - started) / 1000;
  // `times`: the shell's own user/system time, then its children's ("0m1.234s 0m0.567s").
  const children = stderr.trim().split("\n").at(-1)!.trim().split(/\s+/).map((t) => {
    const m = /(\d+)m([\d.]+)s/.exec(t);
    return m ? Number(m[1]) * 60 + Number(m[2]) : 0;
  });
  return { reader, round, seconds, cpuSeconds: ((children[0]! + children[1]!) * 100_000) / CHANGES, peakRssMiB: null, firstRecordSeconds: null, load };
}

async function debezium(round: number): Promise<Result> {
  const topicPrefix = randomName("bench_dbz");
  const load = loadavg()[0]!;
  try {
    const drained = await drainWithDebezium({ slot: slotName("debezium", round), publication, table: `${schema}.items`, changes: CHANGES, topicPrefix });
    return { reader: "debezium", round, load, ...drained };
  } finally {
    await deleteKafkaDeployment(topicPrefix).catch((e: unknown) => log(`cleanup: ${String(e)}`));
  }
}

const LABEL: Record<Reader, string> = {
  embedded: "Sluice → embedded log",
  kafka: "Sluice → Kafka (acks=all, transactions)",
  "embedded-base": "baseline Sluice → embedded log",
  "kafka-base": "baseline Sluice → Kafka",
  devnull: "pg_recvlogical -f /dev/null",
  pipe: "pg_recvlogical -f - piped to cat",
  debezium: "Debezium 3.6.1 embedded → Kafka (acks=all)",
};

async function main(): Promise<void> {
  const client = await pgClient();
  const results: Result[] = [];
  try {
    const endLsn = await setUp(client);
    for (let round = 1; round <= ROUNDS; round++) {
      const order = round % 2 === 1 ? READERS : [...READERS].reverse();
      for (const reader of order) {
        const result = reader === "devnull" || reader === "pipe" ? await recvlogical(reader, round, endLsn) : reader === "debezium" ? await debezium(round) : await sluice(reader, round);
        results.push(result);
        const threads = result.threads === undefined ? "" : ` (main thread ${result.threads.main.toFixed(2)}, V8 helpers ${result.threads.v8.toFixed(2)}, other threads ${result.threads.other.toFixed(2)})`;
        const gc = result.gc === undefined ? "" : `, ${fmt(result.gc.minor)} scavenges and ${fmt(result.gc.major)} mark-compacts, ${result.gc.seconds.toFixed(2)} s of pauses`;
        const broker = result.brokerCpuSeconds === undefined ? "" : `, Kafka broker ${result.brokerCpuSeconds.toFixed(2)} CPU-s/100k`;
        log(`round ${round} ${LABEL[reader]}: ${fmt(CHANGES / result.seconds)} changes/s, ${result.cpuSeconds.toFixed(2)} CPU-s/100k${threads}${gc}${broker}${result.peakRssMiB === null ? "" : `, peak RSS ${fmt(result.peakRssMiB)} MiB, launch → first record ${result.firstRecordSeconds!.toFixed(2)} s`} (load ${result.load.toFixed(1)})`);
      }
    }
  } finally {
    await killAllDaemons();
    await client.end().catch(() => undefined);
    // A fresh connection: the run's own may have broken, and leftover slots would hold WAL and use up max_replication_slots.
    const cleanup = await pgClient();
    const slots = Array.from({ length: ROUNDS }, (_, i) => READERS.map((reader) => slotName(reader, i + 1))).flat();
    for (let attempt = 0; attempt < 20; attempt++) {
      // A reader just killed (Debezium's JVM) may still hold its slot for a moment.
      await cleanup.query("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = ANY($1) AND active", [slots]);
      await cleanup.query("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = ANY($1) AND NOT active", [slots]);
      if ((await cleanup.query("SELECT 1 FROM pg_replication_slots WHERE slot_name = ANY($1)", [slots])).rowCount === 0) break;
      await sleep(500);
    }
    await cleanup.query(`DROP PUBLICATION IF EXISTS ${publication}`);
    await cleanup.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await cleanup.end();
    removeDir(dir);
  }
  log("");
  // Each reader's speed as a multiple of each reference's in the same round (reference time / reader time).
  const recv = READERS.filter((r) => r === "devnull" || r === "pipe" || r === "debezium");
  log(`| round | reader | changes/s | CPU-s / 100k changes | peak RSS | launch → first record | load (1 min) |${recv.map((r) => ` × ${LABEL[r]} |`).join("")}`);
  log(`| --- | --- | --- | --- | --- | --- | --- |${recv.map(() => " --- |").join("")}`);
  for (const r of results) {
    const ratios = recv.map((base) => {
      const b = results.find((x) => x.round === r.round && x.reader === base);
      return ` ${b ? (b.seconds / r.seconds).toFixed(2) : "—"} |`;
    });
    log(`| ${r.round} | ${LABEL[r.reader]} | ${fmt(CHANGES / r.seconds)} | ${r.cpuSeconds.toFixed(2)} | ${r.peakRssMiB === null ? "—" : `${fmt(r.peakRssMiB)} MiB`} | ${r.firstRecordSeconds === null ? "—" : `${r.firstRecordSeconds.toFixed(2)} s`} | ${r.load.toFixed(1)} |${ratios.join("")}`);
  }
}

await main();
