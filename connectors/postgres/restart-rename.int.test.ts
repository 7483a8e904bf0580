/**
 * Renames PostgreSQL's WAL does not record, made while Sluice was stopped: a table renamed (or moved to another
 * schema) and a column renamed reach capture only as a relation with another name at its next change. Capture
 * keeps beside the checkpoints what it last published of each relation (relation-layouts.ts), so the first change
 * after a restart is compared with it and goes through the path a rename seen live takes: the table is read again
 * under its new name, so the new name's targets hold every row, not only the rows changed since.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type pg from "pg";
import type { ChangeEvent, Checkpoint } from "../contracts.ts";
import type { Pump } from "../common/online-snapshot-test-support.ts";
import { Fold, noTasks, pump, stopPumps, waitCheckpointAt, waitFor } from "../common/online-snapshot-test-support.ts";
import { adminClient, checkpointing, cleanUp, newSource, randomName, sourceConfig } from "./int-test-support.ts";
import { isSnapshotIncomplete } from "./positions.ts";
import { relationLayoutsOf } from "./relation-layouts.ts";
import type { PostgresSource } from "./source.ts";

const ROWS = 500;
let admin: pg.Client;
let stopCheckpoints: () => Promise<void>;
const schemas: string[] = [];
const configs: ReturnType<typeof sourceConfig>[] = [];

before(async () => {
  admin = await adminClient();
  stopCheckpoints = checkpointing();
});

after(async () => {
  await stopCheckpoints();
  for (const c of configs) await cleanUp(admin, c);
  for (const schema of schemas) await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await admin.end();
});

async function newSchema(prefix: string): Promise<string> {
  const schema = randomName(prefix);
  schemas.push(schema);
  await admin.query(`CREATE SCHEMA "${schema}"`);
  return schema;
}

/** The pump's checkpoint is a streaming one (the initial snapshot finished). */
const streaming = (state: Pump): boolean => state.checkpoint !== null && !isSnapshotIncomplete(state.checkpoint.position);

/** Waits until the pump's checkpoint passed everything committed so far. */
async function caughtUp(state: Pump): Promise<void> {
  const lsn = (await admin.query<{ lsn: string }>("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::text AS lsn")).rows[0]!.lsn;
  await waitCheckpointAt(state, BigInt(lsn));
}

/** Runs a source from `from` with `folds` until `done` holds; returns its last checkpoint. */
async function run(config: ReturnType<typeof sourceConfig>, from: Checkpoint | null, folds: readonly Pick<Fold, "apply">[], work: (state: Pump, source: PostgresSource) => Promise<void>): Promise<Checkpoint> {
  const source = newSource(config);
  const pumps: Pump[] = [];
  try {
    await source.connect(from, AbortSignal.timeout(30_000));
    const state = pump(source, folds);
    pumps.push(state);
    await work(state, source);
    return state.checkpoint!;
  } finally {
    await stopPumps(pumps, [source]);
  }
}

const ids = (fold: Fold) => [...fold.visible().keys()].map(Number).sort((a, b) => a - b);
const all = Array.from({ length: ROWS }, (_, i) => i + 1);

test("a table renamed, then moved to another schema, while Sluice is stopped is read again under its new name at the next start: the new name's targets hold every row", async () => {
  const schema = await newSchema("restartren");
  const other = await newSchema("restartmoved");
  const c = sourceConfig({ tables: [`${schema}.*`, `${other}.*`], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 1000 }, heartbeat_interval: 500 });
  configs.push(c);
  await admin.query(`CREATE TABLE "${schema}".orig (id int PRIMARY KEY, v int NOT NULL, note text)`);
  await admin.query(`INSERT INTO "${schema}".orig SELECT i, i, 'n' || i FROM generate_series(1, ${ROWS}) i`);

  // Read by the initial snapshot only: no change of the table streamed before the stop.
  const orig = new Fold("orig");
  let checkpoint = await run(c, null, [orig], async (state) => {
    await waitFor("the initial snapshot", () => streaming(state) && orig.visible().size === ROWS, 60_000);
    await caughtUp(state);
  });
  assert.ok(relationLayoutsOf(checkpoint)?.size === 1, "the checkpoint carries the table's layout");

  // A restart without a rename reads nothing again, also from a checkpoint stored before layouts were (an upgrade).
  const upgraded: Checkpoint = { ...checkpoint, position: { commit: checkpoint.position.commit, change: checkpoint.position.change } };
  checkpoint = await run(c, upgraded, [orig], async (state, source) => {
    await admin.query(`UPDATE "${schema}".orig SET v = -v WHERE id = 1`);
    await waitFor("the update", () => orig.visible().get("1")?.["v"] === -1, 30_000);
    await caughtUp(state);
    assert.deepEqual(source.snapshots.list().tasks, [], "nothing read again");
  });
  assert.deepEqual(new Set(orig.reads.values()), new Set([1]), "each row read once");

  await admin.query(`ALTER TABLE "${schema}".orig RENAME TO moved`);
  const moved = new Fold("moved");
  checkpoint = await run(c, checkpoint, [moved], async (state) => {
    await admin.query(`UPDATE "${schema}".moved SET v = -v WHERE id = 2`);
    // Without the stored layout only the updated row would reach the new name's targets.
    await waitFor("every row under the new name", () => moved.visible().size === ROWS && noTasks(state), 60_000);
  });
  assert.deepEqual(ids(moved), all);
  assert.equal(moved.visible().get("2")?.["v"], -2);
  assert.equal(moved.visible().get("1")?.["v"], -1);

  await admin.query(`ALTER TABLE "${schema}".moved SET SCHEMA "${other}"`);
  const elsewhere = new Fold("moved");
  await run(c, checkpoint, [elsewhere], async (state) => {
    await admin.query(`UPDATE "${other}".moved SET v = 3 WHERE id = 3`);
    await waitFor("every row under the new schema", () => [...elsewhere.rows.keys()].length === ROWS && noTasks(state), 60_000);
  });
  assert.deepEqual(ids(elsewhere), all);
});

