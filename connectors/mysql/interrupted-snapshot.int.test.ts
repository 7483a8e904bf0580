/**
 * An initial snapshot interrupted midway (the source closed between two of its checkpoints, as a
 * crash leaves it) resumes from the checkpoint instead of starting over: the table it finished is
 * not read again, the table it was reading goes on online after its last stored key, the table it
 * had not started is read online whole, and the deletes made meanwhile come from the binlog.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { Connection } from "mysql2/promise";
import type { ChangeEvent } from "../contracts.ts";
import type { ColumnValue } from "../contracts.ts";
import { adminConnection, dropDatabase, fold, newSource, randomName, readUntil, sourceConfig } from "./int-test-support.ts";
import type { Collected } from "./int-test-support.ts";
import { decodeResumeToken, encodeResumeToken } from "./resume-token.ts";
import { MemorySchemaHistoryStore } from "./schema/schema-history.ts";

const database = randomName("s_resnap");
const ROWS = { big: 300, middle: 100, small: 30 } as const;
let admin: Connection;

before(async () => {
  admin = await adminConnection(database);
  for (const [table, rows] of Object.entries(ROWS)) {
    await admin.query(`CREATE TABLE ${table} (id INT PRIMARY KEY, v VARCHAR(20))`);
    await admin.query(`INSERT INTO ${table} SELECT seq, CONCAT('v', seq) FROM seq_1_to_${rows}`);
    await admin.query(`ANALYZE TABLE ${table}`);
  }
});

after(async () => {
  await dropDatabase(admin, database);
  await admin.end();
});

const ids = (events: readonly ChangeEvent[], table: string, op: string) => events.filter((e) => e.source.table === table && e.op === op).map((e) => Number(e.key["id"]));

test("an initial snapshot interrupted midway resumes: the finished table is not read again, the one being read goes on after its last stored key, the one not started is read online", async () => {
  // parallelism 1: the tables are read one after the other, the largest first.
  const config = sourceConfig({ tables: [`${database}.*`], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 20 } });
  const history = new MemorySchemaHistoryStore();
  const source = newSource(config, { maxBatchEvents: 10, schemaHistory: history });
  try {
    await source.connect(null, AbortSignal.timeout(30_000));
    const first = await readUntil(source, (c) => ids(c.events, "middle", "r").length >= 40);
    const interrupted = first.batches.at(-1)!.checkpoint;
    const token = decodeResumeToken(interrupted.position.resume, config.name);
    assert.equal(token.snapshotIncomplete, true);
    const stored = ids(first.events, "middle", "r");
    assert.deepEqual(token.exportedProgress, { done: [`${database}.big`], reading: [{ table: `${database}.middle`, lastKey: [String(stored.at(-1))], rowsDone: stored.length, keyColumns: ["id"] }] }, "the checkpoint says how far the snapshot got");
    await source.close();
    await admin.query("DELETE FROM big WHERE id IN (5, 250)");
    await admin.query("DELETE FROM middle WHERE id IN (3, 90)");
    await admin.query("DELETE FROM small WHERE id = 2");

    await source.connect(interrupted, AbortSignal.timeout(30_000));
    const rest = await readUntil(source, (c) => ["middle", "small"].every((table) => c.events.some((e) => e.source.table === table && e.op === "t")));
    assert.deepEqual(ids(rest.events, "big", "r"), [], "the finished table is not read again");
    assert.deepEqual(ids(rest.events, "middle", "r"), Array.from({ length: ROWS.middle - stored.length }, (_, i) => stored.length + i + 1).filter((id) => id !== 90), "the rows after the last one stored, none twice");
    assert.deepEqual(ids(rest.events, "small", "r"), Array.from({ length: ROWS.small }, (_, i) => i + 1).filter((id) => id !== 2), "the table not started is read whole");
    const deleted = rest.events.filter((e) => e.op === "d").map((e) => `${e.source.table}:${String(e.key["id"])}`);
    for (const expected of ["big:5", "big:250", "middle:3"]) assert.ok(deleted.includes(expected), `the binlog from the snapshot's start carries the delete ${expected}: ${deleted.join(", ")}`);
    // The interrupted table's reset is below every row stored before and read since: it removes only what the source no longer has.
    const reset = rest.events.find((e) => e.source.table === "middle" && e.op === "t")!;
    assert.equal(reset.source.snapshot, true);
    const middleRows = [...first.events, ...rest.events].filter((e) => e.source.table === "middle" && e.op === "r");
    assert.ok(middleRows.every((e) => e.source.position.change > reset.source.position.change), "the reset is below every snapshot row of the table");
    assert.ok(first.events.every((e) => e.op !== "r" || e.source.position.change === reset.source.position.change + 1n), "at the version the interrupted snapshot's reset would have had");
    const last = rest.batches.at(-1)!.checkpoint;
    assert.equal(decodeResumeToken(last.position.resume, config.name).snapshotIncomplete, false, "streaming from now on");
  } finally {
    await source.close();
  }
});

test("an interrupted snapshot of two tables read at once, resumed while updates, deletes and inserts go on, folds to exactly the tables' rows", async () => {
  const TABLE_ROWS = 3000;
  const names = ["pa", "pb"];
  for (const table of names) {
    await admin.query(`CREATE TABLE ${table} (id INT PRIMARY KEY, v INT NOT NULL)`);
    await admin.query(`INSERT INTO ${table} SELECT seq, seq FROM seq_1_to_${TABLE_ROWS}`);
  }
  const writer = await adminConnection(database);
  let writing = true;
  let nextId = TABLE_ROWS + 1;
  let writes = 0;
  const workload = (async () => {
    while (writing) {
      const table = names[writes++ % 2]!;
      await writer.query("START TRANSACTION");
      await writer.query(`UPDATE ${table} SET v = v + 1 WHERE id = ?`, [1 + Math.floor(Math.random() * TABLE_ROWS)]);
      await writer.query(`DELETE FROM ${table} WHERE id = ?`, [1 + Math.floor(Math.random() * TABLE_ROWS)]);
      await writer.query(`INSERT INTO ${table} VALUES (?, 0)`, [nextId++]);
      await writer.query("COMMIT");
    }
  })();
  const config = sourceConfig({ tables: [`${database}.pa`, `${database}.pb`], snapshot: { mode: "initial", parallelism: 2, chunk_rows: 100 }, max_buffer_bytes: 64 * 1024 });
  const history = new MemorySchemaHistoryStore();
  const source = newSource(config, { maxBatchEvents: 50, schemaHistory: history });
  let collected: Collected;
  try {
    await source.connect(null, AbortSignal.timeout(30_000));
    const first = await readUntil(source, (c) => names.every((table) => ids(c.events, table, "r").length >= 500));
    const interrupted = first.batches.at(-1)!.checkpoint;
    const progress = decodeResumeToken(interrupted.position.resume, config.name).exportedProgress;
    assert.equal(progress?.reading.length, 2, `both tables part-way through: ${JSON.stringify(progress)}`);
    await source.close();

    await source.connect(interrupted, AbortSignal.timeout(30_000));
    const resets = (c: Collected) => names.every((table) => c.events.slice(first.events.length).some((e) => e.source.table === table && e.op === "t"));
    collected = await readUntil(source, resets, { timeoutMs: 120_000, into: { events: [...first.events], batches: [...first.batches] } });
    writing = false;
    await workload;
    await admin.query(`INSERT INTO pa VALUES (${10_000_000}, 0)`);
    await readUntil(source, (c) => c.events.some((e) => e.key["id"] === 10_000_000), { timeoutMs: 60_000, into: collected });
  } finally {
    writing = false;
    await workload;
    await writer.end();
    await source.close();
  }
  assert.ok(writes > 20, `the workload ran (${writes} transactions)`);
  for (const table of names) {
    const events = collected.events.filter((e) => e.source.table === table);
    const folded = fold(events, (row) => String(row["id"]));
    const [rows] = (await admin.query(`SELECT id, v FROM ${table} ORDER BY id`)) as unknown as [Record<string, ColumnValue>[]];
    assert.equal(folded.size, rows.length, `${table}: as many rows as the table`);
    for (const row of rows) assert.deepEqual(folded.get(String(row["id"])), { ...row }, `${table} row ${String(row["id"])}`);
  }
});

test("an interrupted snapshot whose checkpoint does not say how far it got starts over", async () => {
  await admin.query("CREATE TABLE legacy (id INT PRIMARY KEY)");
  await admin.query("INSERT INTO legacy SELECT seq FROM seq_1_to_50");
  const config = sourceConfig({ tables: [`${database}.legacy`], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 20 } });
  const source = newSource(config, { maxBatchEvents: 10 });
  try {
    await source.connect(null, AbortSignal.timeout(30_000));
    const first = await readUntil(source, (c) => c.events.length >= 10);
    const checkpoint = first.batches.at(-1)!.checkpoint;
    // As checkpoints were written before the snapshot's progress was kept.
    const { exportedProgress: _, ...token } = decodeResumeToken(checkpoint.position.resume, config.name);
    await source.close();
    await source.connect({ ...checkpoint, position: { ...checkpoint.position, resume: encodeResumeToken(token) } }, AbortSignal.timeout(30_000));
    const again = await readUntil(source, (c) => c.events.some((e) => e.op === "t"));
    assert.deepEqual(ids(again.events, "legacy", "r"), Array.from({ length: 50 }, (_, i) => i + 1), "every row read again");
  } finally {
    await source.close();
  }
});

test("an interrupted snapshot with a table left that has no primary key starts over (an online snapshot cannot page through it)", async () => {
  await admin.query("CREATE TABLE keyed (id INT PRIMARY KEY)");
  await admin.query("INSERT INTO keyed SELECT seq FROM seq_1_to_100");
  await admin.query("CREATE TABLE keyless (n INT)");
  await admin.query("INSERT INTO keyless SELECT seq FROM seq_1_to_10");
  await admin.query("ANALYZE TABLE keyed, keyless");
  const config = sourceConfig({ tables: [`${database}.keyed`, `${database}.keyless`], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 20 } });
  const source = newSource(config, { maxBatchEvents: 10 });
  try {
    await source.connect(null, AbortSignal.timeout(30_000));
    const first = await readUntil(source, (c) => ids(c.events, "keyed", "r").length >= 20);
    const checkpoint = first.batches.at(-1)!.checkpoint;
    assert.ok(decodeResumeToken(checkpoint.position.resume, config.name).exportedProgress !== undefined);
    await source.close();
    await source.connect(checkpoint, AbortSignal.timeout(30_000));
    const again = await readUntil(source, (c) => ["keyed", "keyless"].every((table) => c.events.some((e) => e.source.table === table && e.op === "t")));
    assert.deepEqual(ids(again.events, "keyed", "r"), Array.from({ length: 100 }, (_, i) => i + 1), "every row read again");
    assert.equal(again.events.filter((e) => e.source.table === "keyless" && e.op === "r").length, 10);
  } finally {
    await source.close();
  }
});
