/**
 * The capture loop with a toy driver: the snapshot's rows come first (marked, in batches of at most
 * maxBatchEvents), then the stream opens at the next read; a failure stays; closing stops the
 * online snapshots, the snapshot, the stream and the connections, in that order.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { ChangeEvent, Checkpoint, TableSnapshotProgress } from "../contracts.ts";
import { SluiceError } from "../errors.ts";
import { ByteBoundedBuffer } from "./byte-bounded-buffer.ts";
import { CaptureLoop } from "./capture-loop.ts";
import type { InitialSnapshot, OpenedStream } from "./capture-loop.ts";
import { SnapshotMarkers } from "./snapshot-markers.ts";

interface ToyBatch {
  readonly events: readonly ChangeEvent[];
  readonly checkpoint: string;
}

const event = (op: "r" | "t", id: number): ChangeEvent => ({ op, key: { id }, schema: { schema: "s", table: "t" }, source: { snapshot: true } }) as unknown as ChangeEvent;

function toyDriver(options: { rows: number; failStreamWith?: Error }) {
  const calls: string[] = [];
  const progress: TableSnapshotProgress[] = [];
  const openStream = (): OpenedStream<ToyBatch> => {
    calls.push("open stream");
    const buffer = new ByteBoundedBuffer<number>(1 << 20);
    return {
      buffer,
      pauses: () => 0,
      start: async () => {
        calls.push("start stream");
      },
      next: async () => {
        if (options.failStreamWith !== undefined) throw options.failStreamWith;
        return { events: [], checkpoint: "stream" };
      },
      stop: async () => {
        calls.push(`stop stream (buffer failed: ${buffer.failed?.message})`);
      },
    };
  };
  const setUp = async () => {
    calls.push("set up");
    const buffer = new ByteBoundedBuffer<number>(1 << 20);
    for (let id = 1; id <= options.rows; id++) buffer.push(id, 10);
    buffer.push(0, 10);
    const snapshot: InitialSnapshot<number, ToyBatch> = {
      reader: {
        progress: () => progress,
        run: async () => buffer.end(),
        close: async () => {
          calls.push("close snapshot reader");
        },
      },
      buffer,
      markers: new SnapshotMarkers(1),
      controller: new AbortController(),
      event: (row) => (row === 0 ? event("t", 0) : event("r", row)),
      batch: (events, finished) => ({ events, checkpoint: finished ? "snapshot done" : "snapshot incomplete" }),
    };
    loop.holdSnapshot(snapshot);
    loop.runSnapshot();
  };
  const loop: CaptureLoop<ToyBatch, OpenedStream<ToyBatch>> = new CaptureLoop({
    context: { component: "toy-source" },
    maxBatchEvents: 2,
    readAheadBytes: 1 << 20,
    toError: (error, what) => (error instanceof SluiceError ? error : new SluiceError(`${what}: ${(error as Error).message}`, { code: "TOY", retriable: true, context: { component: "toy-source" } })),
    prepare: (from: Checkpoint | null) => calls.push(`prepare ${from === null ? "from start" : "from checkpoint"}`),
    setUp,
    openStream,
    online: {
      stop: async () => {
        calls.push("stop online snapshots");
      },
      progress: () => [],
    },
    release: async () => {
      calls.push("release");
    },
  });
  return { loop, calls };
}

test("the snapshot's rows come first, in marked batches of maxBatchEvents; the stream opens at the next read", async () => {
  const { loop, calls } = toyDriver({ rows: 3 });
  const signal = AbortSignal.timeout(10_000);
  await loop.connect(null, signal);
  assert.equal(loop.phase, "snapshot");
  assert.equal(loop.ready(), true);
  const batches: ToyBatch[] = [];
  while (loop.phase === "snapshot") batches.push(await loop.read(signal));
  // Each table's latest read is held back until its next read or its reset: a batch ends at 2 events handed on.
  assert.deepEqual(
    batches.map((b) => [b.checkpoint, b.events.map((e) => `${e.op}${String(e.key["id"])}${e.source.snapshotMarker ? `:${e.source.snapshotMarker}` : ""}`)]),
    [
      ["snapshot incomplete", ["r1:first", "r2"]],
      ["snapshot done", ["r3:last", "t0"]],
    ],
  );
  assert.equal(loop.phase, "streaming");
  assert.equal(loop.stream, null, "the stream opens at the next read, not when the snapshot ends");
  assert.deepEqual(await loop.read(signal), { events: [], checkpoint: "stream" });
  assert.notEqual(loop.stream, null);
  await loop.close();
  assert.equal(loop.phase, "closed");
  assert.deepEqual(calls, [
    "stop online snapshots",
    "release",
    "prepare from start",
    "set up",
    "close snapshot reader",
    "open stream",
    "start stream",
    "stop online snapshots",
    "stop stream (buffer failed: the source was closed)",
    "release",
  ]);
});

test("a failed read fails every later read with the same error until the next connect", async () => {
  const broken = new Error("connection reset");
  const { loop } = toyDriver({ rows: 0, failStreamWith: broken });
  const signal = AbortSignal.timeout(10_000);
  await loop.connect(null, signal);
  while (loop.phase === "snapshot") await loop.read(signal);
  const first = await loop.read(signal).catch((error: unknown) => error);
  assert.ok(first instanceof SluiceError);
  assert.match(first.message, /capture failed: connection reset/);
  assert.equal(loop.phase, "failed");
  assert.equal(loop.ready(), false);
  assert.equal(await loop.read(signal).catch((error: unknown) => error), first);
  await loop.connect(null, signal);
  assert.equal(loop.ready(), true);
  await loop.close();
});

test("read() before connect says the source is not connected", async () => {
  const { loop } = toyDriver({ rows: 0 });
  await assert.rejects(loop.read(AbortSignal.timeout(10_000)), (error: unknown) => error instanceof SluiceError && error.code === "SOURCE_NOT_CONNECTED" && error.retriable);
});
