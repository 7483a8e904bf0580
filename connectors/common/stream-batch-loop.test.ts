/**
 * The shared read/batch/heartbeat loop with a toy policy: each buffered item is a run of events
 * (possibly empty, a position-only step) and moves the stream's position on by one.
 */
import { afterEach, beforeEach, describe, mock, test } from "node:test";
import assert from "node:assert/strict";
import { ByteBoundedBuffer } from "./byte-bounded-buffer.ts";
import { StreamBatchLoop } from "./stream-batch-loop.ts";
import type { StreamBatchPolicy } from "./stream-batch-loop.ts";

interface ToyBatch {
  readonly events: readonly number[];
  readonly checkpoint: number;
}

function setUp(options: { maxBatchEvents?: number; progressIntervalMs?: number } = {}) {
  const buffer = new ByteBoundedBuffer<number[]>(1 << 20);
  const state = { carried: [] as number[], out: [] as number[], through: 0, lastCheckpoint: 0, urgent: false, holdUntilNext: false };
  const handOn = (events: number[], checkpoint: number): { batch: ToyBatch } => {
    state.lastCheckpoint = checkpoint;
    state.urgent = false;
    return { batch: { events, checkpoint } };
  };
  const policy: StreamBatchPolicy<number[], ToyBatch> = {
    begin: () => {
      state.out = state.carried;
      state.carried = [];
    },
    size: () => state.out.length,
    takesBeyondFull: () => false,
    apply: (run) => {
      state.out.push(...run);
      state.through++;
    },
    stopsRead: () => false,
    decide: () => {
      if (state.holdUntilNext) {
        state.holdUntilNext = false;
        return "wait";
      }
      if (state.out.length === 0) return "idle";
      const max = options.maxBatchEvents ?? 100;
      if (state.out.length > max) state.carried = state.out.splice(max);
      return handOn(state.out, state.through);
    },
    hasNews: () => state.through > state.lastCheckpoint,
    urgent: () => state.urgent,
    emptyBatch: () => handOn(state.out, state.through).batch,
  };
  const loop = new StreamBatchLoop({ buffer, maxBatchEvents: options.maxBatchEvents ?? 100, progressIntervalMs: options.progressIntervalMs ?? 0 }, policy);
  const push = (...runs: number[][]) => {
    for (const run of runs) buffer.push(run, 1);
  };
  return { loop, push, state, buffer, policy };
}

/** Whether `promise` settled after the microtasks and timers due so far have run. */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  promise.then(
    () => (done = true),
    () => (done = true),
  );
  for (let i = 0; i < 50; i++) await Promise.resolve();
  return done;
}

describe("stream batch loop", () => {
  test("fills a batch up to maxBatchEvents and carries the rest into the next one", async () => {
    const { loop, push } = setUp({ maxBatchEvents: 3 });
    push([1, 2], [3, 4], [5]);
    const signal = new AbortController().signal;
    const first = await loop.next(signal);
    assert.deepEqual(first.events, [1, 2, 3], "the second run fills the batch; its rest is carried");
    assert.deepEqual((await loop.next(signal)).events, [4, 5], "the carried event leads the next batch");
  });

  test("without progressIntervalMs an empty batch is never handed on, unless the policy wants one at once", async () => {
    const { loop, push, state } = setUp();
    push([], []);
    const controller = new AbortController();
    const pending = loop.next(controller.signal);
    assert.equal(await settled(pending), false, "position-only steps alone do not end a batch");
    state.urgent = true;
    push([]);
    const batch = await pending;
    assert.deepEqual(batch, { events: [], checkpoint: 3 });
  });

  test("prompt (a run of batches waits for the next): when the buffered items yield no event an empty batch comes at once, without news too", async () => {
    const { loop, push } = setUp({ progressIntervalMs: 60_000 });
    const signal = new AbortController().signal;
    push([1], []);
    assert.deepEqual(await loop.next(signal), { events: [1], checkpoint: 2 });
    assert.ok(loop.lastBatchBytes > 0, "the bytes of the items the batch took");
    push([]);
    assert.deepEqual(await loop.next(signal, true), { events: [], checkpoint: 3 }, "with news, not at the progress cadence");
    assert.equal(loop.lastBatchBytes, 0);
    assert.deepEqual(await loop.next(signal, true), { events: [], checkpoint: 3 }, "without news: the last checkpoint again");
    const waiting = loop.next(signal);
    assert.equal(await settled(waiting), false, "not prompt: waits as before");
    push([5]);
    assert.deepEqual((await waiting).events, [5]);
  });

  test("a decision to wait waits for the next item, then reads on", async () => {
    const { loop, push, state } = setUp();
    state.holdUntilNext = true;
    push([1]);
    const pending = loop.next(new AbortController().signal);
    assert.equal(await settled(pending), false);
    push([2]);
    assert.deepEqual((await pending).events, [1, 2]);
  });

  test("a stop is seen between the steps of an item left to decode that the batch takes beyond full (a compressed transaction holding a snapshot chunk)", async () => {
    const { loop, push, state, policy } = setUp({ maxBatchEvents: 2 });
    const controller = new AbortController();
    let steps = 0;
    // 1000 steps, each a change; stopped after the third.
    Object.assign(policy, {
      pending: () => steps < 1000,
      takesPendingBeyondFull: () => true,
      applyPending: async () => {
        steps++;
        state.out.push(steps);
        if (steps === 3) controller.abort(new Error("stopped"));
        return 1;
      },
    });
    push([0]);
    await assert.rejects(loop.next(controller.signal), /stopped/);
    assert.equal(steps, 3, "no step after the stop");
  });

  test("aborts while waiting, and at once when already aborted", async () => {
    const { loop } = setUp({ progressIntervalMs: 1_000 });
    const controller = new AbortController();
    const pending = loop.next(controller.signal);
    assert.equal(await settled(pending), false);
    controller.abort(new Error("stopping"));
    await assert.rejects(pending, /stopping/);
    await assert.rejects(loop.next(controller.signal), /stopping/);
  });

  describe("empty-batch cadence", () => {
    beforeEach(() => mock.timers.enable({ apis: ["Date", "setTimeout"], now: 1_000_000 }));
    afterEach(() => mock.timers.reset());

    test("an empty batch moves the checkpoint on at most every progressIntervalMs, waiting for the time left", async () => {
      const { loop, push } = setUp({ progressIntervalMs: 500 });
      const signal = new AbortController().signal;
      push([]);
      const first = loop.next(signal);
      assert.equal(await settled(first), false, "not before the interval has passed since the loop began");
      mock.timers.tick(300);
      push([]);
      assert.equal(await settled(first), false, "a further step does not hurry it");
      mock.timers.tick(199);
      assert.equal(await settled(first), false);
      mock.timers.tick(1);
      assert.deepEqual(await first, { events: [], checkpoint: 2 });

      const second = loop.next(signal);
      assert.equal(await settled(second), false, "no news: nothing to hand on, however long");
      mock.timers.tick(2_000);
      assert.equal(await settled(second), false);
      push([]);
      assert.deepEqual(await second, { events: [], checkpoint: 3 }, "news after a quiet interval goes at once");

      push([]);
      const third = loop.next(signal);
      assert.equal(await settled(third), false, "the interval counts from the last batch handed on");
      push([7]);
      assert.deepEqual(await third, { events: [7], checkpoint: 5 }, "an event ends the wait at once");
    });
  });
});
