/**
 * Test support for every source's batch-bytes integration test (issue 16 item 4): capture batches
 * are bounded by bytes as well as by count. With the read-ahead full of wide rows a read returns
 * about captureBatchBytes(max_buffer_bytes) of them, not up to 4,096; a row bigger than that bound
 * still goes through, alone. The source's test writes the rows; these check the batches.
 */
import assert from "node:assert/strict";
import { captureBatchBytes } from "../../config/memory.ts";
import type { ChangeEvent } from "../contracts.ts";

/** The sources' max_buffer_bytes in these tests. */
export const MAX_BUFFER = 8 * 2 ** 20;
const BOUND = captureBatchBytes(MAX_BUFFER);
/** Wide rows to write: ROWS of them are several bounds' worth. */
export const ROWS = 60;
/** Characters of a wide row's payload (100 KiB). */
export const ROW_CHARS = 100 * 1024;
/** The size of the row bigger than the bound. */
export const HUGE_CHARS = 2 * BOUND;

interface Collected {
  readonly events: readonly ChangeEvent[];
  readonly batches: readonly { readonly events: readonly ChangeEvent[]; readonly more?: boolean }[];
}
/** Reads (and acknowledges) batches until `done` holds for everything read so far. */
type ReadUntil = (done: (collected: Collected) => boolean) => Promise<Collected>;
interface BufferedSource {
  stats(): { bufferBytes: number };
}

const payloadBytes = (events: readonly ChangeEvent[]) => events.reduce((sum, e) => sum + String(e.after?.["payload"] ?? "").length, 0);

/** Waits until the source has read ahead at least `bytes` (the whole workload is buffered before it is read). */
async function bufferedAtLeast(source: BufferedSource, bytes: number): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (source.stats().bufferBytes < bytes) {
    assert.ok(Date.now() < deadline, `read-ahead reached only ${source.stats().bufferBytes} of ${bytes} bytes`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The batches capture stores as one: a run of batches saying `more` ends with the first that does not. */
function storedBatches(collected: Collected): ChangeEvent[][] {
  const stored: ChangeEvent[][] = [];
  let run: ChangeEvent[] | null = null;
  for (const batch of collected.batches) {
    run ??= [];
    run.push(...batch.events);
    if (batch.more === true) continue;
    stored.push(run);
    run = null;
  }
  if (run !== null) stored.push(run);
  return stored;
}

function assertBounded(collected: Collected): void {
  const sizes = storedBatches(collected)
    .filter((events) => events.length > 0)
    .map((events) => payloadBytes(events));
  for (const size of sizes) assert.ok(size <= BOUND + ROW_CHARS, `a batch of ${size} bytes of rows, bound ${BOUND} (+ one row of ${ROW_CHARS}): ${sizes.join(", ")}`);
  assert.ok(sizes.length >= Math.floor((ROWS * ROW_CHARS) / (BOUND + ROW_CHARS)), `${sizes.length} batches: ${sizes.join(", ")}`);
}

/** `write` inserts ROWS rows with payloads of ROW_CHARS: once all are read ahead, they are read in bounded batches. */
export async function assertStreamedWideRowsBounded(source: BufferedSource, write: () => Promise<unknown>, readUntil: ReadUntil): Promise<void> {
  await write();
  await bufferedAtLeast(source, ROWS * ROW_CHARS);
  const collected = await readUntil((c) => c.events.length >= ROWS);
  assert.equal(collected.events.length, ROWS);
  assertBounded(collected);
}

/** `write` inserts, in one transaction, row 1000 with a payload of HUGE_CHARS and 100 small rows: the big row is its batch's only row. */
export async function assertHugeRowAlone(source: BufferedSource, write: () => Promise<unknown>, readUntil: ReadUntil): Promise<void> {
  await write();
  await bufferedAtLeast(source, HUGE_CHARS);
  const collected = await readUntil((c) => c.events.length >= 101);
  const withHuge = collected.batches.find((b) => b.events.some((e) => e.after?.["id"] === 1000))!;
  assert.equal(payloadBytes(withHuge.events), HUGE_CHARS, "the big row is its batch's only row");
  assert.equal(collected.events.length, 101);
}

/** The source snapshots ROWS rows with payloads of ROW_CHARS; `readSnapshot` reads until the snapshot is finished: its batches are bounded. */
export async function assertSnapshotWideRowsBounded(source: BufferedSource, readSnapshot: () => Promise<Collected>): Promise<void> {
  await bufferedAtLeast(source, ROWS * ROW_CHARS);
  const collected = await readSnapshot();
  assert.equal(collected.events.filter((e) => e.op === "r").length, ROWS);
  assertBounded(collected);
}

/**
 * An online snapshot of ROWS rows with payloads of ROW_CHARS (`readSnapshot` reads until its reset):
 * a chunk is handed on whole in one batch, so its rows are bounded by bytes too (before, a chunk was
 * chunk_rows rows however wide).
 */
export async function assertOnlineSnapshotWideRowsBounded(readSnapshot: () => Promise<Collected>): Promise<void> {
  const collected = await readSnapshot();
  assert.equal(collected.events.filter((e) => e.op === "r").length, ROWS);
  assertBounded(collected);
}

/** Whether the events read so far end a whole-table snapshot (its reset). */
export const snapshotReset = (collected: Collected): boolean => collected.events.some((e) => e.op === "t");
