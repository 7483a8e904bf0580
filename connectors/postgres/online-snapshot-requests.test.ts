import assert from "node:assert/strict";
import { createServer } from "node:net";
import { test } from "node:test";
import pino from "pino";
import { encodeResume, SnapshotLedger } from "../common/incremental-snapshot-state.ts";
import type { SnapshotTask } from "../common/incremental-snapshot-state.ts";
import { IncrementalSnapshots } from "./incremental-snapshot.ts";
import { newSource, sourceConfig } from "./int-test-support.ts";
import { OnlineSnapshotRequests } from "./online-snapshot-requests.ts";

/** A port nothing listens on (bound, then let go). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

test("sluice snapshot list shows the snapshots queued or running while the server is away (no engine runs), not none", async () => {
  const task: SnapshotTask = {
    id: "t1",
    table: "app.orders",
    where: null,
    lastKey: ["41"],
    rowsDone: 41,
    rowsEstimated: 300,
    resetVersion: "5",
    requestedAtMs: 1,
    startedAtMs: 2,
    origin: "cli",
  };
  const source = newSource(sourceConfig({ tables: ["app.*"], host: "127.0.0.1", port: await closedPort() }));
  try {
    const from = { position: { commit: 10n, change: 10n, resume: encodeResume(undefined, [task]) } } as never;
    await assert.rejects(source.connect(from, new AbortController().signal));
    assert.deepEqual(source.snapshots.list().tasks.map((t) => t.id), ["t1"]);
  } finally {
    await source.close();
  }
});

test("a partition attached again while its read is under way (detached, refilled, attached) is read again from its first key, not on from where the read stood", async () => {
  const attached: SnapshotTask = {
    id: "partition-attached-123",
    table: "app.events",
    where: "tableoid = 123::oid",
    lastKey: ["41"],
    rowsDone: 41,
    rowsEstimated: null,
    resetVersion: "5",
    requestedAtMs: 1,
    startedAtMs: 2,
    origin: "partition-attached",
    partition: "123",
  };
  const waiting: SnapshotTask = { ...attached, id: "partition-attached-124", where: "tableoid = 124::oid", lastKey: null, rowsDone: 0, resetVersion: null, startedAtMs: null, partition: "124" };
  const ledger = new SnapshotLedger([attached, waiting]);
  const engine = new IncrementalSnapshots({
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
  const unused = () => {
    throw new Error("not asked in this test");
  };
  const requests = new OnlineSnapshotRequests({ config: unused, publication: unused, catalog: unused, captured: unused, serverVersion: unused, engine: () => engine, queued: () => [], stored: () => null, context: () => ({}) });
  const again = await requests.queuePartition("app.events", 123, "tableoid = 123::oid", "partition-attached", "partition-attached-123");
  assert.equal(again.lastKey, null, "read again from the first key: rows below 41 may be new");
  assert.equal(again.rowsDone, 0);
  assert.deepEqual(ledger.tasks.map((t) => t.id), ["partition-attached-123", "partition-attached-124"], "not queued twice, in its place");
  assert.equal(ledger.tasksAt({ commit: 0n, change: 0n })[0]!.lastKey, null, "a checkpoint carries the read started again");
  assert.equal(await requests.queuePartition("app.events", 124, "tableoid = 124::oid", "partition-attached", "partition-attached-124"), waiting, "one not begun stays as it is");
});
