import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { UNCHANGED } from "../connectors/contracts.ts";
import type { ChangeEvent, TableSchema } from "../connectors/contracts.ts";
import { ChangeEventDecoder, ChangeEventEncoder } from "./event-codec.ts";
import { LocalRegistry } from "./local-registry.ts";
import { openMemoryStore } from "./log-store.ts";
import { IncompatibleSchemaError } from "./registry-errors.ts";

const V1: TableSchema = {
  source: "shop",
  database: "shopdb",
  schema: "public",
  table: "carts",
  sourceKind: "postgres",
  key: ["id"],
  columns: [
    { name: "id", dbType: "int8", nullable: false, primaryKeyIndex: 1 },
    { name: "total", dbType: "numeric", nullable: true },
    { name: "items", dbType: "jsonb", nullable: true },
  ],
};
const V2: TableSchema = { ...V1, columns: [...V1.columns, { name: "coupon code", dbType: "text", nullable: true }] };

function event(table: TableSchema, after: Record<string, unknown>, change: bigint): ChangeEvent {
  return {
    op: "u",
    key: { id: after.id as bigint },
    before: null,
    after: after as ChangeEvent["after"],
    source: {
      connector: "postgres",
      name: "shop",
      db: "shopdb",
      schema: "public",
      table: "carts",
      position: { commit: change + 10n, change },
      txId: "42",
      commitTimeMs: 1_700_000_000_000,
      snapshot: false,
    },
    schema: table,
  };
}

