/**
 * A table renamed (RENAME TABLE) or a column renamed (RENAME COLUMN) while Sluice is stopped: the binlog holds the
 * statement, which the resumed stream reads and follows as one seen live, so the new name's targets get every row,
 * not only those changed after the restart. The schema history kept beside the checkpoints (the daemon's file; here
 * one store for both runs) must not already know the new name at the resume position.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type { Connection } from "mysql2/promise";
import type { Checkpoint } from "../contracts.ts";
import type { Pump } from "../common/online-snapshot-test-support.ts";
import { Fold, noTasks, pump, stopPumps, waitFor } from "../common/online-snapshot-test-support.ts";
import { adminConnection, dropDatabase, newSource, randomName, sourceConfig } from "./int-test-support.ts";
import { MemorySchemaHistoryStore } from "./schema/schema-history.ts";
import { createWatermarkTableSql } from "./watermarks.ts";
import type { SchemaHistoryStore } from "./schema/schema-history.ts";

const ROWS = 500;
const database = randomName("restartren");
const t = (table: string) => `\`${database}\`.\`${table}\``;
let admin: Connection;

before(async () => {
  admin = await adminConnection(database);
});

after(async () => {
  await dropDatabase(admin, database);
  await admin.end();
});

const config = sourceConfig({ tables: [`${database}.*`], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 1000 }, heartbeat_interval: 500 });
const streaming = (state: Pump): boolean => state.checkpoint !== null && !(state.checkpoint.position.resume ?? "").includes('"snapshot":"incomplete"');

async function run(history: SchemaHistoryStore, from: Checkpoint | null, folds: readonly Fold[], work: (state: Pump) => Promise<Checkpoint | void>): Promise<Checkpoint> {
  const source = newSource(config, { schemaHistory: history });
  const pumps: Pump[] = [];
  try {
    await source.connect(from, AbortSignal.timeout(30_000));
    const state = pump(source, folds);
    pumps.push(state);
    return (await work(state)) ?? state.checkpoint!;
  } finally {
    await stopPumps(pumps, [source]);
  }
}

test("a table renamed, then a column renamed, while Sluice is stopped: the new name's targets hold every row after the next start", async () => {
  await admin.query(`CREATE TABLE ${t("orig")} (id INT PRIMARY KEY, v INT NOT NULL, note VARCHAR(200))`);
  await admin.query(`INSERT INTO ${t("orig")} SELECT seq, seq, CONCAT('n', seq) FROM seq_1_to_${ROWS}`);
  const history = new MemorySchemaHistoryStore();
  const orig = new Fold("orig");
  let checkpoint = await run(history, null, [orig], async (state) => {
    await waitFor("the initial snapshot", () => streaming(state) && orig.visible().size === ROWS, 60_000);
    await admin.query(`UPDATE ${t("orig")} SET v = -v WHERE id = 1`);
    await waitFor("the update", () => orig.visible().get("1")?.["v"] === -1, 30_000);
  });

  await admin.query(`RENAME TABLE ${t("orig")} TO ${t("moved")}`);
  // A start that reads the new name's definition for want of history at the checkpoint, then dies before a later
  // checkpoint is stored: the next start from the same checkpoint still tells the rename.
  const early = newSource(config, { schemaHistory: history });
  await early.connect(checkpoint, AbortSignal.timeout(30_000));
  await early.close();
  const moved = new Fold("moved");
  checkpoint = await run(history, checkpoint, [moved], async (state) => {
    await admin.query(`UPDATE ${t("moved")} SET v = -v WHERE id = 2`);
    await waitFor("every row under the new name", () => moved.visible().size === ROWS && noTasks(state), 60_000);
  });
  assert.equal(moved.visible().get("1")?.["v"], -1);

  await admin.query(`ALTER TABLE ${t("moved")} RENAME COLUMN note TO remark`);
  await run(history, checkpoint, [moved], async (state) => {
    await admin.query(`UPDATE ${t("moved")} SET v = 3 WHERE id = 3`);
    await waitFor("every row with the renamed column", () => [...moved.visible().values()].filter((row) => row["remark"] !== undefined).length === ROWS && noTasks(state), 60_000);
  });
  assert.equal(moved.visible().get("7")?.["remark"], "n7");
});

test("a table and a column renamed and an XA transaction rolled back live: a checkpoint past the statements carries their re-reads, so a crash right after it loses none", async () => {
  const rows = 200;
  await admin.query(`CREATE TABLE ${t("live_orig")} (id INT PRIMARY KEY, v INT NOT NULL)`);
  await admin.query(`CREATE TABLE ${t("live_cols")} (id INT PRIMARY KEY, note VARCHAR(20))`);
  await admin.query(`CREATE TABLE ${t("live_other")} (id INT PRIMARY KEY)`);
  await admin.query(`CREATE TABLE ${t("live_xa")} (id INT PRIMARY KEY, v INT NOT NULL)`);
  await admin.query(`INSERT INTO ${t("live_xa")} SELECT seq, seq FROM seq_1_to_${rows}`);
  await admin.query(`INSERT INTO ${t("live_orig")} SELECT seq, seq FROM seq_1_to_${rows}`);
  await admin.query(`INSERT INTO ${t("live_cols")} SELECT seq, CONCAT('n', seq) FROM seq_1_to_${rows}`);
  await admin.query(createWatermarkTableSql({ database, table: "sluice_watermarks" }));
  const history = new MemorySchemaHistoryStore();
  const other = new Fold("live_other");
  const xa = new Fold("live_xa");
  // The worst moment, made wide: another session holds the watermark table, which a request may wait on (its probe
  // write), while the stream decodes the statements and a change after them; the process dies right after that
  // change's checkpoint is stored.
  const locker = await adminConnection(database);
  const xaSession = await adminConnection(database);
  // Named after the database: one a failed run left prepared is not this run's (XAER_DUPID), and dropDatabase rolls it back.
  const xid = `rr_${database}`;
  let checkpoint: Checkpoint;
  try {
    checkpoint = await run(history, null, [other, xa], async (state) => {
      await waitFor("the initial snapshot", () => streaming(state), 15_000);
      await xaSession.query(`XA START '${xid}'; UPDATE ${t("live_xa")} SET v = -v WHERE id = 1; XA END '${xid}'; XA PREPARE '${xid}'`);
      await waitFor("the prepared change", () => xa.visible().get("1")?.["v"] === -1, 15_000);
      await locker.query(`LOCK TABLES ${t("sluice_watermarks")} WRITE`);
      await admin.query(`RENAME TABLE ${t("live_orig")} TO ${t("live_moved")}`);
      await admin.query(`ALTER TABLE ${t("live_cols")} RENAME COLUMN note TO remark`);
      await xaSession.query(`XA ROLLBACK '${xid}'`);
      await admin.query(`INSERT INTO ${t("live_other")} VALUES (1)`);
      await waitFor("the change after the statements", () => other.visible().has("1"), 15_000);
      const stored = state.checkpoint!;
      await locker.query("UNLOCK TABLES");
      return stored;
    });
  } finally {
    await locker.end();
    await xaSession.end();
  }
  const moved = new Fold("live_moved");
  const cols = new Fold("live_cols");
  await run(history, checkpoint, [moved, cols, xa], async (state) => {
    const renamed = () => [...cols.visible().values()].filter((row) => row["remark"] !== undefined).length;
    const reread = () => moved.visible().size === rows && renamed() === rows && xa.reads.size === rows && noTasks(state);
    await waitFor("every row under the new name, with the renamed column, and of the XA transaction's table", reread, 10_000);
    return state.checkpoint!;
  });
  assert.equal(cols.visible().get("7")?.["remark"], "n7");
  assert.equal(xa.visible().get("1")?.["v"], 1, "the rolled-back change is undone by the table's read");
});
