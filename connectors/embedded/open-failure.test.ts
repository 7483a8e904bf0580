import assert from "node:assert/strict";
import { constants, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, test } from "node:test";
import { createLogger } from "../../runtime/logger.ts";
import { EmbeddedTopicLog } from "./embedded-log.ts";
import { folderCreationFailure, openFailureReason, writeRefusal } from "./open-failure.ts";

const dir = mkdtempSync(join(tmpdir(), "sluice-open-failure-"));
after(() => rmSync(dir, { recursive: true, force: true }));

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

// Review of 2ff697f: access() checks the real user, so a process SQLite can write with (CAP_DAC_OVERRIDE, not root) was
// refused at open. SQLite's own verdict decides now; access() only gives the words when SQLite refuses.
test("a log SQLite can write is not refused because access() says no; one SQLite opened read-only is, with the words access() finds", () => {
  const path = join(dir, "writable.db");
  const refusingAll = (target: string) => {
    throw Object.assign(new Error(`EACCES: permission denied, access '${target}'`), { code: "EACCES" });
  };
  assert.notEqual(openFailureReason(path, false, refusingAll, () => true), "", "what the open went by before: access() alone refused it");
  const db = new DatabaseSync(path);
  try {
    assert.equal(writeRefusal(db, path, refusingAll, () => true), "");
    assert.equal(db.isTransaction, false, "the probe leaves no transaction open");
  } finally {
    db.close();
  }
  const readOnly = new DatabaseSync(path, { readOnly: true });
  try {
    assert.match(writeRefusal(readOnly, path, () => undefined, () => true), /^SQLite cannot write it \(.*readonly database/);
    assert.equal(writeRefusal(readOnly, path, refusingAll, () => true), `its folder ${dir} is not writable: permission denied to this process's user (EACCES)`);
  } finally {
    readOnly.close();
  }
});

test("a missing folder of the log that cannot be made is said of the folder above it that exists, not as missing", () => {
  const eacces = Object.assign(new Error("EACCES: permission denied, mkdir '/data/new/logs'"), { code: "EACCES" });
  assert.equal(
    folderCreationFailure("/data/new/logs", eacces, (path) => path === "/data" || path === "/"),
    "cannot create its folder /data/new/logs: the folder /data is not writable: permission denied to this process's user (EACCES)",
  );
  const file = join(dir, "a-file");
  writeFileSync(file, "");
  const path = join(file, "logs", "sluice.db");
  assert.throws(() => EmbeddedTopicLog.open({ path, logger: createLogger("silent"), maintenanceIntervalMs: 0 }), {
    code: "TOPIC_LOG_OPEN_FAILED",
    message: `cannot open embedded topic log ${path}: cannot create its folder ${join(file, "logs")}: ${file} is not a folder (ENOTDIR)`,
  });
});