describe("ChangeEventEncoder and ChangeEventDecoder", () => {
  it("register a table's schemas and carry events through the registry, each under the table schema it was written with", async () => {
    const registry = new LocalRegistry(await openMemoryStore());
    const encoderV1 = await ChangeEventEncoder.register(registry, V1, { topic: "shop.public.carts" });
    assert.deepEqual(await registry.listSubjects(), ["shop.public.carts-key", "shop.public.carts-value"]);
    const first = event(V1, { id: 2n ** 60n, total: "NaN", items: UNCHANGED }, 100n);
    const recordV1 = encoderV1.encode(first);

    const encoderV2 = await ChangeEventEncoder.register(registry, V2, { topic: "shop.public.carts" });
    assert.equal(encoderV2.keySchemaId, encoderV1.keySchemaId, "the key did not change");
    assert.notEqual(encoderV2.valueSchemaId, encoderV1.valueSchemaId);
    const second = event(V2, { id: 1n, total: "12.5", items: "[]", "coupon code": "SAVE" }, 200n);
    const recordV2 = encoderV2.encode(second);

    const decoder = new ChangeEventDecoder(registry);
    assert.deepEqual(await decoder.decode(recordV1.key, recordV1.value, recordV1.headers), first, "unchanged and NaN come back from the record headers");
    assert.deepEqual(await decoder.decode(recordV2.key, recordV2.value, recordV2.headers), second);
    assert.equal(await decoder.decode(recordV1.key, null), null, "a tombstone");
  });

  it("a column keeps the field name of the subject's latest schema when a column sharing its sanitised name is added before it", async () => {
    const registry = new LocalRegistry(await openMemoryStore());
    const withCode: TableSchema = { ...V1, columns: [...V1.columns, { name: "coupon_code", dbType: "text", nullable: true }] };
    await ChangeEventEncoder.register(registry, withCode, { topic: "t" });
    const added: TableSchema = { ...withCode, columns: [{ name: "coupon code", dbType: "text", nullable: true }, ...withCode.columns] };
    const encoder = await ChangeEventEncoder.register(registry, added, { topic: "t" });
    assert.equal(encoder.mapping.fieldNames.get("coupon code"), "coupon_code_2");
    assert.equal(encoder.mapping.fieldNames.get("coupon_code"), "coupon_code");
    const record = encoder.encode(event(added, { "coupon code": "new", id: 1n, total: "1", items: "[]", coupon_code: "old" }, 100n));
    const decoded = await new ChangeEventDecoder(registry).decode(record.key, record.value, record.headers);
    assert.deepEqual(decoded?.after, { "coupon code": "new", id: 1n, total: "1", items: "[]", coupon_code: "old" });
  });

  it("refuses an incompatible table change at registration, naming the subject and column", async () => {
    const registry = new LocalRegistry(await openMemoryStore());
    await ChangeEventEncoder.register(registry, V1, { topic: "t" });
    const retyped: TableSchema = { ...V1, columns: [V1.columns[0], { name: "total", dbType: "int4", nullable: true }, V1.columns[2]] as TableSchema["columns"] };
    await assert.rejects(ChangeEventEncoder.register(registry, retyped, { topic: "t" }), (error: unknown) => {
      assert.ok(error instanceof IncompatibleSchemaError);
      assert.match(error.message, /subject "t-value".*column `total`/);
      return true;
    });
  });

  it("writes no key for truncates", async () => {
    const registry = new LocalRegistry(await openMemoryStore());
    const encoder = await ChangeEventEncoder.register(registry, V1, { topic: "t" });
    const truncate: ChangeEvent = { ...event(V1, { id: 1n }, 5n), op: "t", key: {}, after: null };
    const record = encoder.encode(truncate);
    assert.equal(record.key, null);
    const decoded = await new ChangeEventDecoder(registry).decode(null, record.value);
    assert.equal(decoded?.op, "t");
    assert.deepEqual(decoded?.key, {});
  });

  describe("a deployment upgraded in place (subjects registered by Sluice's earlier layout)", () => {
    const STAMPED: TableSchema = { ...V1, columns: [...V1.columns, { name: "at", dbType: "timestamp with time zone", nullable: true }] };
    const at = 1_700_000_000_000_001n;

    it("moves to the Debezium envelope (a compatible change), and records of both layouts decode", async () => {
      const registry = new LocalRegistry(await openMemoryStore());
      const earlier = await ChangeEventEncoder.register(registry, V1, { topic: "t", envelope: "sluice" });
      const encoder = await ChangeEventEncoder.register(registry, V1, { topic: "t" });
      assert.equal(encoder.mapping.envelope, "debezium");
      assert.notEqual(encoder.valueSchemaId, earlier.valueSchemaId);
      const before = earlier.encode(event(V1, { id: 1n, total: "NaN", items: UNCHANGED }, 5n));
      const after = encoder.encode(event(V1, { id: 1n, total: "NaN", items: UNCHANGED }, 6n));
      const decoder = new ChangeEventDecoder(registry);
      assert.deepEqual((await decoder.decode(before.key, before.value, before.headers))?.after, { id: 1n, total: "NaN", items: UNCHANGED });
      assert.deepEqual((await decoder.decode(after.key, after.value, after.headers))?.after, { id: 1n, total: "NaN", items: UNCHANGED });
    });

    it("keeps the earlier timestamp type where the subject refuses timestamptz as text (BACKWARD), instead of halting the table", async () => {
      const registry = new LocalRegistry(await openMemoryStore());
      await ChangeEventEncoder.register(registry, STAMPED, { topic: "t", envelope: "sluice" });
      const encoder = await ChangeEventEncoder.register(registry, STAMPED, { topic: "t" });
      assert.equal(encoder.mapping.envelope, "debezium", "the bookkeeping still moves to headers");
      const field = encoder.mapping.valueSchema.fields.find((f) => f.name === "at")!;
      assert.deepEqual((field.type as unknown[])[1], { type: "long", logicalType: "timestamp-micros" });
      const record = encoder.encode(event(STAMPED, { id: 1n, total: null, items: null, at }, 5n));
      assert.equal((await new ChangeEventDecoder(registry).decode(record.key, record.value, record.headers))?.after?.["at"], at);
    });

    it("a new subject gets Debezium's adaptive types", async () => {
      const registry = new LocalRegistry(await openMemoryStore());
      const encoder = await ChangeEventEncoder.register(registry, STAMPED, { topic: "t" });
      const field = encoder.mapping.valueSchema.fields.find((f) => f.name === "at")!;
      assert.deepEqual((field.type as unknown[])[1], { type: "string", "connect.name": "io.debezium.time.ZonedTimestamp", "connect.version": 1 });
      const record = encoder.encode(event(STAMPED, { id: 1n, total: null, items: null, at }, 5n));
      assert.equal((await new ChangeEventDecoder(registry).decode(record.key, record.value, record.headers))?.after?.["at"], at);
    });

    it("bit strings move to Bits (Avro reads a string as bytes: a compatible change under BACKWARD), and records of both forms decode exactly", async () => {
      const FLAGS: TableSchema = { ...V1, table: "flags", columns: [V1.columns[0]!, { name: "mask", dbType: "bit varying(16)", nullable: true }] };
      const registry = new LocalRegistry(await openMemoryStore());
      const text = await ChangeEventEncoder.register(registry, FLAGS, { topic: "pg", envelope: "sluice" });
      const bits = await ChangeEventEncoder.register(registry, FLAGS, { topic: "pg" });
      assert.notEqual(bits.valueSchemaId, text.valueSchemaId);
      assert.equal(((bits.mapping.valueSchema.fields.find((f) => f.name === "mask")!.type as unknown[])[1] as { "connect.name": string })["connect.name"], "io.debezium.data.Bits");
      const decoder = new ChangeEventDecoder(registry);
      for (const encoder of [text, bits]) {
        const record = encoder.encode(event(FLAGS, { id: 1n, mask: "0010" }, 5n));
        assert.equal((await decoder.decode(record.key, record.value, record.headers))?.after?.["mask"], "0010");
      }

      const MY: TableSchema = { ...V1, sourceKind: "mysql", table: "my_flags", columns: [V1.columns[0]!, { name: "mask", dbType: "bit(16)", nullable: true }] };
      const earlier = await ChangeEventEncoder.register(registry, MY, { topic: "my", envelope: "sluice" });
      const moved = await ChangeEventEncoder.register(registry, MY, { topic: "my" });
      assert.notEqual(moved.valueSchemaId, earlier.valueSchemaId, "bytes to Bits bytes is a compatible change");
      const mask = new Uint8Array([0x01, 0x02]);
      const mysqlEvent = event(MY, { id: 1n, mask }, 5n);
      const binlogEvent: ChangeEvent = { ...mysqlEvent, source: { ...mysqlEvent.source, connector: "mysql", binlog: { serverId: 1, file: "mysql-bin.000001", pos: 4, row: 0 } } };
      for (const encoder of [earlier, moved]) {
        const record = encoder.encode(binlogEvent);
        assert.deepEqual((await decoder.decode(record.key, record.value, record.headers))?.after?.["mask"], mask);
      }
    });

    it("a key column whose Avro form drops part of the value (timetz's offset, numeric NaN) decodes to the row's exact value", async () => {
      const registry = new LocalRegistry(await openMemoryStore());
      const SLOTS: TableSchema = {
        ...V1,
        table: "slots",
        key: ["opens", "weight"],
        columns: [
          { name: "opens", dbType: "timetz", nullable: false, primaryKeyIndex: 1 },
          { name: "weight", dbType: "numeric", nullable: false, primaryKeyIndex: 2 },
        ],
      };
      const encoder = await ChangeEventEncoder.register(registry, SLOTS, { topic: "t" });
      const decoder = new ChangeEventDecoder(registry);
      const row = { opens: "10:00:00+02:00", weight: "NaN" };
      const created = encoder.encode({ ...event(SLOTS, row, 5n), op: "c", key: row });
      const decoded = await decoder.decode(created.key, created.value, created.headers);
      assert.deepEqual(decoded?.key, row, "the key of a create");
      const deleted = encoder.encode({ ...event(SLOTS, row, 6n), op: "d", key: row, before: row, after: null });
      assert.deepEqual((await decoder.decode(deleted.key, deleted.value, deleted.headers))?.key, row, "the key of a delete");
    });
  });

  describe("PostgreSQL array columns", () => {
    const TAGS: TableSchema = { ...V1, columns: [...V1.columns, { name: "grid", dbType: "integer[]", nullable: true }] };
    const flatColumn = { type: "array", items: ["null", "int"] };

    it("carry multi-dimensional values as nested arrays", async () => {
      const registry = new LocalRegistry(await openMemoryStore());
      const encoder = await ChangeEventEncoder.register(registry, TAGS, { topic: "t" });
      const record = encoder.encode(event(TAGS, { id: 1n, total: null, items: null, grid: [[1, 2], [3, null]] }, 5n));
      const decoded = await new ChangeEventDecoder(registry).decode(record.key, record.value);
      assert.deepEqual(decoded?.after?.["grid"], [[1, 2], [3, null]]);
    });

    it("keep the one-dimensional layout of an earlier subject whose level refuses the nested one (FORWARD), so the table does not halt", async () => {
      const registry = new LocalRegistry(await openMemoryStore(), { defaultCompatibility: "FORWARD" });
      // What an earlier Sluice registered: the same table with one-dimensional array items.
      const earlier = await ChangeEventEncoder.register(registry, TAGS, { topic: "t", arrayLayout: "flat" });
      const encoder = await ChangeEventEncoder.register(registry, TAGS, { topic: "t" });
      assert.equal(encoder.valueSchemaId, earlier.valueSchemaId);
      const grid = encoder.mapping.valueSchema.fields.find((f) => f.name === "grid")!;
      assert.deepEqual((grid.type as unknown[])[1], flatColumn);
      const record = encoder.encode(event(TAGS, { id: 1n, total: null, items: null, grid: [1, null, 3] }, 5n));
      assert.deepEqual((await new ChangeEventDecoder(registry).decode(record.key, record.value))?.after?.["grid"], [1, null, 3]);
      assert.throws(() => encoder.encode(event(TAGS, { id: 1n, total: null, items: null, grid: [[1, 2]] }, 6n)), /column `grid`.*one-dimensional layout/);
    });

    it("move an earlier subject to the nested layout where its level allows it (BACKWARD)", async () => {
      const registry = new LocalRegistry(await openMemoryStore());
      const earlier = await ChangeEventEncoder.register(registry, TAGS, { topic: "t", arrayLayout: "flat" });
      const encoder = await ChangeEventEncoder.register(registry, TAGS, { topic: "t" });
      assert.notEqual(encoder.valueSchemaId, earlier.valueSchemaId);
      // Old one-dimensional records still decode, and new one-dimensional records are the same bytes
      // (at the same processing time: the envelope's ts_ms differed when the clock ticked in between).
      const old = earlier.encode(event(TAGS, { id: 1n, total: null, items: null, grid: [4] }, 5n), { processedAtMs: 1_700_000_000_000 });
      const now = encoder.encode(event(TAGS, { id: 1n, total: null, items: null, grid: [4] }, 5n), { processedAtMs: 1_700_000_000_000 });
      assert.deepEqual(now.value.subarray(5), old.value.subarray(5));
      assert.deepEqual((await new ChangeEventDecoder(registry).decode(old.key, old.value))?.after?.["grid"], [4]);
    });
  });
});

