/**
 * Found on a live deployment (PostgreSQL -> embedded log -> DuckDB): sluice.db-wal and -shm deleted while the daemon
 * ran, as an operator freeing disk space might: capture and the sink went on without a word, writing into the deleted
 * files, which a crash would have lost with every change acknowledged to PostgreSQL since. Now a write refuses.
 */
import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync, renameSync, rmSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { createLogger } from "../../runtime/logger.ts";
import type { ProducedRecord } from "../topics/contract.ts";
import { readToEnd } from "../topics/contract-suite.ts";
import { EmbeddedTopicLog } from "./embedded-log.ts";
import { filesGone } from "./files-in-place.ts";

const logger = createLogger("silent");
const dir = mkdtempSync(join(tmpdir(), "sluice-files-in-place-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const encoder = new TextEncoder();
const rec = (key: string): ProducedRecord => ({ topic: "t", key: encoder.encode(key), value: encoder.encode(key), timestamp: 1 });

async function openWith(path: string, records: string[]): Promise<EmbeddedTopicLog> {
  const log = EmbeddedTopicLog.open({ path, logger, maintenanceIntervalMs: 0, filesCheckIntervalMs: 0 });
  await log.createTopic({ name: "t", partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
  await log.produce(records.map(rec));
  return log;
}

async function count(path: string): Promise<number> {
  const log = EmbeddedTopicLog.open({ path, logger, maintenanceIntervalMs: 0 });
  const consumer = await log.consumer("count", ["t"]);
  const records = await readToEnd(log, consumer, ["t"]);
  await consumer.close();
  await log.close();
  return records.length;
}

test("a write after the log's -wal (and -shm) were deleted is refused as TOPIC_LOG_FILE_GONE; the close keeps what was stored", async () => {
  const path = join(dir, "wal.db");
  const log = await openWith(path, ["a", "b"]);
  unlinkSync(`${path}-wal`);
  unlinkSync(`${path}-shm`);
  await assert.rejects(log.produce([rec("c")]), (error: unknown) => {
    assert.equal((error as { code?: unknown }).code, "TOPIC_LOG_FILE_GONE");
    assert.equal((error as { retriable?: unknown }).retriable, false);
    assert.match((error as Error).message, /its write-ahead log .*wal\.db-wal was deleted while the daemon ran.*Never delete or move the log's files/s);
    return true;
  });
  await log.close();
  assert.equal(await count(path), 2, "the records stored before: SQLite's close copied the deleted -wal into the file");
});

test("a write after the log's file was replaced by another (moved away and copied back) is refused", async () => {
  const path = join(dir, "moved.db");
  const log = await openWith(path, ["a"]);
  renameSync(path, `${path}.old`);
  copyFileSync(`${path}.old`, path);
  await assert.rejects(log.produce([rec("b")]), { code: "TOPIC_LOG_FILE_GONE", message: /moved\.db was replaced by another file/ });
  await log.close();
});

test("filesGone: deleted, replaced, -wal gone only once written; in place", () => {
  const opened = { dev: 1, ino: 7 };
  const missing = () => {
    throw Object.assign(new Error("ENOENT"), { code: "ENOENT" });
  };
  assert.equal(filesGone("/d/s.db", opened, true, missing, () => true), "/d/s.db was deleted");
  assert.equal(filesGone("/d/s.db", opened, true, () => ({ dev: 1, ino: 8 }), () => true), "/d/s.db was replaced by another file");
  assert.equal(filesGone("/d/s.db", opened, true, () => opened, () => false), "its write-ahead log /d/s.db-wal was deleted");
  assert.equal(filesGone("/d/s.db", opened, false, () => opened, () => false), null, "before its first write a connection may have no -wal yet");
  assert.equal(filesGone("/d/s.db", opened, true, () => opened, () => true), null);
});
