/**
 * Online (incremental) snapshots on the real MariaDB: a table read chunk by chunk while a workload
 * updates, inserts and deletes its rows, folded as sinks apply events (by version) and compared row
 * by row with the table; a stale row the source no longer has is removed by the closing reset; a
 * crash mid-snapshot resumes at the next chunk (rows read twice: at most one chunk); a table added
 * to the config is backfilled; the signal table; a keyless table and a bad condition are refused.
 *
 * SLUICE_INCREMENTAL_ROWS sets the table size (default 100000: smaller tables see too few changes
 * inside chunk windows for the row comparison to catch a broken window reliably).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type { Connection } from "mysql2/promise";
import type { ChangeEvent } from "../contracts.ts";
import type { SluiceError } from "../errors.ts";
import { decodeResume } from "../common/incremental-snapshot-state.ts";
import type { Pump } from "../common/online-snapshot-test-support.ts";
import { assertFoldHolds, carries, Fold, noTasks, pump, randomTransactions, stopPumps, waitCheckpointAt, waitFor } from "../common/online-snapshot-test-support.ts";
import { adminConnection, dropDatabase, newSource, randomName, sourceConfig } from "./int-test-support.ts";
import { binlogAt, binlogFileIndex } from "./positions.ts";
import type { MysqlSource } from "./source.ts";

const database = randomName("incsnap");
const q = (table: string) => `\`${database}\`.\`${table}\``;
const ROWS = Number(process.env["SLUICE_INCREMENTAL_ROWS"] ?? 100_000);
const CHUNK = Math.max(500, Math.round(ROWS / 20));
let admin: Connection;
const databases = [database];

function config(overrides: Partial<Parameters<typeof sourceConfig>[0]> = {}): ReturnType<typeof sourceConfig> {
  return sourceConfig({ tables: [`${database}.*`], snapshot: { mode: "never", parallelism: 1, chunk_rows: CHUNK }, heartbeat_interval: 500, ...overrides });
}

async function fill(table: string, rows: number): Promise<void> {
  await admin.query(`CREATE TABLE ${q(table)} (id INT PRIMARY KEY, v INT NOT NULL, note VARCHAR(200)) ENGINE=InnoDB`);
  await admin.query(`INSERT INTO ${q(table)} SELECT seq, seq, CONCAT('n', seq) FROM seq_1_to_${rows}`);
  await admin.query(`ANALYZE TABLE ${q(table)}`);
}

before(async () => {
  admin = await adminConnection(database);
  for (const table of ["items", "resumed"]) await fill(table, ROWS);
  await admin.query(`CREATE TABLE ${q("keyless")} (a INT, b VARCHAR(10))`);
  await admin.query(`INSERT INTO ${q("keyless")} VALUES (1, 'x')`);
});

after(async () => {
  for (const name of databases) await dropDatabase(admin, name);
  await admin.end();
});

/** Random small transactions on `table` until stopped: updates, deletes and inserts across the whole key range. */
async function workload(table: string, stop: { stopped: boolean }): Promise<number> {
  const client = await adminConnection();
  try {
    return await randomTransactions(ROWS, stop, {
      begin: () => client.query("BEGIN"),
      commit: () => client.query("COMMIT"),
      update: (id) => client.query(`UPDATE ${q(table)} SET v = v + 1, note = CONCAT(note, '+') WHERE id = ?`, [id]),
      delete: (id) => client.query(`DELETE FROM ${q(table)} WHERE id = ?`, [id]),
      upsert: (id) => client.query(`INSERT INTO ${q(table)} VALUES (?, 0, 'new') ON DUPLICATE KEY UPDATE v = -1`, [id]),
      append: (id) => client.query(`INSERT INTO ${q(table)} VALUES (?, 0, 'appended')`, [id]),
    });
  } finally {
    await client.end();
  }
}

/** The server's binlog position now. */
async function binlogNow(): Promise<bigint> {
  const [rows] = await admin.query("SHOW MASTER STATUS");
  const status = (rows as { File: string; Position: number | string }[])[0]!;
  return binlogAt(binlogFileIndex(status.File), Number(status.Position));
}

/** Waits until the stream has handed on everything committed so far (the binlog position now). */
async function caughtUp(state: Pump): Promise<void> {
  await waitCheckpointAt(state, await binlogNow());
}

