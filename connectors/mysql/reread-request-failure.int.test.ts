/**
 * A statement that makes Sluice read a table again (a table renamed, a column renamed) decoded while its request cannot
 * be made for a passing reason (here the catalog connection is gone): the stream fails (retriable, naming the table and
 * the statement's position) instead of going on without the read, so capture goes on from its last checkpoint before
 * the statement, decodes it again and asks again; the tables are then read, once each.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type { Connection } from "mysql2/promise";
import type { ChangeEvent, Source } from "../contracts.ts";
import { SluiceError } from "../errors.ts";
import { decodeResume } from "../common/incremental-snapshot-state.ts";
import { Fold, noTasks, pump, stopPumps, waitFor } from "../common/online-snapshot-test-support.ts";
import { adminConnection, dropDatabase, newSource, randomName, sourceConfig } from "./int-test-support.ts";
import { createWatermarkTableSql } from "./watermarks.ts";

const ROWS = 200;
const database = randomName("rereadfail");
const t = (table: string) => `\`${database}\`.\`${table}\``;
let admin: Connection;

before(async () => {
  admin = await adminConnection(database);
});

after(async () => {
  await dropDatabase(admin, database);
  await admin.end();
});

test("a rename and a column rename decoded while the catalog connection is lost fail the stream, which asks again from its last checkpoint: every row is read under the new names, once", async () => {
  await admin.query(`CREATE TABLE ${t("orig")} (id INT PRIMARY KEY, v INT NOT NULL)`);
  await admin.query(`CREATE TABLE ${t("cols")} (id INT PRIMARY KEY, note VARCHAR(20))`);
  await admin.query(`CREATE TABLE ${t("other")} (id INT PRIMARY KEY)`);
  await admin.query(`INSERT INTO ${t("orig")} SELECT seq, seq FROM seq_1_to_${ROWS}`);
  await admin.query(`INSERT INTO ${t("cols")} SELECT seq, CONCAT('n', seq) FROM seq_1_to_${ROWS}`);
  await admin.query(createWatermarkTableSql({ database, table: "sluice_watermarks" }));
  const config = sourceConfig({ tables: [`${database}.*`], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 1000 }, heartbeat_interval: 500 });
  const source = newSource(config);
  const failures: SluiceError[] = [];
  const watched: Pick<Source, "connect" | "read"> = {
    connect: (from, signal) => source.connect(from, signal),
    read: (signal) =>
      source.read(signal).catch((error: unknown) => {
        if (error instanceof SluiceError) failures.push(error);
        throw error;
      }),
  };
  const other = new Fold("other");
  const moved = new Fold("moved");
  const cols = new Fold("cols");
  await source.connect(null, AbortSignal.timeout(30_000));
  const state = pump(watched, [other, moved, cols]);
  try {
    await waitFor("the initial snapshot", () => cols.visible().size === ROWS && state.checkpoint !== null && !(state.checkpoint.position.resume ?? "").includes('"snapshot":"incomplete"'), 15_000);
    const catalog = (source as unknown as { catalog: Connection & { threadId: number } }).catalog;
    await admin.query(`KILL CONNECTION ${catalog.threadId}`);
    await admin.query(`RENAME TABLE ${t("orig")} TO ${t("moved")}`);
    await admin.query(`ALTER TABLE ${t("cols")} RENAME COLUMN note TO remark`);
    await admin.query(`INSERT INTO ${t("other")} VALUES (1)`);
    const renamed = () => [...cols.visible().values()].filter((row) => row["remark"] !== undefined).length;
    await waitFor("every row under the new name and with the renamed column", () => moved.visible().size === ROWS && renamed() === ROWS && other.visible().has("1") && noTasks(state), 15_000);
    const failed = failures.find((error) => error.code === "SNAPSHOT_REQUEST_FAILED");
    assert.ok(failed !== undefined, `the stream failed for the request (${failures.map((e) => e.code).join(", ")})`);
    assert.equal(failed.retriable, true);
    assert.match(failed.message, new RegExp(`${database}\\.(moved|cols) asked for at [^\\s:]+:\\d+ `));
    assert.deepEqual(new Set(moved.reads.values()), new Set([1]), "each row of the renamed table read once");
    assert.equal(decodeResume(state.checkpoint!.position.resume).tasks.length, 0);
  } finally {
    await stopPumps([state], [source]);
  }
});

test("an XA rollback whose request fails after a checkpoint between its prepare and it: the checkpoint carries the prepared transaction's tables, so the stream asks again from there and the rolled-back rows leave", async () => {
  await admin.query(`CREATE TABLE ${t("xa_rb")} (id INT PRIMARY KEY, v INT NOT NULL)`);
  await admin.query(`CREATE TABLE ${t("xa_other")} (id INT PRIMARY KEY)`);
  await admin.query(`INSERT INTO ${t("xa_rb")} SELECT seq, seq FROM seq_1_to_${ROWS}`);
  await admin.query(createWatermarkTableSql({ database, table: "sluice_watermarks" }));
  const config = sourceConfig({ tables: [`${database}.xa_*`], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 1000 }, heartbeat_interval: 500 });
  const source = newSource(config);
  const failures: SluiceError[] = [];
  const watched: Pick<Source, "connect" | "read"> = {
    connect: (from, signal) => source.connect(from, signal),
    read: (signal) =>
      source.read(signal).catch((error: unknown) => {
        if (error instanceof SluiceError) failures.push(error);
        throw error;
      }),
  };
  const rolledBack = new Fold("xa_rb");
  let otherAt = -1n;
  const other = {
    apply: (event: ChangeEvent) => {
      // Its insert, not the initial snapshot's marker for the table, which comes before the prepare.
      if (event.source.table === "xa_other" && event.op === "c") otherAt = event.source.position.change;
    },
  };
  const xaSession = await adminConnection(database);
  // Its own id: another run's transaction left prepared (XAER_DUPID) cannot fail this one.
  const xid = `rbf_${database}`;
  let rolledBackXa = false;
  await source.connect(null, AbortSignal.timeout(30_000));
  const state = pump(watched, [rolledBack, other]);
  try {
    await waitFor("the initial snapshot", () => rolledBack.visible().size === ROWS && state.checkpoint !== null && !(state.checkpoint.position.resume ?? "").includes('"snapshot":"incomplete"'), 15_000);
    await xaSession.query(`XA START '${xid}'; INSERT INTO ${t("xa_rb")} VALUES (${ROWS + 1}, 0), (${ROWS + 2}, 0); XA END '${xid}'; XA PREPARE '${xid}'`);
    await admin.query(`INSERT INTO ${t("xa_other")} VALUES (1)`);
    await waitFor("a checkpoint past the prepare", () => otherAt > 0n && state.checkpoint !== null && state.checkpoint.position.change >= otherAt, 10_000);
    assert.ok(rolledBack.visible().has(String(ROWS + 1)), "the prepared rows reached the topics at the prepare");
    const catalog = (source as unknown as { catalog: Connection & { threadId: number } }).catalog;
    await admin.query(`KILL CONNECTION ${catalog.threadId}`);
    await xaSession.query(`XA ROLLBACK '${xid}'`);
    rolledBackXa = true;
    await waitFor("the rolled-back rows gone, every other row there", () => rolledBack.visible().size === ROWS && !rolledBack.visible().has(String(ROWS + 1)) && noTasks(state), 15_000);
    const failed = failures.find((error) => error.code === "SNAPSHOT_REQUEST_FAILED");
    assert.ok(failed !== undefined, `the stream failed for the request (${failures.map((e) => e.code).join(", ")})`);
    assert.match(failed.message, new RegExp(`${database}\\.xa_rb asked for at `));
  } finally {
    // A prepared transaction outlives its session and holds its locks (dropping the database would wait for ever): never
    // left behind, whatever else fails here. Once its session is gone any session may roll it back.
    if (!rolledBackXa) await xaSession.query(`XA ROLLBACK '${xid}'`).catch(() => undefined);
    await xaSession.end().catch(() => undefined);
    if (!rolledBackXa) await admin.query(`XA ROLLBACK '${xid}'`).catch(() => undefined);
    await stopPumps([state], [source]);
  }
});
