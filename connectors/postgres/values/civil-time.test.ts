import { test } from "node:test";
import assert from "node:assert/strict";
import { daysFromCivil } from "../../common/civil-calendar.ts";
import {
  DATE_INFINITY,
  DATE_MINUS_INFINITY,
  decodeDate,
  decodeTime,
  decodeTimestamp,
  decodeTimestampTz,
  decodeTimeTz,
  parseTimestamp,
  TIMESTAMP_INFINITY,
  TIMESTAMP_MINUS_INFINITY,
} from "./civil-time.ts";

const DAY_MS = 86_400_000;
const utcDays = (y: number, m: number, d: number) => {
  const date = new Date(0);
  date.setUTCFullYear(y, m - 1, d);
  return Math.round(date.getTime() / DAY_MS);
};

test("daysFromCivil agrees with Date.UTC across eras", () => {
  for (const [y, m, d] of [[1970, 1, 1], [1969, 12, 31], [2000, 2, 29], [1900, 3, 1], [1, 1, 1], [0, 2, 29], [-43, 3, 15], [9999, 12, 31], [275760, 9, 13]] as const) {
    assert.equal(daysFromCivil(y, m, d), utcDays(y, m, d), `${y}-${m}-${d}`);
  }
});

test("date: ISO text, BC years, infinities", () => {
  assert.equal(decodeDate("1970-01-01"), 0);
  assert.equal(decodeDate("2024-02-29"), utcDays(2024, 2, 29));
  assert.equal(decodeDate("0044-03-15 BC"), utcDays(-43, 3, 15));
  assert.equal(decodeDate("4713-01-01 BC"), daysFromCivil(-4712, 1, 1));
  assert.equal(decodeDate("5874897-12-31"), daysFromCivil(5874897, 12, 31));
  assert.equal(decodeDate("infinity"), DATE_INFINITY);
  assert.equal(decodeDate("-infinity"), DATE_MINUS_INFINITY);
  assert.throws(() => decodeDate("2024/01/01"), /cannot decode date/);
});

test("time: microseconds since midnight", () => {
  assert.equal(decodeTime("00:00:00"), 0);
  assert.equal(decodeTime("13:45:07.5"), ((13 * 60 + 45) * 60 + 7) * 1e6 + 500_000);
  assert.equal(decodeTime("23:59:59.999999"), 86_399_999_999);
  assert.equal(decodeTime("24:00:00"), 86_400_000_000);
  assert.throws(() => decodeTime("13:45"), /cannot decode time/);
});

test("timetz: ISO-8601 text with a ±hh:mm offset", () => {
  assert.equal(decodeTimeTz("10:23:54+02"), "10:23:54+02:00");
  assert.equal(decodeTimeTz("10:23:54.123456-03:30"), "10:23:54.123456-03:30");
  assert.equal(decodeTimeTz("00:00:00+05:45:12"), "00:00:00+05:45:12");
  assert.throws(() => decodeTimeTz("10:23:54"), /cannot decode timetz/);
});

test("timestamp: bigint microseconds, exact beyond 2^53", () => {
  assert.equal(decodeTimestamp("1970-01-01 00:00:00"), 0n);
  assert.equal(decodeTimestamp("1969-12-31 23:59:59.999999"), -1n);
  const end = BigInt(Date.UTC(9999, 11, 31, 23, 59, 59, 999)) * 1000n + 999n;
  assert.equal(decodeTimestamp("9999-12-31 23:59:59.999999"), end);
  assert.ok(end > BigInt(Number.MAX_SAFE_INTEGER));
  assert.equal(decodeTimestamp("0044-03-15 10:00:00 BC"), BigInt(utcDays(-43, 3, 15)) * 86_400_000_000n + 36_000_000_000n);
  assert.equal(decodeTimestamp("294276-12-31 23:59:59.999999"), BigInt(daysFromCivil(294276, 12, 31)) * 86_400_000_000n + 86_399_999_999n);
  assert.equal(decodeTimestamp("infinity"), TIMESTAMP_INFINITY);
  assert.equal(decodeTimestamp("-infinity"), TIMESTAMP_MINUS_INFINITY);
  assert.throws(() => decodeTimestamp("2024-01-01 10:00:00+00"), /cannot decode timestamp/);
});

