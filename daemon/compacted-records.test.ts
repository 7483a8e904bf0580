/** What capture writes to compacted data topics beyond row changes, and how sinks read it back (compacted-records.ts). */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { ChangeEvent, ProducedRecord, StoredRecord, TableSchema } from "../connectors/contracts.ts";
import { UNCHANGED } from "../connectors/contracts.ts";
import { LocalRegistry, openMemoryStore } from "../schema-registry/index.ts";
import { unframe } from "../schema-registry/wire-format.ts";
import { CompactedRecordReader, CompactedRecords, DELETE_HEADER, TRUNCATE_KEY_SUBJECT } from "./compacted-records.ts";
import type { Normalized } from "./compacted-records.ts";

/** The key and value a record is read as (the reader may hand back the record itself). */
async function read(reader: CompactedRecordReader, record: StoredRecord): Promise<Normalized> {
  const { key, value } = await reader.normalize(record);
  return { key, value };
}

const schema: TableSchema = {
  source: "pg",
  database: "shop",
  schema: "public",
  table: "items",
  sourceKind: "postgres",
  columns: [{ name: "id", dbType: "integer", nullable: false, primaryKeyIndex: 1 }, { name: "doc", dbType: "text", nullable: true }],
  key: ["id"],
};

function event(op: ChangeEvent["op"], overrides: Partial<ChangeEvent> = {}): ChangeEvent {
  return {
    op,
    key: op === "t" ? {} : { id: 1 },
    before: null,
    after: null,
    source: { connector: "postgres", name: "pg", db: "shop", schema: "public", table: "items", position: { commit: 10n, change: 9n }, txId: null, commitTimeMs: 1_000, snapshot: op === "t" },
    schema,
    ...overrides,
  };
}

const stored = (record: ProducedRecord, offset: bigint): StoredRecord => ({ ...record, partition: 0, offset });
const topic = "dep.pg.public.items";

test("a truncate written to a compacted data topic (skipped_operations leaves it in) gets the table's own key (registered, Confluent-framed) and keeps its envelope as value; the reader drops that key", async () => {
  const registry = new LocalRegistry(await openMemoryStore());
  const writer = new CompactedRecords(registry);
  const reader = new CompactedRecordReader(registry);
  const envelope = Buffer.from([0, 0, 0, 0, 7, 1, 2, 3]);
  const [record] = await writer.rewrite(event("t"), [{ topic, key: null, value: envelope, headers: { other: Buffer.from("x") }, timestamp: 1_000 }]);
  assert.ok(record!.key !== null);
  assert.deepEqual(Buffer.from(record!.value!), envelope, "the envelope is the value: a tombstone would be compacted away");
  assert.deepEqual(record!.headers, { other: Buffer.from("x") });
  const { schemaId } = unframe(record!.key);
  assert.equal(schemaId, (await registry.getLatest(TRUNCATE_KEY_SUBJECT))!.id);
  assert.deepEqual(await read(reader, stored(record!, 5n)), { key: null, value: record!.value });
  const [again] = await writer.rewrite(event("t"), [{ topic, key: null, value: envelope, timestamp: 2_000 }]);
  assert.deepEqual(Buffer.from(again!.key!), Buffer.from(record!.key!), "every truncate of a table has the same key: compaction keeps the newest");
  const other = await writer.rewrite(event("t", { schema: { ...schema, table: "orders" } }), [{ topic, key: null, value: envelope, timestamp: 1_000 }]);
  assert.notDeepEqual(Buffer.from(other[0]!.key!), Buffer.from(record!.key!), "tables have different truncate keys");
});

test("a delete's tombstone carries the delete's envelope; the reader turns it back into the delete, and leaves row keys alone", async () => {
  const registry = new LocalRegistry(await openMemoryStore());
  const rowKeyId = await registry.register(`${topic}-key`, { type: "record", name: "Key", namespace: "pg.public.items", fields: [{ name: "id", type: "int" }] });
  const writer = new CompactedRecords(registry);
  const reader = new CompactedRecordReader(registry);
  const key = Buffer.from([0, 0, 0, 0, rowKeyId, 2]);
  const value = Buffer.from([0, 0, 0, 0, 9, 4, 5]);
  const [deleted, tombstone] = await writer.rewrite(event("d"), [{ topic, key, value, timestamp: 1 }, { topic, key, value: null, timestamp: 1 }]);
  assert.equal(deleted!.headers, undefined);
  assert.deepEqual(tombstone!.headers?.[DELETE_HEADER], value);
  assert.equal(tombstone!.value, null, "still a tombstone: compaction forgets the row");
  assert.deepEqual(await read(reader, stored(tombstone!, 2n)), { key, value }, "its delete was compacted away: the tombstone is the delete");
  assert.deepEqual(await read(reader, stored(deleted!, 1n)), { key, value });
  assert.deepEqual(await read(reader, stored(tombstone!, 2n)), { key, value: null }, "read right after its delete, the tombstone is skipped");
  assert.deepEqual(await read(reader, stored({ topic, key, value: null, timestamp: 1 }, 3n)), { key, value: null }, "a bare tombstone stays one");
});

test("an update without a column's value (unchanged TOAST, no old value) is reported; with the old row's value it is not", async () => {
  const reported: string[][] = [];
  const writer = new CompactedRecords(new LocalRegistry(await openMemoryStore()), (_event, columns) => reported.push([...columns]));
  const records = [{ topic, key: Buffer.from([1]), value: Buffer.from([2]), timestamp: 1 }];
  await writer.rewrite(event("u", { after: { id: 1, doc: UNCHANGED } }), records);
  await writer.rewrite(event("u", { before: { id: 1, doc: "old" }, after: { id: 1, doc: UNCHANGED } }), records);
  await writer.rewrite(event("u", { after: { id: 1, doc: "new" } }), records);
  assert.deepEqual(reported, [["doc"]]);
});
