import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { ChangeEvent, TableSchema } from "../connectors/contracts.ts";
import { SluiceError } from "../connectors/errors.ts";
import { createAvroType } from "./avro-runtime.ts";
import type { AvroSchemaJson } from "./avro-schema.ts";
import { AvroChangeEncoder } from "./change-encoder.ts";
import { ChangeEventDecoder } from "./event-codec.ts";
import { openJournalStore } from "./journal-backend.ts";
import type { JournalLike } from "./journal-backend.ts";
import { LocalRegistry } from "./local-registry.ts";
import { openMemoryStore } from "./log-store.ts";

const TABLE: TableSchema = {
  source: "pg1",
  database: "app",
  schema: "public",
  table: "users",
  sourceKind: "postgres",
  key: ["id"],
  columns: [
    { name: "id", dbType: "int4", nullable: false, primaryKeyIndex: 1 },
    { name: "email", dbType: "text", nullable: true },
  ],
};

function change(op: ChangeEvent["op"], table: TableSchema, row: Record<string, unknown> | null, before: Record<string, unknown> | null = null): ChangeEvent {
  return {
    op,
    key: { id: ((row ?? before)?.id as number) ?? 0 },
    before: before as ChangeEvent["before"],
    after: row as ChangeEvent["after"],
    source: {
      connector: "postgres",
      name: "pg1",
      db: "app",
      schema: "public",
      table: "users",
      position: { commit: 10n, change: 9n },
      txId: "1",
      commitTimeMs: 1_700_000_000_000,
      snapshot: false,
    },
    schema: table,
  };
}

describe("AvroChangeEncoder", () => {
  it("produces framed records on the table's topic, and a tombstone after a delete", async () => {
    const registry = new LocalRegistry(await openMemoryStore());
    const encoder = new AvroChangeEncoder({ registry, topicPrefix: (source) => `prod.${source}` });
    const [created] = await encoder.encode(change("c", TABLE, { id: 1, email: "a@b" }));
    assert.equal(created?.topic, "prod.pg1.public.users");
    assert.equal(created?.timestamp, 1_700_000_000_000);
    assert.equal(created?.value?.[0], 0, "magic byte");
    const deleted = await encoder.encode(change("d", TABLE, null, { id: 1, email: "a@b" }));
    assert.equal(deleted.length, 2);
    assert.equal(deleted[1]?.value, null);
    assert.deepEqual(deleted[1]?.key, deleted[0]?.key);
    assert.deepEqual(await registry.listSubjects(), ["prod.pg1.public.users-key", "prod.pg1.public.users-value"]);
    const envelope = JSON.parse((await registry.getLatest("prod.pg1.public.users-value"))?.schema ?? "{}") as { name: string };
    assert.equal(envelope.name, "prod.pg1.public.users.Envelope");
    const decoded = await new ChangeEventDecoder(registry).decode(created?.key ?? null, created?.value ?? null);
    assert.deepEqual(decoded?.after, { id: 1, email: "a@b" });
  });

  it("registers a new version when the table changes, and halts only on an incompatible change", async () => {
    const registry = new LocalRegistry(await openMemoryStore());
    const encoder = new AvroChangeEncoder({ registry, topicPrefix: (source) => source });
    await encoder.encode(change("c", TABLE, { id: 1, email: null }));
    const widened: TableSchema = { ...TABLE, columns: [...TABLE.columns, { name: "age", dbType: "int2", nullable: true }] };
    await encoder.encode(change("c", widened, { id: 2, email: null, age: 30 }));
    assert.deepEqual(await registry.listVersions("pg1.public.users-value"), [1, 2]);
    const retyped: TableSchema = { ...TABLE, columns: [TABLE.columns[0], { name: "email", dbType: "int4", nullable: true }] as TableSchema["columns"] };
    await assert.rejects(encoder.encode(change("u", retyped, { id: 1, email: 5 })), (error: unknown) => {
      assert.ok(error instanceof SluiceError);
      assert.equal(error.code, "SCHEMA_INCOMPATIBLE");
      assert.equal(error.retriable, false);
      assert.match(error.message, /column `email`/);
      return true;
    });
  });
});

describe("AvroChangeEncoder memory", () => {
  it("keeps no reference to the last change it encoded (a large value would stay in memory until the table's next change)", async () => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const registry = new LocalRegistry(await openMemoryStore());
    const encoder = new AvroChangeEncoder({ registry, topicPrefix: (source) => `prod.${source}` });
    await encoder.encode(change("c", TABLE, { id: 1, email: "warm-up" }));
    const encode = async () => {
      const event = change("c", TABLE, { id: 2, email: "x".repeat(2 ** 20) });
      const [record] = await encoder.encode(event);
      assert.ok((record?.value?.length ?? 0) > 2 ** 20);
      return new WeakRef(event);
    };
    const encoded = await encode();
    // A WeakRef's target is kept until the job that made it ends.
    await new Promise((resolve) => setImmediate(resolve));
    gc();
    assert.equal(encoded.deref(), undefined, "the encoder still holds the change");
  });
});

