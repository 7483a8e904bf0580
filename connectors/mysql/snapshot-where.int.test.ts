/**
 * An online snapshot's WHERE condition on the real MariaDB. It may come from whoever can write the
 * signal table, and it is evaluated with the capture user's privileges: a condition calling NEXTVAL()
 * advanced a sequence once per row read (found live on PostgreSQL's nextval(); any function that
 * writes would have run). The chunk reads now run in a read-only transaction, rolled back after the
 * read, so such a condition fails the snapshot and changes nothing.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type { Connection } from "mysql2/promise";
import type { Pump } from "../common/online-snapshot-test-support.ts";
import { Fold, noTasks, pump, stopPumps, waitFor } from "../common/online-snapshot-test-support.ts";
import { adminConnection, dropDatabase, newSource, randomName, sourceConfig } from "./int-test-support.ts";
import type { MysqlSource } from "./source.ts";

const database = randomName("where");
const q = (name: string) => `\`${database}\`.\`${name}\``;
let admin: Connection;

before(async () => {
  admin = await adminConnection(database);
  await admin.query(`CREATE TABLE ${q("items")} (id INT PRIMARY KEY, v INT NOT NULL)`);
  await admin.query(`INSERT INTO ${q("items")} SELECT seq, seq FROM seq_1_to_50`);
  await admin.query(`CREATE SEQUENCE ${q("counter")}`);
});

after(async () => {
  await dropDatabase(admin, database);
  await admin.end();
});

test("a snapshot's WHERE condition cannot write through a function it calls; a condition that only reads works", async () => {
  const opened: MysqlSource[] = [];
  const pumps: Pump[] = [];
  const fold = new Fold("items");
  try {
    const source = newSource(sourceConfig({ tables: [`${database}.*`], snapshot: { mode: "never", parallelism: 1, chunk_rows: 20 }, heartbeat_interval: 500 }));
    opened.push(source);
    await source.connect(null, AbortSignal.timeout(30_000));
    const state = pump(source, [fold]);
    pumps.push(state);

    await source.snapshots.request(`${database}.items`, `NEXTVAL(${q("counter")}) > 0`, "test");
    await waitFor("the snapshot refused", () => source.snapshots.list().failed.length === 1 && noTasks(state), 30_000);
    assert.match(source.snapshots.list().failed[0]!.error, /READ ONLY transaction/);
    const [rows] = await admin.query(`SELECT next_not_cached_value AS next FROM ${q("counter")}`);
    assert.equal(Number((rows as { next: unknown }[])[0]!.next), 1, "the sequence was never advanced");
    assert.equal(fold.reads.size, 0);

    await source.snapshots.request(`${database}.items`, "v % 2 = 0", "test");
    const evens = Array.from({ length: 25 }, (_, i) => String(2 * (i + 1)));
    await waitFor("the even rows read", () => evens.every((id) => fold.reads.has(id)) && noTasks(state), 60_000);
    assert.equal(fold.reads.size, 25, "only the rows the condition selects");
  } finally {
    await stopPumps(pumps, opened);
  }
});

test("a WHERE condition that would close the chunk query's parenthesis (adding rows of its choosing) is refused when the snapshot is planned", async () => {
  const source = newSource(sourceConfig({ tables: [`${database}.*`], snapshot: { mode: "never", parallelism: 1, chunk_rows: 20 }, heartbeat_interval: 500 }));
  try {
    await source.connect(null, AbortSignal.timeout(30_000));
    for (const condition of ["true) OR (true", "v = 'x\\\\' ) OR (1=1 OR 'y'"]) {
      await assert.rejects(source.snapshots.plan(`${database}.items`, condition), (error: { code?: string; message: string }) => error.code === "SNAPSHOT_WHERE_INVALID" && /one SQL expression/.test(error.message), condition);
    }
    assert.ok(await source.snapshots.plan(`${database}.items`, "v = ')' OR (id < 3)"), "parentheses inside a string are text");
  } finally {
    await stopPumps([], [source]);
  }
});
