import assert from "node:assert/strict";
import { test } from "node:test";
import { decimalBinaryLength, decodeDecimal } from "./decimal.ts";

const hex = (text: string) => Buffer.from(text.replace(/\s+/g, ""), "hex");

test("decodes MySQL's documented DECIMAL(14,4) examples", () => {
  // MySQL manual (precision math): 1234567890.1234 is stored as 81 0D FB 38 D2 04 D2.
  assert.equal(decimalBinaryLength(14, 4), 7);
  assert.equal(decodeDecimal(hex("81 0D FB 38 D2 04 D2"), 0, 14, 4), "1234567890.1234");
  assert.equal(decodeDecimal(hex("7E F2 04 C7 2D FB 2D"), 0, 14, 4), "-1234567890.1234");
});

test("keeps the scale's digits, leading zeros of fraction groups, and has no negative zero", () => {
  assert.equal(decodeDecimal(hex("80 00 00 00 00 00 01"), 0, 14, 4), "0.0001");
  assert.equal(decodeDecimal(hex("80 00 00"), 0, 5, 2), "0.00");
  assert.equal(decodeDecimal(hex("7F FF FF"), 0, 5, 2), "0.00");
  assert.equal(decodeDecimal(hex("80 01"), 0, 3, 0), "1");
  assert.equal(decodeDecimal(hex("7C 18 9C"), 0, 5, 2), "-999.99");
});

test("sizes every precision: 9 digits per 4 bytes and the leftovers", () => {
  assert.equal(decimalBinaryLength(65, 30), 30);
  assert.equal(decimalBinaryLength(10, 0), 5);
  assert.equal(decimalBinaryLength(1, 1), 1);
  assert.equal(decimalBinaryLength(18, 9), 8);
});
