/** ZonedTimestamp text: the arithmetic of the common range gives the text of the general (bigint) formatting. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { civilTimestamp } from "./column-types.ts";
import { daysFromCivil } from "../connectors/common/civil-calendar.ts";
import { parseZoned, zonedText } from "./temporal-modes.ts";

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

test("parseZoned reads zonedText's forms by character as the general reading does, and other forms as before", () => {
  const general = (text: string) => {
    const match = /^([+-]?\d{4,})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/.exec(text)!;
    const [, year, month, day, hour, minute, second, fraction = "", zone] = match as unknown as string[];
    const days = BigInt(daysFromCivil(Number(year), Number(month), Number(day)));
    const offset = zone === "Z" ? 0n : BigInt((zone!.startsWith("-") ? -1 : 1) * (Number(zone!.slice(1, 3)) * 3600 + Number(zone!.slice(4, 6)) * 60));
    return (days * 86_400n + BigInt(Number(hour) * 3600 + Number(minute) * 60 + Number(second)) - offset) * 1_000_000n + BigInt((fraction + "000000").slice(0, 6));
  };
  let seed = 7;
  const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31);
  const values: bigint[] = [0n, 1n, -1n, 10n, 100_000n, 999_999n, -62_135_596_800_000_000n, 253_402_300_799_999_999n];
  for (let i = 0; i < 3000; i++) {
    const micros = BigInt(random()) * BigInt(random() % 3_000_000) * (i % 2 === 0 ? 1n : -1n);
    values.push(micros, micros - (micros % 1_000_000n), micros - (micros % 1000n));
  }
  for (const n of values) {
    const text = zonedText(n);
    assert.equal(parseZoned(text), n, text);
  }
  // Forms zonedText does not write: offsets, nanoseconds, five-digit and signed years; and text that is no timestamp.
  for (const text of ["2024-02-29T23:59:59.123456789Z", "2024-02-29T23:59:59+02:00", "2024-02-29T23:59:59.5-05:30", "12024-01-01T00:00:00Z", "-0001-12-31T23:59:59.999999Z", "2024-01-01T00:00:00.Z"]) {
    if (text.endsWith(".Z")) assert.throws(() => parseZoned(text), /not an ISO-8601 timestamp/);
    else assert.equal(parseZoned(text), general(text), text);
  }
  for (const text of ["2024-01-01T00:00:0xZ", "2024-01-01 00:00:00Z", "2024-01-01T00:00:00.1234567Z0"]) assert.throws(() => parseZoned(text), /not an ISO-8601 timestamp/);
  assert.equal(parseZoned("infinity"), 2n ** 63n - 1n);
  assert.equal(parseZoned("-infinity"), -(2n ** 63n));
});
