import assert from "node:assert/strict";
import { test } from "node:test";
import { progressLine } from "./progress-display.ts";

test("a progress line shows the table, a bar, the percentage, the counts and the rate", () => {
  assert.equal(
    progressLine("pg", { table: "public.orders", state: "running", rowsDone: 250_000, rowsEstimated: 1_000_000, rowsPerSecond: 180_500, startedAtMs: 0, finishedAtMs: null }),
    "snapshot pg public.orders [#####...............]  25%  250,000 / 1,000,000 rows  running  180,500 rows/s",
  );
  assert.equal(
    progressLine("pg", { table: "public.items", state: "done", rowsDone: 42, rowsEstimated: null, rowsPerSecond: 0, startedAtMs: 0, finishedAtMs: 1 }),
    "snapshot pg public.items [####################] 100%  42 / 42 rows  done",
  );
  assert.equal(progressLine("pg", { table: "public.new", state: "pending", rowsDone: 0, rowsEstimated: null, rowsPerSecond: 0, startedAtMs: null, finishedAtMs: null }), "snapshot pg public.new [....................]   ?%  0 rows  pending");
});