test("a table with no change since an upgrade (its checkpoint without the record) is in the next checkpoints' record, so a rename of it while Sluice is stopped is read again", async () => {
  const schema = await newSchema("quietren");
  const c = sourceConfig({ tables: [`${schema}.*`], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 1000 }, heartbeat_interval: 500 });
  configs.push(c);
  await admin.query(`CREATE TABLE "${schema}".quiet (id int PRIMARY KEY, v int NOT NULL)`);
  await admin.query(`INSERT INTO "${schema}".quiet SELECT i, i FROM generate_series(1, ${ROWS}) i`);
  const quiet = new Fold("quiet");
  const first = await run(c, null, [quiet], async (state) => {
    await waitFor("the initial snapshot", () => streaming(state) && quiet.visible().size === ROWS, 60_000);
    await caughtUp(state);
  });
  // Stored before Sluice kept the record (an upgrade); the table has no change in this run.
  const upgraded: Checkpoint = { ...first, position: { commit: first.position.commit, change: first.position.change } };
  const checkpoint = await run(c, upgraded, [quiet], async (state) => {
    await caughtUp(state);
  });
  assert.deepEqual([...(relationLayoutsOf(checkpoint)?.values() ?? [])].map((l) => l.table), ["quiet"], "the quiet table is in the record");
  await admin.query(`ALTER TABLE "${schema}".quiet RENAME TO renamed`);
  const renamed = new Fold("renamed");
  await run(c, checkpoint, [renamed], async (state) => {
    await admin.query(`UPDATE "${schema}".renamed SET v = -v WHERE id = 2`);
    await waitFor("every row under the new name", () => renamed.visible().size === ROWS && noTasks(state), 60_000);
  });
  assert.deepEqual(ids(renamed), all);
  assert.equal(renamed.visible().get("2")?.["v"], -2);
});

test("an online schema change's swap while Sluice is stopped (a copy renamed over the original's name, the original renamed away): the copy is not read again, the original is under its new name", async () => {
  const schema = await newSchema("restartswap");
  const c = sourceConfig({ tables: [`${schema}.*`], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 1000 }, heartbeat_interval: 500 });
  configs.push(c);
  for (const table of ["orders", "copy"]) {
    await admin.query(`CREATE TABLE "${schema}".${table} (id int PRIMARY KEY, v int NOT NULL, note text)`);
    await admin.query(`INSERT INTO "${schema}".${table} SELECT i, i, '${table}' || i FROM generate_series(1, ${ROWS}) i`);
  }
  const orders = new Fold("orders");
  const checkpoint = await run(c, null, [orders], async (state) => {
    await waitFor("the initial snapshot", () => streaming(state) && orders.visible().size === ROWS, 60_000);
    await caughtUp(state);
  });

  await admin.query(`ALTER TABLE "${schema}".orders RENAME TO orders_old`);
  await admin.query(`ALTER TABLE "${schema}".copy RENAME TO orders`);
  const swapped = new Fold("orders");
  const old = new Fold("orders_old");
  await run(c, checkpoint, [swapped, old], async (state) => {
    await admin.query(`UPDATE "${schema}".orders SET v = -v WHERE id = 1`);
    await admin.query(`UPDATE "${schema}".orders_old SET v = -v WHERE id = 1`);
    await waitFor("the original under its new name", () => old.visible().size === ROWS && noTasks(state), 60_000);
    await caughtUp(state);
  });
  assert.deepEqual(ids(old), all);
  assert.equal(swapped.reads.size, 0, "the copy, renamed over a name whose targets hold the rows, is not read again");
  assert.equal(swapped.visible().get("1")?.["note"], "copy1");
});

