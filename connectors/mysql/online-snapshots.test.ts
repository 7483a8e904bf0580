import assert from "node:assert/strict";
import { test } from "node:test";
import { pino } from "pino";
import { encodeResume } from "../common/incremental-snapshot-state.ts";
import type { SnapshotTask } from "../common/incremental-snapshot-state.ts";
import { sourceConfig } from "./int-test-support.ts";
import { MysqlOnlineSnapshots } from "./online-snapshots.ts";

test("sluice snapshot list shows the snapshots queued or running while the server is away (no engine runs), not none", () => {
  const task: SnapshotTask = {
    id: "t1",
    table: "shop.orders",
    where: null,
    lastKey: ["41"],
    rowsDone: 41,
    rowsEstimated: 300,
    resetVersion: "5",
    requestedAtMs: 1,
    startedAtMs: 2,
    origin: "cli",
  };
  const online = new MysqlOnlineSnapshots({
    config: sourceConfig({ tables: ["shop.*"] }),
    logger: pino({ level: "silent" }),
    context: {},
    catalog: () => null,
    tracker: () => null,
    binding: () => ({ sourceName: "s", collations: null as never, zeroDates: "null", mariadb: true }),
  });
  online.restore({ position: { commit: 10n, change: 10n, resume: encodeResume(undefined, [task]) } } as never);
  assert.deepEqual(online.requests.list().tasks.map((t) => t.id), ["t1"]);
});
