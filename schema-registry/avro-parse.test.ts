import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { normalizedForm, parsingCanonicalForm } from "./avro-canonical.ts";
import { parseSchema, parseSchemaText } from "./avro-parse.ts";
import { InvalidSchemaError } from "./schema-errors.ts";

function rejects(schema: unknown, pattern: RegExp): void {
  assert.throws(
    () => (typeof schema === "string" ? parseSchemaText(schema) : parseSchema(schema)),
    (error: unknown) => error instanceof InvalidSchemaError && error.code === "SCHEMA_INVALID" && pattern.test(error.message),
  );
}

describe("parseSchema", () => {
  it("resolves named types, namespaces and recursive references", () => {
    const type = parseSchema({
      type: "record",
      name: "Node",
      namespace: "list",
      fields: [
        { name: "value", type: "long" },
        { name: "next", type: ["null", "Node"], default: null },
        { name: "kind", type: { type: "enum", name: "Kind", symbols: ["A", "B"] } },
        { name: "again", type: "list.Kind" },
      ],
    });
    assert.equal(type.kind, "record");
    if (type.kind !== "record") return;
    assert.equal(type.fullName, "list.Node");
    const next = type.fields[1]?.type;
    assert.ok(next?.kind === "union" && next.branches[1] === type, "the recursive reference is the record itself");
    assert.equal(type.fields[2]?.type, type.fields[3]?.type);
  });

  it("rejects text that is not JSON", () => rejects('{"type": "record"', /not valid JSON/));
  it("rejects unknown types", () => rejects({ type: "record", name: "R", fields: [{ name: "a", type: "Missing" }] }, /unknown type "Missing"/));
  it("rejects a type defined twice", () =>
    rejects(
      {
        type: "record",
        name: "R",
        fields: [
          { name: "a", type: { type: "fixed", name: "F", size: 2 } },
          { name: "b", type: { type: "fixed", name: "F", size: 2 } },
        ],
      },
      /defined twice/,
    ));
  it("rejects duplicate field names", () =>
    rejects(
      {
        type: "record",
        name: "R",
        fields: [
          { name: "a", type: "int" },
          { name: "a", type: "long" },
        ],
      },
      /declared twice/,
    ));
  it("rejects invalid names", () => rejects({ type: "record", name: "9lives", fields: [] }, /not a valid Avro name/));
  it("rejects invalid field names", () => rejects({ type: "record", name: "R", fields: [{ name: "a-b", type: "int" }] }, /not a valid Avro name/));
  it("rejects redefining a primitive", () => rejects({ type: "fixed", name: "int", size: 1 }, /cannot be redefined/));
  it("rejects a default of the wrong type", () => rejects({ type: "record", name: "R", fields: [{ name: "a", type: "int", default: "x" }] }, /default value "x" is not a valid int/));
  it("rejects an int default out of range", () => rejects({ type: "record", name: "R", fields: [{ name: "a", type: "int", default: 2 ** 31 }] }, /not a valid int/));
  it("rejects a union default that matches none of its branches", () =>
    rejects({ type: "record", name: "R", fields: [{ name: "a", type: ["null", "string"], default: 1 }] }, /not a valid union \[null, string\] \(no branch matches\)/));
  it("rejects a record default missing a field without default", () =>
    rejects(
      {
        type: "record",
        name: "R",
        fields: [{ name: "inner", type: { type: "record", name: "I", fields: [{ name: "x", type: "int" }] }, default: {} }],
      },
      /not a valid I/,
    ));
  it("rejects duplicate enum symbols", () => rejects({ type: "enum", name: "E", symbols: ["A", "A"] }, /appears twice/));
  it("rejects an enum default that is not a symbol", () => rejects({ type: "enum", name: "E", symbols: ["A"], default: "B" }, /not one of its symbols/));
  it("rejects a negative fixed size", () => rejects({ type: "fixed", name: "F", size: -1 }, /non-negative integer/));
  it("rejects a union inside a union", () => rejects(["null", ["int", "string"]], /may not directly contain another union/));
  it("rejects a union with the same type twice", () => rejects(["int", "string", "int"], /"int" twice/));
  it("rejects an array without items", () => rejects({ type: "array" }, /no "items"/));

  it("accepts valid defaults of every kind", () => {
    assert.doesNotThrow(() =>
      parseSchema({
        type: "record",
        name: "R",
        fields: [
          { name: "n", type: "null", default: null },
          { name: "b", type: "boolean", default: true },
          { name: "i", type: "int", default: -5 },
          { name: "l", type: "long", default: 9007199254740991 },
          { name: "d", type: "double", default: 1.5 },
          { name: "s", type: "string", default: "x" },
          { name: "y", type: "bytes", default: "\u00ff\u0000" },
          { name: "f", type: { type: "fixed", name: "F", size: 2 }, default: "ab" },
          { name: "e", type: { type: "enum", name: "E", symbols: ["A"] }, default: "A" },
          { name: "a", type: { type: "array", items: "int" }, default: [1, 2] },
          { name: "m", type: { type: "map", values: "string" }, default: { k: "v" } },
          { name: "u", type: ["string", "null"], default: "first" },
        ],
      }),
    );
  });
});

