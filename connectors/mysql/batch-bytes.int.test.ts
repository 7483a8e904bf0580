/**
 * Capture batches are bounded by bytes as well as by count (issue 16 item 4), against the real
 * MariaDB: with the read-ahead full of wide rows, a read returns about
 * captureBatchBytes(max_buffer_bytes) of them, not up to 4,096; a row bigger than that bound
 * still goes through, alone.
 */
import { after, before, describe, it } from "node:test";
import type { Connection } from "mysql2/promise";
import { assertHugeRowAlone, assertOnlineSnapshotWideRowsBounded, assertSnapshotWideRowsBounded, assertStreamedWideRowsBounded, HUGE_CHARS, MAX_BUFFER, ROW_CHARS, ROWS, snapshotReset } from "../common/batch-bytes-test-support.ts";
import { adminConnection, dropDatabase, newSource, randomName, readUntil, snapshotFinished, sourceConfig } from "./int-test-support.ts";
import type { MysqlSource } from "./source.ts";

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
      await assertStreamedWideRowsBounded(
        source,
        () => admin.query(`INSERT INTO wide SELECT seq, REPEAT(MD5(seq), ${ROW_CHARS / 32}) FROM seq_1_to_${ROWS}`),
        (done) => readUntil(source, done, { timeoutMs: 60_000 }),
      );
    } finally {
      await source.close();
    }
  });

  it("lets a row bigger than the bound through, alone", async () => {
    const source = await streaming();
    try {
      const write = async () => {
        await admin.query("START TRANSACTION");
        await admin.query(`INSERT INTO wide VALUES (1000, REPEAT('x', ${HUGE_CHARS}))`);
        await admin.query("INSERT INTO wide SELECT seq, 'small' FROM seq_1001_to_1100");
        await admin.query("COMMIT");
      };
      await assertHugeRowAlone(source, write, (done) => readUntil(source, done, { timeoutMs: 60_000 }));
    } finally {
      await source.close();
    }
  });

  it("bounds the chunks of an online snapshot of wide rows the same way", async () => {
    const source = newSource(sourceConfig({ tables: [`${database}.preloaded`], snapshot: { mode: "never", parallelism: 1, chunk_rows: 1000 }, max_buffer_bytes: MAX_BUFFER }));
    await source.connect(null, AbortSignal.timeout(30_000));
    try {
      await readUntil(source, (c) => c.batches.length >= 1);
      await source.snapshots.request(`${database}.preloaded`, null, "test");
      await assertOnlineSnapshotWideRowsBounded(() => readUntil(source, snapshotReset, { timeoutMs: 60_000 }));
    } finally {
      await source.close();
    }
  });

  it("bounds snapshot batches of wide rows the same way", async () => {
    const source = newSource(sourceConfig({ tables: [`${database}.preloaded`], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 1000 }, max_buffer_bytes: MAX_BUFFER }));
    await source.connect(null, AbortSignal.timeout(30_000));
    try {
      await assertSnapshotWideRowsBounded(source, () => readUntil(source, snapshotFinished, { timeoutMs: 60_000 }));
    } finally {
      await source.close();
    }
  });
});
