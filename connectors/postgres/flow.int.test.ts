/**
 * Flow against the real server: a tiny max_buffer_bytes with a slow reader keeps the read-ahead
 * bounded (stream and snapshot); heartbeats keep the slot's confirmed position moving while the
 * captured table is quiet and another table is busy.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type pg from "pg";
import { ITEM_OVERHEAD_BYTES } from "../common/byte-bounded-buffer.ts";
import { waitFor } from "../common/online-snapshot-test-support.ts";
import { adminClient, cleanUp, newSource, randomName, readUntil, slotRow, sourceConfig } from "./int-test-support.ts";
import { parseLsn } from "./lsn.ts";
import type { PostgresSource } from "./source.ts";
import { rowBytes } from "./snapshot-reader.ts";

const schema = randomName("flow");
const q = (table: string) => `"${schema}".${table}`;
const MAX_BUFFER = 16 * 1024;
/**
 * One socket read (64 KiB) may already be in hand when reading pauses, plus one message; each of
 * its messages (over 256 bytes in these tests) also counts the buffer's per-item overhead.
 */
const OVERSHOOT = (64 * 1024 + 1024) * (1 + ITEM_OVERHEAD_BYTES / 256);
let admin: pg.Client;
const configs: ReturnType<typeof sourceConfig>[] = [];
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

before(async () => {
  admin = await adminClient();
  await admin.query(`CREATE SCHEMA "${schema}"`);
  await admin.query(`CREATE TABLE ${q("wide")} (id int PRIMARY KEY, payload text)`);
  await admin.query(`CREATE TABLE ${q("quiet")} (id int PRIMARY KEY)`);
  await admin.query(`CREATE TABLE ${q("busy")} (id serial PRIMARY KEY, payload text)`);
});

after(async () => {
  for (const config of configs) await cleanUp(admin, config);
  await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await admin.end();
});

async function slowlyReadAll(source: PostgresSource, count: number, sample: (bytes: number) => void) {
  return readUntil(
    source,
    (c) => {
      sample(source.stats().bufferBytes);
      return c.events.length >= count;
    },
    { timeoutMs: 120_000 },
  ).then(async (collected) => {
    for (const batch of collected.batches) await batch.ack();
    return collected;
  });
}

test("a slow reader pauses the stream: the read-ahead stays within max_buffer_bytes", async () => {
  const config = sourceConfig({ tables: [`${schema}.wide`], max_buffer_bytes: MAX_BUFFER, snapshot: { mode: "never", parallelism: 1, chunk_rows: 100 } });
  configs.push(config);
  const source = newSource(config, { maxBatchEvents: 20 });
  await source.connect(null, AbortSignal.timeout(30_000));
  try {
    await admin.query(`INSERT INTO ${q("wide")} SELECT i, repeat(md5(i::text), 8) FROM generate_series(1, 4000) i`);
    await sleep(500);
    let largest = 0;
    const original = source.read.bind(source);
    source.read = async (signal) => {
      await sleep(2);
      return original(signal);
    };
    const collected = await slowlyReadAll(source, 4000, (bytes) => (largest = Math.max(largest, bytes)));
    const stats = source.stats();
    assert.equal(collected.events.length, 4000);
    assert.ok(stats.pauses > 0, "reading paused");
    assert.ok(stats.bufferPeakBytes <= MAX_BUFFER + OVERSHOOT, `peak ${stats.bufferPeakBytes} within ${MAX_BUFFER} + ${OVERSHOOT}`);
    assert.ok(largest <= MAX_BUFFER + OVERSHOOT);
    assert.ok(stats.bufferPeakBytes >= MAX_BUFFER, "the buffer filled up");
  } finally {
    await source.close();
  }
});

test("the snapshot waits for room too", async () => {
  const config = sourceConfig({ tables: [`${schema}.wide`], max_buffer_bytes: MAX_BUFFER, snapshot: { mode: "initial", parallelism: 2, chunk_rows: 100 } });
  configs.push(config);
  const source = newSource(config, { maxBatchEvents: 20 });
  await source.connect(null, AbortSignal.timeout(30_000));
  try {
    let largest = 0;
    const collected = await slowlyReadAll(source, 4000, (bytes) => (largest = Math.max(largest, bytes)));
    assert.equal(collected.events.filter((e) => e.op === "r").length, 4000);
    const widest = rowBytes(["4000", "x".repeat(256)]);
    assert.ok(largest <= MAX_BUFFER + 2 * widest, `largest ${largest}`);
  } finally {
    await source.close();
  }
});

test("heartbeats advance the confirmed position while only uncaptured tables change", async () => {
  const config = sourceConfig({ tables: [`${schema}.quiet`], heartbeat_interval: 300, snapshot: { mode: "never", parallelism: 1, chunk_rows: 100 } });
  configs.push(config);
  const source = newSource(config, { statusIntervalMs: 200 });
  await source.connect(null, AbortSignal.timeout(30_000));
  const start = parseLsn((await slotRow(admin, config.slot!))!["confirmed_flush_lsn"]!);
  const stop = { stopped: false };
  const busy = (async () => {
    while (!stop.stopped) await admin.query(`INSERT INTO ${q("busy")} (payload) SELECT repeat('x', 500) FROM generate_series(1, 50)`);
  })();
  try {
    const collected = await readUntil(source, (c) => c.batches.length >= 8, { timeoutMs: 20_000 });
    assert.equal(collected.events.length, 0);
    const checkpoints = collected.batches.map((b) => b.checkpoint.position.commit);
    assert.ok(checkpoints.every((lsn, i) => i === 0 || lsn > checkpoints[i - 1]!), "every empty batch advances the checkpoint");
    stop.stopped = true;
    await busy;
    const walNow = parseLsn((await admin.query<{ lsn: string }>("SELECT pg_current_wal_lsn()::text AS lsn")).rows[0]!.lsn);
    await readUntil(source, (c) => c.batches.at(-1)!.checkpoint.position.commit >= walNow, { into: collected, timeoutMs: 10_000 });
    // The ack sends the checkpoint in a status update; the slot shows it once the server has read that: wait for it there.
    let confirmed = start;
    await waitFor(`the slot to catch up with the WAL written by other tables (${walNow})`, async () => (confirmed = parseLsn((await slotRow(admin, config.slot!))!["confirmed_flush_lsn"]!)) >= walNow, 30_000);
    assert.ok(confirmed > start, "the slot moved");
    const lag = await source.slotMetrics();
    // Other tests write WAL on the shared server meanwhile: the lag is at most what was written since the slot caught up.
    const walAfter = parseLsn((await admin.query<{ lsn: string }>("SELECT pg_current_wal_lsn()::text AS lsn")).rows[0]!.lsn);
    assert.ok(lag !== null && lag.lagBytes >= 0 && lag.lagBytes <= Number(walAfter - confirmed), `lag ${JSON.stringify(lag)}, at most ${walAfter - confirmed}`);
    assert.ok(lag.retainedBytes >= lag.lagBytes);
  } finally {
    stop.stopped = true;
    await busy;
    await source.close();
  }
});
