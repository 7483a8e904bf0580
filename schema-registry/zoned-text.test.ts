/** ZonedTimestamp text: the arithmetic of the common range gives the text of the general (bigint) formatting. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { civilTimestamp } from "./column-types.ts";
import { zonedText } from "./temporal-modes.ts";

/** The general formatting: ISO text of the instant, fraction without trailing zeros. */
const general = (n: bigint) => civilTimestamp(n).replace(/(\.\d*?)0+Z$/, "$1Z").replace(/\.Z$/, "Z");

test("zonedText of microseconds in and around its fast range equals the general formatting", () => {
  const values: bigint[] = [0n, 1n, -1n, 999_999n, 1_000_000n, -1_000_000n, 86_400_000_000n, -86_400_000_000n, 86_399_999_999n, -86_400_000_001n];
  for (const limit of [8_000_000_000_000_000n, 9_007_199_254_740_991n]) values.push(limit, limit - 1n, limit + 1n, -limit, -limit + 1n, -limit - 1n);
  let seed = 11;
  const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31);
  for (let i = 0; i < 5000; i++) {
    const micros = BigInt(random()) * BigInt(random() % 4_000_000) * (i % 2 === 0 ? 1n : -1n);
    // Fractions with trailing zeros (whole seconds, milliseconds) as well as full microseconds.
    values.push(micros, micros - (micros % 1_000_000n), micros - (micros % 1000n), micros - (micros % 100_000n));
  }
  for (const n of values) assert.equal(zonedText(n), general(n), String(n));
  assert.equal(zonedText(2n ** 63n - 1n), "infinity");
  assert.equal(zonedText(-(2n ** 63n)), "-infinity");
});

test("zonedText of an instant written again (the last one is kept) is its own text", () => {
  for (const n of [5n, 5n, 6n, 5n, 0n, 0n, 1_700_000_000_123_456n, 1_700_000_000_123_456n, 2n ** 63n - 1n, 0n]) {
    assert.equal(zonedText(n), n === 2n ** 63n - 1n ? "infinity" : general(n), String(n));
  }
});
