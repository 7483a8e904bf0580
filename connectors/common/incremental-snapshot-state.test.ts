import { test } from "node:test";
import assert from "node:assert/strict";
import { decodeResume, encodeResume, SnapshotLedger } from "./incremental-snapshot-state.ts";
import type { SnapshotTask } from "./incremental-snapshot-state.ts";

const task = (id: string, lastKey: string[] | null = null, rowsDone = 0): SnapshotTask => ({
  id,
  table: `s.${id}`,
  where: null,
  lastKey,
  rowsDone,
  rowsEstimated: 100,
  resetVersion: "41",
  requestedAtMs: 1,
  startedAtMs: 2,
  origin: "cli",
});

test("the snapshot progress rides after the source's own resume token and comes back out", () => {
  const tasks = [task("a", ["7"], 10)];
  assert.equal(encodeResume(undefined, []), undefined);
  assert.equal(encodeResume("0-1-42", []), "0-1-42");
  assert.deepEqual(decodeResume(encodeResume("0-1-42", tasks)), { base: "0-1-42", tasks });
  assert.deepEqual(decodeResume(encodeResume(undefined, tasks)), { base: undefined, tasks });
  assert.deepEqual(decodeResume("snapshot-incomplete"), { base: "snapshot-incomplete", tasks: [] });
});

test("a checkpoint carries a chunk's progress only once it is at or past the chunk's rows", () => {
  const ledger = new SnapshotLedger([]);
  ledger.add(task("a"));
  assert.deepEqual(ledger.tasksAt({ commit: 5n, change: 5n }).map((t) => t.lastKey), [null], "a request counts at once");
  ledger.record({ commit: 20n, change: 3n }, "a", task("a", ["1000"], 1000));
  ledger.record({ commit: 30n, change: 3n }, "a", task("a", ["2000"], 2000));
  assert.deepEqual(ledger.tasks.map((t) => t.lastKey), [["2000"]], "the engine sees its latest progress");
  assert.deepEqual(ledger.tasksAt({ commit: 19n, change: 19n }).map((t) => t.lastKey), [null], "a batch cut before the chunk's rows");
  ledger.add(task("b"));
  assert.deepEqual(ledger.tasksAt({ commit: 20n, change: 20n }).map((t) => t.id), ["a", "b"], "a later request joins the pending progress too");
  assert.deepEqual(ledger.tasksAt({ commit: 20n, change: 20n })[0]!.lastKey, ["1000"]);
  ledger.record({ commit: 40n, change: 3n }, "a", null);
  assert.deepEqual(ledger.tasksAt({ commit: 40n, change: 3n }).map((t) => t.id), ["b"], "a finished table leaves the checkpoint with its last rows");
});

test("a task as stored shows the rows handed on by a checkpoint stored, not the chunk the engine recorded before its rows were written", () => {
  const ledger = new SnapshotLedger([task("resumed", ["41"], 41)]);
  ledger.add(task("fresh"));
  ledger.record({ commit: 20n, change: 3n }, "resumed", task("resumed", ["80"], 80));
  ledger.record({ commit: 20n, change: 4n }, "fresh", task("fresh", ["40"], 40));
  assert.deepEqual(ledger.tasks.map((t) => t.lastKey), [["80"], ["40"]]);
  assert.deepEqual(ledger.stored("resumed")?.lastKey, ["41"], "restored from the checkpoint");
  assert.equal(ledger.stored("fresh")?.lastKey, null, "none of its rows stored yet");
  ledger.tasksAt({ commit: 20n, change: 4n });
  assert.deepEqual(ledger.stored("fresh")?.lastKey, ["40"]);
  assert.equal(ledger.stored("other"), null);
});
