/** What Sluice advises an operator to set for a Kafka record limit (record-limits.ts). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { raisedConfigValue } from "./record-limits.ts";

test("the segment.bytes advised holds many records of the size needed (Kafka's default 1 GiB at least, within an int32); max.message.bytes is the size itself", () => {
  assert.equal(raisedConfigValue("max.message.bytes", 1_500_000), 1_500_000);
  assert.equal(raisedConfigValue("segment.bytes", 1_500_000), 2 ** 30);
  assert.equal(raisedConfigValue("segment.bytes", 100 * 2 ** 20), 16 * 100 * 2 ** 20);
  assert.equal(raisedConfigValue("segment.bytes", 512 * 2 ** 20), 2 ** 31 - 1);
});