async function assertSameRows(table: string, fold: Fold, db = database): Promise<void> {
  const [rows] = await admin.query(`SELECT id, v, note FROM \`${db}\`.\`${table}\` ORDER BY id`);
  assertFoldHolds(fold, rows as { id: number; v: number; note: string | null }[]);
}

test("an online snapshot under concurrent updates, deletes and inserts yields the table row for row, and its reset removes rows the source no longer has", async () => {
  const source = newSource(config());
  await source.connect(null, AbortSignal.timeout(30_000));
  const fold = new Fold("items");
  // A row an earlier capture left behind (the source deleted it unseen): the snapshot's reset removes it.
  fold.rows.set(String(ROWS * 10), { version: 1n, row: { id: ROWS * 10, v: 0, note: "stale" } });
  const state = pump(source, [fold]);
  const stop = { stopped: false };
  const writer = workload("items", stop);
  try {
    const { plan, task } = await source.snapshots.request(`${database}.items`, null, "test");
    assert.deepEqual(plan.key, ["id"]);
    assert.equal(plan.reset, true);
    await waitFor("a checkpoint carrying the snapshot", () => carries(state, task.id));
    await waitFor("the snapshot to finish", () => !carries(state, task.id), 300_000);
  } finally {
    stop.stopped = true;
  }
  try {
    const changes = await writer;
    assert.ok(changes > 0, "the workload ran during the snapshot");
    await caughtUp(state);
  } finally {
    await stopPumps([state], [source]);
  }
  await assertSameRows("items", fold);
  const progress = source.snapshotProgress().find((p) => p.table === `${database}.items`);
  assert.equal(progress?.state, "done");
  assert.ok((progress?.rowsDone ?? 0) >= ROWS * 0.9, `rows done ${progress?.rowsDone}`);
  const [marks] = await admin.query(`SELECT COUNT(*) AS n FROM ${q("sluice_watermarks")}`);
  assert.equal(Number((marks as { n: number }[])[0]!.n), 1, "one watermark row per source: the table stays small");
});

test("a crash mid-snapshot resumes at the next chunk: rows read twice are at most one chunk", async () => {
  const c = config();
  const fold = new Fold("resumed");
  const first = newSource(c);
  const second = newSource(c);
  const pumps: Pump[] = [];
  try {
    await first.connect(null, AbortSignal.timeout(30_000));
    // Reading stops after a few chunks (the snapshot cannot run ahead of what is read: it stalls).
    const state = pump(first, [fold], { stopBeforeAck: () => fold.reads.size >= CHUNK * 4 });
    pumps.push(state);
    await first.snapshots.request(`${database}.resumed`, null, "test");
    await state.done;
    // The crash: nothing after the last acknowledged batch counts; the process and its memory are gone.
    await first.close();
    const checkpoint = state.checkpoint!;
    const durable = decodeResume(checkpoint.position.resume).tasks;
    assert.equal(durable.length, 1, "the checkpoint carries the snapshot in progress");
    assert.ok(durable[0]!.lastKey !== null, "the checkpoint carries how far the snapshot got");

    const readsBefore = new Map(fold.reads);
    await second.connect(checkpoint, AbortSignal.timeout(30_000));
    const resumed = pump(second, [fold]);
    pumps.push(resumed);
    await waitFor("the resumed snapshot to finish", () => noTasks(resumed), 300_000);
    await caughtUp(resumed);

    const twice = [...fold.reads.entries()].filter(([, n]) => n > 1).map(([key]) => key);
    assert.ok(twice.length > 0, "the chunk whose checkpoint was lost is read again");
    assert.ok(twice.length <= CHUNK, `${twice.length} rows read twice, more than one chunk (${CHUNK})`);
    assert.ok(twice.every((key) => readsBefore.has(key)), "only rows of the interrupted attempt are read again");
    assert.equal(fold.reads.size, ROWS, "every row was read");
    await assertSameRows("resumed", fold);
  } finally {
    await stopPumps(pumps, [first, second]);
  }
});

