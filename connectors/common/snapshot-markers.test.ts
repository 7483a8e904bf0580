import assert from "node:assert/strict";
import { test } from "node:test";
import type { ChangeEvent, TableSchema } from "../contracts.ts";
import { SnapshotMarkers } from "./snapshot-markers.ts";

function table(name: string): TableSchema {
  return { source: "s", database: "d", schema: "public", table: name, sourceKind: "postgres", columns: [{ name: "id", dbType: "int4", nullable: false, primaryKeyIndex: 1 }], key: ["id"] };
}

function read(name: string, id: number): ChangeEvent {
  const schema = table(name);
  return {
    op: "r",
    key: { id },
    before: null,
    after: { id },
    source: { connector: "postgres", name: "s", db: "d", schema: "public", table: name, position: { commit: 10n, change: 10n }, txId: null, commitTimeMs: 1, snapshot: true },
    schema,
  };
}

function reset(name: string): ChangeEvent {
  return { ...read(name, 0), op: "t", key: {}, after: null };
}

const shown = (events: ChangeEvent[]) => events.map((e) => `${e.op}:${e.source.table}:${String(e.after?.id ?? "-")}:${e.source.snapshotMarker ?? "true"}`);

test("marks the snapshot's first and last reads and each table's first and last, with tables read in parallel", () => {
  const markers = new SnapshotMarkers(3);
  const input = [read("a", 1), read("b", 1), read("a", 2), read("b", 2), read("a", 3), reset("a"), read("c", 1), read("b", 3), reset("b"), reset("c")];
  const out = [...input.flatMap((event) => markers.next(event)), ...markers.flush()];
  assert.deepEqual(shown(out), [
    "r:a:1:first",
    "r:b:1:first_in_data_collection",
    "r:a:2:true",
    "r:a:3:last_in_data_collection",
    "t:a:-:true",
    "r:b:2:true",
    "r:b:3:last_in_data_collection",
    "t:b:-:true",
    "r:c:1:last",
    "t:c:-:true",
  ]);
  assert.equal(out.length, input.length, "nothing lost, nothing doubled");
  for (const name of ["a", "b", "c"]) {
    const ofTable = (events: ChangeEvent[]) => events.filter((e) => e.source.table === name).map((e) => `${e.op}${String(e.after?.id ?? "")}`);
    assert.deepEqual(ofTable(out), ofTable(input), `table ${name} keeps its order (tables are separate topics)`);
  }
});

test("an empty table has only its reset; what is held at the end is handed on", () => {
  const markers = new SnapshotMarkers(2);
  assert.deepEqual(shown(markers.next(reset("empty"))), ["t:empty:-:true"]);
  assert.deepEqual(markers.next(read("a", 1)), [], "the latest read of a table waits for the next one or the reset");
  assert.deepEqual(shown(markers.flush()), ["r:a:1:first"]);
  const streamed = { ...read("a", 2), op: "c" as const, source: { ...read("a", 2).source, snapshot: false } };
  assert.deepEqual(markers.next(streamed), [streamed], "anything else passes through");
});
