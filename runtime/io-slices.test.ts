import assert from "node:assert/strict";
import { test } from "node:test";
import { IoSlices, SLICE_MS } from "./io-slices.ts";

test("a loop in slices yields only once a slice's time is spent, and lets I/O callbacks run then", async () => {
  const slices = new IoSlices();
  let steps = 0;
  let yields = 0;
  let stepsWhenIoRan = -1;
  setImmediate(() => (stepsWhenIoRan = steps));
  const end = performance.now() + 20 * SLICE_MS;
  while (performance.now() < end) {
    steps++;
    if (slices.due()) {
      yields++;
      await slices.yield();
    }
  }
  assert.ok(yields >= 1, "a loop longer than a slice yields");
  assert.ok(stepsWhenIoRan > 0 && stepsWhenIoRan < steps, "the waiting callback ran during the loop, not after it");
});

test("a short loop does not yield", () => {
  const slices = new IoSlices();
  for (let i = 0; i < 63; i++) assert.equal(slices.due(), false, "the clock is not read before 64 steps");
});
