import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseSchema } from "./avro-parse.ts";
import { checkReaderWriter } from "./compatibility.ts";
import type { Incompatibility } from "./compatibility.ts";

function check(reader: unknown, writer: unknown): Incompatibility[] {
  return checkReaderWriter(parseSchema(reader), parseSchema(writer));
}

function record(fields: unknown[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { type: "record", name: "R", fields, ...extra };
}

describe("checkReaderWriter", () => {
  it("accepts identical schemas", () => {
    const schema = record([{ name: "a", type: "int" }]);
    assert.deepEqual(check(schema, schema), []);
  });

  it("judges empty unions as Avro Java does: nothing to read is compatible, a value for no branch is not", () => {
    assert.deepEqual(check([], []), []);
    assert.deepEqual(check(["int"], []), []);
    assert.deepEqual(check(record([{ name: "a", type: ["null", "int"] }]), record([{ name: "a", type: [] }])), []);
    assert.equal(check([], "int").length, 1);
  });

  it("takes a reader default of any union branch, as Avro Java accepts it", () => {
    assert.deepEqual(check(record([{ name: "a", type: "int" }, { name: "b", type: ["null", "string"], default: "none" }]), record([{ name: "a", type: "int" }])), []);
  });

  it("allows the Avro promotions", () => {
    const promotions: [string, string][] = [
      ["int", "long"],
      ["int", "float"],
      ["int", "double"],
      ["long", "float"],
      ["long", "double"],
      ["float", "double"],
      ["string", "bytes"],
      ["bytes", "string"],
    ];
    for (const [writer, reader] of promotions) assert.deepEqual(check(reader, writer), [], `${writer} read as ${reader}`);
  });

  it("reports narrowing as TYPE_MISMATCH with the field's path and a readable sentence", () => {
    for (const [writer, reader] of [
      ["long", "int"],
      ["double", "float"],
      ["double", "long"],
      ["string", "int"],
      ["boolean", "int"],
      ["null", "int"],
    ]) {
      const problems = check(record([{ name: "a", type: reader }]), record([{ name: "a", type: writer }]));
      assert.deepEqual(problems, [{ kind: "TYPE_MISMATCH", path: "/fields/0/type", message: `field \`a\`: writer type ${writer} cannot be read as ${reader}` }]);
    }
  });

  it("names the column in table row records, using the original column name", () => {
    const value = (type: string) =>
      record(
        [
          { name: "id", type: "long" },
          { name: "unit_price", type, "sluice.original.name": "unit price" },
        ],
        { name: "shop.public.orders.Value" },
      );
    const [problem] = check(value("int"), value("double"));
    assert.equal(problem?.message, "column `unit price`: writer type double cannot be read as int");
    assert.equal(problem?.path, "/fields/1/type");
  });

  it("needs a default for a reader field the writer lacks (READER_FIELD_MISSING_DEFAULT_VALUE)", () => {
    const writer = record([{ name: "a", type: "int" }]);
    assert.deepEqual(
      check(
        record([
          { name: "a", type: "int" },
          { name: "b", type: "string" },
        ]),
        writer,
      ),
      [{ kind: "READER_FIELD_MISSING_DEFAULT_VALUE", path: "/fields/1", message: "field `b`: the reader has it without a default value, and data written without it cannot be read" }],
    );
    assert.deepEqual(
      check(
        record([
          { name: "a", type: "int" },
          { name: "b", type: "string", default: "" },
        ]),
        writer,
      ),
      [],
    );
    assert.deepEqual(check(record([]), writer), [], "a writer field the reader lacks is skipped");
  });

  it("finds a renamed field through the reader field's aliases", () => {
    const writer = record([{ name: "old_name", type: "int" }]);
    assert.deepEqual(check(record([{ name: "new_name", type: "int", aliases: ["old_name"] }]), writer), []);
    assert.equal(check(record([{ name: "new_name", type: "int" }]), writer)[0]?.kind, "READER_FIELD_MISSING_DEFAULT_VALUE");
  });

  it("compares record names by short name or reader alias (NAME_MISMATCH)", () => {
    const writer = { type: "record", name: "a.Old", fields: [] };
    assert.deepEqual(check({ type: "record", name: "b.Old", fields: [] }, writer), [], "namespaces are not compared");
    assert.deepEqual(check({ type: "record", name: "a.New", aliases: ["a.Old"], fields: [] }, writer), []);
    assert.deepEqual(check({ type: "record", name: "a.New", fields: [] }, writer), [
      { kind: "NAME_MISMATCH", path: "/name", message: "the schema: writer type a.Old cannot be read as a.New (names differ and no reader alias matches)" },
    ]);
  });

  it("checks fixed names and sizes (FIXED_SIZE_MISMATCH)", () => {
    const fixed = (name: string, size: number) => record([{ name: "f", type: { type: "fixed", name, size } }]);
    assert.deepEqual(check(fixed("F", 16), fixed("F", 16)), []);
    assert.deepEqual(check(fixed("F", 16), fixed("F", 8)), [
      { kind: "FIXED_SIZE_MISMATCH", path: "/fields/0/type/size", message: "field `f`: fixed F of 8 bytes cannot be read as fixed of 16 bytes" },
    ]);
    assert.equal(check(fixed("G", 16), fixed("F", 16))[0]?.kind, "NAME_MISMATCH");
  });

  it("needs every writer enum symbol, unless the reader enum has a default (MISSING_ENUM_SYMBOLS)", () => {
    const enumOf = (symbols: string[], extra: Record<string, unknown> = {}) => record([{ name: "e", type: { type: "enum", name: "E", symbols, ...extra } }]);
    assert.deepEqual(check(enumOf(["A", "B", "C"]), enumOf(["A", "B"])), []);
    assert.deepEqual(check(enumOf(["A"]), enumOf(["A", "B", "C"])), [
      { kind: "MISSING_ENUM_SYMBOLS", path: "/fields/0/type/symbols", message: "field `e`: writer enum symbols [B, C] are missing from the reader enum, which has no default" },
    ]);
    assert.deepEqual(check(enumOf(["A", "UNKNOWN"], { default: "UNKNOWN" }), enumOf(["A", "B"])), []);
  });

  it("needs every writer union branch to be readable (MISSING_UNION_BRANCH)", () => {
    assert.deepEqual(check(record([{ name: "u", type: ["null", "string", "int"] }]), record([{ name: "u", type: ["null", "string"] }])), []);
    assert.deepEqual(check(record([{ name: "u", type: ["null", "long"] }]), record([{ name: "u", type: ["null", "int"] }])), [], "branches promote");
    assert.deepEqual(check(record([{ name: "u", type: ["null", "string"] }]), record([{ name: "u", type: ["null", "string", "int"] }])), [
      { kind: "MISSING_UNION_BRANCH", path: "/fields/0/type/2", message: "field `u`: the reader union has no branch that can read the writer's int" },
    ]);
  });

  it("reports what changed inside a union branch that corresponds to the writer's (nullable records, arrays)", () => {
    const nullableRow = (priceType: string) => ({
      type: "record",
      name: "Envelope",
      fields: [{ name: "after", type: ["null", { type: "record", name: "Value", fields: [{ name: "price", type: priceType }] }], default: null }],
    });
    assert.deepEqual(check(nullableRow("int"), nullableRow("double")), [
      { kind: "TYPE_MISMATCH", path: "/fields/0/type/1/fields/0/type", message: "column `price`: writer type double cannot be read as int" },
    ]);
    assert.deepEqual(check(record([{ name: "a", type: ["null", { type: "array", items: "int" }] }]), record([{ name: "a", type: { type: "array", items: "string" } }])), [
      { kind: "TYPE_MISMATCH", path: "/fields/0/type/1/items", message: "field `a`: writer type string cannot be read as int" },
    ]);
  });

  it("reads a non-union writer with any matching reader branch", () => {
    assert.deepEqual(check(record([{ name: "a", type: ["null", "long"] }]), record([{ name: "a", type: "int" }])), []);
    assert.deepEqual(check(record([{ name: "a", type: ["null", "string"] }]), record([{ name: "a", type: "int" }])), [
      { kind: "MISSING_UNION_BRANCH", path: "/fields/0/type", message: "field `a`: writer type int cannot be read by any branch of union [null, string]" },
    ]);
  });

  it("reads a union writer with a non-union reader only if every branch is readable", () => {
    assert.deepEqual(check(record([{ name: "a", type: "long" }]), record([{ name: "a", type: ["int", "long"] }])), []);
    const problems = check(record([{ name: "a", type: "string" }]), record([{ name: "a", type: ["null", "string"] }]));
    assert.deepEqual(problems, [{ kind: "TYPE_MISMATCH", path: "/fields/0/type", message: "field `a`: writer type null cannot be read as string" }]);
  });

  it("checks array items and map values", () => {
    assert.deepEqual(check({ type: "array", items: "long" }, { type: "array", items: "int" }), []);
    assert.deepEqual(check({ type: "array", items: "int" }, { type: "array", items: "long" }), [
      { kind: "TYPE_MISMATCH", path: "/items", message: "the schema: writer type long cannot be read as int" },
    ]);
    assert.deepEqual(check({ type: "map", values: "int" }, { type: "map", values: "string" })[0]?.path, "/values");
    assert.equal(check({ type: "map", values: "int" }, { type: "array", items: "int" })[0]?.kind, "TYPE_MISMATCH");
  });

  it("reports nested problems with their full path", () => {
    const outer = (innerType: string) => record([{ name: "x", type: "int" }, { name: "inner", type: { type: "record", name: "I", fields: [{ name: "v", type: innerType }] } }]);
    assert.deepEqual(check(outer("int"), outer("string")), [
      { kind: "TYPE_MISMATCH", path: "/fields/1/type/fields/0/type", message: "field `inner.v`: writer type string cannot be read as int" },
    ]);
  });

  it("collects every problem, not only the first", () => {
    const problems = check(
      record([
        { name: "a", type: "int" },
        { name: "b", type: "int" },
        { name: "c", type: "int" },
      ]),
      record([
        { name: "a", type: "long" },
        { name: "b", type: "string" },
      ]),
    );
    assert.deepEqual(
      problems.map((problem) => [problem.kind, problem.path]),
      [
        ["TYPE_MISMATCH", "/fields/0/type"],
        ["TYPE_MISMATCH", "/fields/1/type"],
        ["READER_FIELD_MISSING_DEFAULT_VALUE", "/fields/2"],
      ],
    );
  });

  it("terminates on recursive types", () => {
    const list = (valueType: string) => ({
      type: "record",
      name: "Node",
      fields: [
        { name: "value", type: valueType },
        { name: "next", type: ["null", "Node"], default: null },
      ],
    });
    assert.deepEqual(check(list("long"), list("int")), []);
    assert.deepEqual(
      check(list("int"), list("long")).map((problem) => problem.kind),
      ["TYPE_MISMATCH"],
    );
  });
});
