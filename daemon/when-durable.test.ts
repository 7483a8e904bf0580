/** Work asked for by a record once it is durable: one record may carry the work of several stages (a data check's count and the outbox's). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { durableWork, runDurableWork, whenDurable } from "./when-durable.ts";

test("work asked for twice on one record runs both, in order, once collected; records that ask nothing give null", () => {
  const ran: string[] = [];
  const record = { topic: "t", key: null, value: null, timestamp: 0 };
  whenDurable(record, () => void ran.push("outbox"));
  whenDurable(record, () => void ran.push("data check"));
  assert.equal(durableWork([{ topic: "t", key: null, value: null, timestamp: 0 }]), null);
  runDurableWork(durableWork([record]));
  assert.deepEqual(ran, ["outbox", "data check"]);
});