test("timestamp and timestamptz: the finite value at 2^63 - 1 µs after 1970 stays text, never infinity's count", () => {
  assert.equal(decodeTimestamp("294247-01-10 04:00:54.775806"), TIMESTAMP_INFINITY - 1n);
  assert.equal(decodeTimestamp("294247-01-10 04:00:54.775807"), "294247-01-10 04:00:54.775807");
  assert.equal(decodeTimestampTz("294247-01-10 04:00:54.775807+00"), "294247-01-10 04:00:54.775807+00");
  assert.equal(decodeTimestampTz("294247-01-10 06:00:54.775807+02"), "294247-01-10 06:00:54.775807+02");
  assert.equal(decodeTimestamp("294247-01-10 04:00:54.775808"), TIMESTAMP_INFINITY + 1n, "beyond: refused by the range check");
});

test("timestamp and timestamptz: a text read again (the last one is kept) gives its own value, never the one before", () => {
  const second = BigInt(Date.UTC(2024, 0, 2, 3, 4, 5)) * 1000n;
  const cases: [string, bigint][] = [
    ["2024-01-02 03:04:05.123456", second + 123_456n],
    ["2024-01-02 03:04:05.123456", second + 123_456n],
    ["2024-01-02 03:04:05.123457", second + 123_457n],
    ["2024-01-02 03:04:05.123456", second + 123_456n],
    ["1970-01-01 00:00:00", 0n],
    ["1970-01-01 00:00:00", 0n],
  ];
  for (const [text, micros] of cases) assert.equal(decodeTimestamp(text), micros, text);
  for (const [text, micros] of cases) assert.equal(decodeTimestampTz(`${text}+02`), micros - 7_200_000_000n, text);
  assert.equal(decodeTimestampTz("2024-01-02 03:04:05.123456+00"), second + 123_456n);
  assert.throws(() => decodeTimestamp("2024-01-02 03:04:05.123456+00"), /cannot decode timestamp/, "a text the timestamptz decoder read last is still refused here");
});

test("timestamptz: UTC microseconds whatever the offset", () => {
  const t = BigInt(Date.UTC(2024, 0, 2, 3, 4, 5)) * 1000n + 123_456n;
  assert.equal(decodeTimestampTz("2024-01-02 03:04:05.123456+00"), t);
  assert.equal(decodeTimestampTz("2024-01-02 05:04:05.123456+02"), t);
  assert.equal(decodeTimestampTz("2024-01-01 23:34:05.123456-03:30"), t);
  assert.equal(decodeTimestampTz("0044-03-15 10:00:00+00 BC"), BigInt(utcDays(-43, 3, 15)) * 86_400_000_000n + 36_000_000_000n);
  assert.equal(decodeTimestampTz("infinity"), TIMESTAMP_INFINITY);
  assert.throws(() => decodeTimestampTz("2024-01-02 03:04:05"), /cannot decode timestamptz/);
});

test("timestamps: the fast reading of the common forms gives the general reading's value, and other forms still the general one's", () => {
  const pad = (n: number, width = 2) => String(n).padStart(width, "0");
  const texts: string[] = [];
  let seed = 7;
  const random = (below: number) => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) % below;
  for (let i = 0; i < 2000; i++) {
    const fraction = ["", `.${pad(random(10), 1)}`, `.${pad(random(1000), 3)}`, `.${pad(random(1_000_000), 6)}`][random(4)];
    const clock = `${pad(1600 + random(700), 4)}-${pad(1 + random(12))}-${pad(1 + random(28))} ${pad(random(24))}:${pad(random(60))}:${pad(random(60))}${fraction}`;
    texts.push(clock, `${clock}+${pad(random(15))}`, `${clock}-${pad(random(15))}:${pad(random(60))}`, `${clock}+${pad(random(15))}:${pad(random(60))}:${pad(random(60))}`);
  }
  // Edges of the fast reading (its day range, 24:00:00) and forms only the general reading takes or refuses.
  texts.push("1696-03-01 00:00:00+00", "2243-10-01 23:59:59.999999-14", "1000-01-01 00:00:00", "9999-12-31 23:59:59.999999+00", "2024-01-01 24:00:00+00");
  texts.push("0044-03-15 10:00:00.5 BC", "10000-01-01 00:00:00+00", "2024-01-01 00:00:00+0530", "2024-01-01 00:00:00.1234567+00", "2024-01-01 00:00:00.+00", "2024-01-01 00:00:00+5", "2024-1-01 00:00:00", "2024-01-01T00:00:00+00", "2024-01-01 00:00:00 ", "infinity", "-infinity", "");
  const outcome = (read: () => bigint | string) => {
    try {
      return read();
    } catch (error) {
      return (error as Error).message;
    }
  };
  for (const text of texts) {
    assert.equal(outcome(() => decodeTimestampTz(text)), outcome(() => parseTimestamp(text, true)), `timestamptz ${text}`);
    assert.equal(outcome(() => decodeTimestamp(text)), outcome(() => parseTimestamp(text, false)), `timestamp ${text}`);
  }
});
