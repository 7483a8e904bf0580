import assert from "node:assert/strict";
import { constants } from "node:fs";
import { test } from "node:test";
import { openFailureReason } from "./open-failure.ts";

const refusing = (refused: Readonly<Record<string, string>>) => (path: string, _mode: number) => {
  const code = refused[path];
  if (code !== undefined) throw Object.assign(new Error(`${code}: refused, access '${path}'`), { code });
};

test("the log's folder on a read-only file system, or not the process's to write, is named with the cause", () => {
  assert.equal(
    openFailureReason("/data/sluice.db", false, refusing({ "/data": "EROFS" }), () => false),
    "its folder /data is not writable: a read-only file system (EROFS)",
  );
  assert.equal(
    openFailureReason("/data/sluice.db", false, refusing({ "/data": "EACCES" }), () => true),
    "its folder /data is not writable: permission denied to this process's user (EACCES)",
  );
});

test("a file of the log left by another user (the container's user changed) is named: the database, its -wal or its -shm", () => {
  const exists = (path: string) => path !== "/data/sluice.db-shm";
  assert.equal(openFailureReason("/data/sluice.db", false, refusing({ "/data/sluice.db-wal": "EACCES" }), exists), "the file /data/sluice.db-wal is not writable: permission denied to this process's user (EACCES)");
  // A missing -shm is created by SQLite, not checked.
  assert.equal(openFailureReason("/data/sluice.db", false, refusing({ "/data/sluice.db-shm": "EACCES" }), exists), "");
});

test("a read-only open asks only to read the file; nothing refused gives no reason", () => {
  const modes: number[] = [];
  assert.equal(openFailureReason("/data/sluice.db", true, (_path, mode) => void modes.push(mode), () => true), "");
  assert.deepEqual(modes, [constants.R_OK]);
  assert.equal(openFailureReason("/data/sluice.db", true, refusing({ "/data/sluice.db": "EACCES" }), () => true), "the file /data/sluice.db is not readable: permission denied to this process's user (EACCES)");
});
