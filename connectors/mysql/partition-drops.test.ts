import { test } from "node:test";
import assert from "node:assert/strict";
import { partitionRowsPlan } from "./partition-drops.ts";
import type { RowsChange } from "./schema/schema-tracker.ts";

const change = (what: string, partitions: string[] | null = null, partitioned = true): RowsChange => ({ what, database: "app", table: "events", partitioned, partitions });
const removing = ["DROP PARTITION", "TRUNCATE PARTITION", "CONVERT PARTITION"];
const adding = ["EXCHANGE PARTITION", "CONVERT TABLE ... TO PARTITION", "IMPORT TABLESPACE"];

test("mirror reads the table again whole for every partition operation", () => {
  for (const what of [...removing, ...adding]) assert.equal(partitionRowsPlan(change(what, ["p0"]), "mirror", null), "read-all", what);
});

test("keep reads nothing for rows that only left, and what entered with no reset", () => {
  for (const what of removing) assert.equal(partitionRowsPlan(change(what, ["p20261101"]), "keep", null), "keep", what);
  for (const what of adding) assert.equal(partitionRowsPlan(change(what), "keep", null), "read-added", what);
});

test("the table exchanged with or converted to is read whole under either setting", () => {
  for (const mode of ["mirror", "keep"] as const) {
    assert.equal(partitionRowsPlan(change("EXCHANGE PARTITION", null, false), mode, null), "read-all");
    assert.equal(partitionRowsPlan(change("CONVERT PARTITION", null, false), mode, null), "read-all");
  }
});

test("history partitions of a table partitioned BY SYSTEM_TIME: dropped or truncated, nothing is read; its CURRENT partition truncated is", () => {
  const versioned = { current: "pcur" };
  for (const mode of ["mirror", "keep"] as const) {
    assert.equal(partitionRowsPlan(change("DROP PARTITION", ["h0", "h1"]), mode, versioned), "skip-history");
    assert.equal(partitionRowsPlan(change("TRUNCATE PARTITION", ["h0"]), mode, versioned), "skip-history");
  }
  assert.equal(partitionRowsPlan(change("TRUNCATE PARTITION", ["h0", "PCUR"]), "mirror", versioned), "read-all");
  assert.equal(partitionRowsPlan(change("TRUNCATE PARTITION", null), "mirror", versioned), "read-all", "ALL takes the current partition");
  assert.equal(partitionRowsPlan(change("TRUNCATE PARTITION", ["pcur"]), "keep", versioned), "keep");
});
