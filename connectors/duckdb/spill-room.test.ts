import assert from "node:assert/strict";
import { test } from "node:test";
import { offloadLimit, spillRoom } from "./spill-room.ts";

const GiB = 2 ** 30;
const MiB = 2 ** 20;
const refusal = (used: string, limit: string) => `Out of Memory Error: failed to offload data block of size 256.0 KiB (${used}/${limit} used).\nThis limit was set by the 'max_temp_directory_size' setting.`;

test("offloadLimit reads the limit DuckDB refused the spill with, in its units; null when the message does not say", () => {
  assert.equal(offloadLimit(refusal("13.4 GiB", "13.5 GiB")), 13.5 * GiB);
  assert.equal(offloadLimit(refusal("0 bytes", "900 bytes")), 900);
  assert.equal(offloadLimit(refusal("1.0 MB", "2.5 MB")), 2.5e6);
  assert.equal(offloadLimit("Out of Memory Error: failed to offload data block"), null);
});

test("a disk is full for a spill when neither DuckDB's limit nor the one it would take from the disk now leaves 64 MiB; never by a share of the disk's size", () => {
  const disk = (free: number, size: number) => () => ({ free, size });
  // 15 GiB free of 1 TiB (1.5%): DuckDB had 13.5 GiB to spill into; the write needed more.
  assert.equal(spillRoom("/x/a.duckdb", refusal("13.5 GiB", "13.5 GiB"), disk(15 * GiB, 1024 * GiB)).full, false);
  // A full disk: a limit of a few MiB, and a few MiB free.
  assert.equal(spillRoom("/x/a.duckdb", refusal("4.3 MiB", "4.5 MiB"), disk(3 * MiB, 30 * MiB)).full, true);
  // The limit taken when the disk was full, room free now: the out-of-memory way opens the database again, taking the limit afresh.
  assert.equal(spillRoom("/x/a.duckdb", refusal("4.3 MiB", "4.5 MiB"), disk(40 * GiB, 100 * GiB)).full, false);
  // No limit in the message: DuckDB's default taken from the disk now.
  assert.equal(spillRoom("/x/a.duckdb", "failed to offload data block", disk(50 * MiB, 100 * GiB)).full, true);
  assert.equal(spillRoom("/x/a.duckdb", "failed to offload data block", disk(10 * GiB, 100 * GiB)).full, false);
  // Neither readable: taken for full (waiting is the safe side); the limit alone decides when the disk cannot be read.
  const unreadable = () => {
    throw new Error("EACCES");
  };
  assert.equal(spillRoom("/x/a.duckdb", "failed to offload data block", unreadable).full, true);
  assert.equal(spillRoom("/x/a.duckdb", refusal("1.0 GiB", "1.0 GiB"), unreadable).full, false);
});
