/**
 * Capture batches are bounded by bytes as well as by count (issue 16 item 4): with the read-ahead
 * full of wide rows, a read returns about captureBatchBytes(max_buffer_bytes) of them, not up to
 * 4,096; a row bigger than that bound still goes through, alone.
 */
import { after, before, test } from "node:test";
import type pg from "pg";
import { assertHugeRowAlone, assertOnlineSnapshotWideRowsBounded, assertSnapshotWideRowsBounded, assertStreamedWideRowsBounded, HUGE_CHARS, MAX_BUFFER, ROW_CHARS, ROWS, snapshotReset } from "../common/batch-bytes-test-support.ts";
import { adminClient, cleanUp, newSource, randomName, readUntil, snapshotFinished, sourceConfig } from "./int-test-support.ts";

const schema = randomName("batch_bytes");
const q = (table: string) => `"${schema}".${table}`;
const REPEATS = ROW_CHARS / 32; // md5's 32 characters a repeat
let admin: pg.Client;
const configs: ReturnType<typeof sourceConfig>[] = [];

before(async () => {
  admin = await adminClient();
  await admin.query(`CREATE SCHEMA "${schema}"`);
  await admin.query(`CREATE TABLE ${q("wide")} (id int PRIMARY KEY, payload text)`);
  await admin.query(`CREATE TABLE ${q("preloaded")} (id int PRIMARY KEY, payload text)`);
  await admin.query(`INSERT INTO ${q("preloaded")} SELECT i, repeat(md5(i::text), ${REPEATS}) FROM generate_series(1, ${ROWS}) i`);
});

after(async () => {
  for (const config of configs) await cleanUp(admin, config);
  await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await admin.end();
});

function tableSource(table: string, mode: "never" | "initial") {
  const config = sourceConfig({ tables: [`${schema}.${table}`], max_buffer_bytes: MAX_BUFFER, snapshot: { mode, parallelism: 1, chunk_rows: 1000 } });
  configs.push(config);
  return newSource(config);
}

test("streamed wide rows come in batches of about captureBatchBytes(max_buffer_bytes), not 4,096 at once", async () => {
  const source = tableSource("wide", "never");
  await source.connect(null, AbortSignal.timeout(30_000));
  try {
    await assertStreamedWideRowsBounded(
      source,
      () => admin.query(`INSERT INTO ${q("wide")} SELECT i, repeat(md5(i::text), ${REPEATS}) FROM generate_series(1, ${ROWS}) i`),
      (done) => readUntil(source, done, { timeoutMs: 60_000 }),
    );
  } finally {
    await source.close();
  }
});

test("a row bigger than the bound goes through alone", async () => {
  const source = tableSource("wide", "never");
  await source.connect(null, AbortSignal.timeout(30_000));
  try {
    const write = async () => {
      await admin.query("BEGIN");
      await admin.query(`INSERT INTO ${q("wide")} VALUES (1000, repeat('x', ${HUGE_CHARS}))`);
      await admin.query(`INSERT INTO ${q("wide")} SELECT i, 'small' FROM generate_series(1001, 1100) i`);
      await admin.query("COMMIT");
    };
    await assertHugeRowAlone(source, write, (done) => readUntil(source, done, { timeoutMs: 60_000 }));
  } finally {
    await source.close();
  }
});

test("snapshot batches of wide rows are bounded the same way", async () => {
  const source = tableSource("preloaded", "initial");
  await source.connect(null, AbortSignal.timeout(30_000));
  try {
    await assertSnapshotWideRowsBounded(source, () => readUntil(source, snapshotFinished, { timeoutMs: 60_000 }));
  } finally {
    await source.close();
  }
});

test("online snapshot chunks of wide rows are bounded the same way", async () => {
  const source = tableSource("preloaded", "never");
  await source.connect(null, AbortSignal.timeout(30_000));
  try {
    await readUntil(source, (c) => c.batches.length >= 1);
    await source.snapshots.request(`${schema}.preloaded`, null, "test");
    await assertOnlineSnapshotWideRowsBounded(() => readUntil(source, snapshotReset, { timeoutMs: 60_000 }));
  } finally {
    await source.close();
  }
});
