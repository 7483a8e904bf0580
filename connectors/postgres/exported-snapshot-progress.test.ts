import { test } from "node:test";
import assert from "node:assert/strict";
import type { ChangeEvent } from "../contracts.ts";
import { SnapshotMarkers } from "../common/snapshot-markers.ts";
import { ExportedSnapshotTracker } from "./exported-snapshot-progress.ts";
import type { SnapshotRow } from "./snapshot-reader.ts";

const table = (name: string, uniqueKey = true) => ({ schema: { schema: "s", table: name }, uniqueKey, keyIndexes: [0] }) as unknown as SnapshotRow["table"];
const a = table("a");
const b = table("b");
const row = (t: SnapshotRow["table"], id: number): SnapshotRow => ({ table: t, values: [String(id), "x"] });
const reset = (t: SnapshotRow["table"]): SnapshotRow => ({ table: t, values: null });
const eventOf = (r: SnapshotRow): ChangeEvent =>
  ({ op: r.values === null ? "t" : "r", schema: r.table.schema, key: {}, source: { snapshot: true } }) as unknown as ChangeEvent;

/** Takes rows as the source does (through the markers, which hold back each table's latest read) and returns the batch's events. */
function batch(tracker: ExportedSnapshotTracker, markers: SnapshotMarkers, rows: readonly SnapshotRow[]): ChangeEvent[] {
  const events: ChangeEvent[] = [];
  for (const r of rows) {
    tracker.taken(r);
    events.push(...markers.next(eventOf(r)));
  }
  tracker.handedOn(events);
  return events;
}

test("the progress names only rows handed on: a row the markers hold back is not counted until it is", () => {
  const tracker = new ExportedSnapshotTracker();
  const markers = new SnapshotMarkers(2);
  batch(tracker, markers, [row(a, 1), row(a, 2), row(b, 1), row(a, 3)]);
  // a:3 and b:1 are held back (each table's latest read).
  assert.deepEqual(tracker.progress(), { done: [], reading: [{ table: "s.a", lastKey: ["2"], rowsDone: 2 }] });
  batch(tracker, markers, [row(b, 2), reset(a)]);
  assert.deepEqual(tracker.progress(), { done: ["s.a"], reading: [{ table: "s.b", lastKey: ["1"], rowsDone: 1 }] });
  batch(tracker, markers, [reset(b)]);
  assert.deepEqual(tracker.progress(), { done: ["s.a", "s.b"], reading: [] });
});

test("a table without a unique key has no key to go on from", () => {
  const tracker = new ExportedSnapshotTracker();
  const keyless = table("k", false);
  batch(tracker, new SnapshotMarkers(1), [row(keyless, 1), row(keyless, 2)]);
  assert.deepEqual(tracker.progress(), { done: [], reading: [{ table: "s.k", lastKey: null, rowsDone: 1 }] });
});

test("the finished tables listed stay within a bound: those beyond it are left out (a resume reads them again)", () => {
  const tracker = new ExportedSnapshotTracker(12);
  const markers = new SnapshotMarkers(3);
  for (const name of ["a", "b", "c"]) {
    const t = table(name);
    batch(tracker, markers, [row(t, 1), reset(t)]);
  }
  assert.deepEqual(tracker.progress().done, ["s.a", "s.b"]);
});
