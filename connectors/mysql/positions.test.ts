import assert from "node:assert/strict";
import { test } from "node:test";
import { comparePositions } from "../contracts.ts";
import { binlogAt, binlogFileIndex, fileIndexOf, isThroughPosition, offsetOf, rowPosition, throughPosition } from "./positions.ts";
import { decodeResumeToken, encodeResumeToken } from "./resume-token.ts";
import { encodeResume } from "../common/incremental-snapshot-state.ts";
import type { SnapshotTask } from "../common/incremental-snapshot-state.ts";

const task: SnapshotTask = { id: "x", table: "db.u", where: null, lastKey: null, rowsDone: 0, rowsEstimated: null, resetVersion: null, requestedAtMs: 0, startedAtMs: null, origin: "cli" };

test("binlog coordinates order every byte of the history in 63 bits", () => {
  assert.equal(binlogFileIndex("mariadb-bin.000042"), 42);
  assert.equal(binlogFileIndex("binlog.1234567"), 1234567);
  assert.throws(() => binlogFileIndex("binlog"), RangeError);
  assert.throws(() => binlogFileIndex("binlog.2147483648"), RangeError);
  const last = binlogAt(2 ** 31 - 1, 2 ** 32 - 1);
  assert.ok(last <= 2n ** 63n - 1n, "fits a signed 64-bit version");
  assert.ok(binlogAt(3, 2 ** 32 - 1) < binlogAt(4, 4), "a later file is later whatever the offsets");
  assert.deepEqual([fileIndexOf(binlogAt(7, 1234)), offsetOf(binlogAt(7, 1234))], [7, 1234]);
});

test("rows of a transaction sort after the point before it and before the point after it", () => {
  const begin = binlogAt(5, 1000);
  const before = throughPosition(begin);
  const rows = [rowPosition(begin, binlogAt(5, 1100)), rowPosition(begin, binlogAt(5, 1107))];
  const after = throughPosition(binlogAt(5, 1200));
  const next = rowPosition(binlogAt(5, 1200), binlogAt(5, 1290));
  const ordered = [before, ...rows, after, next];
  for (let i = 1; i < ordered.length; i++) assert.equal(comparePositions(ordered[i - 1]!, ordered[i]!), -1);
  assert.ok(isThroughPosition(before) && !isThroughPosition(rows[0]!));
});

test("resume tokens round-trip and refuse foreign checkpoints", () => {
  const token = {
    flavor: "mariadb" as const,
    serverId: 1,
    file: "mariadb-bin.000003",
    offset: 6363,
    gtid: "0-1-103",
    skipThrough: { commit: binlogAt(3, 6363), change: binlogAt(3, 6500) },
    snapshotThresholds: { "db.t": binlogAt(3, 7000) },
    snapshotIncomplete: false,
  };
  assert.deepEqual(decodeResumeToken(encodeResumeToken(token), "s"), token);
  assert.deepEqual(decodeResumeToken(encodeResumeToken({ ...token, skipThrough: null, snapshotIncomplete: true }), "s").snapshotIncomplete, true);
  // A snapshot's checkpoint carries how far it got, and keeps it through the online snapshots' progress appended after it.
  const during = { ...token, skipThrough: null, snapshotIncomplete: true, exportedProgress: { done: ["db.a"], reading: [{ table: "db.t", lastKey: ["42"], rowsDone: 42 }] } };
  assert.deepEqual(decodeResumeToken(encodeResume(encodeResumeToken(during), [task]), "s"), during);
  assert.throws(() => decodeResumeToken("0/16B3748", "s"), (error: Error & { code?: string }) => error.code === "MYSQL_CHECKPOINT_INVALID");
  assert.throws(() => decodeResumeToken(undefined, "s"), (error: Error & { code?: string }) => error.code === "MYSQL_CHECKPOINT_INVALID");
});
