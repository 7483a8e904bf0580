import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ChangeEvent, TableSchema } from "../connectors/contracts.ts";
import { UNCHANGED } from "../connectors/contracts.ts";
import { createAvroType, REPEATED } from "./avro-runtime.ts";
import { fromEnvelope } from "./envelope-codec.ts";
import { ChangeEventDecoder, ChangeEventEncoder } from "./event-codec.ts";
import { LocalRegistry } from "./local-registry.ts";
import { openMemoryStore } from "./log-store.ts";
import type { AvroRecordValue } from "./row-codec.ts";
import { tableSchemaFromAvro } from "./table-from-avro.ts";
import { mapTable } from "./table-mapping.ts";
import { unframe } from "./wire-format.ts";

const POSTGRES: TableSchema = {
  source: "shop",
  database: "shopdb",
  schema: "public",
  table: "orders",
  sourceKind: "postgres",
  key: ["id"],
  columns: [
    { name: "id", dbType: "int8", nullable: false, primaryKeyIndex: 1 },
    { name: "total", dbType: "numeric(12,2)", nullable: true },
    { name: "note", dbType: "text", nullable: true },
    { name: "at", dbType: "timestamptz", nullable: true },
  ],
};
const MYSQL: TableSchema = {
  source: "shop",
  database: "shopdb",
  schema: "shopdb",
  table: "items",
  sourceKind: "mysql",
  key: ["id"],
  columns: [
    { name: "id", dbType: "bigint", nullable: false, primaryKeyIndex: 1 },
    { name: "name", dbType: "varchar(20)", nullable: true },
  ],
};

function event(table: TableSchema, op: ChangeEvent["op"], row: Record<string, unknown>, change: bigint, extra: Partial<ChangeEvent["source"]> = {}): ChangeEvent {
  const image = row as ChangeEvent["after"];
  return {
    op,
    key: { id: row.id as bigint },
    before: op === "d" || op === "u" ? image : null,
    after: op === "d" ? null : image,
    source: {
      connector: table.sourceKind,
      name: "shop",
      db: "shopdb",
      schema: table.schema,
      table: table.table,
      position: { commit: change - 1n, change },
      txId: table.sourceKind === "postgres" ? "7123" : "3E11FA47-71CA-11E1-9E33-C80AA9429562:23",
      commitTimeMs: 1_700_000_000_123,
      snapshot: false,
      ...extra,
    },
    schema: table,
  };
}

/** The event as decoding the writer's whole envelope (every field built by avsc) gives it. */
async function wholeRead(registry: LocalRegistry, key: Uint8Array | null, value: Uint8Array, headers: Record<string, Uint8Array>): Promise<ChangeEvent> {
  const framed = unframe(value);
  const text = await registry.getById(framed.schemaId);
  const { table, options } = tableSchemaFromAvro(text);
  const mapping = mapTable(table, options);
  const record = createAvroType(text).fromBuffer(framed.payload) as AvroRecordValue;
  let keyRow;
  if (key !== null && mapping.keyCodec && mapping.keySchema) {
    keyRow = mapping.keyCodec.fromAvro(createAvroType(await registry.getById(unframe(key).schemaId)).fromBuffer(unframe(key).payload) as AvroRecordValue);
  }
  return fromEnvelope(record, mapping, keyRow, headers);
}

