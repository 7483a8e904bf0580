/**
 * A ClickHouse error 60 naming one of the sink's own tables is taken for its database dropped (2292fde). ClickHouse
 * back-quotes a database name that is not a plain identifier, which the first pattern did not expect: a sink on a
 * database such as `my-db` still stopped the daemon. Messages as ClickHouse 18.16 writes them.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ownTableGonePattern } from "./connection.ts";

const gone = (table: string): string => `Code: 60, e.displayText() = DB::Exception: Table ${table} doesn't exist., e.what() = DB::Exception`;

test("a plain database name: its own tables match, data tables and other databases do not", () => {
  const pattern = ownTableGonePattern("shop");
  assert.ok(pattern.test(gone("shop._sluice_offsets")));
  assert.ok(pattern.test(gone("shop._sluice_truncates")));
  assert.ok(!pattern.test(gone("shop.orders")));
  assert.ok(!pattern.test(gone("myshop._sluice_offsets")));
  assert.ok(!pattern.test(gone("shop._sluice_offsets_old")));
  assert.ok(!pattern.test(gone("`my-shop`._sluice_offsets")), "another database whose name ends in it");
});

test("a database name ClickHouse back-quotes (`my-db`._sluice_offsets) matches, quoted or not", () => {
  const pattern = ownTableGonePattern("my-db");
  assert.ok(pattern.test(gone("`my-db`._sluice_offsets")));
  assert.ok(pattern.test(gone("`my-db`.`_sluice_targets`")));
  assert.ok(pattern.test(gone("my-db._sluice_tables")));
  assert.ok(!pattern.test(gone("`my-db`.orders")));
  assert.ok(!pattern.test(gone("`other-my-db`._sluice_offsets")));
  assert.ok(ownTableGonePattern("we`ird.db").test(gone("`we\\`ird.db`._sluice_offsets")), "a backquote in the name is escaped by a backslash");
  assert.ok(!ownTableGonePattern("a.b").test(gone("axb._sluice_offsets")), "a dot in the name is literal");
});
