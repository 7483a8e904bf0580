import { test } from "node:test";
import assert from "node:assert/strict";
import { AckTracker } from "./ack-tracker.ts";

test("advances only over a contiguous prefix of acknowledged batches", () => {
  const advanced: bigint[] = [];
  const tracker = new AckTracker((lsn) => advanced.push(lsn));
  const a = tracker.issue(10n);
  const b = tracker.issue(20n);
  const c = tracker.issue(30n);
  b();
  assert.deepEqual(advanced, []);
  a();
  assert.deepEqual(advanced, [20n]);
  c();
  c();
  assert.deepEqual(advanced, [20n, 30n]);
  assert.equal(tracker.outstanding, 0);
});

test("acks from before a reset are ignored", () => {
  const advanced: bigint[] = [];
  const tracker = new AckTracker((lsn) => advanced.push(lsn));
  const stale = tracker.issue(10n);
  tracker.reset();
  const fresh = tracker.issue(5n);
  stale();
  assert.deepEqual(advanced, []);
  fresh();
  assert.deepEqual(advanced, [5n]);
});