test("a column renamed while Sluice is stopped reads the table again at the next start: every row has the column under its new name", async () => {
  const schema = await newSchema("restartcol");
  const c = sourceConfig({ tables: [`${schema}.*`], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 1000 }, heartbeat_interval: 500 });
  configs.push(c);
  await admin.query(`CREATE TABLE "${schema}".items (id int PRIMARY KEY, v int NOT NULL, note text)`);
  await admin.query(`INSERT INTO "${schema}".items SELECT i, i, 'n' || i FROM generate_series(1, ${ROWS}) i`);

  const items = new Fold("items");
  // A change streamed before the stop: the layout stored is the one its Relation message gave.
  const checkpoint = await run(c, null, [items], async (state) => {
    await waitFor("the initial snapshot", () => streaming(state) && items.visible().size === ROWS, 60_000);
    await admin.query(`UPDATE "${schema}".items SET v = -v WHERE id = 1`);
    await waitFor("the update", () => items.visible().get("1")?.["v"] === -1, 30_000);
    await caughtUp(state);
  });

  await admin.query(`ALTER TABLE "${schema}".items RENAME COLUMN note TO remark`);
  await run(c, checkpoint, [items], async (state) => {
    await admin.query(`UPDATE "${schema}".items SET v = -v WHERE id = 2`);
    await waitFor("every row with the renamed column", () => [...items.visible().values()].filter((row) => row["remark"] !== undefined).length === ROWS && noTasks(state), 60_000);
  });
  assert.equal(items.visible().get("7")?.["remark"], "n7");
});

test("with 1,200 captured tables (a record of layouts over the 256 KiB a checkpoint once carried), tables renamed while Sluice is stopped are all read again, and no other", async () => {
  const schema = await newSchema("manyren");
  const TABLES = 1_200;
  const EACH = 20;
  const c = sourceConfig({ tables: [`${schema}.*`], snapshot: { mode: "initial", parallelism: 4, chunk_rows: 1000 }, heartbeat_interval: 500 });
  configs.push(c);
  const name = (i: number) => `t${String(i).padStart(4, "0")}_with_a_rather_long_table_name`;
  // In statements of 200 tables: one transaction of all would take a lock per table, index and TOAST table.
  for (let from = 0; from < TABLES; from += 200) {
    await admin.query(`DO $$ BEGIN FOR i IN ${from}..${from + 199} LOOP
      EXECUTE format('CREATE TABLE %I.%I (id int PRIMARY KEY, v int NOT NULL, a_rather_long_column_name_for_a_note text, another_long_column_name_for_a_date date, yet_another_long_column_name_for_an_amount numeric)', '${schema}', 't' || lpad(i::text, 4, '0') || '_with_a_rather_long_table_name');
      EXECUTE format('INSERT INTO %I.%I SELECT g, g FROM generate_series(1, ${EACH}) g', '${schema}', 't' || lpad(i::text, 4, '0') || '_with_a_rather_long_table_name');
    END LOOP; END $$`);
  }
  /** Rows read by snapshots, per table. */
  const reads = new Map<string, number>();
  const counting = { apply: (event: ChangeEvent) => void (event.op === "r" && reads.set(event.source.table, (reads.get(event.source.table) ?? 0) + 1)) };
  const total = () => [...reads.values()].reduce((sum, n) => sum + n, 0);
  const checkpoint = await run(c, null, [counting], async (state) => {
    await waitFor("the initial snapshot", () => streaming(state) && total() === TABLES * EACH, 180_000);
    await caughtUp(state);
  });
  const record = relationLayoutsOf(checkpoint);
  assert.equal(record?.size, TABLES, "every table in the record");
  const bytes = Object.values(checkpoint.entries ?? {}).reduce((sum, text) => sum + Buffer.byteLength(text ?? ""), 0);
  assert.ok(bytes > 256 * 1024, `the record is ${bytes} bytes`);
  assert.ok(checkpoint.position.resume!.length < 100, "the checkpoint only names it");

  const renamedIndexes = [0, 150, 333, 600, 777, 1000, 1199];
  for (const i of renamedIndexes) await admin.query(`ALTER TABLE "${schema}"."${name(i)}" RENAME TO "r${i}_renamed"`);
  reads.clear();
  const folds = renamedIndexes.map((i) => new Fold(`r${i}_renamed`));
  await run(c, checkpoint, [counting, ...folds], async (state) => {
    for (const i of renamedIndexes) await admin.query(`UPDATE "${schema}"."r${i}_renamed" SET v = -v WHERE id = 1`);
    await waitFor("every row under the new names", () => folds.every((f) => f.visible().size === EACH) && noTasks(state), 120_000);
    await caughtUp(state);
  });
  for (const fold of folds) assert.deepEqual([...fold.visible().keys()].map(Number).sort((a, b) => a - b), Array.from({ length: EACH }, (_, i) => i + 1), fold.table);
  assert.deepEqual([...reads.keys()].sort(), renamedIndexes.map((i) => `r${i}_renamed`).sort(), "only the renamed tables read again");
});
