import assert from "node:assert/strict";
import { test } from "node:test";
import { decodeCheckpoint, encodeCheckpoint } from "./checkpoint-codec.ts";

test("checkpoints round-trip bigint positions beyond 2^53 exactly", () => {
  const checkpoint = { source: "pg", position: { commit: 2n ** 64n - 1n, change: 9007199254740993n, resume: "gtid:1-2-3" } };
  const decoded = decodeCheckpoint(encodeCheckpoint(checkpoint), "test");
  assert.deepEqual(decoded, checkpoint);
  assert.equal(typeof decoded.position.commit, "bigint");
});

test("a position without resume token decodes without one", () => {
  const decoded = decodeCheckpoint(encodeCheckpoint({ source: "s", position: { commit: 1n, change: 2n } }), "test");
  assert.equal("resume" in decoded.position, false);
});

test("corrupt checkpoints are refused with CHECKPOINT_CORRUPT", () => {
  for (const text of ["{", "null", '{"source":"s","commit":1,"change":"2"}', '{"source":"s","commit":"1.5","change":"2"}']) {
    assert.throws(() => decodeCheckpoint(text, "test"), { code: "CHECKPOINT_CORRUPT" });
  }
});
