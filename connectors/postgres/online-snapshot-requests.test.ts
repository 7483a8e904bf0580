import assert from "node:assert/strict";
import { createServer } from "node:net";
import { test } from "node:test";
import { encodeResume } from "../common/incremental-snapshot-state.ts";
import type { SnapshotTask } from "../common/incremental-snapshot-state.ts";
import { newSource, sourceConfig } from "./int-test-support.ts";

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
