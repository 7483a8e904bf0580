import assert from "node:assert/strict";
import { test } from "node:test";
import { pino } from "pino";
import { encodeResume } from "./incremental-snapshot-state.ts";
import type { SnapshotTask } from "./incremental-snapshot-state.ts";
import { OnlineSnapshotRunner } from "./online-snapshot-runner.ts";

test("progress shows the snapshots a checkpoint carries while no engine runs (the server away), as pending with their rows read", () => {
  const task: SnapshotTask = {
    id: "t1",
    table: "shop.orders",
    where: null,
    lastKey: ["6707"],
    rowsDone: 6707,
    rowsEstimated: 200000,
    resetVersion: "5",
    requestedAtMs: 1,
    startedAtMs: 2,
    origin: "cli",
  };
  const runner = new OnlineSnapshotRunner({ logger: pino({ level: "silent" }), context: {} });
  runner.restore({ source: "s", position: { commit: 10n, change: 10n, resume: encodeResume(undefined, [task]) } } as never);
  assert.deepEqual(runner.progress(), [
    { table: "shop.orders", state: "pending", rowsDone: 6707, rowsEstimated: 200000, rowsPerSecond: 0, startedAtMs: 2, finishedAtMs: null },
  ]);
});

test("a reconnect keeps a request the checkpoint does not carry from its start: the rows it handed on were in batches not stored", () => {
  const runner = new OnlineSnapshotRunner({ logger: pino({ level: "silent" }), context: {} });
  const asked: SnapshotTask = { id: "t2", table: "shop.items", where: null, lastKey: null, rowsDone: 0, rowsEstimated: null, resetVersion: null, requestedAtMs: 1, startedAtMs: null, origin: "table-renamed" };
  runner.ledger.add(asked);
  // A chunk of 500 rows handed on in a batch the connection dropped before it was stored.
  runner.ledger.record({ commit: 20n, change: 20n }, "t2", { ...asked, lastKey: ["500"], rowsDone: 500, resetVersion: "18", startedAtMs: 2 });
  runner.restore({ source: "s", position: { commit: 10n, change: 10n } } as never);
  assert.deepEqual(runner.ledger.tasks, [asked]);
});