describe("AvroChangeEncoder transaction blocks", () => {
  it("numbers a transaction's events overall and per table, leaving out the operations the data topics skip", async () => {
    const registry = new LocalRegistry(await openMemoryStore());
    const encoder = new AvroChangeEncoder({ registry, topicPrefix: (source) => `prod.${source}`, transactionMetadata: true, skippedOperations: ["t"] });
    const other: TableSchema = { ...TABLE, table: "orders" };
    const events = [change("c", TABLE, { id: 1, email: "a" }), change("t", TABLE, null), change("c", other, { id: 7, email: null }), change("u", TABLE, { id: 1, email: "b" }, { id: 1, email: "a" })];
    const blocks = [];
    for (const event of events) {
      const [record] = await encoder.encode(event);
      const subject = `${record!.topic}-value`;
      const type = createAvroType(JSON.parse((await registry.getLatest(subject))!.schema) as AvroSchemaJson);
      const { transaction } = type.fromBuffer(Buffer.from(record!.value!).subarray(5)) as { transaction: object | null };
      blocks.push(transaction === null ? null : { ...transaction });
    }
    assert.deepEqual(blocks, [
      { id: "1", total_order: 1n, data_collection_order: 1n },
      null,
      { id: "1", total_order: 2n, data_collection_order: 1n },
      { id: "1", total_order: 3n, data_collection_order: 2n },
    ]);
    // A source's own numbering wins (it counts what a resume skipped).
    const numbered = change("u", TABLE, { id: 1, email: "c" }, { id: 1, email: "b" });
    const [record] = await encoder.encode({ ...numbered, source: { ...numbered.source, txId: "2", transactionOrder: { total: 7, inTable: 4 } } });
    const type = createAvroType(JSON.parse((await registry.getLatest(`${record!.topic}-value`))!.schema) as AvroSchemaJson);
    const { transaction } = type.fromBuffer(Buffer.from(record!.value!).subarray(5)) as { transaction: object };
    assert.deepEqual({ ...transaction }, { id: "2", total_order: 7n, data_collection_order: 4n });
  });

  it("refuses, with SCHEMA_UNSUPPORTED naming the table, a table whose name has no topic: control characters, or a topic another table writes", async () => {
    const registry = new LocalRegistry(await openMemoryStore());
    const encoder = new AvroChangeEncoder({ registry, topicPrefix: (source) => `prod.${source}` });
    const unsupported = (table: string) => (error: unknown) => {
      assert.ok(error instanceof SluiceError, String(error));
      assert.equal(error.code, "SCHEMA_UNSUPPORTED");
      assert.ok(error.message.includes(JSON.stringify(table)), error.message);
      return true;
    };
    // "a.b"."c" and "a"."b.c" both make prod.pg1.a.b.c: the second is refused, the first's records stay its own.
    const dotted: TableSchema = { ...TABLE, schema: "a.b", table: "c" };
    const [first] = await encoder.encode(change("c", dotted, { id: 1, email: "x" }));
    assert.equal(first?.topic, "prod.pg1.a.b.c");
    await assert.rejects(encoder.encode(change("c", { ...TABLE, schema: "a", table: "b.c" }, { id: 1, email: "y" })), unsupported("a.b.c"));
    assert.equal((await encoder.encode(change("u", dotted, { id: 1, email: "z" })))[0]?.topic, "prod.pg1.a.b.c");
    // A later run (a new encoder, the same registry) knows whose topic it is from the registered schema.
    const later = new AvroChangeEncoder({ registry, topicPrefix: (source) => `prod.${source}` });
    await assert.rejects(later.encode(change("c", { ...TABLE, schema: "a", table: "b.c" }, { id: 1, email: "y" })), unsupported("a.b.c"));
    // A control character (a terminal escape) in a name: not a subject the registry takes (it stopped the source before).
    await assert.rejects(encoder.encode(change("c", { ...TABLE, table: "red\u001b[31m" }, { id: 1, email: "x" })), unsupported("public.red\u001b[31m"));
    // A column named __proto__ (its values were lost: a halt saying 'expected a string, got object [object Object]').
    const proto: TableSchema = { ...TABLE, table: "proto", columns: [...TABLE.columns, { name: "__proto__", dbType: "text", nullable: true }] };
    await assert.rejects(encoder.encode(change("c", proto, JSON.parse('{"id": 1, "email": "x", "__proto__": "p"}') as Record<string, unknown>)), (error: unknown) => unsupported("public.proto")(error) && /column "__proto__"/.test((error as Error).message));
  });
});

describe("JournalBackend", () => {
  it("keeps the registry in the topic log's journal, one entry per batch, across reopen", async () => {
    const entries: unknown[] = [];
    const journal: JournalLike = {
      append: async (entry) => {
        entries.push(JSON.parse(JSON.stringify(entry)));
      },
      loadAll: async () => [...entries],
    };
    const first = new LocalRegistry(await openJournalStore(journal));
    const id = await first.register("s", { type: "record", name: "R", fields: [{ name: "a", type: "int" }] });
    await first.deleteSubject("s", false);
    assert.equal(entries.length, 2);
    const reopened = new LocalRegistry(await openJournalStore(journal));
    assert.deepEqual(await reopened.subjects(true), ["s"]);
    assert.deepEqual(await reopened.listSubjects(), []);
    assert.match(await reopened.getById(id), /"name":"R"/);
    entries.push({ not: "a batch" });
    await assert.rejects(openJournalStore(journal), (error: unknown) => error instanceof SluiceError && error.code === "SCHEMA_STORE_CORRUPT");
  });
});
