import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { bigBytesToUnscaled, bigintToBytes, bytesToDecimalText, bytesToUnscaled, decimalBytes, formatUnscaled, parseDecimal, ReusedDecimalBytes, toUnscaled, unscaledToBytes } from "./decimal.ts";

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

  it("reads bytes of any length in double arithmetic as through their hex text", () => {
    const cases: Buffer[] = [];
    for (let length = 1; length <= 8; length++) {
      // Every byte length's edges (sign bit, all ones, zero, one) and non-minimal forms (leading 00 / ff).
      for (const first of [0x00, 0x01, 0x7f, 0x80, 0x81, 0xfe, 0xff]) {
        for (const rest of [0x00, 0x01, 0x7f, 0x80, 0xff]) cases.push(Buffer.from([first, ...Array.from({ length: length - 1 }, () => rest)]));
      }
      for (let i = 0; i < 300; i++) cases.push(Buffer.from(Array.from({ length }, () => Math.floor(Math.random() * 256))));
    }
    for (const bytes of cases) {
      const expected = bigBytesToUnscaled(bytes);
      assert.equal(bytesToUnscaled(bytes), expected, bytes.toString("hex"));
      for (const scale of [0, 1, 2, 3, 6, 12, 20]) assert.equal(bytesToDecimalText(bytes, scale), formatUnscaled(expected, scale), `${bytes.toString("hex")} at scale ${scale}`);
    }
    // A view into a larger buffer (as the Avro reader hands them) reads its own bytes only.
    const backing = Buffer.from("ff0080ff00", "hex");
    assert.equal(bytesToDecimalText(backing.subarray(1, 3), 2), "1.28");
    assert.equal(bytesToDecimalText(new Uint8Array(0), 2), "0.00");
  });

  it("round-trips a 1000-digit number", () => {
    const digits = `-${"9876543210".repeat(100)}`;
    const { unscaled, scale } = parseDecimal(`${digits.slice(0, 500)}.${digits.slice(500)}`);
    assert.equal(formatUnscaled(bytesToUnscaled(unscaledToBytes(unscaled)), scale), `${digits.slice(0, 500)}.${digits.slice(500)}`);
  });

  it("writes the same bytes in double arithmetic as in bigint arithmetic, and reads plain text as the general parser does", () => {
    const values: bigint[] = [];
    for (let bits = 0; bits <= 54; bits++) {
      const power = 2n ** BigInt(bits);
      values.push(power, power - 1n, power + 1n, -power, -power - 1n, -power + 1n);
    }
    for (const value of values) assert.deepEqual(unscaledToBytes(value), bigintToBytes(value), String(value));
    const outcome = (read: () => Buffer) => {
      try {
        return read();
      } catch (error) {
        return (error as Error).message;
      }
    };
    const texts = ["0", "-0", "-0.00", "123.45", "-123.45", "1.5", "7", "0.01", "999999999999999", "9999999999999.99", "99999999999999.99", "-9999999999999999", "000123.40", "12.", ".5", "-", "", "1.234", "1.230", "+1.5", " 1.5", "1e3", "NaN", "1.2.3", "-.5", "12-3"];
    for (const text of texts) {
      for (const scale of [0, 2, 5]) assert.deepEqual(outcome(() => decimalBytes(text, scale)), outcome(() => bigintToBytes(toUnscaled(text, scale))), `${text} at scale ${scale}`);
    }
  });

  it("ReusedDecimalBytes gives decimalBytes's bytes (or error), each value in turn in the same buffer", () => {
    const reused = new ReusedDecimalBytes();
    const outcome = (read: () => Buffer) => {
      try {
        return Buffer.from(read());
      } catch (error) {
        return (error as Error).message;
      }
    };
    const texts = ["0", "-0", "-1", "1", "127", "128", "-128", "-129", "32767", "32768", "-32768", "-32769", "123.45", "-123.45", "0.01", "999999999999999", "-999999999999999", "9999999999999.99", "99999999999999.99", "-9999999999999999", "1.234", "12.", "", "NaN", "1e3"];
    for (let bits = 7; bits <= 50; bits += 1) texts.push(String(2 ** bits), String(2 ** bits - 1), String(-(2 ** bits)), String(-(2 ** bits) - 1));
    for (const text of texts) {
      for (const scale of [0, 2]) assert.deepEqual(outcome(() => reused.of(text, scale)), outcome(() => decimalBytes(text, scale)), `${text} at scale ${scale}`);
    }
  });
});
