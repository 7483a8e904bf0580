/**
 * The capture encoder's promise-free path (encodeNow, components.ts) gives the records `encode`
 * gives: one encoder takes every change through `encode`, another through `encodeNow` wherever it
 * answers, over the same changes (every op, snapshot reads, transaction blocks, unchanged TOAST, a
 * truncate, two tables), and their records are compared byte for byte.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, mock, test } from "node:test";
import { configSchema } from "../config/schema.ts";
import type { ChangeEvent, Row, TableSchema } from "../connectors/contracts.ts";
import { UNCHANGED } from "../connectors/contracts.ts";
import { EmbeddedTopicLog } from "../connectors/embedded/embedded-log.ts";
import type { ProducedRecord } from "../connectors/topics/contract.ts";
import { LocalRegistry, openMemoryStore } from "../schema-registry/index.ts";
import { createLogger } from "../runtime/logger.ts";
import { captureEncoder } from "./components.ts";

const dir = mkdtempSync(join(tmpdir(), "sluice-encode-now-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const logger = createLogger("silent");

const table = (name: string): TableSchema => ({
  source: "pg",
  database: "shop",
  schema: "public",
  table: name,
  sourceKind: "postgres",
  columns: [
    { name: "id", dbType: "integer", nullable: false, primaryKeyIndex: 1 },
    { name: "name", dbType: "text", nullable: true },
    { name: "price", dbType: "numeric(10,2)", nullable: true },
    { name: "notes", dbType: "text", nullable: true },
  ],
  key: ["id"],
});
const items = table("items");
const orders = table("orders");

function changes(): ChangeEvent[] {
  const events: ChangeEvent[] = [];
  let change = 100n;
  const event = (schema: TableSchema, op: ChangeEvent["op"], id: number, before: Row | null, after: Row | null, tx: number, snapshot = false): void => {
    change += 1n;
    events.push({
      op,
      key: op === "t" ? {} : { id },
      before,
      after,
      source: { connector: "postgres", name: "pg", db: "shop", schema: "public", table: schema.table, position: { commit: BigInt(tx) * 1000n, change }, txId: snapshot ? null : String(tx), commitTimeMs: 1_700_000_000_000 + tx, snapshot },
      schema,
    });
  };
  const row = (id: number, notes: Row[string] = `note ${id}`): Row => ({ id, name: `item ${id} ünï`, price: `${id}.25`, notes });
  for (let id = 1; id <= 3; id++) event(items, "r", id, null, row(id), 1, true);
  for (let id = 1; id <= 20; id++) event(id % 3 === 0 ? orders : items, "c", id, null, row(id), 2 + Math.floor(id / 7));
  for (let id = 1; id <= 10; id++) event(items, "u", id, row(id), row(id, id % 2 === 0 ? UNCHANGED : `changed ${id}`), 6);
  event(items, "u", 4, null, row(4, UNCHANGED), 7);
  event(items, "t", 0, null, null, 8);
  for (let id = 11; id <= 15; id++) event(id % 2 === 0 ? orders : items, "d", id, row(id), null, 9);
  for (let id = 30; id <= 33; id++) event(orders, "c", id, null, { id, name: null, price: null, notes: null }, 10);
  return events;
}

async function encodeAll(name: string, source: Record<string, unknown>, retention: Record<string, unknown>, registry: LocalRegistry, now: boolean): Promise<{ records: ProducedRecord[]; tookNow: number }> {
  const path = join(dir, `${name}-${now ? "now" : "async"}.db`);
  const config = configSchema.parse({
    name,
    sources: [{ name: "pg", kind: "postgres", user: "u", database: "shop", tables: ["public.*"], ...source }],
    topics: { kind: "embedded", path, retention },
    sinks: [{ name: "warehouse", kind: "duckdb" }],
  });
  const log = EmbeddedTopicLog.open({ path, logger, maintenanceIntervalMs: 0 });
  try {
    const encoder = captureEncoder(config, config.sources[0]!, registry, log);
    const records: ProducedRecord[] = [];
    let tookNow = 0;
    for (const event of changes()) {
      const sync = now ? encoder.encodeNow?.(event) : undefined;
      if (sync !== undefined) tookNow++;
      records.push(...(sync ?? (await encoder.encode(event))));
    }
    return { records, tookNow };
  } finally {
    await log.close();
  }
}

test("encodeNow gives encode's records, byte for byte, under each envelope and topic policy", async () => {
  mock.timers.enable({ apis: ["Date"], now: 1_764_000_000_000 });
  try {
    for (const [name, source, retention] of [
      ["dflt", {}, {}],
      ["txmeta", { transaction_metadata: true, skipped_operations: [] }, {}],
      ["del", { skipped_operations: ["u"] }, { cleanup_policy: "delete" }],
      ["legacy", { envelope: "sluice" }, {}],
    ] as const) {
      const registry = new LocalRegistry(await openMemoryStore());
      const general = await encodeAll(name, source, retention, registry, false);
      const fast = await encodeAll(name, source, retention, registry, true);
      assert.ok(fast.tookNow >= changes().length - 4, `${name}: encodeNow took all but each table's first change and the truncate (${fast.tookNow} of ${changes().length})`);
      assert.equal(fast.records.length, general.records.length, name);
      for (const [i, record] of general.records.entries()) {
        const other = fast.records[i]!;
        assert.equal(other.topic, record.topic, `${name} record ${i}`);
        assert.deepEqual(other.key === null ? null : Buffer.from(other.key), record.key === null ? null : Buffer.from(record.key), `${name} record ${i}: key`);
        assert.deepEqual(other.value === null ? null : Buffer.from(other.value), record.value === null ? null : Buffer.from(record.value), `${name} record ${i}: value`);
        assert.deepEqual(other.headers, record.headers, `${name} record ${i}: headers`);
        assert.equal(other.timestamp, record.timestamp, `${name} record ${i}: timestamp`);
      }
    }
  } finally {
    mock.timers.reset();
  }
});

test("encodeNow does nothing before a table's schemas are registered and its topic created, and for a truncate", async () => {
  const path = join(dir, "first.db");
  const config = configSchema.parse({
    name: "first",
    sources: [{ name: "pg", kind: "postgres", user: "u", database: "shop", tables: ["public.*"] }],
    topics: { kind: "embedded", path },
    sinks: [{ name: "warehouse", kind: "duckdb" }],
  });
  const log = EmbeddedTopicLog.open({ path, logger, maintenanceIntervalMs: 0 });
  try {
    const encoder = captureEncoder(config, config.sources[0]!, new LocalRegistry(await openMemoryStore()), log);
    const [first, second] = changes().filter((e) => e.op === "c" && e.schema === items);
    assert.equal(encoder.encodeNow!(first!), undefined);
    assert.equal((await log.listTopics()).length, 0, "nothing created");
    await encoder.encode(first!);
    assert.equal(encoder.encodeNow!(second!)?.length, 1);
    assert.equal(encoder.encodeNow!(changes().find((e) => e.op === "t")!), undefined);
  } finally {
    await log.close();
  }
});