test("tables added to the config later are captured and backfilled online, two at once", async () => {
  const added = randomName("added");
  databases.push(added);
  await admin.query(`CREATE DATABASE \`${added}\``);
  await admin.query(`CREATE TABLE \`${added}\`.first (id INT PRIMARY KEY, v INT NOT NULL, note VARCHAR(200))`);
  await admin.query(`INSERT INTO \`${added}\`.first VALUES (1, 1, 'one')`);
  // The tables exist from the start; only the second config names them.
  for (const table of ["later", "also"]) {
    await admin.query(`CREATE TABLE \`${added}\`.${table} (id INT PRIMARY KEY, v INT NOT NULL, note VARCHAR(200))`);
    await admin.query(`INSERT INTO \`${added}\`.${table} SELECT seq, seq, CONCAT('n', seq) FROM seq_1_to_5000`);
  }
  const base = { snapshot: { mode: "initial" as const, parallelism: 2, chunk_rows: 700 }, heartbeat_interval: 500 };
  const before = sourceConfig({ ...base, tables: [`${added}.first`] });
  const afterwards = { ...before, tables: [`${added}.first`, `${added}.later`, `${added}.also`] };
  const opened: MysqlSource[] = [];
  const pumps: Pump[] = [];
  try {
    const first = newSource(before);
    opened.push(first);
    await first.connect(null, AbortSignal.timeout(30_000));
    const fold = new Fold("later");
    const also = new Fold("also");
    const initial = pump(first, [fold, also]);
    pumps.push(initial);
    await waitFor("the initial snapshot", () => initial.checkpoint !== null && !(initial.checkpoint.position.resume ?? "").includes('"snapshot":"incomplete"'));
    await caughtUp(initial);
    initial.stop = true;
    await initial.done.catch(() => undefined);
    await first.close();
    assert.equal(fold.reads.size + also.reads.size, 0, "the first config does not capture the later tables");

    // A change while Sluice is down, then the config names the table.
    await admin.query(`UPDATE \`${added}\`.later SET note = 'while down' WHERE id = 1`);
    const second = newSource(afterwards);
    opened.push(second);
    await second.connect(initial.checkpoint, AbortSignal.timeout(30_000));
    assert.deepEqual(second.snapshots.list().tasks.map((t) => [t.table, t.origin]).sort(), [[`${added}.also`, "table-added"], [`${added}.later`, "table-added"]]);
    const state = pump(second, [fold, also]);
    pumps.push(state);
    // Updates while the backfill reads: a row updated inside its chunk's window comes as the stream's
    // update, not as a snapshot read (the stream carries the newer value), so not every row is "read".
    for (let round = 0; round < 20 && (round === 0 || !noTasks(state)); round++) {
      for (let from = 0; from < 5000; from += 250) await admin.query(`UPDATE \`${added}\`.later SET v = -v WHERE id % 3 = 0 AND id > ? AND id <= ?`, [from, from + 250]);
    }
    await waitFor("the backfill to finish", () => noTasks(state), 120_000);
    await caughtUp(state);
    await assertSameRows("later", fold, added);
    await assertSameRows("also", also, added);
    assert.equal(also.reads.size, 5000);
    const [rows] = await admin.query(`SELECT id FROM \`${added}\`.later`);
    const unread = (rows as { id: number }[]).map((r) => r.id).filter((id) => !fold.reads.has(String(id)));
    assert.deepEqual(unread.filter((id) => id % 3 !== 0 && id !== 1), [], "every row is read, except rows the stream updated during their chunk's window");
  } finally {
    await stopPumps(pumps, opened);
  }
});

