/** SQLite failures of the embedded log as Sluice errors: lock contention heals (retriable), corruption does not. */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { test } from "node:test";
import { folderWriteRefusal, topicLogError } from "./sqlite-errors.ts";

test("SQLITE_BUSY (another connection holds the write lock) is retriable TOPIC_LOG_BUSY naming the operation", () => {
  const path = join(mkdtempSync(join(tmpdir(), "sluice-sqlite-busy-")), "log.db");
  const writer = new DatabaseSync(path);
  writer.exec("PRAGMA journal_mode = WAL; CREATE TABLE t (x)");
  const other = new DatabaseSync(path);
  other.exec("PRAGMA busy_timeout = 0");
  writer.exec("BEGIN IMMEDIATE");
  try {
    let caught: unknown;
    try {
      other.exec("BEGIN IMMEDIATE");
    } catch (error) {
      caught = error;
    }
    assert.ok(caught, "the second writer is refused");
    const failure = topicLogError(caught, "commit offsets", path);
    assert.equal(failure.code, "TOPIC_LOG_BUSY");
    assert.equal(failure.retriable, true);
    assert.match(failure.message, /locked by another writer .* during commit offsets; retried \(database is locked\)/);
  } finally {
    writer.exec("ROLLBACK");
    writer.close();
    other.close();
  }
});

test("corruption and I/O errors are not retriable; anything unknown is not either", () => {
  const sqlite = (errcode: number) => Object.assign(new Error("sqlite says no"), { code: "ERR_SQLITE_ERROR", errcode });
  assert.deepEqual([topicLogError(sqlite(11), "read", "/x").code, topicLogError(sqlite(11), "read", "/x").retriable], ["TOPIC_LOG_CORRUPT", false]);
  assert.deepEqual([topicLogError(sqlite(10), "read", "/x").code, topicLogError(sqlite(10), "read", "/x").retriable], ["TOPIC_LOG_IO_ERROR", false]);
  assert.equal(topicLogError(sqlite(6), "read", "/x").retriable, true, "SQLITE_LOCKED");
  assert.equal(topicLogError(sqlite(13), "produce", "/x").retriable, true, "SQLITE_FULL");
  assert.equal(topicLogError(new TypeError("bad"), "read", "/x").retriable, false);
});

test("an I/O error where the log's folder refuses new files as a read-only file system names that, and what to do; other I/O errors stay I/O errors", () => {
  const ioerrWrite = Object.assign(new Error("disk I/O error"), { code: "ERR_SQLITE_ERROR", errcode: 10 | (3 << 8) });
  const readOnly = topicLogError(ioerrWrite, "produce", "/data/sluice.db", () => "EROFS");
  assert.deepEqual([readOnly.code, readOnly.retriable], ["TOPIC_LOG_FILE_SYSTEM_READ_ONLY", false]);
  assert.match(readOnly.message, /^embedded topic log \/data\/sluice\.db: its file system turned read-only during produce .*Check the disk \(dmesg\), repair it and mount it writable again, then start Sluice again/);
  assert.equal(topicLogError(ioerrWrite, "produce", "/data/sluice.db", () => undefined).code, "TOPIC_LOG_IO_ERROR");
  assert.equal(topicLogError(ioerrWrite, "produce", "/data/sluice.db", () => "EACCES").code, "TOPIC_LOG_IO_ERROR");
});

test("an I/O error with the log's disk full to its last pages is the retriable disk full (SQLite says disk I/O error when a begun file cannot grow); with room left it stays an I/O error", () => {
  const ioerrWrite = Object.assign(new Error("disk I/O error"), { code: "ERR_SQLITE_ERROR", errcode: 10 | (3 << 8) });
  const full = topicLogError(ioerrWrite, "produce", "/data/sluice.db", () => undefined, () => 0);
  assert.deepEqual([full.code, full.retriable], ["TOPIC_LOG_DISK_FULL", true]);
  assert.match(full.message, /^embedded topic log \/data\/sluice\.db: disk full during produce \(0 bytes free\); nothing of it was stored \(disk I\/O error\)/);
  assert.equal(topicLogError(ioerrWrite, "open", "/data/sluice.db", () => undefined, () => 1024 * 1024).code, "TOPIC_LOG_IO_ERROR");
  assert.equal(topicLogError(ioerrWrite, "open", "/data/sluice.db", () => undefined, () => undefined).code, "TOPIC_LOG_IO_ERROR", "free space unknown");
  assert.equal(topicLogError(ioerrWrite, "open", "/data/sluice.db", () => "EROFS", () => 0).code, "TOPIC_LOG_FILE_SYSTEM_READ_ONLY", "read-only first");
});

test("a folder's write check: a writable folder passes and keeps no file behind; a missing one says why", () => {
  const folder = mkdtempSync(join(tmpdir(), "sluice-write-check-"));
  try {
    assert.equal(folderWriteRefusal(folder), undefined);
    assert.deepEqual(readdirSync(folder), []);
    assert.equal(folderWriteRefusal(join(folder, "missing")), "ENOENT");
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
});

test("a folder's write check on a file system turned read-only says EROFS, even beside a probe a killed process of the same pid left", (t) => {
  if (process.getuid?.() !== 0) return t.skip("needs root to mount a tmpfs and remount it read-only");
  const folder = mkdtempSync(join(tmpdir(), "sluice-write-check-ro-"));
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", folder], { stdio: "ignore" });
  } catch {
    rmSync(folder, { recursive: true, force: true });
    return t.skip("mounting a tmpfs was refused");
  }
  try {
    writeFileSync(join(folder, `.sluice-write-check-${process.pid}`), "");
    execFileSync("mount", ["-o", "remount,ro", folder], { stdio: "ignore" });
    assert.equal(folderWriteRefusal(folder), "EROFS");
  } finally {
    execFileSync("umount", [folder]);
    rmSync(folder, { recursive: true, force: true });
  }
});
