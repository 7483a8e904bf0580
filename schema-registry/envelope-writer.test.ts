/**
 * Capture's fast encoding path (envelope-writer.ts, avro-writer.ts) gives byte for byte the
 * records of the general path (envelope and row objects encoded by avsc), over the envelope's
 * variants: every op, snapshot markers, transaction blocks, unchanged TOAST values, special
 * numerics, key changes, MySQL's source block, text that is long, non-ASCII or malformed.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { UNCHANGED } from "../connectors/contracts.ts";
import type { ChangeEvent, ColumnSchema, Row, SourceInfo, TableSchema } from "../connectors/contracts.ts";
import { SluiceError } from "../connectors/errors.ts";
import { ChangeEventEncoder } from "./event-codec.ts";
import { assertFastPathAgrees } from "./fast-path-test-support.ts";
import { LocalRegistry } from "./local-registry.ts";
import { openMemoryStore } from "./log-store.ts";

const PROCESSED = { processedAtMs: 1_764_900_000_123 };

/** The capture benchmark's table (bench/capture-drain.ts), plus a renamed field and a nullable column with a default. */
const ITEMS: TableSchema = {
  source: "pg1",
  database: "app",
  schema: "public",
  table: "items",
  sourceKind: "postgres",
  key: ["id"],
  columns: [
    { name: "id", dbType: "bigint", nullable: false, primaryKeyIndex: 1 },
    { name: "account", dbType: "integer", nullable: false },
    { name: "name", dbType: "text", nullable: true },
    { name: "email", dbType: "text", nullable: true },
    { name: "amount", dbType: "numeric(12,2)", nullable: true },
    { name: "active", dbType: "boolean", nullable: true },
    { name: "created_at", dbType: "timestamp with time zone", nullable: true },
    { name: "note", dbType: "text", nullable: true },
    { name: "odd-name", dbType: "double precision", nullable: true },
    { name: "status", dbType: "text", nullable: true, default: "'new'::text" },
    { name: "tags", dbType: "text[]", nullable: true },
    { name: "price", dbType: "numeric", nullable: true },
  ] as ColumnSchema[],
};

const pgSource = (overrides: Partial<SourceInfo> = {}): SourceInfo => ({
  connector: "postgres",
  name: "pg1",
  db: "app",
  schema: "public",
  table: "items",
  position: { commit: 0x1_6b37_4d848n, change: 0x1_6b37_4d000n },
  txId: "74113",
  commitTimeMs: 1_764_899_999_000,
  snapshot: false,
  ...overrides,
});

function row(id: number, overrides: Record<string, unknown> = {}): Row {
  return {
    id: BigInt(id),
    account: id % 1000,
    name: `name ${id}`,
    email: `user${id}@example.com`,
    amount: "123.45",
    active: id % 2 === 0,
    created_at: 1_764_899_999_123_456n,
    note: "0cc175b9c0f1b6a831c399e269772661",
    "odd-name": 0.5,
    status: "new",
    tags: ["a", null, "b"],
    price: "1.5",
    ...overrides,
  } as Row;
}

function event(op: ChangeEvent["op"], before: Row | null, after: Row | null, table: TableSchema = ITEMS, source: SourceInfo = pgSource(), extra: Partial<ChangeEvent> = {}): ChangeEvent {
  const keyRow = after ?? before ?? {};
  return { op, key: Object.fromEntries(table.key.map((name) => [name, keyRow[name] ?? null])) as Row, before, after, source, schema: table, ...extra };
}

async function encoderFor(table: TableSchema, envelope?: "sluice"): Promise<ChangeEventEncoder> {
  const registry = new LocalRegistry(await openMemoryStore());
  return ChangeEventEncoder.register(registry, table, { topic: `t.${table.schema}.${table.table}`, name: "t", ...(envelope ? { envelope } : {}) });
}

