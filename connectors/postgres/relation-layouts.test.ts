import { test } from "node:test";
import assert from "node:assert/strict";
import pino from "pino";
import type { Checkpoint, Position } from "../contracts.ts";
import { decodeResume, encodeResume } from "../common/incremental-snapshot-state.ts";
import { relationLayoutsOf, RelationLayouts } from "./relation-layouts.ts";
import type { RelationLayout } from "./relation-layouts.ts";
import { SNAPSHOT_INCOMPLETE } from "./positions.ts";

const logger = pino({ level: "silent" });
const at = (change: number, commit = change): Position => ({ commit: BigInt(commit), change: BigInt(change) });
const layout = (table: string, column = "note"): RelationLayout => ({
  schema: "public",
  table,
  columns: [
    { number: 1, name: "id", typeOid: 23, typeModifier: -1 },
    { number: 3, name: column, typeOid: 25, typeModifier: -1 },
  ],
});
/** The checkpoint a source hands on at `position`, as PostgresSource.batch builds it (no snapshot tasks). */
const checkpoint = (layouts: RelationLayouts, position: Position): Checkpoint => {
  const resume = encodeResume(layouts.rebase(decodeResume(position.resume).base, position), []);
  return { source: "pg", position: resume === undefined ? position : { ...position, resume } };
};

test("the layouts published through a checkpoint's position round-trip through it; later ones wait for a later checkpoint", () => {
  const layouts = new RelationLayouts(logger);
  assert.equal(layouts.restore(null), null, "no checkpoint: unknown");
  assert.equal(checkpoint(layouts, at(5)).position.resume, undefined, "nothing published: the checkpoint is as before");
  layouts.note(16384, layout("orders"), null);
  layouts.note(16385, layout("items"), at(20, 30));
  const first = checkpoint(layouts, at(10));
  assert.deepEqual(relationLayoutsOf(first.position), new Map([[16384, layout("orders")]]));
  // Within the transaction, before the change the Relation message precedes: not yet.
  assert.deepEqual([...relationLayoutsOf(checkpoint(layouts, at(19, 30)).position)!.keys()], [16384]);
  const second = checkpoint(layouts, at(30));
  assert.deepEqual(relationLayoutsOf(second.position), new Map([[16384, layout("orders")], [16385, layout("items")]]));
  // A resume from the older checkpoint compares with what was published through it.
  assert.deepEqual(layouts.restore(first), new Map([[16384, layout("orders")]]));
});

test("a layout counts only once what it set off is done, and later layouts wait behind it", async () => {
  const layouts = new RelationLayouts(logger);
  layouts.restore({ source: "pg", position: checkpoint(new RelationLayouts(logger), at(1)).position });
  layouts.note(1, layout("orders"), at(5));
  layouts.note(1, layout("moved"), at(10), new Promise<void>((resolve) => setTimeout(resolve, 10)));
  layouts.note(2, layout("items"), at(12));
  const before = relationLayoutsOf(checkpoint(layouts, at(20)).position);
  assert.deepEqual(before, new Map([[1, layout("orders")]]), "the rename's read not yet asked for: a crash resumes with the old name and tells it again");
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.deepEqual(relationLayoutsOf(checkpoint(layouts, at(21)).position), new Map([[1, layout("moved")], [2, layout("items")]]));
  layouts.note(1, null, at(25));
  assert.deepEqual(relationLayoutsOf(checkpoint(layouts, at(25)).position), new Map([[2, layout("items")]]), "no longer captured: forgotten");
});

test("a checkpoint of the exported initial snapshot keeps its own resume text; snapshot tasks ride after the layouts", () => {
  const layouts = new RelationLayouts(logger);
  layouts.note(7, layout("orders"), null);
  assert.equal(layouts.rebase(SNAPSHOT_INCOMPLETE, at(3)), SNAPSHOT_INCOMPLETE);
  const task = { id: "t1", table: "public.orders", where: null, lastKey: null, rowsDone: 0, rowsEstimated: null, resetVersion: null, requestedAtMs: 1, startedAtMs: null, origin: "cli" };
  const resume = encodeResume(layouts.rebase(undefined, at(3)), [task]);
  const position = { ...at(3), resume: resume! };
  assert.deepEqual(decodeResume(resume).tasks, [task]);
  assert.deepEqual(relationLayoutsOf(position), new Map([[7, layout("orders")]]));
});

test("a checkpoint without layouts, or with unreadable ones, is unknown; pruned relations are left out", () => {
  assert.equal(relationLayoutsOf(at(1)), null);
  assert.equal(relationLayoutsOf({ ...at(1), resume: "relations:{not json" }), null);
  assert.equal(relationLayoutsOf({ ...at(1), resume: 'relations:[[1,"public","t",[["x"]]]]' }), null);
  const layouts = new RelationLayouts(logger);
  layouts.note(1, layout("a"), null);
  layouts.note(2, layout("b"), null);
  const stored = checkpoint(layouts, at(2));
  layouts.restore(stored);
  layouts.prune((relid) => relid === 2);
  assert.deepEqual(relationLayoutsOf(checkpoint(layouts, at(3)).position), new Map([[2, layout("b")]]));
});

test("a table the record lacks (quiet since an upgrade, snapshot.mode never) is seeded from the catalog and counts from where the catalog was read, between changes by position", async () => {
  const layouts = new RelationLayouts(logger);
  // A checkpoint from before the record was kept: nothing known.
  assert.equal(layouts.restore({ source: "pg", position: at(1) }), null);
  assert.deepEqual(layouts.missing([1, 2]), [1, 2]);
  layouts.seed(new Map([[1, layout("orders_v2")], [2, layout("quiet")]]), at(50));
  // The stream from the checkpoint: relation 1 still under its old name at 10 (renamed later, before the catalog read).
  layouts.note(1, layout("orders"), at(10));
  assert.deepEqual(relationLayoutsOf(checkpoint(layouts, at(20)).position), new Map([[1, layout("orders")]]), "below the catalog read: the name the stream published there, no seed");
  const seeded = checkpoint(layouts, at(60));
  assert.deepEqual(relationLayoutsOf(seeded.position), new Map([[1, layout("orders_v2")], [2, layout("quiet")]]), "from the catalog read on: the quiet table too");
  // A change after the catalog read wins over the seed.
  layouts.note(2, layout("quiet_renamed"), at(70));
  assert.deepEqual(relationLayoutsOf(checkpoint(layouts, at(70)).position)!.get(2), layout("quiet_renamed"));
  // Restarting from the seeded checkpoint: the quiet table renamed while stopped is compared with its seeded name.
  assert.deepEqual(layouts.restore(seeded)!.get(2), layout("quiet"));
  assert.deepEqual(layouts.missing([1, 2, 3]), [3]);
});

test("a seed waits behind a change whose read is not yet asked for, when the change is below it", async () => {
  const layouts = new RelationLayouts(logger);
  layouts.restore(null);
  layouts.seed(new Map([[2, layout("quiet")]]), at(50));
  layouts.note(1, layout("moved"), at(10), new Promise<void>((resolve) => setTimeout(resolve, 10)));
  assert.equal(relationLayoutsOf(checkpoint(layouts, at(60)).position), null);
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.deepEqual(relationLayoutsOf(checkpoint(layouts, at(60)).position), new Map([[1, layout("moved")], [2, layout("quiet")]]));
});
