import assert from "node:assert/strict";
import { test } from "node:test";
import { SluiceError } from "../connectors/errors.ts";
import { durationFromEnv } from "./env-duration.ts";

const range = { min: 1_000, max: 3_600_000 };

test("a duration from the environment: the default when unset or empty, the value when a whole number in range", () => {
  assert.equal(durationFromEnv("X_MS", 30_000, range, {}), 30_000);
  assert.equal(durationFromEnv("X_MS", 30_000, range, { X_MS: "" }), 30_000);
  assert.equal(durationFromEnv("X_MS", 30_000, range, { X_MS: " 6000 " }), 6_000);
});

test("a value that is not a whole number of milliseconds in range is refused, naming the variable", () => {
  for (const value of ["abc", "0", "6s", "1.5", "-6000", "99999999999"]) {
    assert.throws(() => durationFromEnv("X_MS", 30_000, range, { X_MS: value }), (error: unknown) => error instanceof SluiceError && error.code === "CONFIG_INVALID" && error.message.includes("X_MS"), value);
  }
});
