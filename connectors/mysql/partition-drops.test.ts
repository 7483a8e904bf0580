import { test } from "node:test";
import assert from "node:assert/strict";
import { partitionRowsPlan, tableVersioning, versioningOf } from "./partition-drops.ts";
import type { Sql } from "./catalog.ts";
import type { RowsChange } from "./schema/schema-tracker.ts";

const change = (what: string, partitions: string[] | null = null, partitioned = true): RowsChange => ({ what, database: "app", table: "events", partitioned, partitions });
const removing = ["DROP PARTITION", "TRUNCATE PARTITION", "CONVERT PARTITION"];
const adding = ["EXCHANGE PARTITION", "CONVERT TABLE ... TO PARTITION", "IMPORT TABLESPACE"];
const plain = { versioned: false, current: null };
const resetting = new Set(["read-all"]);

test("mirror reads the table again whole for every partition operation", () => {
  for (const what of [...removing, ...adding]) assert.equal(partitionRowsPlan(change(what, ["p0"]), "mirror", plain), "read-all", what);
});

test("keep reads nothing for rows that only left, and what entered with no reset", () => {
  for (const what of removing) assert.equal(partitionRowsPlan(change(what, ["p20261101"]), "keep", plain), "keep", what);
  for (const what of adding) assert.equal(partitionRowsPlan(change(what), "keep", plain), "read-added", what);
});

test("the table exchanged with or converted to is read whole under either setting", () => {
  for (const mode of ["mirror", "keep"] as const) {
    assert.equal(partitionRowsPlan(change("EXCHANGE PARTITION", null, false), mode, plain), "read-all");
    assert.equal(partitionRowsPlan(change("CONVERT PARTITION", null, false), mode, plain), "read-all");
  }
});

test("history partitions of a table partitioned BY SYSTEM_TIME: dropped or truncated, nothing is read", () => {
  const versioned = { versioned: true, current: "pcur" };
  for (const mode of ["mirror", "keep"] as const) {
    assert.equal(partitionRowsPlan(change("DROP PARTITION", ["h0", "h1"]), mode, versioned), "skip-history");
    assert.equal(partitionRowsPlan(change("TRUNCATE PARTITION", ["h0"]), mode, versioned), "skip-history");
  }
});

test("a system-versioned table is never read with a reset: its CURRENT partition truncated, or ALL, reads nothing under mirror", () => {
  const versioned = { versioned: true, current: "pcur" };
  assert.equal(partitionRowsPlan(change("TRUNCATE PARTITION", ["h0", "PCUR"]), "mirror", versioned), "keep-versioned");
  assert.equal(partitionRowsPlan(change("TRUNCATE PARTITION", null), "mirror", versioned), "keep-versioned", "ALL takes the current partition");
  assert.equal(partitionRowsPlan(change("TRUNCATE PARTITION", ["pcur"]), "keep", versioned), "keep");
});

test("a system-versioned table partitioned BY HASH, RANGE or LIST: no operation plans a reset, rows that entered are read with none", () => {
  const versioned = { versioned: true, current: null };
  for (const mode of ["mirror", "keep"] as const) {
    for (const what of removing) assert.ok(!resetting.has(partitionRowsPlan(change(what, ["p0"]), mode, versioned)), `${mode} ${what}`);
    for (const what of adding) assert.equal(partitionRowsPlan(change(what, ["p0"]), mode, versioned), "read-added", `${mode} ${what}`);
    assert.equal(partitionRowsPlan(change("EXCHANGE PARTITION", null, false), mode, versioned), "read-added", "the versioned table exchanged with");
  }
  assert.equal(partitionRowsPlan(change("TRUNCATE PARTITION", ["p0"]), "mirror", versioned), "keep-versioned");
});

test("a table the catalog cannot say of (null) is taken as versioned: no reset", () => {
  for (const mode of ["mirror", "keep"] as const) {
    for (const what of [...removing, ...adding]) assert.ok(!resetting.has(partitionRowsPlan(change(what, ["p0"]), mode, null)), `${mode} ${what}`);
    assert.ok(!resetting.has(partitionRowsPlan(change("EXCHANGE PARTITION", null, false), mode, null)));
  }
});

const catalog = (tables: Record<string, unknown>[], partitions: Record<string, unknown>[] = []): Sql => ({
  rows: (sql) => Promise.resolve(sql.includes("information_schema.TABLES") ? tables : partitions),
});

test("tableVersioning: SYSTEM VERSIONED with its CURRENT partition, a base table; a table left out is unknown", async () => {
  assert.deepEqual(await tableVersioning(catalog([{ type: "SYSTEM VERSIONED", engine: "InnoDB" }], [{ name: Buffer.from("pcur") }]), "app", "t"), { versioned: true, current: "pcur" });
  assert.deepEqual(await tableVersioning(catalog([{ type: "SYSTEM VERSIONED", engine: "InnoDB" }]), "app", "t"), { versioned: true, current: null });
  assert.deepEqual(await tableVersioning(catalog([{ type: "BASE TABLE", engine: "InnoDB" }]), "app", "t"), { versioned: false, current: null });
  assert.equal(await tableVersioning(catalog([]), "app", "t"), null);
});

test("tableVersioning: a table listed with no engine (it could not be opened, behind a metadata lock) throws, to be asked again, not a lasting 'unknown'", async () => {
  // Before: null, read as versioned: a TRUNCATE PARTITION of a plain table met while the next ALTER held its lock kept the removed rows in every sink for good, under partition_drops: mirror.
  await assert.rejects(tableVersioning(catalog([{ type: "BASE TABLE", engine: null }]), "app", "t"), /no engine/);
});

test("tableVersioning: a failed catalog read throws, never taken for 'not versioned'", async () => {
  const failing: Sql = { rows: () => Promise.reject(new Error("Query execution was interrupted (max_statement_time exceeded)")) };
  await assert.rejects(tableVersioning(failing, "app", "t"), /interrupted/);
});

test("versioningOf: the catalog outweighs a tracked key holding row_end (a plain table's own row_end column, or DROP SYSTEM VERSIONING not followed by the tracker)", () => {
  assert.deepEqual(versioningOf(plain, ["id", "row_end"]), plain);
  assert.deepEqual(versioningOf({ versioned: true, current: "pcur" }, ["id"]), { versioned: true, current: "pcur" });
  assert.deepEqual(versioningOf(null, ["id", "row_end"]), { versioned: true, current: null });
  assert.equal(versioningOf(null, ["id"]), null);
  assert.equal(versioningOf(null, null), null);
});
