import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { test } from "node:test";
import { guardRequestQueue } from "./kafka-client.ts";

interface Queue {
  pending: unknown[];
  throttledUntil: number;
  throttleCheckTimeoutId: NodeJS.Timeout | null;
  scheduleCheckPendingRequests(): void;
  destroy(): void;
}
const RequestQueue = createRequire(import.meta.url)("kafkajs/src/network/requestQueue/index.js") as new (options: Record<string, unknown>) => Queue;
const quietLogger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

test("kafkajs's request queue schedules no pending-request check when nothing waits (no negative timeout, no 1 ms loop)", () => {
  guardRequestQueue();
  const queue = new RequestQueue({ maxInFlightRequests: 5, requestTimeout: 30_000, enforceRequestTimeout: false, clientId: "t", broker: "b", logger: quietLogger });
  const warnings: Error[] = [];
  const onWarning = (warning: Error) => warnings.push(warning);
  process.on("warning", onWarning);
  try {
    queue.scheduleCheckPendingRequests();
    assert.equal(queue.throttleCheckTimeoutId, null, "idle and unthrottled: nothing to check later");

    queue.throttledUntil = Date.now() + 50;
    queue.scheduleCheckPendingRequests();
    assert.notEqual(queue.throttleCheckTimeoutId, null, "throttled: the check runs when the throttle ends");
    queue.destroy();

    queue.throttledUntil = -1;
    queue.pending.push({});
    queue.scheduleCheckPendingRequests();
    assert.notEqual(queue.throttleCheckTimeoutId, null, "a waiting request is checked again");
    queue.destroy();
  } finally {
    queue.destroy();
    process.off("warning", onWarning);
  }
  assert.deepEqual(warnings.map((w) => w.name), []);
});
