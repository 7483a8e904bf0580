/**
 * Rows that enter or leave a captured table with no row event in the binlog: ALTER TABLE ... TRUNCATE PARTITION,
 * DROP PARTITION and EXCHANGE PARTITION ... WITH TABLE. Found on a live deployment (MariaDB -> Kafka -> DuckDB): after
 * TRUNCATE PARTITION p0 and DROP PARTITION p1 the sinks kept every row of them, without a word (the parser skipped
 * the clauses as ignorable). The table (and a captured table exchanged with) is now read again by an online snapshot,
 * whose closing reset removes the rows it no longer has (partition_drops: mirror, the default). Under keep a dropped or
 * truncated partition reads nothing and its rows stay; rows exchanged in are read with no reset. History partitions
 * of a MariaDB PARTITION BY SYSTEM_TIME table read nothing under either, and no partition operation on a system-versioned
 * table reads it again with a reset.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type { Connection } from "mysql2/promise";
import type { Pump } from "../common/online-snapshot-test-support.ts";
import { Fold, noTasks, pump, stopPumps, waitFor } from "../common/online-snapshot-test-support.ts";
import { adminConnection, dropDatabase, newSource, randomName, sourceConfig } from "./int-test-support.ts";
import type { MysqlSource } from "./source.ts";

const database = randomName("pver21_partrows");
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

/**
 * A system-versioned table is never read again with a reset after a partition operation: a snapshot reads current rows
 * only, and its reset would remove from the targets every history row the binlog brought, which the server still has.
 */
async function versionedCase(table: string, createSql: string, statement: string | readonly string[], readsAfter = 2, schema = database): Promise<void> {
  const db = `\`${schema}\``;
  await admin.query(createSql.replace("$T", `${db}.${table}`));
  await admin.query(`INSERT INTO ${db}.${table} VALUES (1, 1), (2, 2)`);
  await admin.query(`CREATE TABLE ${db}.${table}_mark (id INT PRIMARY KEY)`);
  const opened: MysqlSource[] = [];
  const pumps: Pump[] = [];
  const sv = new Fold(table);
  const mark = new Fold(`${table}_mark`);
  const reads = () => [...sv.reads.values()].reduce((a, b) => a + b, 0);
  try {
    const source = newSource(sourceConfig({ tables: [`${schema}.${table}`, `${schema}.${table}_mark`], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 100 }, heartbeat_interval: 500 }));
    opened.push(source);
    await source.connect(null, AbortSignal.timeout(30_000));
    const state = pump(source, [sv, mark]);
    pumps.push(state);
    await waitFor("the initial snapshot", () => noTasks(state) && !(state.checkpoint!.position.resume ?? "").includes('"snapshot":"incomplete"') && reads() === 2);
    // Row 3 becomes a history row only: the server keeps it, and the binlog brings it to the targets.
    await admin.query(`INSERT INTO ${db}.${table} VALUES (3, 3)`);
    await admin.query(`DELETE FROM ${db}.${table} WHERE id = 3`);
    await admin.query(`INSERT INTO ${db}.${table}_mark VALUES (1)`);
    await waitFor("the history row", () => mark.visible().has("1") && noTasks(state));
    const [history] = await admin.query(`SELECT COUNT(*) AS n FROM ${db}.${table} FOR SYSTEM_TIME ALL WHERE id = 3`);
    assert.equal(Number((history as { n: number }[])[0]!.n), 1, "the server keeps the history row");
    const resetBefore = sv.truncatedThrough;
    const visibleBefore = ids(sv);
    assert.deepEqual(visibleBefore, [1, 2, 3], "the targets hold the history row");

    for (const sql of typeof statement === "string" ? [statement] : statement) await admin.query(sql.replace("$T", `${db}.${table}`));
    await admin.query(`INSERT INTO ${db}.${table}_mark VALUES (2)`);
    await waitFor("the mark after the statement", () => mark.visible().has("2") && noTasks(state));
    assert.equal(reads(), readsAfter, readsAfter === 2 ? "nothing read again" : "the current rows read again");
    assert.equal(sv.truncatedThrough, resetBefore, "no reset");
    assert.deepEqual(ids(sv), visibleBefore, "the targets keep every row, history rows included");
  } finally {
    await stopPumps(pumps, opened);
  }
}

test("partition_drops mirror, MariaDB PARTITION BY SYSTEM_TIME: a history partition dropped reads nothing", async () => {
  await versionedCase("pver21_sv", "CREATE TABLE $T (id INT PRIMARY KEY, v INT) WITH SYSTEM VERSIONING PARTITION BY SYSTEM_TIME LIMIT 1 (PARTITION h0 HISTORY, PARTITION h1 HISTORY, PARTITION pcur CURRENT)", "ALTER TABLE $T DROP PARTITION h0");
});

test("partition_drops mirror, MariaDB PARTITION BY SYSTEM_TIME: the CURRENT partition truncated is not read with a reset, the history rows stay", async () => {
  await versionedCase("pver21_cur", "CREATE TABLE $T (id INT PRIMARY KEY, v INT) WITH SYSTEM VERSIONING PARTITION BY SYSTEM_TIME LIMIT 100 (PARTITION h0 HISTORY, PARTITION pcur CURRENT)", "ALTER TABLE $T TRUNCATE PARTITION pcur");
});

test("partition_drops mirror, a system-versioned table partitioned BY HASH: a partition truncated is not read with a reset, the history rows stay", async () => {
  await versionedCase("pver21_hash", "CREATE TABLE $T (id INT PRIMARY KEY, v INT) WITH SYSTEM VERSIONING PARTITION BY HASH (id) PARTITIONS 2", "ALTER TABLE $T TRUNCATE PARTITION p0");
});

test("a column of a system-versioned table renamed: its rows are read again with no reset, the history rows stay", async () => {
  await versionedCase("pver21_ren", "CREATE TABLE $T (id INT PRIMARY KEY, v INT) WITH SYSTEM VERSIONING", "ALTER TABLE $T RENAME COLUMN v TO w", 4);
});

test("an XA transaction on a system-versioned table rolled back after its prepare: the rows its prepare brought leave the targets, the history rows stay", async () => {
  const schema = randomName("xav21_xa");
  await admin.query(`CREATE DATABASE \`${schema}\``);
  try {
    const xa = ["XA START 'xav21'", "INSERT INTO $T VALUES (4, 4)", "XA END 'xav21'", "XA PREPARE 'xav21'", "XA ROLLBACK 'xav21'"];
    await versionedCase("xav21_sv", "CREATE TABLE $T (id INT PRIMARY KEY, v INT) WITH SYSTEM VERSIONING", xa, 4, schema);
  } finally {
    await dropDatabase(admin, schema);
  }
});
