/** xa-rows.ts: what an XA transaction's rows may hold in memory until its rollback. */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { ChangeEvent, TableSchema } from "../contracts.ts";
import { MAX_XA_ROW_BYTES, newXaRows, noteXaRow } from "./xa-rows.ts";

const TABLE: TableSchema = {
  source: "m",
  database: "d",
  schema: "d",
  table: "t",
  sourceKind: "mysql",
  key: ["id"],
  columns: [
    { name: "id", dbType: "int", nullable: false, primaryKeyIndex: 1 },
    { name: "body", dbType: "longtext", nullable: true },
  ],
};

const insert = (id: number, body: string): ChangeEvent =>
  ({ op: "c", key: { id }, before: null, after: { id, body }, schema: TABLE, source: {} }) as unknown as ChangeEvent;

test("a transaction whose rows pass MAX_XA_ROW_BYTES is known by its tables alone: an orphaned prepare of large rows holds no images", () => {
  const small = newXaRows();
  noteXaRow(small, insert(1, "a"));
  noteXaRow(small, insert(2, "b"));
  assert.equal(small.complete, true);
  assert.equal(small.count, 2);

  // Before: up to 64 full images per transaction, whatever their size (10,000 prepares x 64 x 1 MB rows).
  const large = newXaRows();
  noteXaRow(large, insert(1, "x".repeat(MAX_XA_ROW_BYTES / 4)));
  assert.equal(large.complete, true, "under the bound");
  noteXaRow(large, insert(2, "x".repeat(MAX_XA_ROW_BYTES / 2)));
  assert.equal(large.complete, false, "over the bound: forgotten");
  assert.equal(large.tables.size, 0);
  assert.equal(large.bytes, 0);
});
