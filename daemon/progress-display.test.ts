import assert from "node:assert/strict";
import { test } from "node:test";
import { progressLine } from "./progress-display.ts";
import { etaSeconds, formatDuration, progressEntries } from "./snapshot-progress.ts";

test("a progress line shows the table, a bar, the percentage, the counts, the rate and the time left", () => {
  assert.equal(
    progressLine("pg", { table: "public.orders", state: "running", rowsDone: 250_000, rowsEstimated: 1_000_000, rowsPerSecond: 180_500, startedAtMs: 0, finishedAtMs: null }),
    "snapshot pg public.orders [#####...............]  25%  250,000 / 1,000,000 rows  running  180,500 rows/s  ETA 4s",
  );
  assert.equal(
    progressLine("pg", { table: "public.items", state: "done", rowsDone: 42, rowsEstimated: null, rowsPerSecond: 0, startedAtMs: 0, finishedAtMs: 1 }),
    "snapshot pg public.items [####################] 100%  42 / 42 rows  done",
  );
  assert.equal(progressLine("pg", { table: "public.new", state: "pending", rowsDone: 0, rowsEstimated: null, rowsPerSecond: 0, startedAtMs: null, finishedAtMs: null }), "snapshot pg public.new [....................]   ?%  0 rows  pending");
});

test("the time left is the rows still to read at the current rate, in hours, minutes and seconds", () => {
  const running = { table: "t", state: "running" as const, rowsDone: 100_000, rowsEstimated: 10_000_000, rowsPerSecond: 2_000, startedAtMs: 0, finishedAtMs: null };
  assert.equal(etaSeconds(running), 4950);
  assert.equal(formatDuration(4950), "1h22m");
  assert.equal(formatDuration(185), "3m05s");
  assert.equal(etaSeconds({ ...running, rowsEstimated: null }), null, "no estimate, no ETA");
  assert.equal(etaSeconds({ ...running, state: "pending" }), null);
  assert.equal(etaSeconds({ ...running, rowsDone: 11_000_000 }), 0, "past the estimate: 0, never negative");
  const entries = progressEntries([running, { ...running, table: "old", state: "done", finishedAtMs: 0 }], 3_600_000);
  assert.deepEqual(entries.map((e) => [e.table, e.etaSeconds]), [["t", 4950]], "tables finished long ago are not listed");
});
