import assert from "node:assert/strict";
import { test } from "node:test";
import { ConnectionError, SluiceError } from "../connectors/errors.ts";
import { backoffDelay, retry } from "./backoff.ts";

test("backoff grows exponentially up to the cap, with jitter in the upper half", () => {
  const policy = { initialMs: 100, maxMs: 1_000 };
  assert.equal(backoffDelay(policy, 0, () => 1), 100);
  assert.equal(backoffDelay(policy, 3, () => 1), 800);
  assert.equal(backoffDelay(policy, 10, () => 1), 1_000);
  assert.equal(backoffDelay(policy, 3, () => 0), 400);
});

test("retry retries retriable errors and then succeeds", async () => {
  const seen: number[] = [];
  const result = await retry(
    async (attempt) => {
      if (attempt < 3) throw new ConnectionError("down", {});
      return "up";
    },
    { initialMs: 1, maxMs: 2, onRetry: (_e, attempt) => seen.push(attempt) },
  );
  assert.equal(result, "up");
  assert.deepEqual(seen, [0, 1, 2]);
});

test("retry never retries a permanent error", async () => {
  let calls = 0;
  const permanent = new SluiceError("bad password", { code: "AUTH_FAILED" });
  await assert.rejects(
    retry(async () => {
      calls++;
      throw permanent;
    }, { initialMs: 1, maxMs: 2 }),
    permanent,
  );
  assert.equal(calls, 1);
});

test("retry stops when aborted while waiting", async () => {
  const controller = new AbortController();
  const pending = retry(async () => {
    throw new ConnectionError("down", {});
  }, { initialMs: 10_000, maxMs: 10_000, signal: controller.signal });
  setTimeout(() => controller.abort(new Error("stopping")), 10);
  await assert.rejects(pending, /stopping/);
});
