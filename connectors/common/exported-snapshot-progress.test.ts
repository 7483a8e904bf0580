import { test } from "node:test";
import assert from "node:assert/strict";
import type { ChangeEvent } from "../contracts.ts";
import { SnapshotMarkers } from "./snapshot-markers.ts";
import { ExportedSnapshotTracker, resumedSnapshotTasks } from "./exported-snapshot-progress.ts";
import type { SnapshotKey } from "./exported-snapshot-progress.ts";

interface Row {
  readonly table: string;
  /** "reset": the table's reset; null: a row without a key. */
  readonly key: SnapshotKey | "reset";
}
const row = (table: string, id: number): Row => ({ table, key: [String(id)] });
const reset = (table: string): Row => ({ table, key: "reset" });
const eventOf = (r: Row): ChangeEvent =>
  ({ op: r.key === "reset" ? "t" : "r", schema: { schema: "s", table: r.table }, key: {}, source: { snapshot: true } }) as unknown as ChangeEvent;

/** Takes rows as a source does (through the markers, which hold back each table's latest read) and returns the batch's events. */
function batch(tracker: ExportedSnapshotTracker, markers: SnapshotMarkers, rows: readonly Row[]): ChangeEvent[] {
  const events: ChangeEvent[] = [];
  for (const r of rows) {
    if (r.key !== "reset") tracker.taken(`s.${r.table}`, r.key);
    events.push(...markers.next(eventOf(r)));
  }
  tracker.handedOn(events);
  return events;
}

test("the progress names only rows handed on: a row the markers hold back is not counted until it is", () => {
  const tracker = new ExportedSnapshotTracker();
  const markers = new SnapshotMarkers(2);
  batch(tracker, markers, [row("a", 1), row("a", 2), row("b", 1), row("a", 3)]);
  // a:3 and b:1 are held back (each table's latest read).
  assert.deepEqual(tracker.progress(), { done: [], reading: [{ table: "s.a", lastKey: ["2"], rowsDone: 2 }] });
  batch(tracker, markers, [row("b", 2), reset("a")]);
  assert.deepEqual(tracker.progress(), { done: ["s.a"], reading: [{ table: "s.b", lastKey: ["1"], rowsDone: 1 }] });
  batch(tracker, markers, [reset("b")]);
  assert.deepEqual(tracker.progress(), { done: ["s.a", "s.b"], reading: [] });
});

test("a table without a unique key has no key to go on from", () => {
  const tracker = new ExportedSnapshotTracker();
  batch(tracker, new SnapshotMarkers(1), [{ table: "k", key: null }, { table: "k", key: null }]);
  assert.deepEqual(tracker.progress(), { done: [], reading: [{ table: "s.k", lastKey: null, rowsDone: 1 }] });
});

test("the finished tables listed stay within a bound: those beyond it are left out (a resume reads them again)", () => {
  const tracker = new ExportedSnapshotTracker(12);
  const markers = new SnapshotMarkers(3);
  for (const name of ["a", "b", "c"]) batch(tracker, markers, [row(name, 1), reset(name)]);
  assert.deepEqual(tracker.progress().done, ["s.a", "s.b"]);
});

test("the resumed tasks: the table part-way through first, after its last key with the interrupted snapshot's reset version; the rest whole, the largest first", () => {
  const progress = { done: ["s.a"], reading: [{ table: "s.b", lastKey: ["7"], rowsDone: 7 }] };
  const tasks = resumedSnapshotTasks(progress, [{ name: "s.c", keyLength: 1, estimatedRows: 10 }, { name: "s.d", keyLength: 1, estimatedRows: 50 }, { name: "s.b", keyLength: 1, estimatedRows: 20 }], 99n, 1000);
  assert.deepEqual(
    tasks.map((t) => [t.table, t.lastKey, t.rowsDone, t.resetVersion, t.origin]),
    [
      ["s.b", ["7"], 7, "99", "initial"],
      ["s.d", null, 0, null, "initial"],
      ["s.c", null, 0, null, "initial"],
    ],
  );
  // A key of another length (the table's key changed meanwhile): read whole, its reset still below the rows stored.
  const [changed] = resumedSnapshotTasks(progress, [{ name: "s.b", keyLength: 2, estimatedRows: null }], 99n);
  assert.deepEqual([changed!.lastKey, changed!.rowsDone, changed!.resetVersion], [null, 0, "99"]);
});

test("a key of other columns (the table's key changed meanwhile, same length): read whole, not after a key of the old columns", () => {
  const tracker = new ExportedSnapshotTracker();
  const read = { op: "r", schema: { schema: "s", table: "b", key: ["id"] }, key: {}, source: { snapshot: true } } as unknown as ChangeEvent;
  tracker.taken("s.b", ["7"]);
  tracker.handedOn([read]);
  const progress = tracker.progress();
  assert.deepEqual(progress.reading, [{ table: "s.b", lastKey: ["7"], rowsDone: 1, keyColumns: ["id"] }]);
  const [same] = resumedSnapshotTasks(progress, [{ name: "s.b", keyLength: 1, keyColumns: ["id"], estimatedRows: null }], 99n);
  assert.deepEqual([same!.lastKey, same!.rowsDone], [["7"], 1]);
  const [changed] = resumedSnapshotTasks(progress, [{ name: "s.b", keyLength: 1, keyColumns: ["uuid"], estimatedRows: null }], 99n);
  assert.deepEqual([changed!.lastKey, changed!.rowsDone, changed!.resetVersion], [null, 0, "99"]);
});