test("a table renamed to a new captured name is read again under it; a copy renamed over a captured name (a swap) is not", async () => {
  const renamed = randomName("renamed");
  databases.push(renamed);
  await admin.query(`CREATE DATABASE \`${renamed}\``);
  const t = (table: string) => `\`${renamed}\`.\`${table}\``;
  await admin.query(`CREATE TABLE ${t("orig")} (id INT PRIMARY KEY, v INT NOT NULL, note VARCHAR(200))`);
  await admin.query(`INSERT INTO ${t("orig")} SELECT seq, seq, CONCAT('n', seq) FROM seq_1_to_1500`);
  const opened: MysqlSource[] = [];
  const pumps: Pump[] = [];
  try {
    const source = newSource(sourceConfig({ tables: [`${renamed}.*`], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 500 }, heartbeat_interval: 500 }));
    opened.push(source);
    await source.connect(null, AbortSignal.timeout(30_000));
    const moved = new Fold("moved");
    const old = new Fold("moved_old");
    const state = pump(source, [moved, old]);
    pumps.push(state);
    await waitFor("the initial snapshot", () => state.checkpoint !== null && !(state.checkpoint.position.resume ?? "").includes('"snapshot":"incomplete"'));

    await admin.query(`RENAME TABLE ${t("orig")} TO ${t("moved")}`);
    await admin.query(`UPDATE ${t("moved")} SET v = -v WHERE id % 5 = 0`);
    // Only the updated rows would reach the new name's topic without a backfill.
    await waitFor("every row under the new name", () => moved.visible().size === 1500 && noTasks(state), 120_000);
    await caughtUp(state);
    await assertSameRows("moved", moved, renamed);

    // A pt-osc / gh-ost swap: the copy renamed over the original's name, whose topic holds the rows already.
    await admin.query(`CREATE TABLE ${t("copy")} (id INT PRIMARY KEY, v INT NOT NULL, note VARCHAR(200))`);
    await admin.query(`INSERT INTO ${t("copy")} SELECT id, v, 'copy' FROM ${t("moved")}`);
    const readsBefore = new Map(moved.reads);
    await admin.query(`RENAME TABLE ${t("moved")} TO ${t("moved_old")}, ${t("copy")} TO ${t("moved")}`);
    await admin.query(`UPDATE ${t("moved")} SET v = 7 WHERE id = 2`);
    await admin.query(`UPDATE ${t("moved_old")} SET v = 7 WHERE id = 2`);
    await waitFor("the original, renamed away, read under its new name", () => old.visible().size === 1500 && noTasks(state), 120_000);
    await caughtUp(state);
    assert.equal(moved.visible().get("2")?.["note"], "copy");
    assert.deepEqual(moved.reads, readsBefore, "the copy renamed over a captured name is not read again");
  } finally {
    await stopPumps(pumps, opened);
  }
});

test("a column dropped and added again under its name, renamed, or added with generated or expression-default values reads the table again: rows not changed since hold the source's values", async () => {
  const db = randomName("columns");
  databases.push(db);
  await admin.query(`CREATE DATABASE \`${db}\``);
  const t = `\`${db}\`.\`cols\``;
  await admin.query(`CREATE TABLE ${t} (id INT PRIMARY KEY, v INT NOT NULL, note VARCHAR(200))`);
  await admin.query(`INSERT INTO ${t} SELECT seq, seq, CONCAT('n', seq) FROM seq_1_to_600`);
  const opened: MysqlSource[] = [];
  const pumps: Pump[] = [];
  const same = async (columns: string) => {
    const [rows] = await admin.query(`SELECT ${columns} FROM ${t} ORDER BY id`);
    assert.deepEqual([...fold.visible().values()].sort((a, b) => Number(a["id"]) - Number(b["id"])), (rows as Record<string, unknown>[]).map((row) => ("at" in row ? { ...row, at: BigInt(row["at"] as string) } : row)));
  };
  const fold = new Fold("cols");
  try {
    const source = newSource(sourceConfig({ tables: [`${db}.*`], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 200 }, heartbeat_interval: 500 }));
    opened.push(source);
    await source.connect(null, AbortSignal.timeout(30_000));
    const state = pump(source, [fold]);
    pumps.push(state);
    await waitFor("the initial snapshot", () => state.checkpoint !== null && !(state.checkpoint.position.resume ?? "").includes('"snapshot":"incomplete"'));
    const readOnce = () => [...fold.reads.values()].every((n) => n === 1);
    assert.ok(readOnce());

    // Without a read, rows not changed since kept the dropped column's 'n1'... where the source has NULL.
    await admin.query(`ALTER TABLE ${t} DROP COLUMN note`);
    await admin.query(`UPDATE ${t} SET v = -v WHERE id % 5 = 0`);
    await admin.query(`ALTER TABLE ${t} ADD COLUMN note VARCHAR(200)`);
    await waitFor("every row read again", () => [...fold.reads.values()].every((n) => n === 2) && fold.reads.size === 600 && noTasks(state), 120_000);
    await caughtUp(state);
    await same("id, v, note");

    // Renamed: rows not changed since would have no value under the new name.
    await admin.query(`ALTER TABLE ${t} RENAME COLUMN v TO w`);
    await waitFor("every row read a third time", () => [...fold.reads.values()].every((n) => n === 3) && noTasks(state), 120_000);
    await caughtUp(state);
    await same("id, w, note");

    // Added with values the rows get from its definition, which no change carries: a generated column, an expression default.
    await admin.query(`ALTER TABLE ${t} ADD COLUMN g INT AS (w * 2) VIRTUAL, ADD COLUMN at DATETIME DEFAULT CURRENT_TIMESTAMP`);
    await waitFor("every row read a fourth time", () => [...fold.reads.values()].every((n) => n === 4) && noTasks(state), 120_000);
    await caughtUp(state);
    await same("id, w, note, g, CAST(UNIX_TIMESTAMP(at) AS INT) * 1000000 AS at");

    // A new name with NULL or a literal default is not read again (the sinks fill the default).
    await admin.query(`ALTER TABLE ${t} ADD COLUMN other INT, ADD COLUMN three INT NOT NULL DEFAULT 3`);
    await admin.query(`UPDATE ${t} SET w = 0 WHERE id = 1`);
    await caughtUp(state);
    assert.ok([...fold.reads.values()].every((n) => n === 4));
  } finally {
    await stopPumps(pumps, opened);
  }
});

