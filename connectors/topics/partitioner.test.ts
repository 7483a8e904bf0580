import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { Partitioners } from "kafkajs";
import { murmur2, partitionForKey } from "./partitioner.ts";

const text = (s: string) => new TextEncoder().encode(s);

test("murmur2 gives the Java client's known answers (Kafka UtilsTest)", () => {
  const cases: [Uint8Array, number][] = [
    [text("21"), -973932308],
    [text("foobar"), -790332482],
    [text("a-little-bit-long-string"), -985981536],
    [text("a-little-bit-longer-string"), -1486304829],
    [text("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"), -58897971],
    [new Uint8Array([0x61, 0x62, 0x63]), 479470107],
  ];
  for (const [key, expected] of cases) assert.equal(murmur2(key), expected, new TextDecoder().decode(key));
});

test("partitionForKey agrees with kafkajs's Java-compatible partitioner for random keys of every length", () => {
  const javaCompatible = Partitioners.DefaultPartitioner();
  for (const partitions of [1, 3, 7, 12, 100]) {
    const partitionMetadata = Array.from({ length: partitions }, (_, i) => ({ partitionId: i, leader: 0, partitionErrorCode: 0, replicas: [0], isr: [0] }));
    for (let length = 0; length < 40; length++) {
      const key = randomBytes(length);
      const expected = javaCompatible({ topic: "t", partitionMetadata, message: { key, value: null } });
      assert.equal(partitionForKey(key, partitions), expected, `key ${key.toString("hex")} over ${partitions} partitions`);
    }
  }
});

test("records without a key go to partition 0", () => {
  assert.equal(partitionForKey(null, 8), 0);
});

test("negative hashes map to non-negative partitions as in Java (toPositive, not Math.abs)", () => {
  // murmur2("21") is negative: (h & 0x7fffffff) % n differs from Math.abs(h) % n.
  const h = murmur2(text("21"));
  assert.ok(h < 0);
  assert.equal(partitionForKey(text("21"), 10), (h & 0x7fffffff) % 10);
  assert.notEqual(partitionForKey(text("21"), 10), Math.abs(h) % 10);
});
