/**
 * Capture batches are bounded by bytes as well as by count (issue 16 item 4), against the real
 * MariaDB: with the read-ahead full of wide rows, a read returns about
 * captureBatchBytes(max_buffer_bytes) of them, not up to 4,096; a row bigger than that bound
 * still goes through, alone.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Connection } from "mysql2/promise";
import { captureBatchBytes } from "../../config/memory.ts";
import type { ChangeEvent } from "../contracts.ts";
import { adminConnection, dropDatabase, newSource, randomName, readUntil, snapshotFinished, sourceConfig } from "./int-test-support.ts";
import type { Collected } from "./int-test-support.ts";
import type { MysqlSource } from "./source.ts";

const MAX_BUFFER = 8 * 2 ** 20;
const BOUND = captureBatchBytes(MAX_BUFFER);
const ROWS = 60;
const ROW_CHARS = 100 * 1024; // ROWS of them are several bounds' worth

const payloadBytes = (events: readonly ChangeEvent[]) => events.reduce((sum, e) => sum + String(e.after?.["payload"] ?? "").length, 0);

/** Waits until the source has read ahead at least `bytes` (the whole workload is buffered before it is read). */
async function bufferedAtLeast(source: MysqlSource, bytes: number): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (source.stats().bufferBytes < bytes) {
    assert.ok(Date.now() < deadline, `read-ahead reached only ${source.stats().bufferBytes} of ${bytes} bytes`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function assertBounded(collected: Collected): void {
  const sizes = collected.batches.filter((b) => b.events.length > 0).map((b) => payloadBytes(b.events));
  for (const size of sizes) assert.ok(size <= BOUND + ROW_CHARS, `a batch of ${size} bytes of rows, bound ${BOUND} (+ one row of ${ROW_CHARS}): ${sizes.join(", ")}`);
  assert.ok(sizes.length >= Math.floor((ROWS * ROW_CHARS) / (BOUND + ROW_CHARS)), `${sizes.length} batches: ${sizes.join(", ")}`);
}

describe("MySQL source: batches bounded by bytes", () => {
  const database = randomName("s_batch_bytes");
  let admin: Connection;

  before(async () => {
    admin = await adminConnection(database);
    await admin.query("CREATE TABLE wide (id INT PRIMARY KEY, payload LONGTEXT)");
    await admin.query("CREATE TABLE preloaded (id INT PRIMARY KEY, payload LONGTEXT)");
    await admin.query(`INSERT INTO preloaded SELECT seq, REPEAT(MD5(seq), ${ROW_CHARS / 32}) FROM seq_1_to_${ROWS}`);
  });

  after(async () => {
    await dropDatabase(admin, database);
    await admin.end();
  });

  /** A streaming source on `wide`, its binlog connection started (the first read starts it). */
  async function streaming(): Promise<MysqlSource> {
    const source = newSource(sourceConfig({ tables: [`${database}.wide`], snapshot: { mode: "never", parallelism: 1, chunk_rows: 1000 }, max_buffer_bytes: MAX_BUFFER }));
    await source.connect(null, AbortSignal.timeout(30_000));
    await readUntil(source, (c) => c.batches.length >= 1);
    return source;
  }

  it("streams wide rows in batches of about captureBatchBytes(max_buffer_bytes), not 4,096 at once", async () => {
    const source = await streaming();
    try {
      await admin.query(`INSERT INTO wide SELECT seq, REPEAT(MD5(seq), ${ROW_CHARS / 32}) FROM seq_1_to_${ROWS}`);
      await bufferedAtLeast(source, ROWS * ROW_CHARS);
      const collected = await readUntil(source, (c) => c.events.length >= ROWS, { timeoutMs: 60_000 });
      assert.equal(collected.events.length, ROWS);
      assertBounded(collected);
    } finally {
      await source.close();
    }
  });

  it("lets a row bigger than the bound through, alone", async () => {
    const source = await streaming();
    try {
      const huge = 2 * BOUND;
      await admin.query("START TRANSACTION");
      await admin.query(`INSERT INTO wide VALUES (1000, REPEAT('x', ${huge}))`);
      await admin.query("INSERT INTO wide SELECT seq, 'small' FROM seq_1001_to_1100");
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

  it("bounds snapshot batches of wide rows the same way", async () => {
    const source = newSource(sourceConfig({ tables: [`${database}.preloaded`], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 1000 }, max_buffer_bytes: MAX_BUFFER }));
    await source.connect(null, AbortSignal.timeout(30_000));
    try {
      await bufferedAtLeast(source, ROWS * ROW_CHARS);
      const collected = await readUntil(source, snapshotFinished, { timeoutMs: 60_000 });
      assert.equal(collected.events.filter((e) => e.op === "r").length, ROWS);
      assertBounded(collected);
    } finally {
      await source.close();
    }
  });
});
