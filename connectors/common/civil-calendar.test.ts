import assert from "node:assert/strict";
import { test } from "node:test";
import { civilDate, daysFromCivil } from "./civil-calendar.ts";

test("day counts and proleptic Gregorian dates convert both ways, across eras, leap days and BC years", () => {
  for (const [year, month, day, text] of [
    [1970, 1, 1, "1970-01-01"],
    [2000, 2, 29, "2000-02-29"],
    [1900, 3, 1, "1900-03-01"],
    [1, 1, 1, "0001-01-01"],
    [0, 12, 31, "0000-12-31"],
    [-4712, 1, 1, "-4712-01-01"],
    [294_276, 12, 31, "294276-12-31"],
  ] as const) {
    const days = daysFromCivil(year, month, day);
    assert.equal(civilDate(days), text, `${year}-${month}-${day}`);
  }
  assert.equal(daysFromCivil(1970, 1, 1), 0);
  assert.equal(daysFromCivil(2000, 3, 1) - daysFromCivil(2000, 2, 28), 2);
  for (let days = -800_000; days <= 3_000_000; days += 997) {
    const [, sign, y, m, d] = /^(-?)(\d+)-(\d\d)-(\d\d)$/.exec(civilDate(days))!;
    assert.equal(daysFromCivil(Number(`${sign}${y}`), Number(m), Number(d)), days);
  }
});
