/**
 * An operator's index marked is_write_index: true on a table's alias takes every write the sink sends through the
 * alias, without an error (45b4bc4 handled only an alias with no write index). foreignWriteIndexes reads GET _alias.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { foreignWriteIndexes } from "./indices.ts";

const own = { physical: "orders__v1", target: "orders" };

test("another index the alias makes its write index is found; the sink's own, or others not marked, are not", () => {
  assert.deepEqual(foreignWriteIndexes({ orders__v1: { aliases: { orders: { filter: {} } } } }, own), []);
  assert.deepEqual(foreignWriteIndexes({ orders__v1: { aliases: { orders: { is_write_index: true } } } }, own), []);
  assert.deepEqual(foreignWriteIndexes({ orders__v1: { aliases: { orders: {} } }, archive: { aliases: { orders: { is_write_index: false } } } }, own), []);
  assert.deepEqual(
    foreignWriteIndexes({ orders__v1: { aliases: { orders: { is_write_index: false } } }, zeta: { aliases: { orders: { is_write_index: true } } }, alpha: { aliases: { orders: { is_write_index: true }, other: {} } } }, own),
    ["alpha", "zeta"],
  );
  assert.deepEqual(foreignWriteIndexes({ archive: { aliases: { other: { is_write_index: true } } } }, own), [], "another alias's write index");
});

test("an alias that is missing (404 answer) or an answer of another shape finds none", () => {
  assert.deepEqual(foreignWriteIndexes({ error: "alias [orders] missing", status: 404 }, own), []);
  assert.deepEqual(foreignWriteIndexes(null, own), []);
  assert.deepEqual(foreignWriteIndexes("", own), []);
});
