import { test } from "node:test";
import assert from "node:assert/strict";
import { ByteBoundedBuffer, ITEM_OVERHEAD_BYTES } from "./byte-bounded-buffer.ts";

test("tracks bytes, peak and fullness; wakes waiters", async () => {
  const buffer = new ByteBoundedBuffer<string>(2 * ITEM_OVERHEAD_BYTES + 10);
  const signal = new AbortController().signal;
  const waiting = buffer.waitForItem(signal);
  buffer.push("a", 6);
  assert.equal(await waiting, true);
  assert.equal(buffer.full, false);
  buffer.push("b", 6);
  assert.equal(buffer.full, true);
  let spaced = false;
  const space = buffer.waitForSpace(signal).then(() => (spaced = true));
  await Promise.resolve();
  assert.equal(spaced, false);
  let lowWater = 0;
  buffer.onLowWater(() => lowWater++);
  assert.equal(buffer.shift(), "a");
  await space;
  assert.equal(lowWater, 0);
  assert.equal(buffer.shift(), "b");
  assert.equal(lowWater, 1);
  assert.equal(buffer.peakBytes, 12 + 2 * ITEM_OVERHEAD_BYTES);
  assert.equal(buffer.bytes, 0);
});

test("each item counts its overhead too: tiny items cannot queue by the million", () => {
  const buffer = new ByteBoundedBuffer<number>(1 << 20);
  let count = 0;
  while (!buffer.full) buffer.push(count++, 1);
  assert.equal(count, Math.ceil((1 << 20) / (1 + ITEM_OVERHEAD_BYTES)));
});

test("times out, aborts and fails", async () => {
  const buffer = new ByteBoundedBuffer<number>(10);
  const controller = new AbortController();
  assert.equal(await buffer.waitForItem(controller.signal, 5), false);
  const aborted = buffer.waitForItem(controller.signal);
  controller.abort(new Error("stop"));
  await assert.rejects(aborted, /stop/);
  const failing = buffer.waitForItem(new AbortController().signal);
  buffer.fail(new Error("gone"));
  await assert.rejects(failing, /gone/);
});

test("end() wakes item waiters, which resolve false once drained", async () => {
  const buffer = new ByteBoundedBuffer<number>(10);
  const signal = new AbortController().signal;
  const waiting = buffer.waitForItem(signal);
  buffer.end();
  assert.equal(await waiting, false);
  assert.equal(await buffer.waitForItem(signal), false);
});
