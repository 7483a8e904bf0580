/**
 * EnumLabels keeps a table's renames until its read again is settled: a request that failed is made again at the next
 * look instead of the rename being forgotten (the labels are recorded at the look that saw them).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { TableRef } from "./catalog.ts";
import { EnumLabels } from "./enum-labels.ts";

function table(relid: number, name: string): TableRef {
  return { relid, schema: "s", table: name } as TableRef;
}

/** A catalog whose enum label rows (table relid, pg_enum oid, text) are `rows()` at each query, of the tables asked for. */
function catalog(rows: () => { relid: number; oid: number; label: string }[]) {
  return {
    query: async (_sql: string, [relids]: [number[]]) => ({
      rows: rows()
        .filter((row) => relids.includes(row.relid))
        .map((row) => ({ relid: String(row.relid), label_oid: String(row.oid), label: row.label })),
    }),
  } as unknown as Parameters<EnumLabels["renamed"]>[0];
}

test("a table whose read again could not be queued is told again at the next looks until it is settled; a settled one is not", async () => {
  const a = table(1, "a");
  const b = table(2, "b");
  let label = "sad";
  const db = catalog(() => [
    { relid: 1, oid: 100, label },
    { relid: 2, oid: 100, label },
  ]);
  const labels = new EnumLabels();
  assert.deepEqual(await labels.renamed(db, [a, b]), [], "the first look only records");
  label = "blue";
  const first = await labels.renamed(db, [a, b]);
  assert.deepEqual(first.map((r) => [r.table.table, r.labels]), [["a", ["sad -> blue"]], ["b", ["sad -> blue"]]]);
  // a's request failed, b's was queued.
  assert.equal(labels.failed(a), 1);
  labels.settled(b);
  const second = await labels.renamed(db, [a, b]);
  assert.deepEqual(second.map((r) => [r.table.table, r.labels]), [["a", ["sad -> blue"]]]);
  assert.equal(labels.failed(a), 2);
  // Renamed again before a's was queued: both renames are told.
  label = "green";
  const third = await labels.renamed(db, [a, b]);
  assert.deepEqual(third.map((r) => [r.table.table, r.labels]), [["a", ["sad -> blue", "blue -> green"]], ["b", ["blue -> green"]]]);
  labels.settled(a);
  labels.settled(b);
  assert.deepEqual(await labels.renamed(db, [a, b]), []);
});

test("a table no longer captured is forgotten with its unsettled renames", async () => {
  const a = table(1, "a");
  let label = "sad";
  const db = catalog(() => [{ relid: 1, oid: 100, label }]);
  const labels = new EnumLabels();
  await labels.renamed(db, [a]);
  label = "blue";
  assert.equal((await labels.renamed(db, [a])).length, 1);
  assert.deepEqual(await labels.renamed(db, []), []);
  assert.deepEqual(await labels.renamed(db, [a]), [], "taken up again, it starts from its labels then");
});

test("the labels stored with a checkpoint keep a rename whose read again is not settled as it was, so the next process is told it; restored labels are compared at the first look", async () => {
  const a = table(1, "a");
  let label = "sad";
  const db = catalog(() => [{ relid: 1, oid: 100, label }, { relid: 1, oid: 101, label: "ok" }]);
  const labels = new EnumLabels();
  await labels.renamed(db, [a]);
  assert.deepEqual(labels.saved(), new Map([[100, "sad"], [101, "ok"]]));
  label = "blue";
  assert.deepEqual((await labels.renamed(db, [a])).map((r) => r.labels), [["sad -> blue"]]);
  labels.failed(a);
  assert.deepEqual(labels.saved(), new Map([[100, "sad"], [101, "ok"]]), "not settled: stored as before the rename");

  const next = new EnumLabels();
  next.restore(labels.saved());
  assert.deepEqual((await next.renamed(db, [a])).map((r) => r.labels), [["sad -> blue"]], "the next process is told the rename");
  next.settled(a);
  assert.deepEqual(next.saved(), new Map([[100, "blue"], [101, "ok"]]));
});
