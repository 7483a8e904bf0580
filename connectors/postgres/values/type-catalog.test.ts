import { test } from "node:test";
import assert from "node:assert/strict";
import { TypeCatalog } from "./type-catalog.ts";
import type { PgTypeRow } from "./type-catalog.ts";

const row = (oid: number, name: string, kind: string, extra: Partial<PgTypeRow> = {}): PgTypeRow => ({
  oid,
  name,
  namespace: "pg_catalog",
  kind,
  category: "U",
  elementOid: 0,
  baseTypeOid: 0,
  baseTypeModifier: -1,
  delimiter: ",",
  ...extra,
});

const catalog = new TypeCatalog([
  row(23, "int4", "b", { category: "N" }),
  row(1007, "_int4", "b", { category: "A", elementOid: 23 }),
  row(1043, "varchar", "b", { category: "S" }),
  row(603, "box", "b", { delimiter: ";" }),
  row(1020, "_box", "b", { category: "A", elementOid: 603 }),
  row(17, "bytea", "b"),
  row(1001, "_bytea", "b", { category: "A", elementOid: 17 }),
  row(50000, "mood", "e", { namespace: "public", category: "E" }),
  row(50001, "_mood", "b", { namespace: "public", category: "A", elementOid: 50000 }),
  row(50002, "short_text", "d", { namespace: "public", baseTypeOid: 1043, baseTypeModifier: 14 }),
  row(50003, "shorter_text", "d", { namespace: "public", baseTypeOid: 50002 }),
  row(50004, "_short_text", "b", { namespace: "public", category: "A", elementOid: 50002 }),
  row(50005, "hstore", "b", { namespace: "public" }),
  row(50006, "positive", "d", { namespace: "public", baseTypeOid: 23 }),
  row(50007, "_positive", "b", { namespace: "public", category: "A", elementOid: 50006 }),
]);

test("arrays decode element by element with the element's delimiter", () => {
  assert.deepEqual(catalog.decoderFor(1007)("{1,NULL,{3}}"), [1, null, [3]]);
  assert.deepEqual(catalog.decoderFor(1020)("{(1,1),(0,0);(2,2),(1,1)}"), ["(1,1),(0,0)", "(2,2),(1,1)"]);
  assert.deepEqual(catalog.decoderFor(1001)('{"\\\\x0102"}'), [new Uint8Array([1, 2])]);
});

test("domains decode as their base type, arrays of domains too", () => {
  assert.equal(catalog.decoderFor(50006)("42"), 42);
  assert.deepEqual(catalog.decoderFor(50007)("{1,2}"), [1, 2]);
  assert.equal(catalog.decoderFor(50003)("abc"), "abc");
});

test("enums, hstore and unknown types", () => {
  assert.equal(catalog.decoderFor(50000)("happy"), "happy");
  assert.deepEqual(catalog.decoderFor(50001)('{happy,"very sad"}'), ["happy", "very sad"]);
  assert.equal(catalog.decoderFor(50005)('"a"=>"1"'), '"a"=>"1"');
  assert.equal(catalog.decoderFor(99999)("(1,2)"), "(1,2)");
});

test("type names: format_type targets, domains resolved, enums fixed", () => {
  assert.deepEqual(catalog.nameTarget(23, -1), { format: { oid: 23, modifier: -1 }, suffix: "" });
  assert.deepEqual(catalog.nameTarget(50002, -1), { format: { oid: 1043, modifier: 14 }, suffix: "" });
  assert.deepEqual(catalog.nameTarget(50003, -1), { format: { oid: 1043, modifier: 14 }, suffix: "" });
  assert.deepEqual(catalog.nameTarget(50004, -1), { format: { oid: 1043, modifier: 14 }, suffix: "[]" });
  assert.deepEqual(catalog.nameTarget(50000, -1), { fixed: "enum" });
  assert.deepEqual(catalog.nameTarget(50001, -1), { fixed: "enum[]" });
  assert.deepEqual(catalog.nameTarget(1007, -1), { format: { oid: 1007, modifier: -1 }, suffix: "" });
});