describe("the fast encoding path", () => {
  it("writes every op of a PostgreSQL table as the general path does", async () => {
    const encoder = await encoderFor(ITEMS);
    const cases: [string, ChangeEvent][] = [
      ["insert", event("c", null, row(1))],
      ["update with the old key only", event("u", { id: 2n }, row(2))],
      ["update with the whole old row (REPLICA IDENTITY FULL)", event("u", row(3), row(3, { amount: "124.45", note: null }))],
      ["delete", event("d", row(4), null)],
      ["snapshot read", event("r", null, row(5), ITEMS, pgSource({ snapshot: true, txId: null }))],
      ["first snapshot read", event("r", null, row(6), ITEMS, pgSource({ snapshot: true, snapshotMarker: "first" }))],
      ["incremental snapshot read", event("r", null, row(7), ITEMS, pgSource({ snapshot: true, snapshotMarker: "incremental" }))],
      ["truncate", event("t", null, null)],
      ["nulls everywhere they may be", event("c", null, row(8, { name: null, email: null, amount: null, active: null, created_at: null, note: null, "odd-name": null, status: null, tags: null, price: null }))],
      ["a transaction id that is not a number", event("c", null, row(9), ITEMS, pgSource({ txId: "x-1" }))],
      ["no transaction id", event("c", null, row(10), ITEMS, pgSource({ txId: null }))],
      ["positions beyond 2^53", event("c", null, row(11), ITEMS, pgSource({ position: { commit: 2n ** 62n + 5n, change: 2n ** 62n + 3n } }))],
      ["commit time before 1970", event("c", null, row(12), ITEMS, pgSource({ commitTimeMs: -86_400_000 }))],
      ["extreme values", event("c", null, row(13, { id: 2n ** 63n - 1n, account: -(2 ** 31), amount: "-9999999999.99", "odd-name": Number.NaN, created_at: -(2n ** 63n), price: "-0.000001" }))],
      ["infinity timestamps", event("c", null, row(14, { created_at: 2n ** 63n - 1n, "odd-name": Number.NEGATIVE_INFINITY }))],
      ["special numerics (headers)", event("u", row(15, { price: "Infinity" }), row(15, { amount: "NaN", price: "NaN", tags: [] }))],
      ["nested arrays", event("c", null, row(16, { tags: [["a", null], [null, "b"]] }))],
    ];
    for (const [name, change] of cases) assertFastPathAgrees(encoder, change, PROCESSED, name);
  });

  it("writes the sequence of any position as the general path does (digits written one by one up to 2^53, the text beyond)", async () => {
    const encoder = await encoderFor(ITEMS);
    const edges = [0n, 1n, 9n, 10n, 99n, 100n, 0x1_6b37_4d000n, 999_999_999_999_999n, 1_000_000_000_000_000n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 1n, 2n ** 63n - 2n];
    for (const commit of edges) {
      for (const change of [commit, commit + 1n, 7n, 2n ** 53n - 1n, 2n ** 63n - 1n]) {
        assertFastPathAgrees(encoder, event("c", null, row(1), ITEMS, pgSource({ position: { commit, change } })), PROCESSED, `commit ${commit}, change ${change}`);
      }
    }
  });

  it("writes the transaction block and the processing time as the general path does", async () => {
    const encoder = await encoderFor(ITEMS);
    const change = event("c", null, row(1));
    assertFastPathAgrees(encoder, change, { ...PROCESSED, transaction: { totalOrder: 1, dataCollectionOrder: 1 } }, "numbers");
    assertFastPathAgrees(encoder, change, { ...PROCESSED, transaction: { totalOrder: 2n ** 60n, dataCollectionOrder: 7n } }, "bigints");
    assertFastPathAgrees(encoder, change, { processedAtMs: 0 }, "processed at 0");
    assertFastPathAgrees(encoder, change, { processedAtMs: 9_007_199_254_740 }, "processed where microseconds pass 2^53");
    for (let ms = 1_764_900_000_000; ms < 1_764_900_000_004; ms++) assertFastPathAgrees(encoder, change, { processedAtMs: ms }, `processed at ${ms}`);
  });

  it("writes what repeats from one change to the next (the source block's fields but sequence and lsn, op and the processing time) as the general path does when any one of them changes", async () => {
    const encoder = await encoderFor(ITEMS);
    const variants: [string, Partial<SourceInfo>][] = [
      ["as before", {}],
      ["another change in the transaction", { position: { commit: 0x1_6b37_4d848n, change: 0x1_6b37_4d100n } }],
      ["another source name", { name: "pg2" }],
      ["another commit time", { commitTimeMs: 1_764_899_999_001 }],
      ["a snapshot", { snapshot: true }],
      ["a snapshot marker", { snapshot: true, snapshotMarker: "last" }],
      ["another database", { db: "app2" }],
      ["another schema", { schema: "other" }],
      ["another table", { table: "items2" }],
      ["another transaction", { txId: "74114" }],
      ["no transaction id", { txId: null }],
      ["a transaction id that is not a number", { txId: "x" }],
      ["another commit", { position: { commit: 0x1_6b37_4e000n, change: 0x1_6b37_4d000n } }],
    ];
    const ops: [ChangeEvent["op"], Row | null, Row | null][] = [["c", null, row(1)], ["u", { id: 1n }, row(1)], ["d", row(1), null]];
    // Each variant between two changes as before, so every input changes and changes back; each op and time in between.
    for (const [name, overrides] of variants) {
      for (const processedAtMs of [PROCESSED.processedAtMs, PROCESSED.processedAtMs + 1]) {
        for (const [op, before, after] of ops) {
          assertFastPathAgrees(encoder, event(op, before, after), { processedAtMs }, `before ${name}, ${op} at ${processedAtMs}`);
          assertFastPathAgrees(encoder, event(op, before, after, ITEMS, pgSource(overrides)), { processedAtMs }, `${name}, ${op} at ${processedAtMs}`);
          assertFastPathAgrees(encoder, event(op, before, after, ITEMS, pgSource(overrides)), { processedAtMs }, `${name} again, ${op} at ${processedAtMs}`);
        }
      }
    }
    // A change the fast path cannot write (the general path's error stands) leaves nothing half-kept for the next.
    assert.throws(() => encoder.encode(event("c", null, row(2, { id: "not a number" as unknown as bigint })), { processedAtMs: 1 }));
    assertFastPathAgrees(encoder, event("c", null, row(3)), { processedAtMs: 1 }, "after a change that could not be written");
  });

  it("writes unchanged TOAST values as the general path does: copied from the old row, else the placeholder and the header", async () => {
    const encoder = await encoderFor(ITEMS);
    const unchanged = row(1, { note: UNCHANGED, tags: UNCHANGED, amount: UNCHANGED });
    assertFastPathAgrees(encoder, event("u", { id: 1n }, unchanged), PROCESSED, "old key only");
    assertFastPathAgrees(encoder, event("u", row(1), unchanged), PROCESSED, "whole old row");
    assertFastPathAgrees(encoder, event("u", row(1, { note: UNCHANGED }), unchanged), PROCESSED, "unchanged in both");
    const { note: _absent, ...missing } = row(2) as Record<string, unknown>;
    assertFastPathAgrees(encoder, event("c", null, missing as Row), PROCESSED, "a column absent from the row");
    const fast = encoder.fastEncode(encoder.fast!, event("u", { id: 1n }, unchanged), PROCESSED);
    assert.ok(fast.headers["sluice.unchanged"], "the header is there");
  });

  it("writes both events of a key change with the other key in Debezium's headers", async () => {
    const encoder = await encoderFor(ITEMS);
    assertFastPathAgrees(encoder, event("d", row(1), null, ITEMS, pgSource(), { keyChange: { newKey: { id: 2n } } }), PROCESSED, "delete of the old key");
    assertFastPathAgrees(encoder, event("c", null, row(2), ITEMS, pgSource(), { keyChange: { oldKey: { id: 1n } } }), PROCESSED, "create of the new key");
  });

  it("writes text as avsc does: long, non-ASCII, emoji, lone surrogates, at every length around its 64-byte switch", async () => {
    const encoder = await encoderFor(ITEMS);
    const texts = ["", "é", "漢字", "😀", "\ud800", "a\udc00b", "\ud83d", "x".repeat(70_000), "é".repeat(40_000)];
    for (let length = 60; length <= 68; length++) texts.push("a".repeat(length), `${"a".repeat(length - 2)}é`, `${"é".repeat(length / 2)}`, `${"a".repeat(length - 1)}\ud800`);
    for (const text of texts) assertFastPathAgrees(encoder, event("c", null, row(1, { name: text, note: text, tags: [text] })), PROCESSED, JSON.stringify(text.slice(0, 20)));
  });

  it("writes a keyless table and a MySQL source block as the general path does", async () => {
    const keyless: TableSchema = { ...ITEMS, key: [], table: "keyless" };
    assertFastPathAgrees(await encoderFor(keyless), event("c", null, row(1), keyless), PROCESSED, "keyless");
    const mysql: TableSchema = {
      source: "my1",
      database: "shop",
      schema: "shop",
      table: "orders",
      sourceKind: "mysql",
      key: ["id"],
      columns: [
        { name: "id", dbType: "bigint unsigned", nullable: false, primaryKeyIndex: 1 },
        { name: "total", dbType: "decimal(10,2)", nullable: true },
        { name: "placed", dbType: "datetime(6)", nullable: true },
        { name: "kind", dbType: "enum('a','b')", nullable: true },
        { name: "flags", dbType: "set('x','y')", nullable: true },
        { name: "at", dbType: "timestamp", nullable: true },
      ] as ColumnSchema[],
    };
    const encoder = await encoderFor(mysql);
    const after = { id: 18446744073709551615n, total: "12.30", placed: 1_700_000_000_123_456n, kind: "b", flags: ["x", "y"], at: 1_700_000_000_000_000n } as Row;
    const source: SourceInfo = {
      connector: "mysql",
      name: "my1",
      db: "shop",
      schema: "shop",
      table: "orders",
      position: { commit: 4n << 32n, change: (4n << 32n) + 1200n },
      txId: "3e11fa47-71ca-11e1-9e33-c80aa9429562:23",
      commitTimeMs: 1_700_000_000_000,
      snapshot: false,
      binlog: { serverId: 1, file: "mysql-bin.000004", pos: 1200, row: 2, thread: 17 },
    };
    assertFastPathAgrees(encoder, event("c", null, after, mysql, source), PROCESSED, "binlog coordinates");
    assertFastPathAgrees(encoder, event("u", after, after, mysql, { ...source, txId: null, binlog: { serverId: 2, file: "b.1", pos: 4, row: 0 } }), PROCESSED, "no GTID, no thread");
    assertFastPathAgrees(encoder, event("c", null, after, mysql, source), { ...PROCESSED, mysql: { serverId: 9n, file: "f", pos: 2n ** 40n, row: 1, thread: 3, query: "INSERT ..." } }, "extras");
  });

  it("takes the general path, and its error, for a value the column cannot hold", async () => {
    const encoder = await encoderFor(ITEMS);
    const bad = event("c", null, row(1, { account: 2 ** 31 }));
    assert.throws(() => encoder.fastEncode(encoder.fast!, bad, PROCESSED));
    const general = (() => {
      try {
        encoder.generalEncode(bad, PROCESSED);
      } catch (error) {
        return error as SluiceError;
      }
      assert.fail("the general path refuses it");
    })();
    assert.throws(() => encoder.encode(bad, PROCESSED), (error: unknown) => {
      assert.ok(error instanceof SluiceError);
      assert.equal(error.code, general.code);
      assert.equal(error.message, general.message);
      assert.match(error.message, /column `account`/);
      return true;
    });
  });

  it("is used for the Debezium envelope, not for Sluice's earlier layout", async () => {
    assert.ok((await encoderFor(ITEMS)).fast);
    assert.equal((await encoderFor(ITEMS, "sluice")).fast, null);
  });
});
