/**
 * Rows that enter or leave a captured table with no row event in the binlog: ALTER TABLE ... TRUNCATE PARTITION,
 * DROP PARTITION and EXCHANGE PARTITION ... WITH TABLE. Found on a live deployment (MariaDB -> Kafka -> DuckDB): after
 * TRUNCATE PARTITION p0 and DROP PARTITION p1 the sinks kept every row of them, without a word (the parser skipped
 * the clauses as ignorable). The table (and a captured table exchanged with) is now read again by an online snapshot,
 * whose closing reset removes the rows it no longer has.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type { Connection } from "mysql2/promise";
import type { Pump } from "../common/online-snapshot-test-support.ts";
import { Fold, noTasks, pump, stopPumps, waitFor } from "../common/online-snapshot-test-support.ts";
import { adminConnection, dropDatabase, newSource, randomName, sourceConfig } from "./int-test-support.ts";
import type { MysqlSource } from "./source.ts";

const database = randomName("partrows");
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
    const ids = (fold: Fold) => [...fold.visible().keys()].map(Number).sort((a, b) => a - b);
    await waitFor("both tables read again", () => mp.visible().size === 1 && swap.visible().size === 2 && noTasks(state), 60_000);
    assert.deepEqual(ids(mp), [9], "the partitioned table holds only the row swapped in");
    assert.deepEqual(ids(swap), [4, 5], "the table exchanged with holds the partition's rows");
  } finally {
    await stopPumps(pumps, opened);
  }
});
