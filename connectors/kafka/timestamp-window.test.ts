import assert from "node:assert/strict";
import { test } from "node:test";
import { timestampWindowOf } from "./batching-producer.ts";

const LONG_MAX = "9223372036854775807";

test("a topic's timestamp window: message.timestamp.before.max.ms, else the older message.timestamp.difference.max.ms (Kafka < 3.6)", () => {
  assert.equal(timestampWindowOf("600000", undefined), 600_000);
  assert.equal(timestampWindowOf(undefined, "600000"), 600_000, "a broker before 3.6 has only the older key");
  assert.equal(timestampWindowOf(LONG_MAX, "600000"), 600_000, "3.6 to 3.9: the newer key at its default, the older one set");
  assert.equal(timestampWindowOf("300000", "600000"), 300_000, "both set: the newer key");
  assert.equal(timestampWindowOf("600000", "300000"), 600_000, "both set: the newer key wins even when wider, as on a 3.6+ broker");
  assert.equal(timestampWindowOf(LONG_MAX, LONG_MAX), undefined, "defaults: any age");
  assert.equal(timestampWindowOf(undefined, undefined), undefined);
  assert.equal(timestampWindowOf("", undefined), undefined);
});
