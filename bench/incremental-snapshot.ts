/**
 * Online (incremental) snapshot of a PostgreSQL table against the real server of test/services/,
 * measured at the source's output (batches read and acknowledged, no topic log):
 *  1. streaming alone: a writer makes CHANGES_PER_SECOND row changes per second (updates of the
 *     table, 50 rows per statement every 10 ms); latency of each change = read time - commit time;
 *  2. the online snapshot alone: rows/s;
 *  3. the online snapshot while the writer streams: rows/s, and the streaming latency again.
 * Prints rows/s and the streaming p50/p99 latency without and during the snapshot (and the ratio).
 *
 *   node bench/incremental-snapshot.ts [rows, default 200000] [changes per second, default 5000]
 *
 * SLUICE_BENCH_TABLES=N reads N tables of that many rows each (the writer updates the first),
 * SLUICE_BENCH_PARALLELISM sets snapshot.parallelism (tables read at once, default 1) and
 * SLUICE_BENCH_CHUNKS_IN_FLIGHT snapshot.chunks_in_flight (default parallelism + 2).
 */
import pg from "pg";
import { postgres } from "../test/services/ports.ts";
import type { ChangeEvent, Checkpoint } from "../connectors/contracts.ts";
import { decodeResume } from "../connectors/common/incremental-snapshot-state.ts";
import { cleanUp, newSource, randomName, sourceConfig } from "../connectors/postgres/int-test-support.ts";

const ROWS = Number(process.argv[2] ?? 200_000);
const CHANGES_PER_SECOND = Number(process.argv[3] ?? 5_000);
const STREAM_SECONDS = Number(process.env["SLUICE_BENCH_STREAM_SECONDS"] ?? 10);
const TABLES = Number(process.env["SLUICE_BENCH_TABLES"] ?? 1);
const PARALLELISM = Number(process.env["SLUICE_BENCH_PARALLELISM"] ?? 1);
const CHUNKS_IN_FLIGHT = process.env["SLUICE_BENCH_CHUNKS_IN_FLIGHT"];
const schema = randomName("bench_inc");
const config = sourceConfig({
  tables: [`${schema}.*`],
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

const admin = new pg.Client(postgres);
await admin.connect();
await admin.query(`CREATE SCHEMA "${schema}"`);
for (const table of tableNames) {
  await admin.query(`CREATE TABLE "${schema}".${table} (id int PRIMARY KEY, v int NOT NULL, note text NOT NULL)`);
  await admin.query(`INSERT INTO "${schema}".${table} SELECT i, i, repeat('x', 60) FROM generate_series(1, ${ROWS}) i`);
  await admin.query(`ANALYZE "${schema}".${table}`);
}

const source = newSource(config);
await source.connect(null, AbortSignal.timeout(60_000));

let snapshotRows = 0;
let lastResume: string | undefined;
let lastCheckpoint: Checkpoint | null = null;
let reconnects = 0;
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
      // Other users of the shared server may end replication connections: go on from the last checkpoint, as the daemon does.
      if (stop) break;
      reconnects++;
      console.error(`reconnecting after: ${(error as Error).message}`);
      await source.connect(lastCheckpoint, AbortSignal.timeout(60_000));
      continue;
    }
    const now = Date.now();
    for (const event of batch.events as readonly ChangeEvent[]) {
      if (event.op === "r") snapshotRows++;
      else if (event.op === "u" && measuring) latencies.push(now - event.source.commitTimeMs);
    }
    await batch.ack();
    lastResume = batch.checkpoint.position.resume;
    lastCheckpoint = batch.checkpoint;
  }
})();

/** CHANGES_PER_SECOND row updates per second, 50 rows per statement, until stopped. */
async function writer(until: () => boolean): Promise<number> {
  const client = new pg.Client(postgres);
  await client.connect();
  const perStatement = 50;
  const intervalMs = (1000 * perStatement) / CHANGES_PER_SECOND;
  let changes = 0;
  const started = performance.now();
  try {
    while (!until()) {
      const from = 1 + Math.floor(Math.random() * (ROWS - perStatement));
      await client.query(`UPDATE "${schema}".items SET v = v + 1 WHERE id >= $1 AND id < $2`, [from, from + perStatement]);
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

async function snapshot(): Promise<number> {
  const before = snapshotRows;
  const started = performance.now();
  const ids = new Set<string>();
  for (const table of tableNames) ids.add((await source.snapshots.request(`${schema}.${table}`, null, "bench")).task.id);
  await new Promise((resolve) => setTimeout(resolve, 200));
  while (source.snapshots.list().tasks.some((t) => ids.has(t.id)) || decodeResume(lastResume).tasks.some((t) => ids.has(t.id))) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return (snapshotRows - before) / ((performance.now() - started) / 1000);
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
await admin.query("SELECT pg_logical_emit_message(false, 'bench', 'wake')");
await reading.catch(() => undefined);
await source.close();
await cleanUp(admin, config, schema);
await admin.end();

const rows = (n: number) => `${Math.round(n).toLocaleString("en-US")} rows/s`;
console.log(
  `${TABLES} table(s) of ${ROWS.toLocaleString("en-US")} rows, chunk_rows ${config.snapshot.chunk_rows}, parallelism ${PARALLELISM}, chunks in flight ${CHUNKS_IN_FLIGHT ?? PARALLELISM + 2}; reconnects (connections ended by others): ${reconnects}`,
);
console.log(`streaming alone:            ${Math.round(streamRate)} changes/s, latency p50 ${alone.p50} ms, p99 ${alone.p99} ms (${alone.changes} changes)`);
console.log(`online snapshot alone:      ${rows(snapshotAlone)}`);
console.log(`online snapshot + stream:   ${rows(snapshotStreaming)} while ${Math.round(duringRate)} changes/s; latency p50 ${during.p50} ms, p99 ${during.p99} ms (${during.changes} changes)`);
console.log(`streaming p99 during / without the snapshot: ${(during.p99 / alone.p99).toFixed(2)}x; snapshot rows/s with / without streaming: ${(snapshotStreaming / snapshotAlone).toFixed(2)}`);
