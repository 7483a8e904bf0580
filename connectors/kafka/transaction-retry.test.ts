import assert from "node:assert/strict";
import { test } from "node:test";
import { FIRST_WAIT_MS, LONGEST_WAIT_MS, retryConcurrentTransactions } from "./transaction-retry.ts";

const concurrent = () => Object.assign(new Error("There is already a pending transaction"), { type: "CONCURRENT_TRANSACTIONS" });

test("a request refused with CONCURRENT_TRANSACTIONS is sent again after short, growing waits", async () => {
  let calls = 0;
  const waits: number[] = [];
  const result = await retryConcurrentTransactions(
    async () => {
      calls++;
      if (calls <= 5) throw concurrent();
      return "added";
    },
    60_000,
    async (ms) => waits.push(ms),
  );
  assert.equal(result, "added");
  assert.equal(calls, 6);
  assert.deepEqual(waits, [FIRST_WAIT_MS, 4, 8, 16, LONGEST_WAIT_MS]);
});

test("any other error goes on at once", async () => {
  let calls = 0;
  const fenced = Object.assign(new Error("fenced"), { type: "PRODUCER_FENCED" });
  await assert.rejects(
    retryConcurrentTransactions(async () => {
      calls++;
      throw fenced;
    }),
    (error) => error === fenced,
  );
  assert.equal(calls, 1);
});

test("CONCURRENT_TRANSACTIONS goes on to kafkajs's own retry once the time is up", async () => {
  let calls = 0;
  await assert.rejects(
    retryConcurrentTransactions(async () => {
      calls++;
      throw concurrent();
    }, 0),
    (error: { type?: string }) => error.type === "CONCURRENT_TRANSACTIONS",
  );
  assert.equal(calls, 1);
});

test("importing the module puts the retry in kafkajs's AddPartitionsToTxn", async () => {
  const { createRequire } = await import("node:module");
  const Broker = createRequire(import.meta.url)("kafkajs/src/broker/index.js") as { prototype: { addPartitionsToTxn: { toString(): string } } };
  assert.match(Broker.prototype.addPartitionsToTxn.toString(), /retryConcurrentTransactions/);
});