describe("hstore as Debezium's JSON text on subjects registered with the map", () => {
  const TAGGED: TableSchema = {
    ...V1,
    table: "tagged",
    columns: [
      { name: "id", dbType: "int8", nullable: false, primaryKeyIndex: 1 },
      { name: "at", dbType: "timestamptz", nullable: true },
      { name: "tags", dbType: "hstore", nullable: true },
    ],
  };
  const tags = '"b"=>"2", "a"=>NULL';
  const at = 1_700_000_000_123_456n;

  it("a subject whose level refuses the JSON text (BACKWARD) keeps the map and the other Debezium types, and both versions decode exactly", async () => {
    const registry = new LocalRegistry(await openMemoryStore());
    const earlier = await ChangeEventEncoder.register(registry, TAGGED, { topic: "t", hstore: "map" });
    const encoder = await ChangeEventEncoder.register(registry, TAGGED, { topic: "t", hstore: "json" });
    const fields = encoder.mapping.valueSchema.fields;
    assert.deepEqual((fields.find((f) => f.name === "tags")!.type as unknown[])[1], { type: "map", values: ["null", "string"] });
    assert.deepEqual((fields.find((f) => f.name === "at")!.type as unknown[])[1], { type: "string", "connect.name": "io.debezium.time.ZonedTimestamp", "connect.version": 1 });
    assert.equal(encoder.valueSchemaId, earlier.valueSchemaId);
    const record = encoder.encode(event(TAGGED, { id: 1n, at, tags }, 5n));
    assert.equal((await new ChangeEventDecoder(registry).decode(record.key, record.value, record.headers))?.after?.["tags"], tags);
  });

  it("a new subject gets the JSON text, and Sluice decodes it to the exact hstore text", async () => {
    const registry = new LocalRegistry(await openMemoryStore());
    const encoder = await ChangeEventEncoder.register(registry, TAGGED, { topic: "t" });
    assert.deepEqual((encoder.mapping.valueSchema.fields.find((f) => f.name === "tags")!.type as unknown[])[1], { type: "string", "connect.version": 1, "connect.name": "io.debezium.data.Json" });
    const record = encoder.encode(event(TAGGED, { id: 1n, at, tags }, 5n));
    assert.deepEqual((await new ChangeEventDecoder(registry).decode(record.key, record.value, record.headers))?.after, { id: 1n, at, tags });
  });
});