test("an XA transaction rolled back after its prepare reads the tables it changed again: its changes leave the targets; a committed one reads nothing", async () => {
  const db = randomName("xa");
  databases.push(db);
  await admin.query(`CREATE DATABASE \`${db}\``);
  const t = `\`${db}\`.\`accounts\``;
  await admin.query(`CREATE TABLE ${t} (id INT PRIMARY KEY, v INT NOT NULL)`);
  await admin.query(`INSERT INTO ${t} SELECT seq, seq FROM seq_1_to_300`);
  const opened: MysqlSource[] = [];
  const pumps: Pump[] = [];
  const fold = new Fold("accounts");
  const source = async () => {
    const [rows] = await admin.query(`SELECT id, v FROM ${t} ORDER BY id`);
    return rows;
  };
  const sorted = () => [...fold.visible().values()].sort((a, b) => Number(a["id"]) - Number(b["id"]));
  try {
    const capture = newSource(sourceConfig({ tables: [`${db}.*`], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 100 }, heartbeat_interval: 500 }));
    opened.push(capture);
    await capture.connect(null, AbortSignal.timeout(30_000));
    const state = pump(capture, [fold]);
    pumps.push(state);
    await waitFor("the initial snapshot", () => state.checkpoint !== null && !(state.checkpoint.position.resume ?? "").includes('"snapshot":"incomplete"'));

    // A prepared XA transaction keeps its connection until it is committed or rolled back.
    const xa = async (id: string, end: "COMMIT" | "ROLLBACK") => {
      const client = await adminConnection();
      try {
        for (const statement of [`XA START '${id}'`, `UPDATE ${t} SET v = -1 WHERE id = 1`, `DELETE FROM ${t} WHERE id = 2`, `INSERT INTO ${t} VALUES (1000, 1000)`, `XA END '${id}'`, `XA PREPARE '${id}'`]) await client.query(statement);
        await admin.query(`UPDATE ${t} SET v = 7 WHERE id = 3`);
        await client.query(`XA ${end} '${id}'`);
      } finally {
        await client.query(`XA ROLLBACK '${id}'`).catch(() => undefined);
        await client.end();
      }
    };
    await xa("rolled", "ROLLBACK");
    await waitFor("every row read again", () => fold.reads.size === 300 && [...fold.reads.values()].every((n) => n === 2) && noTasks(state), 60_000);
    await caughtUp(state);
    assert.deepEqual(sorted(), await source());
    assert.equal(fold.visible().has("1000"), false, "the rolled-back insert left");

    await xa("committed", "COMMIT");
    await caughtUp(state);
    assert.deepEqual(sorted(), await source());
    assert.ok([...fold.reads.values()].every((n) => n === 2), "a committed XA transaction reads nothing again");
  } finally {
    await stopPumps(pumps, opened);
  }
});

