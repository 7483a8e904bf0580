/**
 * A statement that makes Sluice read a table again (a table renamed, a column renamed) decoded while its request cannot
 * be made for a passing reason (here the catalog connection is gone): the stream fails (retriable, naming the table and
 * the statement's position) instead of going on without the read, so capture goes on from its last checkpoint before
 * the statement, decodes it again and asks again; the tables are then read, once each.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type { Connection } from "mysql2/promise";
import type { Source } from "../contracts.ts";
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
