import { test } from "node:test";
import assert from "node:assert/strict";
import { maxOf, pushAll } from "./arrays.ts";

test("pushAll appends in order, what push(...items) does", () => {
  const target = [1, 2];
  pushAll(target, [3, 4, 5]);
  pushAll(target, []);
  assert.deepEqual(target, [1, 2, 3, 4, 5]);
  const big = Array.from({ length: 200_000 }, (_, i) => i);
  const into: number[] = [];
  pushAll(into, big);
  assert.deepEqual(into, big, "more items than a spread's argument limit");
});

test("maxOf gives Math.max of the values: -Infinity for none, NaN when one is NaN", () => {
  const values = [3, -1, 7, 7, 2];
  assert.equal(maxOf(values, (v) => v), Math.max(...values));
  assert.equal(maxOf([] as number[], (v) => v), Number.NEGATIVE_INFINITY);
  assert.ok(Number.isNaN(maxOf([1, Number.NaN, 5], (v) => v)));
  assert.ok(Number.isNaN(maxOf([Number.NaN, 5], (v) => v)));
  assert.equal(maxOf([{ at: 5 }, { at: 9 }, { at: 1 }], (e) => e.at), 9);
});
