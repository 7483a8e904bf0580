/**
 * Found on a live deployment (PostgreSQL -> embedded log -> DuckDB): sluice.db-wal and -shm deleted while the daemon
 * ran, as an operator freeing disk space might: capture and the sink went on without a word, writing into the deleted
 * files, which a crash would have lost with every change acknowledged to PostgreSQL since. Now a write refuses.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { copyFileSync, mkdirSync, mkdtempSync, renameSync, rmSync, statSync, symlinkSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { createLogger } from "../../runtime/logger.ts";
import type { ProducedRecord } from "../topics/contract.ts";
import { readToEnd } from "../topics/contract-suite.ts";
import { EmbeddedTopicLog } from "./embedded-log.ts";
import { filesVerdict, type LogFiles } from "./files-in-place.ts";

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

/** Another process (as a sluice command would) opening the log and writing to it, kept open until `release` is called. */
async function openElsewhere(path: string): Promise<() => Promise<void>> {
  const script = `const { DatabaseSync } = require("node:sqlite");
const db = new DatabaseSync(process.argv[1]);
db.exec("CREATE TABLE IF NOT EXISTS elsewhere (x INTEGER)");
db.exec("INSERT INTO elsewhere VALUES (1)");
process.stdout.write("open\\n");
process.stdin.on("data", () => {});
process.stdin.on("end", () => { db.close(); });`;
  const child = spawn(process.execPath, ["--no-warnings", "-e", script, path], { stdio: ["pipe", "pipe", "inherit"] });
  const [chunk] = (await once(child.stdout, "data")) as [Buffer];
  assert.equal(chunk.toString().trim(), "open");
  return async () => {
    child.stdin.end();
    await once(child, "exit");
  };
}

test("a -wal deleted and created again by another process opening the log is told from this connection's own: the write is refused", async () => {
  const path = join(dir, "elsewhere.db");
  const log = await openWith(path, ["a"]);
  const walBefore = statSync(`${path}-wal`).ino;
  unlinkSync(`${path}-wal`);
  unlinkSync(`${path}-shm`);
  const release = await openElsewhere(path);
  try {
    assert.notEqual(statSync(`${path}-wal`).ino, walBefore, "the other process made a -wal of its own");
    await assert.rejects(log.produce([rec("b")]), { code: "TOPIC_LOG_FILE_GONE", message: /elsewhere\.db-wal was replaced by another file/ });
  } finally {
    await release();
    await log.close();
  }
});

test("a write after only the -shm was deleted is refused", async () => {
  const path = join(dir, "shm.db");
  const log = await openWith(path, ["a"]);
  unlinkSync(`${path}-shm`);
  await assert.rejects(log.produce([rec("b")]), { code: "TOPIC_LOG_FILE_GONE", message: /its shared-memory file .*shm\.db-shm was deleted/ });
  await log.close();
});

test("a file that cannot be looked at (EACCES, EIO...) is not taken for deleted: the write is refused retriably with its cause", () => {
  const held: LogFiles = { main: { dev: 1, ino: 7 }, wal: { dev: 1, ino: 8 }, shm: { dev: 1, ino: 9 } };
  const failing = (code: string) => () => {
    throw Object.assign(new Error(`${code}: failed, stat '/d/s.db'`), { code });
  };
  for (const code of ["EACCES", "EIO", "ESTALE", "ELOOP"]) {
    const verdict = filesVerdict("/d/s.db", held, failing(code));
    assert.equal(verdict.state, "unknown", code);
  }
  for (const code of ["ENOENT", "ENOTDIR"]) assert.deepEqual(filesVerdict("/d/s.db", held, failing(code)), { state: "gone", what: "/d/s.db was deleted" }, code);
});

test("a check that cannot look at the files (ELOOP) refuses the write retriably with its cause; once it can, writes go on", async () => {
  const folder = join(dir, "loop");
  mkdirSync(folder);
  const path = join(folder, "loop.db");
  const log = await openWith(path, ["a"]);
  // The log's folder moved aside and a symbolic link looping on itself put in its place: stat fails with ELOOP.
  renameSync(folder, `${folder}.aside`);
  symlinkSync(folder, folder);
  try {
    await assert.rejects(log.produce([rec("b")]), (error: unknown) => {
      assert.equal((error as { code?: unknown }).code, "TOPIC_LOG_IO_ERROR");
      assert.equal((error as { retriable?: unknown }).retriable, true);
      assert.match((error as Error).message, /cannot check that .*loop\.db is still the file this process writes \(ELOOP/);
      return true;
    });
  } finally {
    unlinkSync(folder);
    renameSync(`${folder}.aside`, folder);
  }
  await log.produce([rec("c")]);
  await log.close();
  assert.equal(await count(path), 2);
});

test("filesVerdict: deleted, replaced, a -wal or -shm not held yet recorded when found; in place", () => {
  const main = { dev: 1, ino: 7 };
  const missing = () => {
    throw Object.assign(new Error("ENOENT"), { code: "ENOENT" });
  };
  const inodes = (table: Record<string, number | undefined>) => (path: string) => {
    const ino = table[path.slice(path.lastIndexOf("s.db"))];
    if (ino === undefined) missing();
    return { dev: 1, ino: ino as number };
  };
  const held = (): LogFiles => ({ main, wal: { dev: 1, ino: 8 }, shm: { dev: 1, ino: 9 } });
  assert.deepEqual(filesVerdict("/d/s.db", held(), missing), { state: "gone", what: "/d/s.db was deleted" });
  assert.equal(filesVerdict("/d/s.db", held(), inodes({ "s.db": 6, "s.db-wal": 8, "s.db-shm": 9 })).state, "gone");
  assert.match((filesVerdict("/d/s.db", held(), inodes({ "s.db": 7, "s.db-wal": 10, "s.db-shm": 9 })) as { what: string }).what, /^its write-ahead log \/d\/s\.db-wal was replaced/);
  assert.deepEqual(filesVerdict("/d/s.db", held(), inodes({ "s.db": 7, "s.db-shm": 9 })), { state: "gone", what: "its write-ahead log /d/s.db-wal was deleted" });
  assert.deepEqual(filesVerdict("/d/s.db", held(), inodes({ "s.db": 7, "s.db-wal": 8 })), { state: "gone", what: "its shared-memory file /d/s.db-shm was deleted" });
  assert.deepEqual(filesVerdict("/d/s.db", held(), inodes({ "s.db": 7, "s.db-wal": 8, "s.db-shm": 9 })), { state: "in place" });
  const fresh: LogFiles = { main, wal: null, shm: null };
  assert.deepEqual(filesVerdict("/d/s.db", fresh, inodes({ "s.db": 7, "s.db-shm": 9 })), { state: "in place" }, "no -wal yet: nothing to compare");
  assert.deepEqual(fresh, { main, wal: null, shm: { dev: 1, ino: 9 } });
  assert.deepEqual(filesVerdict("/d/s.db", fresh, inodes({ "s.db": 7, "s.db-wal": 8, "s.db-shm": 11 })).state, "gone");
});