describe("parsingCanonicalForm", () => {
  it("keeps only what affects the encoding, with full names and a fixed key order", () => {
    const type = parseSchemaText(`{
      "type": "record", "namespace": "x.y", "name": "R", "doc": "a record", "aliases": ["Old"],
      "fields": [
        {"name": "a", "type": {"type": "int"}, "default": 1, "doc": "field"},
        {"name": "b", "type": {"type": "fixed", "name": "F", "size": 16}},
        {"name": "c", "type": "F"},
        {"name": "d", "type": {"type": "long", "logicalType": "timestamp-micros"}}
      ]
    }`);
    assert.equal(
      parsingCanonicalForm(type),
      '{"name":"x.y.R","type":"record","fields":[{"name":"a","type":"int"},{"name":"b","type":{"name":"x.y.F","type":"fixed","size":16}},{"name":"c","type":"x.y.F"},{"name":"d","type":"long"}]}',
    );
  });
});

describe("normalizedForm", () => {
  it("is equal for equivalent spellings of a schema", () => {
    const a = parseSchemaText('{"type":"record","name":"R","namespace":"n","fields":[{"name":"a","type":"int","default":0,"x-prop":{"b":1,"a":2}}]}');
    const b = parseSchemaText(`{ "fields": [ { "x-prop": {"a": 2, "b": 1}, "default": 0, "type": {"type": "int"}, "name": "a" } ],
                                 "name": "n.R", "type": "record" }`);
    assert.equal(normalizedForm(a), normalizedForm(b));
  });

  it("differs when a default, doc, alias or logical type differs (they matter to readers)", () => {
    const base = { type: "record", name: "R", fields: [{ name: "a", type: "int", default: 0 }] };
    const forms = new Set(
      [
        base,
        { ...base, fields: [{ name: "a", type: "int", default: 1 }] },
        { ...base, fields: [{ name: "a", type: "int", default: 0, doc: "d" }] },
        { ...base, fields: [{ name: "a", type: "int", default: 0, aliases: ["b"] }] },
        { ...base, fields: [{ name: "a", type: { type: "int", logicalType: "date" }, default: 0 }] },
      ].map((schema) => normalizedForm(parseSchema(schema))),
    );
    assert.equal(forms.size, 5);
  });

  it("writes a named type once and refers to it by full name afterwards", () => {
    const type = parseSchema({
      type: "record",
      name: "R",
      fields: [
        { name: "a", type: { type: "enum", name: "E", symbols: ["X"] } },
        { name: "b", type: "E" },
      ],
    });
    assert.equal(normalizedForm(type), '{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"enum","name":"E","symbols":["X"]}},{"name":"b","type":"E"}]}');
    assert.deepEqual(parseSchemaText(normalizedForm(type)), type);
  });
});
