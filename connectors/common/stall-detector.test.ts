import assert from "node:assert/strict";
import { test } from "node:test";
import { StallDetector } from "./stall-detector.ts";

test("a check on time, or a little late, is no stall", () => {
  const detector = new StallDetector(250, 0);
  assert.equal(detector.stalledMs(250), null);
  assert.equal(detector.stalledMs(500), null);
  // 1 s late: within max(2 periods, 1 s).
  assert.equal(detector.stalledMs(1_750), null);
});

test("a check more than two periods (at least 1 s) late gives how long the process did not run, measured from the check before", () => {
  const detector = new StallDetector(250, 0);
  assert.equal(detector.stalledMs(250), null);
  assert.equal(detector.stalledMs(3_250), 3_000);
  // The next check on time again is no stall.
  assert.equal(detector.stalledMs(3_500), null);
});

test("with a long period, late means more than two periods", () => {
  const detector = new StallDetector(5_000, 0);
  assert.equal(detector.stalledMs(15_000), null);
  assert.equal(detector.stalledMs(30_001), 15_001);
});
