import assert from "node:assert/strict";
import { test } from "node:test";
import { ChunkSizer } from "./chunk-sizer.ts";

test("snapshot chunks: a small first chunk, then as many rows as fit the target, growing at most eightfold, at most chunk_rows", () => {
  const narrow = new ChunkSizer(10_000, 16 * 2 ** 20);
  assert.equal(narrow.next(), 4);
  narrow.observe(4, 4 * 300);
  assert.equal(narrow.next(), 32, "300-byte rows: eight times the probe");
  narrow.observe(32, 32 * 300);
  assert.equal(narrow.next(), 256);
  narrow.observe(256, 256 * 300);
  assert.equal(narrow.next(), 2048);
  narrow.observe(2048, 2048 * 300);
  assert.equal(narrow.next(), 10_000, "then chunk_rows");
  const wide = new ChunkSizer(10_000, 4 * 2 ** 20);
  wide.next();
  wide.observe(4, 4 * 16_384);
  assert.equal(wide.next(), 32, "16 KiB rows: growing from the probe");
  wide.observe(32, 32 * 16_384);
  assert.equal(wide.next(), 256, "then 4 MiB of them");
  wide.observe(256, 256 * 2 ** 20);
  assert.equal(wide.next(), 4, "rows grow: the average follows");
  const huge = new ChunkSizer(10_000, 2 ** 20);
  huge.next();
  huge.observe(1, 64 * 2 ** 20);
  assert.equal(huge.next(), 1, "never fewer than one row");
  assert.equal(new ChunkSizer(2, 2 ** 20).next(), 2, "chunk_rows below the probe");
});

test("a probe of rows hundreds of KiB wide stays small", () => {
  const sizer = new ChunkSizer(10_000, 2 * 2 ** 20);
  assert.ok(sizer.next() * 256 * 1024 <= 2 ** 20, "the first chunk of 256 KiB rows takes at most 1 MiB");
});
