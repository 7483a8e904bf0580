import assert from "node:assert/strict";
import { test } from "node:test";
import { RebuildProgressMeter, rebuildEntry, rebuildLine } from "./rebuild-progress.ts";
import type { RebuildProgress } from "./rebuild-progress.ts";

test("the meter reports records, a smoothed rate and the time left, at most every interval and at every step", () => {
  const reports: RebuildProgress[] = [];
  const meter = new RebuildProgressMeter("wh", (p) => reports.push(p), 500, 0);
  meter.planned(["public.items"], 10_000, 0);
  meter.read(100, 100);
  assert.equal(reports.length, 1, "within the interval: not reported");
  meter.read(2_000, 1_000);
  assert.equal(reports.at(-1)!.recordsPerSecond, 2_000);
  assert.equal(reports.at(-1)!.etaSeconds, 4);
  meter.read(5_000, 2_000);
  // 0.8 * 2000 + 0.2 * 3000
  assert.equal(reports.at(-1)!.recordsPerSecond, 2_200);
  meter.step("checking", null, 2_100);
  assert.deepEqual([reports.at(-1)!.state, reports.at(-1)!.etaSeconds], ["checking", null]);
  meter.step("done", null, 3_000);
  const done = reports.at(-1)!;
  assert.deepEqual([done.state, done.finishedAtMs, done.recordsDone, done.recordsTotal, done.etaSeconds], ["done", 3_000, 5_000, 10_000, 0]);
  assert.match(rebuildLine({ ...done, state: "reading", recordsPerSecond: 2_200, etaSeconds: 2.3 }), /^rebuild wh \[#{10}\.{10}\]  50%  5,000 \/ 10,000 records  2,200 records\/s  ETA 2s  reading$/);
  assert.equal(rebuildEntry(done, 3_000 + 60_000)?.state, "done", "a finished rebuild stays listed a while");
  assert.equal(rebuildEntry(done, 3_000 + 11 * 60_000), null, "and then goes");
});

test("records left out (no decoder can read them) are counted in the progress, its line and /status", () => {
  const reports: RebuildProgress[] = [];
  const meter = new RebuildProgressMeter("wh", (p) => reports.push(p), 500, 0);
  meter.planned(["public.items"], 10_000, 0);
  meter.leftOut(2);
  meter.read(5_000, 1_000);
  assert.equal(reports.at(-1)!.recordsLeftOut, 2);
  assert.match(rebuildLine({ ...reports.at(-1)!, recordsPerSecond: 0, etaSeconds: null }), /5,000 \/ 10,000 records  2 undecodable left out  reading$/);
  assert.equal(rebuildEntry(reports.at(-1)!, 1_000)?.recordsLeftOut, 2);
});

test("while it waits for its target the rebuild shows what it waits for, no rate and no time left; the rate is measured afresh after", () => {
  const reports: RebuildProgress[] = [];
  const meter = new RebuildProgressMeter("wh", (p) => reports.push(p), 500, 0);
  meter.planned(["public.items"], 10_000, 0);
  meter.read(2_000, 1_000);
  assert.deepEqual([reports.at(-1)!.recordsPerSecond, reports.at(-1)!.etaSeconds], [2_000, 4]);
  meter.waiting("its target failed (ClickHouse unreachable); trying the write again in 2 s", 1_100);
  const waiting = reports.at(-1)!;
  assert.deepEqual([waiting.state, waiting.recordsPerSecond, waiting.etaSeconds], ["reading", 0, null]);
  assert.match(rebuildEntry(waiting, 1_100)?.waiting ?? "", /ClickHouse unreachable/);
  meter.waiting(null, 60_000);
  assert.equal(reports.at(-1)!.waiting, null);
  assert.equal(rebuildEntry(reports.at(-1)!, 60_000)?.waiting, undefined, "/status shows no waiting once it goes on");
  // A minute waited is not counted into the rate: 1,000 records in the second after it.
  meter.read(3_000, 61_000);
  assert.equal(reports.at(-1)!.recordsPerSecond, 1_000);
  assert.equal(reports.at(-1)!.etaSeconds, 7);
});
