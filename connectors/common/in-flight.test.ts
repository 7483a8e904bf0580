import assert from "node:assert/strict";
import { test } from "node:test";
import { InFlight } from "./in-flight.ts";

test("settled waits for tracked work, also work tracked while it waits, and failures do not reject it", async () => {
  const inFlight = new InFlight();
  const order: string[] = [];
  let finishFirst!: () => void;
  const first = inFlight.track(new Promise<string>((resolve) => (finishFirst = () => resolve("first"))));
  const failing = inFlight.track(Promise.reject(new Error("refused")));
  await assert.rejects(failing, /refused/);
  const settled = inFlight.settled().then(() => order.push("settled"));
  let finishLater!: () => void;
  const later = inFlight.track(new Promise<void>((resolve) => (finishLater = resolve))).then(() => order.push("later"));
  finishFirst();
  assert.equal(await first, "first");
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(order, [], "settled still waits for the work tracked after it was asked");
  finishLater();
  await Promise.all([settled, later]);
  assert.deepEqual(order, ["later", "settled"]);
  await inFlight.settled();
});