describe("ChangeEventDecoder reads only what a sink uses", () => {
  it("gives the same events as reading the writer's whole envelope: PostgreSQL and MySQL source blocks, transaction blocks, unchanged values, deletes", async () => {
    const registry = new LocalRegistry(await openMemoryStore());
    const decoder = new ChangeEventDecoder(registry);
    const postgres = await ChangeEventEncoder.register(registry, POSTGRES, { topic: "shop.public.orders" });
    const mysql = await ChangeEventEncoder.register(registry, MYSQL, { topic: "shop.shopdb.items" });
    const cases = [
      { encoder: postgres, event: event(POSTGRES, "c", { id: 2n ** 62n, total: "12.50", note: "a", at: 1_700_000_000_123_456n }, 2n ** 60n + 3n), extras: { transaction: { totalOrder: 3, dataCollectionOrder: 2 } } },
      { encoder: postgres, event: event(POSTGRES, "u", { id: -5n, total: null, note: UNCHANGED, at: null }, 900n, { snapshot: true, snapshotMarker: "last" }), extras: {} },
      { encoder: postgres, event: event(POSTGRES, "d", { id: 7n, total: "NaN", note: null, at: null }, 901n), extras: {} },
      { encoder: mysql, event: event(MYSQL, "c", { id: 1n, name: "x" }, 2n ** 40n, { binlog: { serverId: 223344, file: "mysql-bin.000003", pos: 154, row: 1, thread: 7 } }), extras: { transaction: { totalOrder: 1, dataCollectionOrder: 1 } } },
      { encoder: mysql, event: event(MYSQL, "d", { id: 2n, name: null }, 2n ** 40n + 9n, { txId: null }), extras: {} },
    ];
    // Twice: the first decode of a schema fetches it, later ones read without waiting.
    for (const round of [1, 2]) {
      for (const [i, { encoder, event: change, extras }] of cases.entries()) {
        const { key, value, headers } = encoder.encode(change, { ...extras, processedAtMs: 1_700_000_000_999 });
        const decoding = decoder.decode(key, value, headers);
        // Once its schemas are here a record is decoded at once, without a promise; a table's first records wait for them.
        assert.equal(decoding instanceof Promise, round === 1 && (i === 0 || i === 3), `round ${round}, case ${i}: decoded at once`);
        const decoded = await decoding;
        assert.deepEqual(decoded, await wholeRead(registry, key, value, headers), `round ${round}, case ${i}`);
        assert.equal(decoded?.source.position.change, change.source.position.change);
        assert.equal(decoded?.source.txId, change.source.txId);
      }
    }
  });

  it("refuses a record cut short whether it decodes at once or waits for its schemas", async () => {
    const registry = new LocalRegistry(await openMemoryStore());
    const encoder = await ChangeEventEncoder.register(registry, POSTGRES, { topic: "shop.public.orders" });
    const { key, value, headers } = encoder.encode(event(POSTGRES, "c", { id: 1n, total: "1.00", note: "a", at: 1n }, 10n), { processedAtMs: 1 });
    await assert.rejects(async () => new ChangeEventDecoder(registry).decode(key, value.subarray(0, value.length - 3), headers), "waiting for its schemas");
    const decoder = new ChangeEventDecoder(registry);
    await decoder.decode(key, value, headers);
    assert.throws(() => decoder.decode(key, value.subarray(0, value.length - 3), headers), "at once");
  });

  it("reads the source block's repeating values as the values of each change: names, transaction ids and commit times that stay, change, and change to a text of the same length", async () => {
    const registry = new LocalRegistry(await openMemoryStore());
    const decoder = new ChangeEventDecoder(registry);
    const postgres = await ChangeEventEncoder.register(registry, POSTGRES, { topic: "shop.public.orders" });
    const long = "n".repeat(70);
    const sources: Partial<ChangeEvent["source"]>[] = [
      { name: "shop", txId: "7", commitTimeMs: 1 },
      { name: "shop", txId: "7", commitTimeMs: 1 },
      { name: "shoq", txId: "8", commitTimeMs: 1_700_000_000_123 },
      { name: long, txId: "8", commitTimeMs: 1_700_000_000_123 },
      { name: `${long}x`, db: "other", txId: "123456789012", commitTimeMs: 1_700_000_000_124 },
      { name: `${long}x`, db: "other", txId: "123456789013", commitTimeMs: 1_700_000_000_124, snapshot: true, snapshotMarker: "first" },
      { name: `${long}y`, txId: null, commitTimeMs: 1_700_000_000_124, snapshot: true, snapshotMarker: "last" },
      { name: "shop", txId: "7", commitTimeMs: 1 },
    ];
    for (const [i, source] of sources.entries()) {
      const change = event(POSTGRES, "c", { id: BigInt(i), total: "1.00", note: "a", at: 1n }, 100n + BigInt(i), source);
      const { key, value, headers } = postgres.encode(change, { processedAtMs: 1 });
      const decoded = await decoder.decode(key, value, headers);
      assert.deepEqual(decoded, await wholeRead(registry, key, value, headers), `change ${i}`);
      assert.deepEqual(decoded?.source, change.source, `change ${i}`);
    }
  });

  it("reads a string or long marked REPEATED as the plain types do, and refuses a truncated one", () => {
    const schema = (marked: boolean) => ({
      type: "record" as const,
      name: "R",
      fields: [
        { name: "s", type: marked ? { type: "string", [REPEATED]: true } : "string" },
        { name: "l", type: marked ? ["null", { type: "long", [REPEATED]: true }] : ["null", "long"] },
      ],
    });
    const plain = createAvroType(schema(false));
    const marked = createAvroType(schema(true));
    const values = [
      { s: "", l: null },
      { s: "a", l: 0n },
      { s: "a", l: 0n },
      { s: "b", l: 1n },
      { s: "é".repeat(40), l: 2n ** 63n - 1n },
      { s: "é".repeat(40), l: 2n ** 63n - 1n },
      { s: "e".repeat(80), l: -(2n ** 63n) },
      { s: "a", l: 0n },
    ];
    for (const [i, value] of values.entries()) {
      const bytes = plain.toBuffer(value);
      assert.deepEqual({ ...(marked.fromBuffer(bytes) as object) }, value, `value ${i}`);
      for (let length = 0; length < bytes.length; length++) assert.throws(() => marked.fromBuffer(bytes.subarray(0, length)), `value ${i} cut to ${length} bytes`);
      // A value read again after the cut ones is read whole.
      assert.deepEqual({ ...(marked.fromBuffer(bytes) as object) }, value, `value ${i} again`);
    }
  });

  it("reads a long at every length exactly (avro-runtime.ts), and refuses a truncated one", () => {
    const type = createAvroType({ type: "record", name: "R", fields: [{ name: "a", type: "long" }, { name: "b", type: ["null", "long"] }] });
    const values = [0n, 1n, -1n, 63n, -64n, 64n, 8191n, -8192n, 2n ** 48n, 2n ** 49n - 1n, -(2n ** 49n), 2n ** 52n, 2n ** 53n + 1n, -(2n ** 53n) - 1n, 2n ** 63n - 1n, -(2n ** 63n)];
    for (const a of values) {
      for (const b of [null, 12_345]) {
        const bytes = type.toBuffer({ a, b });
        assert.deepEqual({ ...(type.fromBuffer(bytes) as object) }, { a, b: b === null ? null : BigInt(b) }, `${a}`);
        for (let length = 0; length < bytes.length; length++) assert.throws(() => type.fromBuffer(bytes.subarray(0, length)), `${a} cut to ${length} bytes`);
      }
    }
  });
});
