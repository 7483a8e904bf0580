import assert from "node:assert/strict";
import { test } from "node:test";
import { SluiceError } from "../errors.ts";
import { kafkaSessionTimeoutMs } from "./kafka-consumer.ts";

test("SLUICE_KAFKA_SESSION_MS: unset or empty is the default 30 s, never a session of 0 ms the broker refuses", () => {
  assert.equal(kafkaSessionTimeoutMs({}), 30_000);
  assert.equal(kafkaSessionTimeoutMs({ SLUICE_KAFKA_SESSION_MS: "" }), 30_000);
  assert.equal(kafkaSessionTimeoutMs({ SLUICE_KAFKA_SESSION_MS: "6000" }), 6_000);
});

test("SLUICE_KAFKA_SESSION_MS that is not a number of milliseconds is a configuration error naming it", () => {
  assert.throws(() => kafkaSessionTimeoutMs({ SLUICE_KAFKA_SESSION_MS: "6s" }), (error: unknown) => error instanceof SluiceError && error.code === "CONFIG_INVALID" && error.message.includes("SLUICE_KAFKA_SESSION_MS"));
});
