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

test("a source with no watermark table (only wildcard databases, none configured) says at start that online snapshots and the re-reads after renames cannot run", () => {
  // Found live: tables ["app?eu.*"] validated and started without a word; the first sign was a RENAME COLUMN whose re-read was refused.
  const warnings: string[] = [];
  const logger = pino({ level: "warn" }, { write: (line: string) => warnings.push(String(JSON.parse(line).msg)) });
  const host = (tables: string[], snapshot: Partial<ReturnType<typeof sourceConfig>["snapshot"]> = {}) => {
    const config = sourceConfig({ tables });
    return {
      config: { ...config, snapshot: { ...config.snapshot, ...snapshot } },
      logger,
      context: {},
      catalog: () => null,
      tracker: () => null,
      binding: () => ({ sourceName: "s", collations: null as never, zeroDates: "null" as const, mariadb: true }),
    };
  };
  new MysqlOnlineSnapshots(host(["app?eu.*"]));
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /no watermark table .* set snapshot.watermark_table/);
  new MysqlOnlineSnapshots(host(["app.*"]));
  new MysqlOnlineSnapshots(host(["*.*"], { watermark_table: "app.sluice_watermarks" }));
  new MysqlOnlineSnapshots(host(["*.*"], { mode: "never" }));
  assert.equal(warnings.length, 1, "no warning with a watermark table, or with snapshot.mode never");
});
