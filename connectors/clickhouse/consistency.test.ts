/** The catalog-against-server comparison without a server (consistency.int.test.ts runs it against 18.16). */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { initialColumns } from "../sinks/columns.ts";
import { tableSchema } from "../sinks/test-events.ts";
import { CATALOG_MISMATCH } from "../sinks/errors.ts";
import { CatalogMismatch, checkTable, evolutionSteps, parseServerColumns, writesAs } from "./consistency.ts";
import type { ServerColumn } from "./consistency.ts";
import { dialectFor } from "./types.ts";

const dialect = dialectFor("18.16.1", false);
const context = { sink: "s", table: "src.public.orders", database: "db", physical: "public_orders__v1" };
const v1 = tableSchema("orders", [
  ["id", "bigint"],
  ["qty", "integer"],
  ["at", "timestamp with time zone"],
]);
const v2 = tableSchema("orders", [
  ["id", "bigint"],
  ["qty", "bigint"],
  ["at", "timestamp with time zone"],
  ["note", "text"],
]);
const catalog = initialColumns(v1, { sink: "s", table: "t" });

const col = (name: string, type: string, extra: Partial<ServerColumn> = {}): ServerColumn => ({ name, type, defaultKind: "", sortingKey: false, ...extra });
const meta = [col("_sluice_version", "UInt64"), col("_sluice_deleted", "UInt8")];
const server = [col("id", "Int64", { sortingKey: true }), col("qty", "Nullable(Int32)"), col("at", "Nullable(Int64)"), ...meta];

function mismatch(run: () => unknown): CatalogMismatch {
  let caught: unknown;
  try {
    run();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof CatalogMismatch, `expected a CatalogMismatch, got ${String(caught)}`);
  assert.equal(caught.code, CATALOG_MISMATCH);
  assert.equal(caught.retriable, false);
  return caught;
}

describe("ClickHouse catalog against system.columns", () => {
  test("a table as the sink created it matches, whatever the server's column order", () => {
    assert.deepEqual(checkTable(catalog, server, new Map(), dialect, context), []);
    assert.deepEqual(checkTable(catalog, [...server].reverse(), new Map(), dialect, context), []);
  });

  test("types of the same RowBinary bytes under another server version match (a table created before an upgrade)", () => {
    const at = catalog.find((c) => c.name === "at")!;
    assert.ok(writesAs("Nullable(Int64)", at));
    assert.ok(writesAs("Nullable(DateTime64(6,'UTC'))", at));
    assert.ok(!writesAs("Nullable(DateTime)", at));
    assert.ok(!writesAs("Int64", at), "a non-key column is Nullable");
  });

  test("columns and types the batch's own evolution is about to give the table are pending, not a mismatch; unknown extra columns are left alone", () => {
    const steps = evolutionSteps(catalog, [v1, v2], { sink: "s", table: "t" });
    assert.deepEqual([...steps.keys()].sort(), ["note", "qty"]);
    const altered = [...server.filter((c) => c.name !== "qty"), col("qty", "Nullable(Int64)"), col("note", "Nullable(String)"), col("user_added", "LowCardinality(String)")];
    assert.deepEqual(
      checkTable(catalog, altered, steps, dialect, context).map((c) => c.name),
      ["user_added"],
    );
    // without that evolution, the widened column does not match
    const error = mismatch(() => checkTable(catalog, altered, new Map(), dialect, context));
    assert.deepEqual(
      { column: error.context["column"], catalogType: error.context["catalogType"], serverType: error.context["serverType"] },
      { column: "qty", catalogType: "Nullable(Int32) (int32)", serverType: "Nullable(Int64)" },
    );
  });

  test("a column the schema adds that the server has in another form is a mismatch", () => {
    const steps = evolutionSteps(catalog, [v2], { sink: "s", table: "t" });
    const error = mismatch(() => checkTable(catalog, [...server, col("note", "Nullable(Int64)")], steps, dialect, context));
    assert.equal(error.context["column"], "note");
    assert.equal(error.context["serverType"], "Nullable(Int64)");
    assert.match(String(error.context["catalogType"]), /the schema adds Nullable\(String\) \(string\)/);
    mismatch(() => checkTable(catalog, [...server, col("note", "Nullable(String)", { defaultKind: "MATERIALIZED" })], steps, dialect, context));
  });

  test("a missing column, another type, a column that cannot be inserted into, a changed sorting key, Sluice's own columns, a missing table", () => {
    const without = (name: string) => server.filter((c) => c.name !== name);
    const cases: [ServerColumn[], string, string][] = [
      [without("qty"), "qty", "missing"],
      [[...without("qty"), col("qty", "String")], "qty", "String"],
      [[...without("qty"), col("qty", "Nullable(Int32)", { defaultKind: "MATERIALIZED" })], "qty", "Nullable(Int32) MATERIALIZED"],
      [[...without("qty"), col("qty", "Nullable(Int32)", { sortingKey: true })], "qty", "Nullable(Int32) (sorting key)"],
      [[...without("id"), col("id", "Int64")], "id", "Int64"],
      [without("_sluice_version"), "_sluice_version", "missing"],
      [[...without("_sluice_deleted"), col("_sluice_deleted", "Nullable(UInt8)")], "_sluice_deleted", "Nullable(UInt8)"],
    ];
    for (const [columns, column, serverType] of cases) {
      const error = mismatch(() => checkTable(catalog, columns, new Map(), dialect, context));
      assert.equal(error.context["column"], column);
      assert.equal(error.context["serverType"], serverType);
      assert.match(error.message, new RegExp(`^sink "s", table src\\.public\\.orders, column "${column}": .*The ClickHouse table db\\.public_orders__v1 does not match`));
    }
    assert.match(mismatch(() => checkTable(catalog, [], new Map(), dialect, context)).message, /the table is missing on the server/);
  });

  test("system.columns rows are grouped by table in the server's order", () => {
    const body = Buffer.from("t1\tid\tInt64\t\t1\nt1\tv\tNullable(String)\t\t0\nt2\tm\tString\tMATERIALIZED\t0\n");
    assert.deepEqual(Object.fromEntries(parseServerColumns(body)), {
      t1: [col("id", "Int64", { sortingKey: true }), col("v", "Nullable(String)")],
      t2: [col("m", "String", { defaultKind: "MATERIALIZED" })],
    });
  });
});
