/** A data topic created again after a deletion: its table's online snapshot is asked for and a warning lasts (recreated-topics.ts). */
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { test } from "node:test";
import type { OnlineSnapshotting, SnapshotTask } from "../connectors/common/incremental-snapshot-state.ts";
import { SluiceError } from "../connectors/errors.ts";
import { createLogger } from "../runtime/logger.ts";
import { RecreatedTopics } from "./recreated-topics.ts";

function logged() {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger("info", new Writable({ write: (chunk: Buffer, _e, done) => (lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>), done()) }));
  return { logger, lines };
}

function snapshotsAnswering(answer: (table: string) => Promise<{ task: SnapshotTask }>) {
  const asked: [string, string | null, string][] = [];
  const snapshots = {
    plan: async () => Promise.reject(new Error("not asked")),
    request: async (table: string, where: string | null, origin: string) => (asked.push([table, where, origin]), answer(table)),
    list: () => ({ tasks: [], failed: [] }),
    stored: () => null,
  } as unknown as OnlineSnapshotting;
  return { snapshots, asked };
}

test("a data topic created again: an online snapshot of its table is requested from its source, warned and kept in the source's warnings", async () => {
  const { snapshots, asked } = snapshotsAnswering(async (table) => ({ task: { id: "t-1", table } as unknown as SnapshotTask }));
  const { logger, lines } = logged();
  const recreated = new RecreatedTopics({ deployment: "shop", sources: ["pg", "my"], snapshots: (source) => (source === "pg" ? snapshots : "not captured here"), logger });
  await recreated.recreated("shop.pg.public.orders");
  assert.deepEqual(asked, [["public.orders", null, "topic-recreated"]]);
  const [warning, ...others] = recreated.warnings("pg");
  assert.equal(others.length, 0);
  assert.equal(warning!.code, "TOPIC_RECREATED");
  assert.equal(warning!["table"], "public.orders");
  assert.equal(warning!["snapshotRequested"], true);
  assert.match(warning!.message, /topic shop\.pg\.public\.orders was deleted .* an online snapshot of public\.orders was requested \(task t-1/);
  assert.deepEqual(recreated.warnings("my"), []);
  assert.ok(lines.some((l) => l["code"] === "TOPIC_RECREATED" && l["table"] === "public.orders" && l["level"] === "warn"), "warned");

  await recreated.recreated("shop.outbox.order");
  await recreated.recreated("other.pg.public.orders");
  assert.equal(recreated.warnings("pg").length, 1, "not a data topic of this deployment's sources: nothing asked");
  assert.equal(asked.length, 1);
  assert.ok(lines.some((l) => l["code"] === "TOPIC_RECREATED" && l["topic"] === "shop.outbox.order" && /no table's topic/.test(String(l["msg"]))), "an outbox topic warned, nothing asked");
});

test("a snapshot that cannot be requested (source not ready, a kind without online snapshots): the warning names the table and the exact sluice snapshot command", async () => {
  const { snapshots } = snapshotsAnswering(async () => Promise.reject(new SluiceError("source pg is not connected", { code: "SOURCE_UNAVAILABLE", retriable: true })));
  const { logger } = logged();
  const recreated = new RecreatedTopics({ deployment: "shop", sources: ["pg", "my"], snapshots: (source) => (source === "pg" ? snapshots : 'source "my" (mysql) does not take online snapshots yet'), logger });
  await recreated.recreated("shop.pg.public.orders");
  await recreated.recreated("shop.my.inventory.items");
  const [pg] = recreated.warnings("pg");
  assert.equal(pg!["snapshotRequested"], false);
  assert.match(pg!.message, /could not be requested \(source pg is not connected\): run sluice snapshot -c FILE --table public\.orders --execute/);
  const [my] = recreated.warnings("my");
  assert.equal(my!["command"], "sluice snapshot -c FILE --table inventory.items --execute");
  assert.match(my!.message, /does not take online snapshots yet/);
});

test("a topic created by a table's queued or running whole-table snapshot (the initial one after its topics were deleted): no second snapshot is requested and nothing is warned", async () => {
  // Its first chunk recorded by the engine (lastKey set) before capture writes the chunk's rows; the stored checkpoint has none.
  const running = { id: "initial-1", table: "public.orders", where: null, lastKey: ["10"], origin: "initial", startedAtMs: 1 } as unknown as SnapshotTask;
  const partial = { id: "cli-1", table: "public.items", where: "id < 10", origin: "cli", startedAtMs: null } as unknown as SnapshotTask;
  const asked: string[] = [];
  const snapshots = {
    plan: async () => Promise.reject(new Error("not asked")),
    request: async (table: string) => (asked.push(table), { task: { id: "t-2", table } as unknown as SnapshotTask }),
    list: () => ({ tasks: [running, partial], failed: [] }),
    stored: (id: string) => (id === running.id ? { ...running, lastKey: null } : null),
  } as unknown as OnlineSnapshotting;
  const { logger, lines } = logged();
  const recreated = new RecreatedTopics({ deployment: "shop", sources: ["pg"], snapshots: () => snapshots, logger });
  await recreated.recreated("shop.pg.public.orders");
  assert.deepEqual(asked, [], "the queued snapshot writes every row: none asked");
  assert.deepEqual(recreated.warnings("pg"), []);
  assert.ok(!lines.some((l) => l["level"] === "warn"), "not warned");
  await recreated.recreated("shop.pg.public.items");
  assert.deepEqual(asked, ["public.items"], "a snapshot with a WHERE condition does not read the whole table: one is asked");
  assert.equal(recreated.warnings("pg").length, 1);
});

test("a topic created by a whole-table snapshot that had read part of the table (resumed after the topic was deleted while stopped): the rows before its last key are missing, so the table is asked for again and warned", async () => {
  // Stored with rows up to 41 handed on before the stop; its first chunk since recorded up to 80.
  const resumed = { id: "initial-2", table: "public.orders", where: null, lastKey: ["80"], origin: "initial", startedAtMs: 1 } as unknown as SnapshotTask;
  const asked: string[] = [];
  const snapshots = {
    plan: async () => Promise.reject(new Error("not asked")),
    request: async (table: string) => (asked.push(table), { task: { id: "t-3", table } as unknown as SnapshotTask }),
    list: () => ({ tasks: [resumed], failed: [] }),
    stored: () => ({ ...resumed, lastKey: ["41"] }),
  } as unknown as OnlineSnapshotting;
  const { logger, lines } = logged();
  const recreated = new RecreatedTopics({ deployment: "shop", sources: ["pg"], snapshots: () => snapshots, logger });
  await recreated.recreated("shop.pg.public.orders");
  assert.deepEqual(asked, ["public.orders"]);
  assert.equal(recreated.warnings("pg").length, 1);
  assert.ok(lines.some((l) => l["level"] === "warn" && l["code"] === "TOPIC_RECREATED"), "warned");
});
