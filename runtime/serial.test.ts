import assert from "node:assert/strict";
import { test } from "node:test";
import { Serial } from "./serial.ts";

test("work runs one piece at a time in the order given, and a failure does not stop what follows", async () => {
  const serial = new Serial();
  const events: string[] = [];
  const piece = (name: string, fail = false) => async () => {
    events.push(`${name} start`);
    await new Promise((r) => setTimeout(r, 5));
    events.push(`${name} end`);
    if (fail) throw new Error(name);
    return name;
  };
  const results = await Promise.allSettled([serial.run(piece("a")), serial.run(piece("b", true)), serial.run(piece("c"))]);
  assert.deepEqual(events, ["a start", "a end", "b start", "b end", "c start", "c end"]);
  assert.deepEqual(results.map((r) => (r.status === "fulfilled" ? r.value : (r.reason as Error).message)), ["a", "b", "c"]);
});
