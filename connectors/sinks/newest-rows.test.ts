import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { keyId } from "./keys.ts";
import { integerKey, NewestRows, NO_ROW, StagedRows } from "./newest-rows.ts";
import type { RowKey } from "./newest-rows.ts";

describe("integerKey", () => {
  test("one column holding a safe integer, as a number or a bigint", () => {
    assert.equal(integerKey({ id: 42 }, ["id"]), 42);
    assert.equal(integerKey({ id: 42n }, ["id"]), 42);
    assert.equal(integerKey({ id: -(2n ** 53n) + 1n }, ["id"]), -(2 ** 53) + 1);
  });

  test("anything else is left to the key's text", () => {
    assert.equal(integerKey({ id: 2n ** 53n }, ["id"]), undefined);
    assert.equal(integerKey({ id: 1.5 }, ["id"]), undefined);
    assert.equal(integerKey({ id: "42" }, ["id"]), undefined);
    assert.equal(integerKey({ id: null }, ["id"]), undefined);
    assert.equal(integerKey({ a: 1, b: 2 }, ["a", "b"]), undefined);
  });

  test("two keys have one integer exactly when they have one text", () => {
    const values = [0, -0, 0n, 1, 1n, -1, 2 ** 32, 2 ** 32 + 1, -(2 ** 32), 2 ** 53 - 1, BigInt(2 ** 53 - 1), 4294967296n * 7n + 5n];
    for (const a of values) {
      for (const b of values) {
        assert.equal(integerKey({ id: a }, ["id"]) === integerKey({ id: b }, ["id"]), keyId({ id: a }, ["id"]) === keyId({ id: b }, ["id"]), `${a} ${b}`);
      }
    }
  });
});

describe("NewestRows", () => {
  test("gives each key the row set last, and the row it replaced", () => {
    const rows = new NewestRows();
    assert.equal(rows.get(7), NO_ROW);
    assert.equal(rows.set(7, 0), NO_ROW);
    assert.equal(rows.set("[1,\"a\"]", 1), NO_ROW);
    assert.equal(rows.set(7, 2), 0);
    assert.equal(rows.get(7), 2);
    assert.equal(rows.get("[1,\"a\"]"), 1);
    assert.equal(rows.get("7"), NO_ROW, "a text key is not an integer key");
    assert.equal(rows.set(-0, 3), NO_ROW);
    assert.equal(rows.get(0), 3, "-0 and 0 are one key, as keyId gives both \"0\"");
  });

  test("keeps every key as it grows, integers of any size within 2^53 and colliding low bits", () => {
    const rows = new NewestRows();
    const keys: RowKey[] = [];
    for (let i = 0; i < 20_000; i++) keys.push(i % 3 === 0 ? i * 4294967296 : i % 3 === 1 ? -i : `k${i}`);
    keys.forEach((key, row) => assert.equal(rows.set(key, row), NO_ROW));
    keys.forEach((key, row) => assert.equal(rows.get(key), row));
    keys.forEach((key, row) => assert.equal(rows.set(key, row + 20_000), row));
    assert.equal(rows.get(2 ** 53 - 1), NO_ROW);
  });
});

test("StagedRows keeps each key's newest row by version, ties in batch order, and says when every row is kept", () => {
  const rows = new StagedRows();
  rows.add(1, 5n);
  rows.add("a|b", 1n);
  assert.equal(rows.kept(), undefined);
  assert.equal(rows.older(1, 4n), true);
  assert.equal(rows.older(1, 5n), false);
  rows.add(1, 5n); // a tie: the later row wins, row 0 is replaced
  rows.add(1, 3n); // older than the key's row: replaced itself
  rows.add(2, 2n ** 64n - 1n);
  assert.deepEqual(rows.kept(), [1, 2, 4]);
  assert.equal(rows.count, 5);
  for (let i = 0; i < 3000; i++) rows.add(10 + i, BigInt(i));
  assert.equal(rows.kept()!.length, 3003);
});
