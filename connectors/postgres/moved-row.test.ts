import assert from "node:assert/strict";
import { test } from "node:test";
import { readMovedRow } from "./moved-row.ts";

/** A scripted lookup: the row each find returns, whether the transaction is visible at each check. */
function scripted(rows: (string | undefined)[], visible: boolean[]) {
  const calls: string[] = [];
  return {
    calls,
    lookup: {
      find: async () => {
        calls.push("find");
        return rows.shift();
      },
      visible: async () => {
        calls.push("visible");
        return visible.shift() ?? false;
      },
      sleep: async (ms: number) => void calls.push(`sleep ${ms}`),
    },
  };
}

test("a row not found while its transaction is visible was deleted or moved since: not looked for again and again (a catch-up waited ~0.45 s per such change)", async () => {
  const { calls, lookup } = scripted([], [true]);
  assert.equal(await readMovedRow(lookup), undefined);
  assert.deepEqual(calls, ["find", "visible", "find"], "one more read after it is known visible, no waiting");
});

test("a row not found while its transaction is not visible yet is looked for again until it is", async () => {
  const { calls, lookup } = scripted([undefined, undefined, "row"], [false]);
  assert.equal(await readMovedRow(lookup), "row");
  assert.deepEqual(calls, ["find", "visible", "sleep 10", "find", "visible", "sleep 20", "find"]);
});

test("a transaction that becomes visible between the read and the check: the read after the check finds the row", async () => {
  const { calls, lookup } = scripted([undefined, "row"], [true]);
  assert.equal(await readMovedRow(lookup), "row");
  assert.deepEqual(calls, ["find", "visible", "find"]);
});

test("a transaction whose visibility cannot be told is looked for as before: ten reads, then given up", async () => {
  const { calls, lookup } = scripted([], []);
  assert.equal(await readMovedRow(lookup), undefined);
  assert.equal(calls.filter((c) => c === "find").length, 10);
});
