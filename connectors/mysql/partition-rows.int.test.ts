/**
 * Rows that enter or leave a captured table with no row event in the binlog: ALTER TABLE ... TRUNCATE PARTITION,
 * DROP PARTITION and EXCHANGE PARTITION ... WITH TABLE. Found on a live deployment (MariaDB -> Kafka -> DuckDB): after
 * TRUNCATE PARTITION p0 and DROP PARTITION p1 the sinks kept every row of them, without a word (the parser skipped
 * the clauses as ignorable). The table (and a captured table exchanged with) is now read again by an online snapshot,
 * whose closing reset removes the rows it no longer has (partition_drops: mirror, the default). Under keep a dropped or
 * truncated partition reads nothing and its rows stay; rows exchanged in are read with no reset. History partitions
 * of a MariaDB PARTITION BY SYSTEM_TIME table read nothing under either.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type { Connection } from "mysql2/promise";
import type { Pump } from "../common/online-snapshot-test-support.ts";
import { Fold, noTasks, pump, stopPumps, waitFor } from "../common/online-snapshot-test-support.ts";
import { adminConnection, dropDatabase, newSource, randomName, sourceConfig } from "./int-test-support.ts";
import type { MysqlSource } from "./source.ts";

const database = randomName("pdrop21_partrows");
const ids = (fold: Fold) => [...fold.visible().keys()].map(Number).sort((a, b) => a - b);
let admin: Connection;

before(async () => {
  admin = await adminConnection();
  await admin.query(`CREATE DATABASE \`${database}\``);
});

after(async () => {
  await dropDatabase(admin, database);
  await admin.end();
});

test("partitions truncated, dropped or exchanged with a table: the captured tables are read again, the rows they lost leave the targets", async () => {
  const db = `\`${database}\``;
  await admin.query(`CREATE TABLE ${db}.mp (id INT, r INT, v VARCHAR(20), PRIMARY KEY (id, r)) PARTITION BY RANGE (r) (PARTITION p0 VALUES LESS THAN (10), PARTITION p1 VALUES LESS THAN (20), PARTITION p2 VALUES LESS THAN (30))`);
  await admin.query(`INSERT INTO ${db}.mp VALUES (1, 1, 'p0'), (2, 2, 'p0'), (3, 11, 'p1'), (4, 21, 'p2'), (5, 22, 'p2')`);
  await admin.query(`CREATE TABLE ${db}.swap (id INT, r INT, v VARCHAR(20), PRIMARY KEY (id, r))`);
  await admin.query(`INSERT INTO ${db}.swap VALUES (9, 25, 'swapped in')`);
  const opened: MysqlSource[] = [];
  const pumps: Pump[] = [];
  const mp = new Fold("mp");
  const swap = new Fold("swap");
  try {
    const source = newSource(sourceConfig({ tables: [`${database}.*`], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 100 }, heartbeat_interval: 500 }));
    opened.push(source);
    await source.connect(null, AbortSignal.timeout(30_000));
    const state = pump(source, [mp, swap]);
    pumps.push(state);
    await waitFor("the initial snapshot", () => state.checkpoint !== null && !(state.checkpoint.position.resume ?? "").includes('"snapshot":"incomplete"') && mp.visible().size === 5 && swap.visible().size === 1);

    await admin.query(`ALTER TABLE ${db}.mp TRUNCATE PARTITION p0`);
    await admin.query(`ALTER TABLE ${db}.mp DROP PARTITION p1`);
    await admin.query(`ALTER TABLE ${db}.mp EXCHANGE PARTITION p2 WITH TABLE ${db}.swap`);
    await waitFor("both tables read again", () => mp.visible().size === 1 && swap.visible().size === 2 && noTasks(state), 60_000);
    assert.deepEqual(ids(mp), [9], "the partitioned table holds only the row swapped in");
    assert.deepEqual(ids(swap), [4, 5], "the table exchanged with holds the partition's rows");
  } finally {
    await stopPumps(pumps, opened);
  }
});

test("partition_drops keep: a dropped or truncated partition's rows stay in the targets, rows exchanged in are added, nothing removed", async () => {
  const db = `\`${database}\``;
  await admin.query(`CREATE TABLE ${db}.pdrop21_ev (id INT, r INT, PRIMARY KEY (id, r)) PARTITION BY RANGE (r) (PARTITION p0 VALUES LESS THAN (10), PARTITION p1 VALUES LESS THAN (20), PARTITION p2 VALUES LESS THAN (30), PARTITION p3 VALUES LESS THAN (40))`);
  await admin.query(`INSERT INTO ${db}.pdrop21_ev VALUES (1, 1), (2, 11), (3, 21), (4, 31)`);
  await admin.query(`CREATE TABLE ${db}.pdrop21_in (id INT, r INT, PRIMARY KEY (id, r))`);
  await admin.query(`INSERT INTO ${db}.pdrop21_in VALUES (9, 25)`);
  const opened: MysqlSource[] = [];
  const pumps: Pump[] = [];
  const ev = new Fold("pdrop21_ev");
  const swapped = new Fold("pdrop21_in");
  try {
    const tables = [`${database}.pdrop21_ev`, `${database}.pdrop21_in`];
    const source = newSource(sourceConfig({ tables, partition_drops: "keep", snapshot: { mode: "initial", parallelism: 1, chunk_rows: 100 }, heartbeat_interval: 500 }));
    opened.push(source);
    await source.connect(null, AbortSignal.timeout(30_000));
    const state = pump(source, [ev, swapped]);
    pumps.push(state);
    await waitFor("the initial snapshot", () => noTasks(state) && !(state.checkpoint!.position.resume ?? "").includes('"snapshot":"incomplete"') && ev.visible().size === 4 && swapped.visible().size === 1);
    const readsBefore = ev.reads.size;

    await admin.query(`ALTER TABLE ${db}.pdrop21_ev DROP PARTITION p0`);
    await admin.query(`ALTER TABLE ${db}.pdrop21_ev TRUNCATE PARTITION p1`);
    await admin.query(`INSERT INTO ${db}.pdrop21_ev VALUES (5, 32)`);
    await waitFor("the row inserted after the drop", () => ev.visible().has("5") && noTasks(state));
    assert.deepEqual([...ev.reads.values()].reduce((a, b) => a + b, 0), readsBefore, "nothing read again");
    assert.deepEqual(ids(ev), [1, 2, 3, 4, 5], "the dropped and truncated partitions' rows stay");

    await admin.query(`ALTER TABLE ${db}.pdrop21_ev EXCHANGE PARTITION p2 WITH TABLE ${db}.pdrop21_in`);
    await waitFor("both tables read again", () => ev.visible().has("9") && swapped.visible().has("3") && noTasks(state), 60_000);
    assert.deepEqual(ids(ev), [1, 2, 3, 4, 5, 9], "the row exchanged in is added, none removed");
    assert.deepEqual(ids(swapped), [3], "the table exchanged with is read whole, its reset removes the row it gave");
  } finally {
    await stopPumps(pumps, opened);
  }
});

test("partition_drops mirror, MariaDB PARTITION BY SYSTEM_TIME: a history partition dropped reads nothing, the CURRENT one truncated reads the table", async () => {
  const db = `\`${database}\``;
  await admin.query(`CREATE TABLE ${db}.pdrop21_sv (id INT PRIMARY KEY, v INT) WITH SYSTEM VERSIONING PARTITION BY SYSTEM_TIME LIMIT 1 (PARTITION h0 HISTORY, PARTITION h1 HISTORY, PARTITION pcur CURRENT)`);
  await admin.query(`INSERT INTO ${db}.pdrop21_sv VALUES (1, 1), (2, 2)`);
  await admin.query(`UPDATE ${db}.pdrop21_sv SET v = 10 WHERE id = 1`);
  await admin.query(`CREATE TABLE ${db}.pdrop21_mark (id INT PRIMARY KEY)`);
  const opened: MysqlSource[] = [];
  const pumps: Pump[] = [];
  const sv = new Fold("pdrop21_sv");
  const mark = new Fold("pdrop21_mark");
  const reads = () => [...sv.reads.values()].reduce((a, b) => a + b, 0);
  try {
    const source = newSource(sourceConfig({ tables: [`${database}.pdrop21_sv`, `${database}.pdrop21_mark`], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 100 }, heartbeat_interval: 500 }));
    opened.push(source);
    await source.connect(null, AbortSignal.timeout(30_000));
    const state = pump(source, [sv, mark]);
    pumps.push(state);
    await waitFor("the initial snapshot", () => noTasks(state) && !(state.checkpoint!.position.resume ?? "").includes('"snapshot":"incomplete"') && reads() === 2);

    await admin.query(`ALTER TABLE ${db}.pdrop21_sv DROP PARTITION h0`);
    await admin.query(`INSERT INTO ${db}.pdrop21_mark VALUES (1)`);
    await waitFor("the mark after the drop", () => mark.visible().has("1") && noTasks(state));
    assert.equal(reads(), 2, "a history partition dropped: nothing read again");
    const resetBefore = sv.truncatedThrough;

    await admin.query(`ALTER TABLE ${db}.pdrop21_sv TRUNCATE PARTITION pcur`);
    await waitFor("the table read again", () => sv.truncatedThrough > resetBefore && noTasks(state), 60_000);
    assert.deepEqual(ids(sv), [], "the current rows truncated leave the targets");
  } finally {
    await stopPumps(pumps, opened);
  }
});
