/** inPlaceRecordsOf (kafka-consumer.ts): a fetched batch's records over one buffer of their own, read in place by the sink's decoder. */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { KafkaMessage } from "kafkajs";
import type { ChangeEvent, StoredRecord, TableSchema } from "../contracts.ts";
import { InPlaceRecord, storedBytes } from "../topics/in-place-record.ts";
import { inPlaceRecordsOf, storedRecordOf } from "./kafka-consumer.ts";
import { recordDecoder } from "../../daemon/sink-components.ts";
import { ChangeEventEncoder } from "../../schema-registry/event-codec.ts";
import { LocalRegistry, openMemoryStore } from "../../schema-registry/index.ts";

const TABLE: TableSchema = {
  source: "shop",
  database: "shopdb",
  schema: "public",
  table: "orders",
  sourceKind: "postgres",
  key: ["id"],
  columns: [
    { name: "id", dbType: "int8", nullable: false, primaryKeyIndex: 1 },
    { name: "note", dbType: "text", nullable: true },
  ],
};

function change(id: bigint, note: string | null, op: ChangeEvent["op"] = "c"): ChangeEvent {
  const row = { id, note };
  return {
    op,
    key: { id },
    before: op === "d" ? row : null,
    after: op === "d" ? null : row,
    source: { connector: "postgres", name: "shop", db: "shopdb", schema: "public", table: "orders", position: { commit: id, change: id }, txId: "7", commitTimeMs: 1_700_000_000_000, snapshot: false },
    schema: TABLE,
  };
}

/** Messages as the record batch decoder makes them: key and value views of one fetch response. */
function fetched(parts: { key: Uint8Array | null; value: Uint8Array | null; headers?: Record<string, Buffer> }[]): { response: Buffer; messages: KafkaMessage[] } {
  const response = Buffer.concat(parts.flatMap((p) => [p.key ?? Buffer.alloc(0), p.value ?? Buffer.alloc(0)]));
  let at = 0;
  const view = (bytes: Uint8Array | null) => {
    if (bytes === null) return null;
    const out = response.subarray(at, at + bytes.length);
    at += bytes.length;
    return out;
  };
  const messages = parts.map((p, i) => {
    const key = view(p.key);
    const value = view(p.value);
    return { offset: String(40 + i), timestamp: String(1_700_000_000_000 + i), key, value, headers: p.headers ?? {}, attributes: 0 } as unknown as KafkaMessage;
  });
  return { response, messages };
}

const plain = (record: StoredRecord) => ({
  topic: record.topic,
  partition: record.partition,
  offset: record.offset,
  timestamp: record.timestamp,
  key: record.key === null ? null : Buffer.from(record.key).toString("hex"),
  value: record.value === null ? null : Buffer.from(record.value).toString("hex"),
  headers: record.headers === undefined ? undefined : Object.fromEntries(Object.entries(record.headers).map(([k, v]) => [k, Buffer.from(v).toString()])),
});

test("a fetched batch's records hold what storedRecordOf's do, and nothing of the fetch response", () => {
  const { response, messages } = fetched([
    { key: Buffer.from("k0"), value: Buffer.from("value 0") },
    { key: null, value: Buffer.from("keyless") },
    { key: Buffer.from("k2"), value: null, headers: { "sluice.delete": Buffer.from("envelope") } },
    { key: Buffer.from(""), value: Buffer.from("") },
  ]);
  const records = inPlaceRecordsOf("t", 3, messages);
  assert.deepEqual(records.map(plain), messages.map((m) => plain(storedRecordOf("t", 3, m))));
  assert.deepEqual(records.map(storedBytes), [9, 7, 2, 0]);
  assert.ok(records.every((r) => r instanceof InPlaceRecord && r.bytes.buffer !== response.buffer), "the keys and values are copied out of the response");
  response.fill(0);
  assert.equal(records[0]!.value!.toString(), "value 0", "a record does not change with the response's memory");
  assert.equal(Buffer.from(records[2]!.headers!["sluice.delete"]!).toString(), "envelope", "nor do its headers");
});

test("a header with a null value (another producer's) is read as empty, not a fetch that fails at every retry", () => {
  const { messages } = fetched([{ key: Buffer.from("k"), value: Buffer.from("v"), headers: { foreign: null as unknown as Buffer, "sluice.delete": Buffer.from("x") } }]);
  const [record] = inPlaceRecordsOf("t", 0, messages);
  assert.equal(record!.headers!["foreign"]!.length, 0);
  assert.equal(Buffer.from(record!.headers!["sluice.delete"]!).toString(), "x");
  assert.equal(storedRecordOf("t", 0, messages[0]!).headers!["foreign"]!.length, 0, "the embedded-log path reads it alike");
});

test("the sink's decoder reads a record in place as it reads the same record with its own views, and refuses one cut short though the next record's bytes follow it", async () => {
  const registry = new LocalRegistry(await openMemoryStore());
  const encoder = await ChangeEventEncoder.register(registry, TABLE, { topic: "shop.public.orders" });
  const encoded = [change(1n, "one"), change(2n, null), change(3n, "three", "d")].map((c) => encoder.encode(c, { processedAtMs: 1 }));
  const { messages } = fetched([...encoded.map((e) => ({ key: e.key, value: e.value })), { key: encoded[2]!.key, value: null }]);
  const records = inPlaceRecordsOf("shop.public.orders", 0, messages);
  const decoder = recordDecoder(registry);
  const expected = await Promise.all(messages.map((m) => recordDecoder(registry).decode(storedRecordOf("shop.public.orders", 0, m))));
  // Twice: a table's first record waits for its schemas, later ones are read at once.
  for (const round of [1, 2]) {
    const decoded = [];
    for (const record of records) decoded.push(await decoder.decode(record));
    assert.deepEqual(decoded, expected, `round ${round}`);
  }
  assert.equal(expected[3], null, "a tombstone is no change");

  const [first, second] = encoded;
  const short = first!.value.subarray(0, first!.value.length - 3);
  const cut = inPlaceRecordsOf("shop.public.orders", 0, fetched([{ key: first!.key, value: short }, { key: second!.key, value: second!.value }]).messages);
  assert.throws(() => decoder.decode(cut[0]!), /truncated|trailing/);
});
