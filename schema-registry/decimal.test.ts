import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { bytesToUnscaled, formatUnscaled, parseDecimal, toUnscaled, unscaledToBytes } from "./decimal.ts";

describe("decimal", () => {
  it("parses digit strings exactly", () => {
    assert.deepEqual(parseDecimal("-12.3400"), { unscaled: -123400n, scale: 4 });
    assert.deepEqual(parseDecimal("12"), { unscaled: 12n, scale: 0 });
    assert.deepEqual(parseDecimal(".5"), { unscaled: 5n, scale: 1 });
    assert.deepEqual(parseDecimal("1.5e3"), { unscaled: 1500n, scale: 0 });
    assert.deepEqual(parseDecimal("1.5e-3"), { unscaled: 15n, scale: 4 });
    assert.throws(() => parseDecimal("NaN"), RangeError);
    assert.throws(() => parseDecimal("1,5"), RangeError);
    assert.throws(() => parseDecimal(""), RangeError);
  });

  it("rescales without losing digits, and refuses to drop non-zero ones", () => {
    assert.equal(toUnscaled("1.5", 3), 1500n);
    assert.equal(toUnscaled("1.500", 1), 15n);
    assert.throws(() => toUnscaled("1.55", 1), /more than 1 digits/);
  });

  it("formats with exactly the scale's digits", () => {
    assert.equal(formatUnscaled(-123400n, 4), "-12.3400");
    assert.equal(formatUnscaled(5n, 3), "0.005");
    assert.equal(formatUnscaled(-5n, 3), "-0.005");
    assert.equal(formatUnscaled(42n, 0), "42");
  });

  it("encodes two's-complement big-endian bytes of minimal length", () => {
    const cases: [bigint, string][] = [
      [0n, "00"],
      [127n, "7f"],
      [128n, "0080"],
      [-128n, "80"],
      [-129n, "ff7f"],
      [-1n, "ff"],
      [255n, "00ff"],
      [2n ** 64n, "010000000000000000"],
    ];
    for (const [value, hex] of cases) {
      assert.equal(unscaledToBytes(value).toString("hex"), hex, `bytes of ${value}`);
      assert.equal(bytesToUnscaled(Buffer.from(hex, "hex")), value, `value of ${hex}`);
    }
  });

  it("round-trips a 1000-digit number", () => {
    const digits = `-${"9876543210".repeat(100)}`;
    const { unscaled, scale } = parseDecimal(`${digits.slice(0, 500)}.${digits.slice(500)}`);
    assert.equal(formatUnscaled(bytesToUnscaled(unscaledToBytes(unscaled)), scale), `${digits.slice(0, 500)}.${digits.slice(500)}`);
  });
});
