import assert from "node:assert/strict";
import { test } from "node:test";
import { settleInTurn } from "./tables-in-flight.ts";

/** A task that finishes (or fails) when told to, noting when it started and ended. */
function gate(events: string[], name: string) {
  let finish!: (error?: Error) => void;
  const done = new Promise<void>((resolve, reject) => (finish = (error) => (error ? reject(error) : resolve())));
  return {
    task: async () => {
      events.push(`start ${name}`);
      try {
        await done;
      } finally {
        events.push(`end ${name}`);
      }
    },
    finish,
  };
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

test("tables are written side by side, at most `limit` at a time, and the call returns once every one has finished", async () => {
  const events: string[] = [];
  const gates = ["a", "b", "c"].map((name) => gate(events, name));
  let settled = false;
  const all = settleInTurn(gates.map((g) => g.task), 2).then(() => (settled = true));
  await turn();
  assert.deepEqual(events, ["start a", "start b"]);
  gates[1]!.finish();
  await turn();
  assert.deepEqual(events, ["start a", "start b", "end b", "start c"]);
  gates[2]!.finish();
  await turn();
  assert.equal(settled, false, "a is still being written");
  gates[0]!.finish();
  await all;
  assert.equal(settled, true);
});

test("a failure starts no further table, waits for the tables under way, then throws the first failure in table order", async () => {
  const events: string[] = [];
  const gates = ["a", "b", "c", "d"].map((name) => gate(events, name));
  let outcome: unknown = "pending";
  const all = settleInTurn(gates.map((g) => g.task), 3).then(
    () => (outcome = "resolved"),
    (error: unknown) => (outcome = error),
  );
  await turn();
  gates[2]!.finish(new Error("c failed"));
  await turn();
  assert.equal(outcome, "pending", "a and b are still being written: no retry may start yet");
  gates[1]!.finish(new Error("b failed"));
  gates[0]!.finish();
  await all;
  // Read again after the await: the assertion above narrowed it to "pending".
  const settled = outcome as unknown;
  assert.ok(settled instanceof Error);
  assert.equal(settled.message, "b failed");
  assert.ok(!events.includes("start d"), "no table starts after a failure");
});

test("no tables: nothing to wait for", async () => {
  await settleInTurn([]);
});
