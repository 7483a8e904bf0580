/**
 * Capture batches are bounded by bytes as well as by count (issue 16 item 4): with the read-ahead
 * full of wide rows, a read returns about captureBatchBytes(max_buffer_bytes) of them, not up to
 * 4,096; a row bigger than that bound still goes through, alone.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type pg from "pg";
import { captureBatchBytes } from "../../config/memory.ts";
import type { ChangeEvent } from "../contracts.ts";
import { adminClient, cleanUp, newSource, randomName, readUntil, snapshotFinished, sourceConfig } from "./int-test-support.ts";
import type { Collected } from "./int-test-support.ts";
import type { PostgresSource } from "./source.ts";

const schema = randomName("batch_bytes");
const q = (table: string) => `"${schema}".${table}`;
const MAX_BUFFER = 8 * 2 ** 20;
const BOUND = captureBatchBytes(MAX_BUFFER);
const ROWS = 60;
const ROW_CHARS = 3_200 * 32; // 100 KiB of text a row: ROWS of them are several bounds' worth
let admin: pg.Client;
const configs: ReturnType<typeof sourceConfig>[] = [];

before(async () => {
  admin = await adminClient();
  await admin.query(`CREATE SCHEMA "${schema}"`);
  await admin.query(`CREATE TABLE ${q("wide")} (id int PRIMARY KEY, payload text)`);
  await admin.query(`CREATE TABLE ${q("preloaded")} (id int PRIMARY KEY, payload text)`);
  await admin.query(`INSERT INTO ${q("preloaded")} SELECT i, repeat(md5(i::text), 3200) FROM generate_series(1, ${ROWS}) i`);
});

after(async () => {
  for (const config of configs) await cleanUp(admin, config);
  await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await admin.end();
});

const payloadBytes = (events: readonly ChangeEvent[]) => events.reduce((sum, e) => sum + String(e.after?.["payload"] ?? "").length, 0);

/** Waits until the source has read ahead at least `bytes` (the whole workload is buffered before the first read). */
async function bufferedAtLeast(source: PostgresSource, bytes: number): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (source.stats().bufferBytes < bytes) {
    assert.ok(Date.now() < deadline, `read-ahead reached only ${source.stats().bufferBytes} of ${bytes} bytes`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function assertBounded(collected: Collected, widest: number): void {
  const sizes = collected.batches.filter((b) => b.events.length > 0).map((b) => payloadBytes(b.events));
  for (const size of sizes) assert.ok(size <= BOUND + widest, `a batch of ${size} bytes of rows, bound ${BOUND} (+ one row of ${widest}): ${sizes.join(", ")}`);
  assert.ok(sizes.length >= Math.floor((ROWS * ROW_CHARS) / (BOUND + widest)), `${sizes.length} batches: ${sizes.join(", ")}`);
}

test("streamed wide rows come in batches of about captureBatchBytes(max_buffer_bytes), not 4,096 at once", async () => {
  const config = sourceConfig({ tables: [`${schema}.wide`], max_buffer_bytes: MAX_BUFFER, snapshot: { mode: "never", parallelism: 1, chunk_rows: 1000 } });
  configs.push(config);
  const source = newSource(config);
  await source.connect(null, AbortSignal.timeout(30_000));
  try {
    await admin.query(`INSERT INTO ${q("wide")} SELECT i, repeat(md5(i::text), 3200) FROM generate_series(1, ${ROWS}) i`);
    await bufferedAtLeast(source, ROWS * ROW_CHARS);
    const collected = await readUntil(source, (c) => c.events.length >= ROWS, { timeoutMs: 60_000 });
    assert.equal(collected.events.length, ROWS);
    assertBounded(collected, ROW_CHARS);
  } finally {
    await source.close();
  }
});

test("a row bigger than the bound goes through alone", async () => {
  const config = sourceConfig({ tables: [`${schema}.wide`], max_buffer_bytes: MAX_BUFFER, snapshot: { mode: "never", parallelism: 1, chunk_rows: 1000 } });
  configs.push(config);
  const source = newSource(config);
  await source.connect(null, AbortSignal.timeout(30_000));
  try {
    const huge = 2 * BOUND;
    await admin.query("BEGIN");
    await admin.query(`INSERT INTO ${q("wide")} VALUES (1000, repeat('x', ${huge}))`);
    await admin.query(`INSERT INTO ${q("wide")} SELECT i, 'small' FROM generate_series(1001, 1100) i`);
    await admin.query("COMMIT");
    await bufferedAtLeast(source, huge);
    const collected = await readUntil(source, (c) => c.events.length >= 101, { timeoutMs: 60_000 });
    const withHuge = collected.batches.find((b) => b.events.some((e) => e.after?.["id"] === 1000))!;
    assert.equal(payloadBytes(withHuge.events), huge, "the big row is its batch's only row");
    assert.equal(collected.events.length, 101);
  } finally {
    await source.close();
  }
});

test("snapshot batches of wide rows are bounded the same way", async () => {
  const config = sourceConfig({ tables: [`${schema}.preloaded`], max_buffer_bytes: MAX_BUFFER, snapshot: { mode: "initial", parallelism: 1, chunk_rows: 1000 } });
  configs.push(config);
  const source = newSource(config);
  await source.connect(null, AbortSignal.timeout(30_000));
  try {
    await bufferedAtLeast(source, ROWS * ROW_CHARS);
    const collected = await readUntil(source, snapshotFinished, { timeoutMs: 60_000 });
    assert.equal(collected.events.filter((e) => e.op === "r").length, ROWS);
    assertBounded(collected, ROW_CHARS);
  } finally {
    await source.close();
  }
});
