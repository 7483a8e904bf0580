/**
 * A transaction that writes a non-transactional table (Aria, MyISAM) and rolls back to a savepoint: MariaDB keeps the
 * changes the ROLLBACK TO undid in the binlog (with the statement after them), for a replica to replay and undo. The
 * InnoDB table changed since the savepoint is read again, so the targets end without the undone changes; the
 * non-transactional table's change stays, as on the server. On the shared MariaDB, in a database of its own.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type { Connection } from "mysql2/promise";
import type { Pump } from "../common/online-snapshot-test-support.ts";
import { Fold, noTasks, pump, stopPumps, waitCheckpointAt, waitFor } from "../common/online-snapshot-test-support.ts";
import { adminConnection, dropDatabase, newSource, randomName, sourceConfig } from "./int-test-support.ts";
import { binlogAt, binlogFileIndex } from "./positions.ts";
import type { MysqlSource } from "./source.ts";

const database = randomName("savepoint");
const q = (table: string) => `\`${database}\`.\`${table}\``;
let admin: Connection;

before(async () => {
  admin = await adminConnection(database);
  await admin.query(`CREATE TABLE ${q("orders")} (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB`);
  await admin.query(`CREATE TABLE ${q("audit")} (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=Aria`);
  await admin.query(`INSERT INTO ${q("orders")} SELECT seq, seq FROM seq_1_to_50`);
});

after(async () => {
  await dropDatabase(admin, database);
  await admin.end();
});

async function caughtUp(state: Pump): Promise<void> {
  const [rows] = await admin.query("SHOW MASTER STATUS");
  const status = (rows as { File: string; Position: number | string }[])[0]!;
  await waitCheckpointAt(state, binlogAt(binlogFileIndex(status.File), Number(status.Position)));
}

test("ROLLBACK TO SAVEPOINT after a non-transactional write: the InnoDB changes it undid leave the targets, the Aria change stays", { timeout: 60_000 }, async () => {
  const orders = new Fold("orders");
  const audit = new Fold("audit");
  const opened: MysqlSource[] = [];
  const pumps: Pump[] = [];
  const sorted = (fold: Fold) => [...fold.visible().values()].sort((a, b) => Number(a["id"]) - Number(b["id"]));
  try {
    const source = newSource(sourceConfig({ tables: [`${database}.*`], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 20 }, heartbeat_interval: 500 }));
    opened.push(source);
    await source.connect(null, AbortSignal.timeout(30_000));
    const state = pump(source, [orders, audit]);
    pumps.push(state);
    await waitFor("the initial snapshot", () => state.checkpoint !== null && orders.reads.size === 50 && noTasks(state), 30_000);

    await admin.query(
      `BEGIN; INSERT INTO ${q("orders")} VALUES (100, 100); SAVEPOINT s1; INSERT INTO ${q("orders")} VALUES (101, 101); UPDATE ${q("orders")} SET v = -1 WHERE id = 1; ` +
        `DELETE FROM ${q("orders")} WHERE id = 2; INSERT INTO ${q("audit")} VALUES (1, 1); ROLLBACK TO SAVEPOINT s1; COMMIT`,
    );
    // The read is queued before capture goes past the statement: caught up with no read left, it is done.
    await caughtUp(state);
    await waitFor("no read left", () => noTasks(state), 30_000);
    const [rows] = await admin.query(`SELECT id, v FROM ${q("orders")} ORDER BY id`);
    assert.deepEqual(sorted(orders), rows, "orders as the server has it: 100 kept, 101 not there, 1 and 2 as before");
    assert.deepEqual(sorted(audit), [{ id: 1, v: 1 }], "the Aria row stays");
  } finally {
    await stopPumps(pumps, opened);
  }
});

test("a savepoint set first in the transaction: MariaDB logs the undone InnoDB rows as a group closed by ROLLBACK, and they leave the targets", { timeout: 60_000 }, async () => {
  // MariaDB 10.11 logs no SAVEPOINT or ROLLBACK TO here: the Aria row as a group closed by COMMIT, the undone InnoDB rows as one closed by ROLLBACK.
  const orders = new Fold("orders");
  const audit = new Fold("audit");
  const opened: MysqlSource[] = [];
  const pumps: Pump[] = [];
  const sorted = (fold: Fold) => [...fold.visible().values()].sort((a, b) => Number(a["id"]) - Number(b["id"]));
  try {
    const source = newSource(sourceConfig({ tables: [`${database}.*`], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 20 }, heartbeat_interval: 500 }));
    opened.push(source);
    await source.connect(null, AbortSignal.timeout(30_000));
    const state = pump(source, [orders, audit]);
    pumps.push(state);
    await waitFor("the initial snapshot", () => state.checkpoint !== null && noTasks(state) && orders.reads.size > 0, 30_000);
    const [before] = await admin.query(`SELECT id, v FROM ${q("orders")} ORDER BY id`);
    await waitFor("the initial snapshot's rows", () => orders.visible().size === (before as unknown[]).length, 30_000);

    await admin.query(
      `BEGIN; SAVEPOINT s1; INSERT INTO ${q("orders")} VALUES (201, 201); UPDATE ${q("orders")} SET v = -1 WHERE id = 3; ` +
        `DELETE FROM ${q("orders")} WHERE id = 4; INSERT INTO ${q("audit")} VALUES (2, 2); ROLLBACK TO SAVEPOINT s1; INSERT INTO ${q("orders")} VALUES (202, 202); COMMIT`,
    );
    await caughtUp(state);
    await waitFor("no read left", () => noTasks(state), 30_000);
    const [rows] = await admin.query(`SELECT id, v FROM ${q("orders")} ORDER BY id`);
    assert.deepEqual(sorted(orders), rows, "orders as the server has it: 201 not there, 3 and 4 as before, 202 kept");
    const [auditRows] = await admin.query(`SELECT id, v FROM ${q("audit")} ORDER BY id`);
    assert.deepEqual(sorted(audit), auditRows, "the Aria row stays");
  } finally {
    await stopPumps(pumps, opened);
  }
});
