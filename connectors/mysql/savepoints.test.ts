import assert from "node:assert/strict";
import { test } from "node:test";
import { applySavepoint, rollBackToSavepoint, savepointStatement } from "./savepoints.ts";
import type { Savepoint } from "./savepoints.ts";

test("savepoint statements are read as the binlog logs them, names unquoted and in lower case", () => {
  assert.deepEqual(savepointStatement("SAVEPOINT `s1`"), { kind: "set", name: "s1" });
  assert.deepEqual(savepointStatement("ROLLBACK TO `Odd``name`"), { kind: "rollback", name: "odd`name" });
  assert.deepEqual(savepointStatement("rollback work to savepoint S2"), { kind: "rollback", name: "s2" });
  assert.deepEqual(savepointStatement("RELEASE SAVEPOINT `s1`"), { kind: "release", name: "s1" });
  assert.equal(savepointStatement("ROLLBACK"), null);
  assert.equal(savepointStatement("XA ROLLBACK X'01',X'',1"), null);
});

test("ROLLBACK TO gives the tables changed since its savepoint and drops the later savepoints; an unknown one gives every changed table", () => {
  const savepoints: Savepoint[] = [];
  const change = (table: string) => savepoints.forEach((s) => s.tables.add(table));
  applySavepoint(savepoints, { kind: "set", name: "a" });
  change("d.x");
  applySavepoint(savepoints, { kind: "set", name: "b" });
  change("d.y");
  assert.deepEqual(rollBackToSavepoint(savepoints, "b", ["d.x", "d.y"]).sort(), ["d.y"]);
  assert.deepEqual(rollBackToSavepoint(savepoints, "b", ["d.x", "d.y"]), [], "nothing changed since the last rollback to it");
  assert.deepEqual(rollBackToSavepoint(savepoints, "a", ["d.x", "d.y"]).sort(), ["d.x", "d.y"]);
  assert.deepEqual(savepoints.map((s) => s.name), ["a"], "b is gone");
  applySavepoint(savepoints, { kind: "release", name: "a" });
  assert.deepEqual(rollBackToSavepoint(savepoints, "a", ["d.x"]), ["d.x"], "a released (or set before decoding began): every changed table");
});
