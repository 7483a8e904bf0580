/**
 * Online (incremental) snapshot of a MariaDB table against the real server of test/services/,
 * measured at the source's output (batches read and acknowledged, no topic log), as
 * bench/incremental-snapshot.ts does for PostgreSQL:
 *  1. streaming alone: a writer makes CHANGES_PER_SECOND row changes per second (updates of the
 *     table, 50 rows per statement every 10 ms); latency of each change = read time - commit time
 *     (MariaDB's binlog times have one-second resolution, so each statement writes its sequence
 *     number into the rows and the writer notes when its commit returned);
 *  2. the online snapshot alone: rows/s;
 *  3. the online snapshot while the writer streams: rows/s, and the streaming latency again.
 *
 *   node bench/incremental-snapshot-mysql.ts [rows, default 200000] [changes per second, default 5000]
 *
 * SLUICE_BENCH_CHUNK_ROWS (default 10000), SLUICE_BENCH_PARALLELISM (tables read at once, default 1),
 * SLUICE_BENCH_CHUNKS_IN_FLIGHT (default parallelism + 2) and SLUICE_BENCH_TABLES (tables of that
 * many rows each, default 1) as for PostgreSQL. The snapshot phases also print this process's CPU
 * time per 100k snapshot rows (the source, the bench's writer and reader together).
 */
import { loadavg } from "node:os";
import type { ChangeEvent } from "../connectors/contracts.ts";
import type { Checkpoint } from "../connectors/contracts.ts";
import { decodeResume } from "../connectors/common/incremental-snapshot-state.ts";
import { adminConnection, dropDatabase, newSource, randomName, sourceConfig } from "../connectors/mysql/int-test-support.ts";

const ROWS = Number(process.argv[2] ?? 200_000);
const CHANGES_PER_SECOND = Number(process.argv[3] ?? 5_000);
const STREAM_SECONDS = Number(process.env["SLUICE_BENCH_STREAM_SECONDS"] ?? 10);
const TABLES = Number(process.env["SLUICE_BENCH_TABLES"] ?? 1);
const PARALLELISM = Number(process.env["SLUICE_BENCH_PARALLELISM"] ?? 1);
const CHUNKS_IN_FLIGHT = process.env["SLUICE_BENCH_CHUNKS_IN_FLIGHT"];
const database = randomName("bench_incm");
const config = sourceConfig({
  tables: [`${database}.*`],
  snapshot: {
    mode: "never",
    parallelism: PARALLELISM,
    chunk_rows: Number(process.env["SLUICE_BENCH_CHUNK_ROWS"] ?? 10_000),
    ...(CHUNKS_IN_FLIGHT === undefined ? {} : { chunks_in_flight: Number(CHUNKS_IN_FLIGHT) }),
  },
  heartbeat_interval: 1000,
  max_buffer_bytes: 64 * 2 ** 20,
});
const tableNames = Array.from({ length: TABLES }, (_, i) => (i === 0 ? "items" : `items_${i + 1}`));

const admin = await adminConnection(database);
for (const table of tableNames) {
  await admin.query(`CREATE TABLE ${table} (id INT PRIMARY KEY, v INT NOT NULL, note VARCHAR(100) NOT NULL)`);
  await admin.query(`INSERT INTO ${table} SELECT seq, 0, REPEAT('x', 60) FROM seq_1_to_${ROWS}`);
  await admin.query(`ANALYZE TABLE ${table}`);
}

const source = newSource(config);
await source.connect(null, AbortSignal.timeout(60_000));

let snapshotRows = 0;
let lastResume: string | undefined;
let lastCheckpoint: Checkpoint | null = null;
let reconnects = 0;
/** Statement sequence number → when its commit returned. */
const committedAt = new Map<number, number>();
const latencies: number[] = [];
let measuring = false;
let stop = false;
const reading = (async () => {
  const signal = new AbortController().signal;
  while (!stop) {
    let batch;
    try {
      batch = await source.read(signal);
    } catch (error) {
      if (stop) break;
      reconnects++;
      console.error(`reconnecting after: ${(error as Error).message}`);
      await source.connect(lastCheckpoint, AbortSignal.timeout(60_000));
      continue;
    }
    const now = Date.now();
    for (const event of batch.events as readonly ChangeEvent[]) {
      if (event.op === "r") snapshotRows++;
      else if (event.op === "u" && measuring) {
        const at = committedAt.get(Number(event.after?.["v"]));
        if (at !== undefined) latencies.push(now - at);
      }
    }
    await batch.ack();
    lastResume = batch.checkpoint.position.resume;
    lastCheckpoint = batch.checkpoint;
  }
})();

