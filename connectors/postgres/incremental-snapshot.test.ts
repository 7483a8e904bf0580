import { test } from "node:test";
import assert from "node:assert/strict";
import pino from "pino";
import { decodeResume, encodeResume, SnapshotLedger } from "../common/incremental-snapshot-state.ts";
import { belowEmptying, IncrementalSnapshots } from "./incremental-snapshot.ts";

const engine = (ledger: SnapshotLedger) =>
  new IncrementalSnapshots({
    client: {},
    sourceName: "pg",
    slot: "sluice_pg",
    chunkRows: 10,
    chunkBytes: 1 << 20,
    parallelism: 1,
    chunksInFlight: 2,
    ledger,
    finished: [],
    resolve: async () => Promise.reject(new Error("not read in this test")),
    logger: pino({ level: "silent" }),
    context: {},
  });

test("a request's floor above the truncate that emptied its targets rides with its task: a restart (or a reconnect's new engine) still reads above it", () => {
  const emptiedAt = 0x5000n;
  const task = engine(new SnapshotLedger([])).request("public.orders_v2", null, "table-renamed", "table-renamed@0/4F00/public.orders_v2", emptiedAt);
  // What a checkpoint stores and a restart (or online.restore after a reconnect) gets back: the engine before is gone.
  const restored = decodeResume(encodeResume(undefined, [task])).tasks[0]!;
  assert.equal(restored.readAbove, String(emptiedAt));
  assert.equal(belowEmptying(restored, emptiedAt), true, "a chunk at version restart_lsn - 1 = the truncate's LSN - 1 would be dropped");
  assert.equal(belowEmptying(restored, emptiedAt + 1n), true, "at the truncate's LSN too (at or below a truncate's version is removed)");
  assert.equal(belowEmptying(restored, emptiedAt + 2n), false);
  const plain = engine(new SnapshotLedger([])).request("public.orders", null, "cli");
  assert.equal(plain.readAbove, undefined);
  assert.equal(belowEmptying(plain, 1n), false);
});