describe("interval as Debezium's MicroDuration", () => {
  const TIMED: TableSchema = {
    ...V1,
    table: "timed",
    columns: [
      { name: "id", dbType: "int8", nullable: false, primaryKeyIndex: 1 },
      { name: "span", dbType: "interval", nullable: true },
      { name: "spans", dbType: "_interval", nullable: true },
    ],
  };
  const row = { id: 1n, span: "P1Y2M3DT4H5M6.789S", spans: ["PT1S", null, "P-1DT-1S"] };

  it("a new subject gets the count of microseconds, and Sluice decodes the exact text (from the sluice.special header)", async () => {
    const registry = new LocalRegistry(await openMemoryStore());
    const encoder = await ChangeEventEncoder.register(registry, TIMED, { topic: "t" });
    assert.deepEqual((encoder.mapping.valueSchema.fields.find((f) => f.name === "span")!.type as unknown[])[1], { type: "long", "connect.name": "io.debezium.time.MicroDuration", "connect.version": 1 });
    const record = encoder.encode(event(TIMED, row, 5n));
    assert.deepEqual((await new ChangeEventDecoder(registry).decode(record.key, record.value, record.headers))?.after, row);
  });

  it("a subject registered with the ISO text whose level refuses the count (BACKWARD) keeps the text rather than halting", async () => {
    const registry = new LocalRegistry(await openMemoryStore());
    const earlier = await ChangeEventEncoder.register(registry, TIMED, { topic: "t", interval: "string" });
    const encoder = await ChangeEventEncoder.register(registry, TIMED, { topic: "t", interval: "numeric" });
    assert.equal(encoder.valueSchemaId, earlier.valueSchemaId);
    const record = encoder.encode(event(TIMED, row, 5n));
    assert.deepEqual((await new ChangeEventDecoder(registry).decode(record.key, record.value, record.headers))?.after, row);
  });
});
