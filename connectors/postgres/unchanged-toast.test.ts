import { test } from "node:test";
import assert from "node:assert/strict";
import type { ChangeEvent, Op, Row, TableSchema } from "../contracts.ts";
import { UNCHANGED } from "../contracts.ts";
import { foldWindowChange, lacksValues, PartialUpdates, windowRow } from "./unchanged-toast.ts";

const schema: TableSchema = {
  source: "s",
  database: "db",
  schema: "public",
  table: "docs",
  sourceKind: "postgres",
  columns: [
    { name: "id", dbType: "integer", nullable: false, primaryKeyIndex: 1 },
    { name: "v", dbType: "integer", nullable: false },
    { name: "doc", dbType: "text", nullable: true },
    { name: "big", dbType: "text", nullable: true },
  ],
  key: ["id"],
};

function event(op: Op, after: Row | null, commit: bigint, change = commit - 10n): ChangeEvent {
  return {
    op,
    key: { id: 1 },
    before: null,
    after,
    source: { connector: "postgres", name: "s", db: "db", schema: "public", table: "docs", position: { commit, change }, txId: null, commitTimeMs: 0, snapshot: op === "r" },
    schema,
  };
}

const read = event("r", { id: 1, v: 1, doc: "d0", big: "b0" }, 900n, 50n);

test("inside the window: the update's row with the columns no change carried taken from the chunk row, at the last change's commit", () => {
  let changes = foldWindowChange(undefined, event("u", { id: 1, v: 2, doc: UNCHANGED, big: UNCHANGED }, 100n));
  changes = foldWindowChange(changes, event("u", { id: 1, v: 3, doc: "d1", big: UNCHANGED }, 200n));
  changes = foldWindowChange(changes, event("u", { id: 1, v: 4, doc: UNCHANGED, big: UNCHANGED }, 300n));
  const row = windowRow(read, changes)!;
  assert.deepEqual(row.after, { id: 1, v: 4, doc: "d1", big: "b0" });
  assert.equal(row.op, "r");
  assert.deepEqual(row.source.position, { commit: 900n, change: 300n });
});

test("inside the window: nothing to hand on after a whole row or a delete", () => {
  const whole = foldWindowChange(undefined, event("c", { id: 1, v: 2, doc: "d", big: "b" }, 100n));
  assert.equal(windowRow(read, foldWindowChange(whole, event("u", { id: 1, v: 3, doc: UNCHANGED, big: UNCHANGED }, 200n))), null);
  const deleted = foldWindowChange(foldWindowChange(undefined, event("u", { id: 1, v: 2, doc: UNCHANGED, big: UNCHANGED }, 100n)), event("d", null, 200n));
  assert.equal(windowRow(read, deleted), null);
  // A key moved onto the row after its delete comes as a create that may lack columns.
  const moved = foldWindowChange(deleted, event("c", { id: 1, v: 5, doc: UNCHANGED, big: "b9" }, 300n));
  assert.deepEqual(windowRow(read, moved)!.after, { id: 1, v: 5, doc: "d0", big: "b9" });
});

test("before the window: the latest partial update above the chunk's version outranks it, until pruned; the number of keys kept is bounded", () => {
  let full = 0;
  const kept = new PartialUpdates(2, () => full++);
  kept.record("public.docs", "k1", event("u", {}, 100n, 90n));
  kept.record("public.docs", "k1", event("u", {}, 200n, 190n));
  kept.record("public.docs", "k2", event("u", {}, 300n, 290n));
  kept.record("public.docs", "k3", event("u", {}, 400n, 390n));
  assert.equal(full, 1);
  assert.equal(kept.above("public.docs", "k1", 150n), 200n);
  assert.equal(kept.above("public.docs", "k1", 190n), null, "an update at or below the chunk's version is below the chunk row");
  assert.equal(kept.above("public.docs", "k3", 0n), null, "not kept beyond the bound");
  kept.prune(250n);
  assert.equal(kept.above("public.docs", "k1", 0n), null);
  assert.equal(kept.above("public.docs", "k2", 0n), 300n);
  kept.record("public.docs", "k3", event("u", {}, 400n, 390n));
  assert.equal(kept.above("public.docs", "k3", 0n), 400n);
  kept.forget("public.docs");
  assert.equal(kept.above("public.docs", "k2", 0n), null);
});

test("an unchanged column the before-image holds (REPLICA IDENTITY FULL) is not missing", () => {
  const full = { ...event("u", { id: 1, v: 2, doc: UNCHANGED, big: UNCHANGED }, 100n), before: { id: 1, v: 1, doc: "d0", big: "b0" } };
  assert.equal(lacksValues(full), false);
  assert.equal(windowRow(read, foldWindowChange(undefined, full)), null);
  assert.equal(lacksValues(event("u", { id: 1, v: 2, doc: UNCHANGED, big: "b" }, 100n)), true);
});
