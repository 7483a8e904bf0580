import assert from "node:assert/strict";
import { test } from "node:test";
import { comparePositions } from "../contracts.ts";
import { binlogAt, binlogFileIndex, EPOCH_FILES, epochOf, fileIndexOf, formatAt, formatMysqlPosition, isThroughPosition, MAX_BINLOG_EPOCH, offsetOf, rowPosition, throughPosition } from "./positions.ts";
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

test("a binlog history epoch puts every position of the new history above every position of the old, and epoch 0 is the old formula", () => {
  assert.equal(binlogFileIndex("binlog.000042", 0), 42);
  assert.equal(binlogAt(binlogFileIndex("binlog.000042", 0), 7), (42n << 32n) | 7n, "epoch 0 positions are unchanged");
  // An epoch is accepted only when the old history's checkpoint is below file 2^24-1 (source.ts acceptNewHistory).
  const newest = binlogAt(binlogFileIndex(`binlog.${EPOCH_FILES - 1}`), 2 ** 32 - 1);
  const reset = binlogAt(binlogFileIndex("binlog.000001", 1), 4);
  assert.ok(reset > newest, "the first position of epoch 1 sorts above every position of epoch 0 below file 2^24");
  assert.ok(reset - 1n > newest, "and so does a snapshot reset one below it");
  const last = binlogAt(binlogFileIndex(`binlog.${EPOCH_FILES - 1}`, MAX_BINLOG_EPOCH), 2 ** 32 - 1);
  assert.ok(last <= 2n ** 63n - 1n, "the last epoch still fits a signed 64-bit version");
  assert.ok(binlogAt(binlogFileIndex("binlog.000002", 2), 4) > binlogAt(binlogFileIndex(`binlog.${EPOCH_FILES - 1}`, 1), 2 ** 32 - 1));
  assert.throws(() => binlogFileIndex(`binlog.${EPOCH_FILES}`, 1), /2\^24-1/);
  assert.throws(() => binlogFileIndex("binlog.000001", MAX_BINLOG_EPOCH + 1), RangeError);
  assert.deepEqual([epochOf(reset), fileIndexOf(reset), offsetOf(reset)], [1, 1, 4]);
  assert.equal(formatAt(reset, "mariadb-bin.000001"), "mariadb-bin.000001:4 (binlog epoch 1)");
  assert.equal(formatAt(binlogAt(42, 7), "mariadb-bin.000001"), "mariadb-bin.000042:7");
});

test("a resume token carries its epoch, and one of epoch 0 is written as before", () => {
  const token = { flavor: "mysql" as const, serverId: 1, file: "binlog.000003", offset: 4, gtid: null, skipThrough: null, snapshotThresholds: {}, snapshotIncomplete: false };
  const before = encodeResumeToken(token);
  assert.equal(before, 'mysql:{"v":1,"flavor":"mysql","server":1,"file":"binlog.000003","offset":4,"gtid":null,"skip":null,"thresholds":{}}');
  assert.equal(encodeResumeToken({ ...token, epoch: 0 }), before);
  assert.equal(decodeResumeToken(before, "s").epoch, undefined);
  assert.equal(decodeResumeToken(encodeResumeToken({ ...token, epoch: 3 }), "s").epoch, 3);
  // A Sluice before epochs reads only version 1 and would take an epoch's positions as epoch 0's: a token with one is version 2, which it refuses.
  const withEpoch = encodeResumeToken({ ...token, epoch: 3 });
  assert.equal(JSON.parse(withEpoch.slice("mysql:".length)).v, 2);
  assert.throws(() => decodeResumeToken(withEpoch.replace('"epoch":3', '"epoch":null').replace(',"epoch":null', ""), "s"), (error: Error & { code?: string }) => error.code === "MYSQL_CHECKPOINT_INVALID");
  assert.throws(() => decodeResumeToken(before.replace('"v":1', '"v":3'), "s"), /newer Sluice/);
  assert.throws(() => decodeResumeToken(before.replace('"thresholds"', '"epoch":200,"thresholds"'), "s"), (error: Error & { code?: string }) => error.code === "MYSQL_CHECKPOINT_INVALID");
});

test("an epoch 0 position beyond file 2^24 shows as its own file, not as binlog epoch 1, when its checkpoint says its epoch", () => {
  const token = { flavor: "mysql" as const, serverId: 1, file: `binlog.${EPOCH_FILES + 5}`, offset: 4, gtid: null, skipThrough: null, snapshotThresholds: {}, snapshotIncomplete: false };
  const at = binlogAt(binlogFileIndex(token.file), 4);
  assert.equal(formatMysqlPosition({ ...throughPosition(at), resume: encodeResumeToken(token) }), `binlog.${EPOCH_FILES + 5}:4`);
  assert.deepEqual([epochOf(at, 0), fileIndexOf(at, 0)], [0, EPOCH_FILES + 5]);
  const inEpoch = binlogAt(binlogFileIndex("binlog.000005", 1), 4);
  assert.equal(formatMysqlPosition({ ...throughPosition(inEpoch), resume: encodeResumeToken({ ...token, file: "binlog.000005", epoch: 1 }) }), "binlog.000005:4 (binlog epoch 1)");
  assert.equal(formatAt(at, token.file, 0), `binlog.${EPOCH_FILES + 5}:4`);
});
