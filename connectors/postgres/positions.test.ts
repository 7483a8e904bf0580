import { test } from "node:test";
import assert from "node:assert/strict";
import { comparePositions } from "../contracts.ts";
import { exportedSnapshotMarks, exportedSnapshotProgress, flushLsnFor, isSnapshotIncomplete, MAX_SNAPSHOT_MARKS_CHARS, snapshotIncompleteResume, snapshotPosition, throughPosition } from "./positions.ts";

test("flush LSN: past a complete transaction, at the commit of a partial one", () => {
  assert.equal(flushLsnFor(throughPosition(1000n)), 1001n);
  assert.equal(flushLsnFor({ commit: 1000n, change: 900n }), 1000n);
});

test("snapshot rows sort after changes they show and before every streamed change", () => {
  const consistentPoint = 5000n;
  const restart = 4000n;
  const snapshot = snapshotPosition(consistentPoint, restart);
  const committedBefore = { commit: 4900n, change: 4950n - 100n };
  const inFlightAtSnapshot = { commit: 6000n, change: 4100n };
  const committedExactlyAtConsistentPoint = { commit: consistentPoint, change: 4200n };
  assert.equal(comparePositions(committedBefore, snapshot), -1);
  assert.equal(comparePositions(snapshot, inFlightAtSnapshot), -1);
  assert.equal(comparePositions(snapshot, committedExactlyAtConsistentPoint), -1);
  assert.ok(snapshot.change < inFlightAtSnapshot.change && snapshot.change < committedExactlyAtConsistentPoint.change);
  assert.equal(flushLsnFor(snapshot), consistentPoint);
});

test("an exported snapshot's checkpoint carries the catalog marks beside its progress, which reads as before; marks over the bound are left out", () => {
  const progress = { done: ["app.a"], reading: [] };
  const position = (marks: string | null) => ({ commit: 10n, change: 9n, resume: snapshotIncompleteResume(progress, marks) });
  const marks = JSON.stringify({ publication: [1, [2, 3]], partitions: null, labels: null });
  assert.equal(exportedSnapshotMarks(position(marks)), marks);
  assert.deepEqual(exportedSnapshotProgress(position(marks)), progress);
  assert.ok(isSnapshotIncomplete(position(marks)));
  assert.equal(exportedSnapshotMarks(position(null)), null);
  assert.equal(exportedSnapshotMarks(position("x".repeat(MAX_SNAPSHOT_MARKS_CHARS + 1))), null);
  assert.equal(exportedSnapshotMarks({ commit: 10n, change: 9n, resume: "snapshot-incomplete" }), null);
});
