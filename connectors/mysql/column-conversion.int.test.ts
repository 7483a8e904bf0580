/**
 * An ALTER TABLE that converts a column's values in place (MODIFY to a narrower DECIMAL scale or DATETIME precision,
 * a shorter VARCHAR without strict mode) logs no row event for the rows it changes: the table is read again so the
 * targets get what the server now holds. A redefinition that keeps every value (a wider integer or VARCHAR) reads
 * nothing. The same migration made by an online schema change tool (a converted copy renamed over the table) reads
 * the table too. On the shared MariaDB, in a database of its own.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type { Connection } from "mysql2/promise";
import type { Pump } from "../common/online-snapshot-test-support.ts";
import { Fold, noTasks, pump, stopPumps, waitCheckpointAt, waitFor } from "../common/online-snapshot-test-support.ts";
import { adminConnection, dropDatabase, newSource, randomName, sourceConfig } from "./int-test-support.ts";
import { binlogAt, binlogFileIndex } from "./positions.ts";
import type { MysqlSource } from "./source.ts";

const database = randomName("convert");
const t = `\`${database}\`.\`prices\``;
let admin: Connection;

before(async () => {
  admin = await adminConnection(database);
  await admin.query(`CREATE TABLE ${t} (id INT PRIMARY KEY, amount DECIMAL(10,4), at DATETIME(6), code VARCHAR(10), n INT)`);
  await admin.query(`INSERT INTO ${t} SELECT seq, seq + 0.3456, TIMESTAMP'2024-01-01 10:00:00.987654' + INTERVAL seq SECOND, CONCAT('code', seq), seq FROM seq_1_to_300`);
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

test("a column whose redefinition rounds or cuts its values reads the table again; one that keeps them reads nothing", { timeout: 120_000 }, async () => {
  const fold = new Fold("prices");
  const opened: MysqlSource[] = [];
  const pumps: Pump[] = [];
  const same = async () => {
    const [rows] = await admin.query(`SELECT id, amount, CAST(UNIX_TIMESTAMP(at) * 1000000 AS INT) AS at, code, n FROM ${t} ORDER BY id`);
    const expected = (rows as Record<string, unknown>[]).map((row) => ({ ...row, at: BigInt(row["at"] as string) }));
    assert.deepEqual([...fold.visible().values()].sort((a, b) => Number(a["id"]) - Number(b["id"])), expected);
  };
  const reads = (n: number) => [...fold.reads.values()].every((count) => count === n) && fold.reads.size === 300;
  try {
    const source = newSource(sourceConfig({ tables: [`${database}.*`], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 100 }, heartbeat_interval: 500 }));
    opened.push(source);
    await source.connect(null, AbortSignal.timeout(30_000));
    const state = pump(source, [fold]);
    pumps.push(state);
    await waitFor("the initial snapshot", () => state.checkpoint !== null && reads(1) && noTasks(state));

    // Without a read, rows not changed since kept 1.3456 where the server rounded to 1.35.
    await admin.query(`ALTER TABLE ${t} MODIFY amount DECIMAL(10,2)`);
    await waitFor("every row read again after the scale narrowed", () => reads(2) && noTasks(state), 30_000);
    await caughtUp(state);
    await same();

    // The fraction of a second rounded away, and (no strict mode) text cut to the new length.
    await admin.query(`ALTER TABLE ${t} MODIFY at DATETIME`);
    await waitFor("every row read again after the precision narrowed", () => reads(3) && noTasks(state), 30_000);
    await admin.query(`SET SESSION sql_mode = ''; ALTER TABLE ${t} MODIFY code VARCHAR(3); SET SESSION sql_mode = DEFAULT`);
    await waitFor("every row read again after the length narrowed", () => reads(4) && noTasks(state), 30_000);
    await caughtUp(state);
    await same();

    // Wider types keep every value: nothing is read.
    await admin.query(`ALTER TABLE ${t} MODIFY n BIGINT, MODIFY code VARCHAR(20), MODIFY amount DECIMAL(12,3)`);
    await admin.query(`UPDATE ${t} SET n = -n WHERE id = 1`);
    await caughtUp(state);
    assert.ok(reads(4), "a widening read nothing");
  } finally {
    await stopPumps(pumps, opened);
  }
});

test("a converted copy renamed over a captured table (pt-online-schema-change, gh-ost) reads the table again", { timeout: 120_000 }, async () => {
  const fold = new Fold("rates");
  const opened: MysqlSource[] = [];
  const pumps: Pump[] = [];
  const r = (table: string) => `\`${database}\`.\`${table}\``;
  await admin.query(`CREATE TABLE ${r("rates")} (id INT PRIMARY KEY, amount DECIMAL(10,4), n INT)`);
  await admin.query(`INSERT INTO ${r("rates")} SELECT seq, seq + 0.3456, seq FROM seq_1_to_200`);
  const reads = (n: number) => [...fold.reads.values()].every((count) => count === n) && fold.reads.size === 200;
  try {
    const source = newSource(sourceConfig({ tables: [`${database}.rates`], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 100 }, heartbeat_interval: 500 }));
    opened.push(source);
    await source.connect(null, AbortSignal.timeout(30_000));
    const state = pump(source, [fold]);
    pumps.push(state);
    await waitFor("the initial snapshot", () => state.checkpoint !== null && reads(1) && noTasks(state));

    // The tool's copy (not captured) gets the rows converted, then takes the table's name.
    await admin.query(`CREATE TABLE ${r("_rates_new")} (id INT PRIMARY KEY, amount DECIMAL(10,2), n BIGINT)`);
    await admin.query(`INSERT INTO ${r("_rates_new")} SELECT * FROM ${r("rates")}`);
    await admin.query(`RENAME TABLE ${r("rates")} TO ${r("_rates_old")}, ${r("_rates_new")} TO ${r("rates")}`);
    await admin.query(`DROP TABLE ${r("_rates_old")}`);
    await waitFor("every row read again after the swap", () => reads(2) && noTasks(state), 30_000);
    await caughtUp(state);
    const [rows] = await admin.query(`SELECT id, amount, n FROM ${r("rates")} ORDER BY id`);
    assert.deepEqual([...fold.visible().values()].sort((a, b) => Number(a["id"]) - Number(b["id"])), (rows as Record<string, unknown>[]).map((row) => ({ ...row, n: BigInt(row["n"] as string) })));
  } finally {
    await stopPumps(pumps, opened);
  }
});

test("ALTER IGNORE TABLE adding a UNIQUE key reads the table again: the duplicates it dropped with no row event leave the targets", { timeout: 120_000 }, async () => {
  const fold = new Fold("codes");
  const opened: MysqlSource[] = [];
  const pumps: Pump[] = [];
  const c = `\`${database}\`.\`codes\``;
  await admin.query(`CREATE TABLE ${c} (id INT PRIMARY KEY, code INT)`);
  await admin.query(`INSERT INTO ${c} SELECT seq, seq DIV 2 FROM seq_1_to_100`);
  try {
    const source = newSource(sourceConfig({ tables: [`${database}.codes`], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 100 }, heartbeat_interval: 500 }));
    opened.push(source);
    await source.connect(null, AbortSignal.timeout(30_000));
    const state = pump(source, [fold]);
    pumps.push(state);
    await waitFor("the initial snapshot", () => state.checkpoint !== null && fold.reads.size === 100 && noTasks(state));

    await admin.query(`ALTER IGNORE TABLE ${c} ADD UNIQUE KEY (code)`);
    // The read is queued before capture goes past the statement: caught up with no read left, it is done.
    await caughtUp(state);
    await waitFor("no read left", () => noTasks(state), 30_000);
    const [rows] = await admin.query(`SELECT id, code FROM ${c} ORDER BY id`);
    assert.equal((rows as unknown[]).length, 51, "the server dropped the duplicates");
    assert.deepEqual([...fold.visible().values()].sort((a, b) => Number(a["id"]) - Number(b["id"])), rows);
  } finally {
    await stopPumps(pumps, opened);
  }
});

test("a gbk VARCHAR shrunk to TINYTEXT (255 bytes, 127 gbk characters) without strict mode reads the table again", { timeout: 120_000 }, async () => {
  const fold = new Fold("gbk_notes");
  const opened: MysqlSource[] = [];
  const pumps: Pump[] = [];
  const g = `\`${database}\`.\`gbk_notes\``;
  await admin.query(`CREATE TABLE ${g} (id INT PRIMARY KEY, s VARCHAR(200) CHARACTER SET gbk)`);
  await admin.query(`INSERT INTO ${g} SELECT seq, REPEAT('中', 100 + seq) FROM seq_1_to_50`);
  const reads = (n: number) => [...fold.reads.values()].every((count) => count === n) && fold.reads.size === 50;
  try {
    const source = newSource(sourceConfig({ tables: [`${database}.gbk_notes`], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 100 }, heartbeat_interval: 500 }));
    opened.push(source);
    await source.connect(null, AbortSignal.timeout(30_000));
    const state = pump(source, [fold]);
    pumps.push(state);
    await waitFor("the initial snapshot", () => state.checkpoint !== null && reads(1) && noTasks(state));

    await admin.query(`SET SESSION sql_mode = ''; ALTER TABLE ${g} MODIFY s TINYTEXT CHARACTER SET gbk; SET SESSION sql_mode = DEFAULT`);
    await waitFor("every row read again after the cut", () => reads(2) && noTasks(state), 30_000);
    await caughtUp(state);
    const [rows] = await admin.query(`SELECT id, s FROM ${g} ORDER BY id`);
    assert.equal((rows as { s: string }[])[49]!.s.length, 127, "the server cut the values");
    assert.deepEqual([...fold.visible().values()].sort((a, b) => Number(a["id"]) - Number(b["id"])), rows);
  } finally {
    await stopPumps(pumps, opened);
  }
});
