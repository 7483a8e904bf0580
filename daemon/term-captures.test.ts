import assert from "node:assert/strict";
import { test } from "node:test";
import { runTermCaptures } from "./term-captures.ts";

/** A capture that runs until its signal aborts, as CapturePipeline.run does. */
function untilAborted(seen: AbortSignal[]): (signal: AbortSignal) => Promise<void> {
  return (signal) =>
    new Promise((resolve) => {
      seen.push(signal);
      if (signal.aborted) return resolve();
      signal.addEventListener("abort", () => resolve(), { once: true });
    });
}

test("a stop that came while the term was being set up ends its captures at once", async () => {
  const stop = new AbortController();
  stop.abort(new Error("stopping: SIGTERM"));
  const seen: AbortSignal[] = [];
  // Before the fix the captures' signal was never aborted (the listener came after the abort): this never settled.
  const outcome = await Promise.race([runTermCaptures([untilAborted(seen), untilAborted(seen)], stop.signal).then(() => "ended"), new Promise((resolve) => setTimeout(() => resolve("still running"), 1_000).unref())]);
  assert.equal(outcome, "ended");
  assert.equal(seen.length, 2);
  for (const signal of seen) assert.equal((signal.reason as Error).message, "stopping: SIGTERM");
});

test("a stop during the term ends every capture", async () => {
  const stop = new AbortController();
  const seen: AbortSignal[] = [];
  const running = runTermCaptures([untilAborted(seen), untilAborted(seen)], stop.signal);
  await new Promise((resolve) => setImmediate(resolve));
  assert.ok(seen.every((signal) => !signal.aborted));
  stop.abort(new Error("capture lease lost"));
  await running;
  assert.ok(seen.every((signal) => signal.aborted));
});

test("one capture failing ends the others and the term rejects with its error", async () => {
  const seen: AbortSignal[] = [];
  const fenced = new Error("fenced");
  await assert.rejects(runTermCaptures([untilAborted(seen), async () => Promise.reject(fenced)], new AbortController().signal), fenced);
  assert.equal(seen[0]!.aborted, true);
  assert.equal(seen[0]!.reason, fenced);
});
