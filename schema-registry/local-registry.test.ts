import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { TableSchema } from "../connectors/contracts.ts";
import { LocalRegistry, parseVersionSpec } from "./local-registry.ts";
import { openMemoryStore } from "./log-store.ts";
import { IncompatibleSchemaError, RegistryError } from "./registry-errors.ts";
import type { RegistryErrorKind } from "./registry-errors.ts";
import { subjectForTopic } from "./registry.ts";
import { mapTable } from "./table-mapping.ts";

const v1 = { type: "record", name: "R", fields: [{ name: "a", type: "int" }] };
const v2 = { type: "record", name: "R", fields: [{ name: "a", type: "int" }, { name: "b", type: "string", default: "" }] };
const v3 = { type: "record", name: "R", fields: [{ name: "a", type: "int" }, { name: "b", type: "string" }] };

async function registry(): Promise<LocalRegistry> {
  return new LocalRegistry(await openMemoryStore());
}

function failsWith(kind: RegistryErrorKind): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof RegistryError, `expected a RegistryError, got ${String(error)}`);
    assert.equal(error.kind, kind);
    return true;
  };
}

describe("LocalRegistry", () => {
  it("registers versions, checks them at the subject's level, and explains a rejection", async () => {
    const r = await registry();
    assert.equal(await r.register("s", v1), 1);
    assert.equal(await r.register("s", v2), 2);
    assert.equal(await r.register("s", v3), 3, "BACKWARD checks the latest only");
    await r.deleteVersion("s", 3, false);
    await r.setConfig("s", "backward_transitive");
    const rejection = await r.register("s", v3).catch((error: unknown) => error);
    assert.ok(rejection instanceof IncompatibleSchemaError);
    assert.equal(rejection.retriable, false);
    assert.equal(rejection.httpStatus, 409);
    assert.match(rejection.messages[0] ?? "", /field `b`: the reader has it without a default value.*version 1; compatibility BACKWARD_TRANSITIVE/);
    assert.equal(rejection.context.subject, "s");
  });

  it("rejects a column type change of a table with an error naming the table's subject, the column and the rule", async () => {
    const r = await registry();
    const table: TableSchema = {
      source: "shop",
      database: "db",
      schema: "public",
      table: "orders",
      sourceKind: "postgres",
      key: ["id"],
      columns: [
        { name: "id", dbType: "int8", nullable: false },
        { name: "price", dbType: "float8", nullable: false },
      ],
    };
    const subject = subjectForTopic("shop.public.orders", "value");
    await r.register(subject, mapTable(table).envelopeSchema);
    const changed = { ...table, columns: [table.columns[0], { name: "price", dbType: "int4", nullable: false }] } as TableSchema;
    await assert.rejects(r.register(subject, mapTable(changed).envelopeSchema), (error: unknown) => {
      assert.ok(error instanceof IncompatibleSchemaError);
      assert.match(error.message, /shop\.public\.orders-value/);
      assert.ok(error.messages.some((message) => message.startsWith("column `price`: writer type double cannot be read as int (TYPE_MISMATCH at /fields/0/type/1/fields/1/type")));
      return true;
    });
  });

  it("follows Confluent's soft and permanent delete rules", async () => {
    const r = await registry();
    await r.register("s", v1);
    await r.register("s", v2);
    await assert.rejects(r.deleteSubject("s", true), failsWith("SUBJECT_NOT_SOFT_DELETED"));
    await assert.rejects(r.deleteVersion("s", 1, true), failsWith("VERSION_NOT_SOFT_DELETED"));
    assert.equal(await r.deleteVersion("s", 1, false), 1);
    await assert.rejects(r.deleteVersion("s", 1, false), failsWith("VERSION_SOFT_DELETED"));
    assert.deepEqual(await r.deleteSubject("s", false), [2]);
    await assert.rejects(r.deleteSubject("s", false), failsWith("SUBJECT_SOFT_DELETED"));
    assert.deepEqual(await r.listSubjects(), []);
    assert.deepEqual(await r.subjects(true), ["s"]);
    assert.deepEqual((await r.subjectVersion("s", "latest", true)).version, 2);
    await assert.rejects(r.subjectVersion("s", "latest", false), failsWith("SUBJECT_NOT_FOUND"));
    assert.deepEqual(await r.deleteSubject("s", true), [1, 2]);
    await assert.rejects(r.deleteSubject("s", true), failsWith("SUBJECT_NOT_FOUND"));
    await assert.rejects(r.deleteVersion("nope", 1, false), failsWith("SUBJECT_NOT_FOUND"));
  });

  it("keeps soft-deleted schemas readable by id and gives re-registration a new version", async () => {
    const r = await registry();
    const id = await r.register("s", v1);
    await r.deleteSubject("s", false);
    assert.match(await r.getById(id), /"name":"R"/);
    assert.equal(await r.register("s", v1), id);
    assert.deepEqual(await r.versionsOf("s", true), [2], "the soft-deleted version 1 with the same id was removed for good");
  });

  it("looks a schema up in a subject", async () => {
    const r = await registry();
    await r.register("s", v1);
    const found = await r.lookupSchema("s", { schema: JSON.stringify(v1) }, false);
    assert.deepEqual([found.version, found.id], [1, 1]);
    await assert.rejects(r.lookupSchema("s", { schema: JSON.stringify(v2) }, false), failsWith("SCHEMA_NOT_FOUND"));
    await assert.rejects(r.lookupSchema("other", { schema: JSON.stringify(v1) }, false), failsWith("SUBJECT_NOT_FOUND"));
  });

  it("tests compatibility against one version, the latest or all", async () => {
    const r = await registry();
    await r.register("s", v1);
    await r.register("s", v2);
    await r.setConfig("s", "BACKWARD");
    const request = { schema: JSON.stringify(v3) };
    assert.equal((await r.testCompatibility("s", "latest", request, true)).compatible, true);
    assert.equal((await r.testCompatibility("s", 1, request, true)).compatible, false);
    assert.equal((await r.testCompatibility("s", "all", request, true)).compatible, true, "non-transitive level: the latest of all");
    await r.setConfig("s", "BACKWARD_TRANSITIVE");
    const report = await r.checkCompatibility("s", v3);
    assert.equal(report.compatible, false);
    assert.equal(report.messages.length, 1);
    await assert.rejects(r.testCompatibility("s", 9, request, false), failsWith("VERSION_NOT_FOUND"));
    assert.equal((await r.testCompatibility("new", "latest", request, false)).compatible, true, "nothing to be incompatible with");
    assert.deepEqual(await r.testCompatibility("s", "all", { schema: "{bad" }, true), {
      compatible: false,
      messages: ["Invalid schema of type AVRO, details: schema is not valid JSON: Expected property name or '}' in JSON at position 1 (line 1 column 2)"],
    });
  });

  it("manages compatibility levels globally and per subject", async () => {
    const r = await registry();
    assert.equal(await r.getConfig(null, false), "BACKWARD");
    await assert.rejects(r.getConfig("s", false), failsWith("SUBJECT_COMPATIBILITY_NOT_CONFIGURED"));
    assert.equal(await r.getConfig("s", true), "BACKWARD");
    await r.setConfig(null, "NONE");
    assert.equal(await r.getCompatibilityLevel("s"), "NONE");
    assert.equal(await r.setConfig("s", "full"), "FULL");
    assert.equal(await r.deleteConfig("s"), "FULL");
    await assert.rejects(r.deleteConfig("s"), failsWith("SUBJECT_NOT_FOUND"));
    assert.equal(await r.deleteConfig(null), "NONE");
    assert.equal(await r.getConfig(null, false), "BACKWARD");
    await assert.rejects(r.setConfig("s", "SIDEWAYS"), failsWith("INVALID_COMPATIBILITY_LEVEL"));
  });

  it("uses the configured global level until one is set through the API", async () => {
    const r = new LocalRegistry(await openMemoryStore(), { defaultCompatibility: "FULL_TRANSITIVE" });
    assert.equal(await r.getCompatibilityLevel("s"), "FULL_TRANSITIVE");
    await r.setConfig(null, "NONE");
    assert.equal(await r.getCompatibilityLevel("s"), "NONE");
    assert.equal(await r.deleteConfig(null), "NONE");
    assert.equal(await r.getConfig(null, false), "FULL_TRANSITIVE");
  });

  it("honours READONLY and IMPORT modes", async () => {
    const r = await registry();
    await r.register("s", v1);
    await r.setMode("s", "READONLY", false);
    await assert.rejects(r.register("s", v2), failsWith("OPERATION_NOT_PERMITTED"));
    await assert.rejects(r.deleteSubject("s", false), failsWith("OPERATION_NOT_PERMITTED"));
    assert.equal(await r.register("t", v1), 1, "other subjects stay writable");
    await assert.rejects(r.setMode(null, "IMPORT", false), failsWith("OPERATION_NOT_PERMITTED"));
    await assert.rejects(r.setMode(null, "SOMETIMES", false), failsWith("INVALID_MODE"));
    await assert.rejects(r.getMode("t", false), failsWith("SUBJECT_MODE_NOT_CONFIGURED"));

    const importer = await registry();
    await importer.setMode(null, "IMPORT", false);
    await assert.rejects(importer.register("s", v1), failsWith("OPERATION_NOT_PERMITTED"), "IMPORT needs explicit ids");
    const imported = await importer.registerSchema("s", { schema: JSON.stringify(v3), id: 100, version: 5 });
    assert.deepEqual([imported.id, imported.version], [100, 5]);
    await assert.rejects(importer.registerSchema("t", { schema: JSON.stringify(v1), id: 100 }), failsWith("OPERATION_NOT_PERMITTED"), "id 100 is another schema");
    await importer.setMode(null, "READWRITE", false);
    assert.equal(await importer.register("u", v1), 101, "ids continue after imported ones");
  });

  it("accepts what Confluent's registry (Avro Java's parser) accepts: empty unions, union defaults of any branch, Java's textual defaults", async () => {
    const r = await registry();
    const accepted: unknown[] = [
      [],
      { type: "record", name: "E", fields: [{ name: "never", type: [] }] },
      { type: "record", name: "U", fields: [{ name: "a", type: ["null", "string"], default: "x" }] },
      { type: "record", name: "U2", fields: [{ name: "a", type: ["null", { type: "record", name: "I", fields: [{ name: "x", type: "int" }] }], default: { x: 1 } }] },
      { type: "record", name: "B", fields: [{ name: "a", type: "bytes", default: "\u0100" }] },
      { type: "record", name: "F", fields: [{ name: "a", type: { type: "fixed", name: "F2", size: 2 }, default: "abc" }] },
      { type: "record", name: "N", fields: [{ name: "a", type: { type: "enum", name: "E2", symbols: ["A"] }, default: "Z" }] },
    ];
    for (const [i, schema] of accepted.entries()) {
      const id = await r.register(`accepted-${i}`, schema as Parameters<LocalRegistry["register"]>[1]);
      assert.deepEqual(JSON.parse(await r.schemaById(id)), schema);
    }
    // Compatibility verdicts stay Java's: a field added with a default of its second branch is a BACKWARD-compatible change.
    await r.register("evolve", v1);
    const added = { type: "record", name: "R", fields: [{ name: "a", type: "int" }, { name: "b", type: ["null", "string"], default: "none" }] };
    assert.equal((await r.checkCompatibility("evolve", added)).compatible, true);
    // What Java refuses stays refused: a union default matching no branch, an int default that is not an int.
    await assert.rejects(r.register("bad-1", { type: "record", name: "R", fields: [{ name: "a", type: ["null", "string"], default: 1 }] }), failsWith("INVALID_SCHEMA"));
    await assert.rejects(r.register("bad-2", { type: "record", name: "R", fields: [{ name: "a", type: "int", default: "1" }] }), failsWith("INVALID_SCHEMA"));
  });

  it("rejects non-Avro and malformed requests as invalid schemas", async () => {
    const r = await registry();
    await assert.rejects(r.registerSchema("s", { schema: "{}", schemaType: "PROTOBUF" }), failsWith("INVALID_SCHEMA"));
    await assert.rejects(r.registerSchema("s", { schema: "" }), failsWith("INVALID_SCHEMA"));
    await assert.rejects(r.registerSchema("s", { schema: '"int"', references: [{ name: "x", subject: "y", version: 1 }] }), failsWith("INVALID_SCHEMA"));
    await assert.rejects(r.registerSchema("", { schema: '"int"' }), failsWith("INVALID_SUBJECT"));
  });

  it("parses version ids as Confluent does", () => {
    assert.equal(parseVersionSpec("latest"), "latest");
    assert.equal(parseVersionSpec("-1"), "latest");
    assert.equal(parseVersionSpec("7"), 7);
    for (const bad of ["0", "abc", "1.5", String(2 ** 31)]) assert.throws(() => parseVersionSpec(bad), failsWith("INVALID_VERSION"));
  });

  it("serialises concurrent registrations so versions and ids stay consistent", async () => {
    const r = await registry();
    const schemas = Array.from({ length: 20 }, (_, index) => ({ type: "record", name: "R", fields: [{ name: `f${index}`, type: "int", default: 0 }] }));
    const ids = await Promise.all(schemas.map((schema) => r.register("s", { ...schema })));
    await r.setConfig("s", "NONE");
    assert.equal(new Set(ids).size, ids.length);
    assert.deepEqual(await r.listVersions("s"), Array.from({ length: 20 }, (_, index) => index + 1));
  });
});
