/**
 * Streaming semantics against the real server: key changes, images, unchanged TOAST, truncate,
 * DDL, partitioned tables, tables without a primary key, transaction metadata, multi-insert
 * batch boundaries.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type pg from "pg";
import { comparePositions, UNCHANGED } from "../contracts.ts";
import type { ChangeEvent } from "../contracts.ts";
import { adminClient, cleanUp, newSource, randomName, readUntil, sourceConfig } from "./int-test-support.ts";
import type { PostgresSource } from "./source.ts";

const schema = randomName("stream");
const q = (table: string) => `"${schema}".${table}`;
let admin: pg.Client;
let source: PostgresSource;
const config = sourceConfig({
  tables: [`${schema}.*`],
  snapshot: { mode: "never", parallelism: 1, chunk_rows: 100 },
  transaction_metadata: true,
  key_columns: { [`${schema}.keyed_by_config`]: ["code"] },
});

before(async () => {
  admin = await adminClient();
  await admin.query(`CREATE SCHEMA "${schema}"`);
  await admin.query(`CREATE TABLE ${q("items")} (id int PRIMARY KEY, name text, big text)`);
  await admin.query(`CREATE TABLE ${q("full_items")} (id int PRIMARY KEY, name text, big text)`);
  await admin.query(`ALTER TABLE ${q("full_items")} REPLICA IDENTITY FULL`);
  await admin.query(`CREATE TABLE ${q("no_key")} (a int, b text)`);
  await admin.query(`ALTER TABLE ${q("no_key")} REPLICA IDENTITY FULL`);
  await admin.query(`CREATE TABLE ${q("keyed_by_config")} (code text NOT NULL, v int)`);
  await admin.query(`CREATE TABLE ${q("measurements")} (id int, at date, v int, PRIMARY KEY (id, at)) PARTITION BY RANGE (at)`);
  await admin.query(`CREATE TABLE ${q("measurements_2024")} PARTITION OF ${q("measurements")} FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')`);
  await admin.query(`CREATE TABLE ${q("measurements_2025")} PARTITION OF ${q("measurements")} FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')`);
  await admin.query(`CREATE TABLE ${q("bulk")} (id int PRIMARY KEY, v text)`);
  await admin.query(`CREATE TABLE ${q("rekeyed")} (id int PRIMARY KEY, v int NOT NULL, w text)`);
  await admin.query(`CREATE TABLE ${q("rekeyed_full")} (id int PRIMARY KEY, v int NOT NULL, w text)`);
  await admin.query(`ALTER TABLE ${q("rekeyed_full")} REPLICA IDENTITY FULL`);
  source = newSource(config, { maxBatchEvents: 7 });
  await source.connect(null, AbortSignal.timeout(30_000));
});

after(async () => {
  await source.close();
  await cleanUp(admin, config, schema);
  await admin.end();
});

const tableOf = (e: ChangeEvent) => e.source.table;

async function capture(sql: string[], done: (events: ChangeEvent[]) => boolean): Promise<ChangeEvent[]> {
  for (const statement of sql) await admin.query(statement);
  const collected = await readUntil(source, (c) => done(c.events));
  return collected.events;
}

test("insert, update, and a primary-key update as delete + create; DEFAULT identity gives the old key only", async () => {
  const events = await capture(
    [
      `INSERT INTO ${q("items")} VALUES (1, 'one', 'x')`,
      `UPDATE ${q("items")} SET name = 'uno' WHERE id = 1`,
      `UPDATE ${q("items")} SET id = 10 WHERE id = 1`,
      `DELETE FROM ${q("items")} WHERE id = 10`,
    ],
    (events) => events.filter((e) => tableOf(e) === "items").length >= 5,
  );
  const items = events.filter((e) => tableOf(e) === "items");
  assert.deepEqual(
    items.map((e) => [e.op, e.key, e.before, e.after]),
    [
      ["c", { id: 1 }, null, { id: 1, name: "one", big: "x" }],
      ["u", { id: 1 }, null, { id: 1, name: "uno", big: "x" }],
      ["d", { id: 1 }, { id: 1 }, null],
      ["c", { id: 10 }, null, { id: 10, name: "uno", big: "x" }],
      ["d", { id: 10 }, { id: 10 }, null],
    ],
  );
  const [, , del, create] = items;
  assert.deepEqual(del!.source.position, create!.source.position, "the split shares the update's position");
  for (const e of items) {
    assert.equal(e.source.snapshot, false);
    assert.match(e.source.txId ?? "", /^\d+$/);
    assert.ok(e.source.position.change < e.source.position.commit);
    assert.ok(Math.abs(e.source.commitTimeMs - Date.now()) < 60_000);
  }
  for (let i = 1; i < items.length; i++) assert.ok(comparePositions(items[i - 1]!.source.position, items[i]!.source.position) <= 0);
});

test("unchanged TOAST values arrive as UNCHANGED, not null; FULL identity gives whole before images", async () => {
  const big = `'${"x".repeat(10)}' || (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 400) i)`;
  const events = await capture(
    [
      `INSERT INTO ${q("items")} VALUES (2, 'two', ${big})`,
      `UPDATE ${q("items")} SET name = 'dos' WHERE id = 2`,
      `INSERT INTO ${q("full_items")} VALUES (3, 'three', 'small')`,
      `UPDATE ${q("full_items")} SET name = 'tres' WHERE id = 3`,
      `DELETE FROM ${q("full_items")} WHERE id = 3`,
    ],
    (events) => events.filter((e) => tableOf(e) === "full_items").length >= 3,
  );
  const update = events.find((e) => tableOf(e) === "items" && e.op === "u" && e.key["id"] === 2)!;
  assert.equal(update.after!["big"], UNCHANGED);
  assert.equal(update.after!["name"], "dos");
  const insert = events.find((e) => tableOf(e) === "items" && e.op === "c" && e.key["id"] === 2)!;
  assert.equal((insert.after!["big"] as string).length, 10 + 400 * 32);

  const full = events.filter((e) => tableOf(e) === "full_items");
  assert.deepEqual(full.map((e) => [e.op, e.before, e.after]), [
    ["c", null, { id: 3, name: "three", big: "small" }],
    ["u", { id: 3, name: "three", big: "small" }, { id: 3, name: "tres", big: "small" }],
    ["d", { id: 3, name: "tres", big: "small" }, null],
  ]);
});

test("truncate gives one 't' event per captured table", async () => {
  const events = await capture([`TRUNCATE ${q("items")}, ${q("full_items")}`], (events) => events.filter((e) => e.op === "t").length >= 2);
  const truncates = events.filter((e) => e.op === "t");
  assert.deepEqual(truncates.map((e) => [tableOf(e), e.key, e.before, e.after]).sort(), [
    ["full_items", {}, null, null],
    ["items", {}, null, null],
  ]);
});

test("a new column gives the next event a new schema", async () => {
  const events = await capture(
    [
      `INSERT INTO ${q("items")} VALUES (20, 'before ddl', NULL)`,
      `ALTER TABLE ${q("items")} ADD COLUMN price numeric(8,2) NOT NULL DEFAULT 0`,
      `INSERT INTO ${q("items")} VALUES (21, 'after ddl', NULL, 9.5)`,
    ],
    (events) => events.some((e) => e.key["id"] === 21),
  );
  const before = events.find((e) => e.key["id"] === 20)!;
  const after = events.find((e) => e.key["id"] === 21)!;
  assert.deepEqual(before.schema.columns.map((c) => c.name), ["id", "name", "big"]);
  assert.deepEqual(after.schema.columns.map((c) => [c.name, c.dbType, c.nullable, c.default]).at(-1), ["price", "numeric(8,2)", false, "0"]);
  assert.deepEqual(after.after, { id: 21, name: "after ddl", big: null, price: "9.50" });
  assert.notEqual(before.schema, after.schema);
});

test("a primary key changed without a column change gives the next event the new key", async () => {
  const events = await capture(
    [
      `INSERT INTO ${q("rekeyed")} VALUES (1, 1, 'before')`,
      `ALTER TABLE ${q("rekeyed")} DROP CONSTRAINT rekeyed_pkey, ADD PRIMARY KEY (id, v)`,
      `INSERT INTO ${q("rekeyed")} VALUES (1, 2, 'same id, another v')`,
    ],
    (events) => events.some((e) => e.source.table === "rekeyed" && e.after?.["v"] === 2),
  );
  const [before, after] = events.filter((e) => e.source.table === "rekeyed");
  assert.deepEqual(before!.schema.key, ["id"]);
  assert.deepEqual(before!.key, { id: 1 });
  // Keyed by id alone, the sinks would fold this row into the first one.
  assert.deepEqual(after!.schema.key, ["id", "v"]);
  assert.deepEqual(after!.key, { id: 1, v: 2 });
  assert.deepEqual(after!.schema.columns.map((c) => c.name), ["id", "v", "w"]);
});

test("with REPLICA IDENTITY FULL too, a changed primary key gives the next event the new key", async () => {
  // The first change is read (its Relation message taken in) before the key changes.
  const first = await capture([`INSERT INTO ${q("rekeyed_full")} VALUES (1, 1, 'before')`], (events) => events.some((e) => e.source.table === "rekeyed_full"));
  assert.deepEqual(first.find((e) => e.source.table === "rekeyed_full")!.schema.key, ["id"]);
  const events = await capture(
    [
      `ALTER TABLE ${q("rekeyed_full")} DROP CONSTRAINT rekeyed_full_pkey, ADD PRIMARY KEY (id, v)`,
      `INSERT INTO ${q("rekeyed_full")} VALUES (1, 2, 'same id, another v')`,
    ],
    (events) => events.some((e) => e.source.table === "rekeyed_full"),
  );
  const after = events.find((e) => e.source.table === "rekeyed_full")!;
  assert.deepEqual(after.schema.key, ["id", "v"]);
  assert.deepEqual(after.key, { id: 1, v: 2 });
});

test("partitioned tables arrive under the root's name; keys without a primary key", async () => {
  const events = await capture(
    [
      `INSERT INTO ${q("measurements")} VALUES (1, '2024-06-01', 5), (2, '2025-06-01', 6)`,
      `INSERT INTO ${q("no_key")} VALUES (1, 'a')`,
      `UPDATE ${q("no_key")} SET b = 'b'`,
      `INSERT INTO ${q("keyed_by_config")} VALUES ('k1', 1)`,
    ],
    (events) => events.some((e) => tableOf(e) === "keyed_by_config"),
  );
  const measurements = events.filter((e) => e.source.table.startsWith("measurements"));
  assert.deepEqual(measurements.map((e) => [tableOf(e), e.key]), [
    ["measurements", { id: 1, at: 19875 }],
    ["measurements", { id: 2, at: 20240 }],
  ]);
  const noKey = events.filter((e) => tableOf(e) === "no_key");
  assert.deepEqual(noKey[0]!.schema.key, ["a", "b"]);
  assert.deepEqual(noKey.map((e) => [e.op, e.key]), [["c", { a: 1, b: "a" }], ["d", { a: 1, b: "a" }], ["c", { a: 1, b: "b" }]]);
  const configured = events.find((e) => tableOf(e) === "keyed_by_config")!;
  assert.deepEqual(configured.schema.key, ["code"]);
  assert.deepEqual(configured.key, { code: "k1" });
});

test("transaction metadata: BEGIN and END with counts per table", async () => {
  await admin.query("BEGIN");
  await admin.query(`INSERT INTO ${q("items")} VALUES (30, 'a', NULL, 1), (31, 'b', NULL, 1)`);
  await admin.query(`INSERT INTO ${q("full_items")} VALUES (32, 'c', NULL)`);
  await admin.query("COMMIT");
  const collected = await readUntil(source, (c) => c.batches.some((b) => b.transactions.some((t) => t.status === "END")));
  const markers = collected.batches.flatMap((b) => b.transactions);
  const begin = markers.find((t) => t.status === "BEGIN")!;
  const end = markers.find((t) => t.status === "END")!;
  assert.equal(begin.txId, end.txId);
  assert.equal(end.eventCount, 3);
  assert.deepEqual(end.tableEventCounts, { [`${schema}.items`]: 2, [`${schema}.full_items`]: 1 });
  assert.equal(end.position.commit, end.position.change);
  assert.equal(collected.events[0]!.source.txId, begin.txId);
});

test("a multi-insert's rows share one LSN and are never split across batches", async () => {
  // COPY writes heap multi-insert records: many rows, one WAL record, one LSN.
  await admin.query(`COPY ${q("bulk")} (id) FROM PROGRAM 'seq 1 50'`);
  const collected = await readUntil(source, (c) => c.events.filter((e) => tableOf(e) === "bulk").length >= 50);
  const bulk = collected.events.filter((e) => tableOf(e) === "bulk");
  assert.deepEqual(bulk.map((e) => e.key["id"]), Array.from({ length: 50 }, (_, i) => i + 1));
  assert.ok(new Set(bulk.map((e) => e.source.position.change)).size < 10, "rows share LSNs");
  const batches = collected.batches.filter((b) => b.events.length > 0);
  for (let i = 1; i < batches.length; i++) {
    const last = batches[i - 1]!.events.at(-1)!.source.position;
    const first = batches[i]!.events[0]!.source.position;
    assert.notDeepEqual(last, first, `batch ${i} starts inside the LSN group that ended batch ${i - 1}`);
    assert.ok(comparePositions(batches[i - 1]!.checkpoint.position, first) < 0);
  }
});
