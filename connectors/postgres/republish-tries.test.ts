/** Which tables found out of the publication the catalog look puts back (republish-tries.ts). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { RepublishTries } from "./republish-tries.ts";

const t = (relid: number) => ({ relid });

test("a table the look failed to put back (the ALTER met a lock timeout) is tried again after the retry time, not never and not at every look", () => {
  const tries = new RepublishTries(300_000);
  assert.deepEqual(tries.due([t(1), t(2)], 0), [t(1), t(2)]);
  tries.tried([t(1), t(2)], [t(1)], 0);
  assert.deepEqual(tries.due([t(2)], 10_000), [], "not at the next look");
  assert.deepEqual(tries.due([t(2)], 300_000), [t(2)], "again after the retry time");
  tries.tried([t(2)], [t(2)], 300_000);
  assert.deepEqual(tries.due([t(2)], 700_000), [], "put back: not again while out");
});

test("a table put back is tried again only after it was back in the publication and left it again; one marked done elsewhere is not tried", () => {
  const tries = new RepublishTries(300_000);
  tries.tried([t(1)], [t(1)], 0);
  assert.deepEqual(tries.due([t(1)], 10_000), [], "still listed out (the look raced the ALTER): not again");
  assert.deepEqual(tries.due([], 20_000), [], "back in it");
  assert.deepEqual(tries.due([t(1)], 30_000), [t(1)], "taken out again");
  tries.markDone(3);
  assert.deepEqual(tries.due([t(3)], 40_000), []);
  tries.clear();
  assert.deepEqual(tries.due([t(3)], 50_000), [t(3)]);
});