let statement = 0;
/** CHANGES_PER_SECOND row updates per second, 50 rows per statement, until stopped. */
async function writer(until: () => boolean): Promise<number> {
  const client = await adminConnection(database);
  const perStatement = 50;
  const intervalMs = (1000 * perStatement) / CHANGES_PER_SECOND;
  let changes = 0;
  const started = performance.now();
  try {
    while (!until()) {
      const from = 1 + Math.floor(Math.random() * (ROWS - perStatement));
      const seq = ++statement;
      await client.query(`UPDATE items SET v = ? WHERE id >= ? AND id < ?`, [seq, from, from + perStatement]);
      committedAt.set(seq, Date.now());
      changes += perStatement;
      const due = started + (changes / perStatement) * intervalMs - performance.now();
      if (due > 0) await new Promise((resolve) => setTimeout(resolve, due));
    }
  } finally {
    await client.end();
  }
  return changes / ((performance.now() - started) / 1000);
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Rows/s of one online snapshot of every table, and CPU seconds per 100k of its rows. */
async function snapshot(): Promise<{ rate: number; cpuPer100k: number }> {
  const before = snapshotRows;
  const started = performance.now();
  const cpu = process.cpuUsage();
  const ids = new Set<string>();
  for (const table of tableNames) ids.add((await source.snapshots.request(`${database}.${table}`, null, "bench")).task.id);
  await new Promise((resolve) => setTimeout(resolve, 200));
  while (source.snapshots.list().tasks.some((t) => ids.has(t.id)) || decodeResume(lastResume).tasks.some((t) => ids.has(t.id))) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const used = process.cpuUsage(cpu);
  const rows = snapshotRows - before;
  return { rate: rows / ((performance.now() - started) / 1000), cpuPer100k: ((used.user + used.system) / 1e6) * (100_000 / rows) };
}

// 1. Streaming alone.
measuring = true;
const endAt = Date.now() + STREAM_SECONDS * 1000;
const streamRate = await writer(() => Date.now() >= endAt);
await new Promise((resolve) => setTimeout(resolve, 1000));
measuring = false;
const alone = { p50: percentile(latencies, 50), p99: percentile(latencies, 99), changes: latencies.length };
latencies.length = 0;

// 2. Snapshot alone.
const snapshotAlone = await snapshot();

// 3. Snapshot while streaming.
let snapshotDone = false;
measuring = true;
const streaming = writer(() => snapshotDone);
const snapshotStreaming = await snapshot();
snapshotDone = true;
const duringRate = await streaming;
await new Promise((resolve) => setTimeout(resolve, 1000));
measuring = false;
const during = { p50: percentile(latencies, 50), p99: percentile(latencies, 99), changes: latencies.length };

stop = true;
await reading.catch(() => undefined);
await source.close();
await dropDatabase(admin, database);
await admin.end();

const rows = (n: number) => `${Math.round(n).toLocaleString("en-US")} rows/s`;
const cpu = (n: number) => `${n.toFixed(2)} CPU-s/100k rows`;
console.log(`${TABLES} table(s) of ${ROWS.toLocaleString("en-US")} rows, chunk_rows ${config.snapshot.chunk_rows}, parallelism ${PARALLELISM}, chunks_in_flight ${CHUNKS_IN_FLIGHT ?? "default"}; reconnects: ${reconnects}; load average ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
console.log(`streaming alone:            ${Math.round(streamRate)} changes/s, latency p50 ${alone.p50} ms, p99 ${alone.p99} ms (${alone.changes} changes)`);
console.log(`online snapshot alone:      ${rows(snapshotAlone.rate)}, ${cpu(snapshotAlone.cpuPer100k)}`);
console.log(`online snapshot + stream:   ${rows(snapshotStreaming.rate)}, ${cpu(snapshotStreaming.cpuPer100k)} while ${Math.round(duringRate)} changes/s; latency p50 ${during.p50} ms, p99 ${during.p99} ms (${during.changes} changes)`);
console.log(`streaming p99 during / without the snapshot: ${(during.p99 / alone.p99).toFixed(2)}x; snapshot rows/s with / without streaming: ${(snapshotStreaming.rate / snapshotAlone.rate).toFixed(2)}`);
