import assert from "node:assert/strict";
import { test } from "node:test";
import { CoalescedRead } from "./coalesced-read.ts";

/** A read the test answers by hand: each call to the reader is one pending promise. */
function handRead(): { reader: () => Promise<number | null>; pending: ((value: number | null) => void)[] } {
  const pending: ((value: number | null) => void)[] = [];
  return { reader: () => new Promise<number | null>((resolve) => pending.push(resolve)), pending };
}

const settled = () => new Promise((resolve) => setImmediate(resolve));

test("readers asking while a read runs share one read queued behind it: many requests make at most two reads", async () => {
  const { reader, pending } = handRead();
  const read = new CoalescedRead(reader);
  const first = read.fresh();
  const later = Array.from({ length: 50 }, () => read.fresh());
  assert.equal(read.reads, 1, "the later readers start no read of their own while one runs");
  pending[0]!(7);
  assert.equal(await first, 7);
  await settled();
  assert.equal(read.reads, 2, "one read, started after the first ended, for all 50");
  pending[1]!(9);
  assert.deepEqual(new Set(await Promise.all(later)), new Set([9]), "a reader that came during a read gets a value read after it asked");
});

test("last() answers the last value read without waiting for the read in progress, and starts one when none runs", async () => {
  let now = 1_000;
  const { reader, pending } = handRead();
  const read = new CoalescedRead(reader, () => now);
  assert.equal(read.last(), null, "nothing read yet");
  assert.equal(read.reads, 1, "the first last() starts a read");
  pending[0]!(3);
  await settled();
  now = 5_000;
  const held = read.fresh();
  // The read just started never answers: last() still answers, with the value and when its read started.
  assert.deepEqual(read.last(), { value: 3, startedAt: 1_000 });
  assert.equal(read.reads, 2, "no read started beside the one in progress");
  pending[1]!(null);
  assert.equal(await held, null, "a read that cannot say answers null");
  assert.deepEqual(read.last(), { value: 3, startedAt: 1_000 }, "and keeps the last value it had");
});

test("a failed read answers null and a later one reads again", async () => {
  let calls = 0;
  const read = new CoalescedRead(async () => {
    calls += 1;
    if (calls === 1) throw new Error("broker unreachable");
    return 4;
  });
  assert.equal(await read.fresh(), null);
  assert.equal(await read.fresh(), 4);
});