test("a column added while a table is read online: chunks read before the stream saw the change are read again with it, and every row arrives", async () => {
  await fill("altered", 6000);
  const source = newSource(config({ snapshot: { mode: "never", parallelism: 1, chunk_rows: 300 } }));
  await source.connect(null, AbortSignal.timeout(30_000));
  const fold = new Fold("altered");
  const reads: ChangeEvent[] = [];
  let altered = 0n;
  const collect = { apply: (event: ChangeEvent) => void (event.source.table === "altered" && event.op === "r" && reads.push(event)) };
  const state = pump(source, [fold, collect]);
  try {
    state.pauseWhen = () => fold.reads.size >= 1500;
    const { task } = await source.snapshots.request(`${database}.altered`, null, "test");
    // The stream stops behind: chunks read after the ALTER use the definition the stream has, the old one.
    await waitFor("some chunks", () => state.paused);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.ok(fold.reads.size < 6000, `the snapshot is still reading when the column is added (${fold.reads.size} rows read)`);
    await admin.query(`ALTER TABLE ${q("altered")} ADD COLUMN extra INT NOT NULL DEFAULT 7`);
    altered = await binlogNow();
    await new Promise((resolve) => setTimeout(resolve, 300));
    state.paused = false;
    await waitFor("the snapshot to finish", () => state.checkpoint !== null && !carries(state, task.id) && source.snapshots.list().tasks.length === 0, 120_000);
    await caughtUp(state);
  } finally {
    await stopPumps([state], [source]);
  }
  await assertSameRows("altered", fold);
  const later = reads.filter((e) => e.source.position.change > altered);
  assert.ok(later.length > 0 && later.length < reads.length, "reads before and after the change");
  assert.deepEqual(later.filter((e) => e.after!["extra"] !== 7).map((e) => e.key["id"]).slice(0, 5), [], "no read handed on after the change has the old columns");
});

test("a table without a primary key, a table the source does not capture and a bad condition are refused with what to do", async () => {
  const source = newSource(config());
  await source.connect(null, AbortSignal.timeout(30_000));
  const state = pump(source, []);
  try {
    await assert.rejects(source.snapshots.plan(`${database}.keyless`, null), (error: SluiceError) => error.code === "SNAPSHOT_NO_CHUNK_KEY" && /primary key/.test(error.message));
    await assert.rejects(source.snapshots.plan("elsewhere.nothing_here", null), (error: SluiceError) => error.code === "SNAPSHOT_TABLE_NOT_CAPTURED");
    await assert.rejects(source.snapshots.plan(`${database}.sluice_watermarks`, null), (error: SluiceError) => error.code === "SNAPSHOT_TABLE_NOT_CAPTURED", "Sluice's own watermark table is never captured");
    await assert.rejects(source.snapshots.plan(`${database}.items`, "no_such_column > 1"), (error: SluiceError) => error.code === "SNAPSHOT_WHERE_INVALID" && /no_such_column/.test(error.message));
    await assert.rejects(source.snapshots.plan(`${database}.items`, "id > 1; DROP TABLE x"), (error: SluiceError) => error.code === "SNAPSHOT_WHERE_INVALID");
    const plan = await source.snapshots.plan(`${database}.items`, "id <= 100");
    assert.equal(plan.reset, false, "a snapshot of some rows removes nothing");
    assert.equal(plan.queuedBehind, 0);
    assert.ok(plan.estimatedRows !== null && plan.estimatedRows > 0);
  } finally {
    await stopPumps([state], [source]);
  }
});

test("the signal table queues an online snapshot where the command line cannot reach the daemon; taken and refused signals are deleted", async () => {
  await fill("signalled", 3000);
  await admin.query(`CREATE TABLE ${q("sluice_signals")} (id VARCHAR(64) PRIMARY KEY, type VARCHAR(32) NOT NULL, data TEXT)`);
  const source = newSource(config({ snapshot: { mode: "never", parallelism: 1, chunk_rows: 1000, signal_table: `${database}.sluice_signals` } }));
  await source.connect(null, AbortSignal.timeout(30_000));
  const fold = new Fold("signalled");
  const state = pump(source, [fold]);
  try {
    await admin.query(`INSERT INTO ${q("sluice_signals")} VALUES ('s1', 'snapshot', ?), ('s2', 'snapshot', ?), ('s3', 'reboot', '{}')`, [
      JSON.stringify({ table: `${database}.signalled`, where: null }),
      JSON.stringify({ table: `${database}.keyless` }),
    ]);
    await waitFor("every row of the signalled table", () => fold.reads.size === 3000, 120_000);
    await waitFor("the signal rows to be deleted", async () => ((await admin.query(`SELECT id FROM ${q("sluice_signals")}`))[0] as unknown[]).length === 0, 60_000);
    assert.deepEqual(source.snapshots.list().failed, [], "refused signals are not snapshots that failed");
  } finally {
    await stopPumps([state], [source]);
  }
});
