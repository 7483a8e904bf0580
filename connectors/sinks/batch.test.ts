import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { UNCHANGED } from "../contracts.ts";
import type { SinkChange } from "../contracts.ts";
import { collapseChanges } from "./batch.ts";
import { keyId } from "./keys.ts";
import { Events, tableSchema } from "./test-events.ts";

const schema = tableSchema("t", [
  ["id", "integer"],
  ["v", "text"],
  ["toast", "text"],
]);

/** The same changes with their topic offsets reversed: arrival order and offsets must not matter. */
function shuffled(changes: SinkChange[]): SinkChange[] {
  return [...changes].reverse().map((change, i) => ({ ...change, origin: { ...change.origin, offset: BigInt(i) } }));
}

describe("collapseChanges", () => {
  test("keeps the last change per key by version, whatever the arrival order or offsets", () => {
    const e = new Events(schema);
    const changes = [e.insert(5n, { id: 1, v: "a", toast: "x" }), e.update(9n, { id: 1, v: "c", toast: "x" }), e.update(7n, { id: 1, v: "b", toast: "x" })];
    for (const batch of [changes, shuffled(changes)]) {
      const [table] = collapseChanges(batch).tables;
      assert.equal(table?.rows.length, 1);
      assert.equal(table?.rows[0]?.version, 9n);
      assert.equal(table?.rows[0]?.row?.["v"], "c");
      assert.deepEqual([...(table?.rows[0]?.indices ?? [])].sort(), [0, 1, 2]);
    }
  });

  test("an unchanged-TOAST column takes the value of an earlier change in the batch", () => {
    const e = new Events(schema);
    const [table] = collapseChanges([
      e.insert(1n, { id: 1, v: "a", toast: "first" }),
      e.update(2n, { id: 1, v: "b", toast: "second" }),
      e.update(3n, { id: 1, v: "c", toast: UNCHANGED }),
    ]).tables;
    assert.deepEqual(table?.rows[0]?.row, { id: 1, v: "c", toast: "second" });
  });

  test("UNCHANGED stays when no earlier change has the value, or the earlier one was a delete", () => {
    const e = new Events(schema);
    const [table] = collapseChanges([e.delete(1n, { id: 1 }), e.update(3n, { id: 1, v: "c", toast: UNCHANGED }), e.update(2n, { id: 2, v: "x", toast: UNCHANGED })]).tables;
    assert.deepEqual(
      table?.rows.map((r) => r.row?.["toast"]),
      [UNCHANGED, UNCHANGED],
    );
  });

  test("a truncate drops older changes of its table and keeps newer ones; the newest truncate wins", () => {
    const e = new Events(schema);
    const [table] = collapseChanges([
      e.insert(1n, { id: 1, v: "a", toast: null }),
      e.truncate(5n),
      e.insert(6n, { id: 2, v: "b", toast: null }),
      e.truncate(3n),
      e.insert(4n, { id: 3, v: "c", toast: null }),
    ]).tables;
    assert.equal(table?.truncate?.version, 5n);
    assert.deepEqual([...(table?.truncate?.indices ?? [])].sort(), [0, 1, 3, 4]);
    assert.deepEqual(table?.rows.map((r) => r.id), ["2"]);
  });

  test("an update that moves the key deletes the old key and upserts the new one", () => {
    const e = new Events(schema);
    const [table] = collapseChanges([e.update(2n, { id: 2, v: "moved", toast: null }, { id: 1, v: "a", toast: null })]).tables;
    assert.deepEqual(
      table?.rows.map((r) => [r.id, r.deleted]),
      [
        ["1", true],
        ["2", false],
      ],
    );
  });

  test("groups by table, skips tables the filter refuses, reports changes without a key", () => {
    const a = new Events(schema);
    const b = new Events(tableSchema("other", [["id", "integer"]]));
    const { tables, skipped } = collapseChanges(
      [a.insert(1n, { id: 1, v: null, toast: null }), b.insert(1n, { id: 1 }), a.insert(2n, { id: null, v: null, toast: null })],
      (table) => table.table === "t",
    );
    assert.deepEqual(skipped, [1]);
    assert.equal(tables.length, 1);
    assert.deepEqual(tables[0]?.invalid.map((i) => [i.index, i.error.column]), [[2, "id"]]);
  });

  test("rows come out in version order when a key changes again after other keys", () => {
    const e = new Events(schema);
    const [table] = collapseChanges([
      e.insert(1n, { id: 1, v: "a", toast: null }),
      e.insert(2n, { id: 2, v: "b", toast: null }),
      e.update(3n, { id: 1, v: "c", toast: null }),
      e.insert(4n, { id: 3, v: "d", toast: null }),
    ]).tables;
    assert.deepEqual(
      table?.rows.map((r) => [r.id, r.version]),
      [
        ["2", 2n],
        ["1", 3n],
        ["3", 4n],
      ],
    );
  });

  test("a table's changes under several schema objects, between other tables' changes, form one group", () => {
    const a = new Events(schema);
    const b = new Events(tableSchema("other", [["id", "integer"]]));
    const evolved = tableSchema("t", [
      ["id", "integer"],
      ["v", "text"],
      ["toast", "text"],
      ["added", "text"],
    ]);
    const first = a.insert(1n, { id: 1, v: "a", toast: null });
    const other = b.insert(2n, { id: 1 });
    a.schema = evolved;
    const second = a.insert(3n, { id: 2, v: "b", toast: null, added: "x" });
    a.schema = { ...schema };
    const third = a.insert(4n, { id: 3, v: "c", toast: null });
    const { tables, skipped } = collapseChanges([first, other, second, other, third], (table) => table.table === "t");
    assert.deepEqual(skipped, [1, 3]);
    assert.equal(tables.length, 1);
    assert.deepEqual(tables[0]?.rows.map((r) => [r.id, r.indices]), [
      ["1", [0]],
      ["2", [2]],
      ["3", [4]],
    ]);
    assert.deepEqual(tables[0]?.schemas, [schema, evolved]);
  });

  test("integer keys collapse across number and bigint representations", () => {
    assert.equal(keyId({ id: 5 }, ["id"]), keyId({ id: 5n }, ["id"]));
    assert.equal(keyId({ a: 1, b: "x" }, ["a", "b"]), '[1,"x"]');
    assert.notEqual(keyId({ a: "1", b: "x" }, ["a", "b"]), keyId({ a: 1, b: "x" }, ["a", "b"]));
    assert.notEqual(keyId({ a: "a,b", b: "c" }, ["a", "b"]), keyId({ a: "a", b: "b,c" }, ["a", "b"]));
  });
});
