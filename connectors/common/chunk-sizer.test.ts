import assert from "node:assert/strict";
import { test } from "node:test";
import { ChunkSizer } from "./chunk-sizer.ts";

test("snapshot chunks: a small first chunk, then as many rows as fit the target, at most chunk_rows", () => {
  const narrow = new ChunkSizer(10_000, 16 * 2 ** 20);
  assert.equal(narrow.next(), 500);
  narrow.observe(500, 500 * 300);
  assert.equal(narrow.next(), 10_000, "300-byte rows: chunk_rows");
  const wide = new ChunkSizer(10_000, 4 * 2 ** 20);
  wide.observe(500, 500 * 16_384);
  assert.equal(wide.next(), 256, "16 KiB rows: 4 MiB of them");
  wide.observe(256, 256 * 4 * 2 ** 20);
  assert.equal(wide.next(), 2, "rows grow: the average follows");
  const huge = new ChunkSizer(10_000, 2 ** 20);
  huge.observe(1, 64 * 2 ** 20);
  assert.equal(huge.next(), 1, "never fewer than one row");
  assert.equal(new ChunkSizer(100, 2 ** 20).next(), 100, "chunk_rows below the probe");
});
