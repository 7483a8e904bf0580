/**
 * A database whose name holds a dot (`sales.eu`, a quoted identifier) on the real MariaDB. Its tables
 * are named "sales.eu.orders" in requests and checkpoints, which does not say which dot ends the
 * database: the online snapshot renamed columns ask for, and `sluice snapshot --table`, read it as the
 * database and table that exist (found live: splitting at the first dot read database "sales",
 * table "eu.orders", refused as "does not capture", so the renamed column's rows were never read again).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type { Connection } from "mysql2/promise";
import type { Pump } from "../common/online-snapshot-test-support.ts";
import { Fold, noTasks, pump, stopPumps, waitFor } from "../common/online-snapshot-test-support.ts";
import { adminConnection, dropDatabase, newSource, randomName, sourceConfig } from "./int-test-support.ts";
import type { MysqlSource } from "./source.ts";

const base = randomName("dotted");
// A dot in the database's name; the pattern's "?" matches it (patterns allow letters, digits, _ $ - and wildcards).
const database = `${base}.eu`;
const watermarks = `${base}_wm`;
const t = `\`${database}\`.\`orders\``;
let admin: Connection;

before(async () => {
  admin = await adminConnection(watermarks); // a database selected: MariaDB's seq_1_to_N tables need one
  await admin.query(`CREATE DATABASE \`${database}\``);
});

after(async () => {
  for (const name of [database, watermarks]) await dropDatabase(admin, name);
  await admin.end();
});

test("a table of a database named with a dot is read again after a column rename, and sluice snapshot plans it", async () => {
  await admin.query(`CREATE TABLE ${t} (id INT PRIMARY KEY, v INT NOT NULL)`);
  await admin.query(`INSERT INTO ${t} SELECT seq, seq FROM seq_1_to_300`);
  const opened: MysqlSource[] = [];
  const pumps: Pump[] = [];
  const fold = new Fold("orders");
  try {
    const source = newSource(
      sourceConfig({ tables: [`${base}?eu.*`], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 100, watermark_table: `${watermarks}.sluice_watermarks` }, heartbeat_interval: 500 }),
    );
    opened.push(source);
    await source.connect(null, AbortSignal.timeout(30_000));
    const state = pump(source, [fold]);
    pumps.push(state);
    await waitFor("the initial snapshot", () => state.checkpoint !== null && !(state.checkpoint.position.resume ?? "").includes('"snapshot":"incomplete"') && fold.reads.size === 300);

    const plan = await source.snapshots.plan(`${database}.orders`, null);
    assert.deepEqual([plan.table, plan.key], [`${database}.orders`, ["id"]]);

    // Rows not changed since would have no value under the new name without a read.
    await admin.query(`ALTER TABLE ${t} RENAME COLUMN v TO w`);
    await waitFor("every row read again", () => fold.reads.size === 300 && [...fold.reads.values()].every((n) => n === 2) && noTasks(state), 60_000);
    await waitFor("a row not changed since holds its value under the new name", () => fold.visible().get("2")?.["w"] === 2, 10_000);
  } finally {
    await stopPumps(pumps, opened);
  }
});
