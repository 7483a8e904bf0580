/**
 * The stream in slices (PostgresSourceOptions.sliceEvents): while more is read ahead, batches are
 * small and say so (SourceBatch.more), and capture stores a run of them as one batch. A run stays
 * within maxBatchEvents, its slices are cut only where a checkpoint is safe (never inside one LSN),
 * and the last slice of what is read ahead ends the run; only a run's last slice confirms a position to the server.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type pg from "pg";
import { comparePositions } from "../contracts.ts";
import type { ChangeEvent } from "../contracts.ts";
import { adminClient, cleanUp, newSource, randomName, readUntil, sourceConfig } from "./int-test-support.ts";
import type { PostgresSource, PostgresSourceBatch } from "./source.ts";
import { parseLsn } from "./lsn.ts";
import { flushLsnFor } from "./positions.ts";

const schema = randomName("slices");
const q = (table: string) => `"${schema}".${table}`;
const MAX_BATCH = 20;
const SLICE = 4;
let admin: pg.Client;
let source: PostgresSource;
const config = sourceConfig({ tables: [`${schema}.*`], snapshot: { mode: "never", parallelism: 1, chunk_rows: 100 } });

before(async () => {
  admin = await adminClient();
  await admin.query(`CREATE SCHEMA "${schema}"`);
  await admin.query(`CREATE TABLE ${q("rows")} (id int PRIMARY KEY, v text)`);
  await admin.query(`CREATE TABLE ${q("bulk")} (id int PRIMARY KEY, v text)`);
  source = newSource(config, { maxBatchEvents: MAX_BATCH, sliceEvents: SLICE });
  await source.connect(null, AbortSignal.timeout(30_000));
});

after(async () => {
  await source.close();
  await cleanUp(admin, config, schema);
  await admin.end();
});

/** The batches capture stores as one: a run of batches saying `more` ends with the first that does not. */
function runs(batches: readonly PostgresSourceBatch[]): PostgresSourceBatch[][] {
  const out: PostgresSourceBatch[][] = [];
  let run: PostgresSourceBatch[] = [];
  for (const batch of batches) {
    run.push(batch);
    if (batch.more === true) continue;
    out.push(run);
    run = [];
  }
  if (run.length > 0) out.push(run);
  return out;
}

test("read-ahead changes come in slices joined into runs of at most maxBatchEvents, cut only between LSNs, the last of what was read ending its run", async () => {
  // The stream opens at the first read.
  await admin.query(`INSERT INTO ${q("rows")} VALUES (0, 'first')`);
  await readUntil(source, (c) => c.events.length >= 1);
  await admin.query("BEGIN");
  await admin.query(`INSERT INTO ${q("rows")} SELECT i, 'row' FROM generate_series(1, 50) i`);
  // COPY writes multi-insert records: many rows share one LSN.
  await admin.query(`COPY ${q("bulk")} (id) FROM PROGRAM 'seq 1 40'`);
  await admin.query("COMMIT");
  await admin.query(`INSERT INTO ${q("rows")} SELECT i, 'row' FROM generate_series(51, 80) i`);
  const end = parseLsn((await admin.query<{ lsn: string }>("SELECT pg_current_wal_lsn()::text AS lsn")).rows[0]!.lsn);
  for (let i = 0; i < 600 && (source.stats().receivedLsn ?? 0n) < end; i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok((source.stats().receivedLsn ?? 0n) >= end, "everything read ahead");

  const collected = await readUntil(source, (c) => c.events.length >= 120 && c.batches.at(-1)!.more !== true, { ack: false });
  // Acknowledged in order, as capture does once a run is durable: the server hears of a run's end only, one status update a run.
  for (const batch of collected.batches) {
    const before = source.stats().flushedLsn;
    await batch.ack();
    if (batch.more === true) assert.equal(source.stats().flushedLsn, before, "a slice with more after it confirms nothing");
    else assert.ok(source.stats().flushedLsn >= flushLsnFor(batch.checkpoint.position) || flushLsnFor(batch.checkpoint.position) <= before, "the run's last slice confirms through its checkpoint");
  }
  const ofTable = (table: string) => collected.events.filter((e: ChangeEvent) => e.source.table === table).map((e) => e.key["id"]);
  assert.deepEqual(ofTable("rows"), Array.from({ length: 80 }, (_, i) => i + 1), "every row once, in order");
  assert.deepEqual(ofTable("bulk"), Array.from({ length: 40 }, (_, i) => i + 1));

  const batches = collected.batches.filter((b) => b.events.length > 0);
  assert.ok(batches.some((b) => b.more === true), "slices joined into runs");
  for (let i = 1; i < batches.length; i++) {
    const last = batches[i - 1]!.events.at(-1)!.source.position;
    const first = batches[i]!.events[0]!.source.position;
    assert.notEqual(last.change, first.change, `slice ${i} starts inside the LSN that ended slice ${i - 1}`);
    assert.ok(comparePositions(batches[i - 1]!.checkpoint.position, first) < 0, "a slice's checkpoint is before the next slice's first change");
  }
  for (const batch of batches) {
    const rows = batch.events.every((e) => e.source.table === "rows");
    if (rows) assert.ok(batch.events.length <= SLICE, `a slice of ${batch.events.length} rows, each its own LSN`);
  }
  for (const run of runs(collected.batches)) {
    const rows = run.flatMap((b) => b.events);
    // A slice finishing a multi-insert's LSN may take more than SLICE; runs of single-row LSNs stay within the bound.
    if (rows.every((e) => e.source.table === "rows")) assert.ok(rows.length <= MAX_BATCH, `a run of ${rows.length} changes, over ${MAX_BATCH}`);
    assert.ok(run.slice(0, -1).every((b) => b.events.length > 0), "only a run's last batch may be empty");
  }
  assert.equal(collected.batches.at(-1)!.more, undefined, "the last of what was read ahead ends its run");
});
