/**
 * Online (incremental) snapshots on the real PostgreSQL: a table read chunk by chunk while a
 * workload updates, inserts and deletes its rows, folded as sinks apply events (by version) and
 * compared row by row with the table; a stale row the source no longer has is removed by the
 * closing reset; a crash mid-snapshot resumes at the next chunk (rows read twice: at most one
 * chunk); a keyless table and a bad condition are refused with clear errors.
 *
 * SLUICE_INCREMENTAL_ROWS sets the table size (default 20000; the 1M-row run: 1000000).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import pg from "pg";
import { postgres } from "../../test/services/ports.ts";
import type { SluiceError } from "../errors.ts";
import { decodeResume } from "../common/incremental-snapshot-state.ts";
import type { Pump } from "../common/online-snapshot-test-support.ts";
import { assertFoldHolds, carries, Fold, noTasks, pump, randomTransactions, stopPumps, waitCheckpointAt, waitFor } from "../common/online-snapshot-test-support.ts";
import { adminClient, checkpointing, cleanUp, newSource, randomName, sourceConfig } from "./int-test-support.ts";
import { isSnapshotIncomplete } from "./positions.ts";
import type { PostgresSource } from "./source.ts";

const schema = randomName("incsnap");
const q = (table: string) => `"${schema}".${table}`;
const ROWS = Number(process.env["SLUICE_INCREMENTAL_ROWS"] ?? 20_000);
const CHUNK = Math.max(500, Math.round(ROWS / 20));
let admin: pg.Client;
const configs: ReturnType<typeof sourceConfig>[] = [];

function config(): ReturnType<typeof sourceConfig> {
  const c = sourceConfig({ tables: [`${schema}.*`], snapshot: { mode: "never", parallelism: 1, chunk_rows: CHUNK }, heartbeat_interval: 500 });
  configs.push(c);
  return c;
}

before(async () => {
  admin = await adminClient();
  await admin.query(`CREATE SCHEMA "${schema}"`);
  for (const table of ["items", "resumed"]) {
    await admin.query(`CREATE TABLE ${q(table)} (id int PRIMARY KEY, v int NOT NULL, note text)`);
    await admin.query(`INSERT INTO ${q(table)} SELECT i, i, 'n' || i FROM generate_series(1, ${ROWS}) i`);
    await admin.query(`ANALYZE ${q(table)}`);
  }
  await admin.query(`CREATE TABLE ${q("keyless")} (a int, b text)`);
  await admin.query(`INSERT INTO ${q("keyless")} VALUES (1, 'x')`);
});

after(async () => {
  for (const c of configs) await cleanUp(admin, c);
  await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await admin.end();
});

/** Random small transactions on `table` until stopped: updates, deletes and inserts across the whole key range. */
async function workload(table: string, stop: { stopped: boolean }): Promise<number> {
  const client = new pg.Client(postgres);
  await client.connect();
  try {
    return await randomTransactions(ROWS, stop, {
      begin: () => client.query("BEGIN"),
      commit: () => client.query("COMMIT"),
      update: (id) => client.query(`UPDATE ${q(table)} SET v = v + 1, note = note || '+' WHERE id = $1`, [id]),
      delete: (id) => client.query(`DELETE FROM ${q(table)} WHERE id = $1`, [id]),
      upsert: (id) => client.query(`INSERT INTO ${q(table)} VALUES ($1, 0, 'new') ON CONFLICT (id) DO UPDATE SET v = -1`, [id]),
      append: (id) => client.query(`INSERT INTO ${q(table)} VALUES ($1, 0, 'appended')`, [id]),
    });
  } finally {
    await client.end();
  }
}

/** Waits until the stream has handed on everything committed so far (a heartbeat after the current WAL position). */
async function caughtUp(state: Pump): Promise<void> {
  const lsn = (await admin.query<{ lsn: string }>("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::text AS lsn")).rows[0]!.lsn;
  await waitCheckpointAt(state, BigInt(lsn));
}

/**
 * waitFor, for a snapshot resumed after a crash: it first waits for the slot's restart_lsn to pass what the crashed run
 * handed on (docs/snapshots.md), which the server moves at its next running-transactions record, every 15 s or so;
 * checkpointing has it written every half second, so the wait is not for the server's timer.
 */
async function waitResumed(what: string, condition: () => boolean, timeoutMs: number): Promise<void> {
  const stopCheckpoints = checkpointing();
  try {
    await waitFor(what, condition, timeoutMs);
  } finally {
    await stopCheckpoints();
  }
}

/** The pump's checkpoint is past the initial snapshot and carries no online snapshot task. */
const streamingOnly = (state: Pump): boolean => state.checkpoint !== null && !isSnapshotIncomplete(state.checkpoint.position) && noTasks(state);

async function assertSameRows(table: string, fold: Fold): Promise<void> {
  const result = await admin.query<{ id: string; v: string; note: string | null }>(`SELECT id, v, note FROM ${q(table)} ORDER BY id`);
  assertFoldHolds(fold, result.rows);
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
    const { plan, task } = await source.snapshots.request(`${schema}.items`, null, "test");
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
  const progress = source.snapshotProgress().find((p) => p.table === `${schema}.items`);
  assert.equal(progress?.state, "done");
  assert.ok((progress?.rowsDone ?? 0) >= ROWS * 0.9, `rows done ${progress?.rowsDone}`);
});

test("online snapshots of three tables run in parallel within the chunk budget, under a workload on all three, and yield each table row for row", async () => {
  const tables = ["par_a", "par_b", "par_c"];
  for (const table of tables) {
    await admin.query(`CREATE TABLE ${q(table)} (id int PRIMARY KEY, v int NOT NULL, note text)`);
    // Half the rows of the other tables (the workload's updates and deletes of keys above them find nothing): three at once stay quick.
    await admin.query(`INSERT INTO ${q(table)} SELECT i, i, 'n' || i FROM generate_series(1, ${ROWS / 2}) i`);
    await admin.query(`ANALYZE ${q(table)}`);
  }
  const c = sourceConfig({ tables: [`${schema}.*`], snapshot: { mode: "never", parallelism: 3, chunk_rows: CHUNK, chunks_in_flight: 4 }, heartbeat_interval: 500 });
  configs.push(c);
  const source = newSource(c);
  await source.connect(null, AbortSignal.timeout(30_000));
  const folds = tables.map((table) => new Fold(table));
  const state = pump(source, folds);
  const stop = { stopped: false };
  const writers = tables.map((table) => workload(table, stop));
  try {
    // Queued together: each lane claims a table of its own before the first is done.
    await Promise.all(tables.map((table) => source.snapshots.request(`${schema}.${table}`, null, "test")));
    await waitFor("the three snapshots to finish", () => noTasks(state) && source.snapshots.list().tasks.length === 0, 300_000);
  } finally {
    stop.stopped = true;
  }
  try {
    for (const writer of writers) assert.ok((await writer) > 0, "the workload ran during the snapshots");
    await caughtUp(state);
  } finally {
    await stopPumps([state], [source]);
  }
  // Read one after another (parallelism 1), a table's reads all come before the next table's first; read in parallel, they interleave.
  const spans = folds.map((fold) => ({ table: fold.table, first: fold.firstRead, last: fold.lastRead }));
  const overlapping = spans.filter((a) => spans.some((b) => a !== b && a.first !== null && b.first !== null && a.last !== null && a.first < b.first && b.first < a.last));
  assert.ok(overlapping.length > 0, `tables read at the same time: none (read order ${JSON.stringify(spans)})`);
  for (const [i, table] of tables.entries()) await assertSameRows(table, folds[i]!);
  assert.deepEqual(source.snapshots.list().failed, []);
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
  await first.snapshots.request(`${schema}.resumed`, null, "test");
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
  await waitResumed("the resumed snapshot to finish", () => noTasks(resumed), 300_000);
  await caughtUp(resumed);
  resumed.stop = true;
  await admin.query("SELECT pg_logical_emit_message(false, 'test', 'wake')");
  await resumed.done;
  await second.close();

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

test("a table added to the config later joins the publication Sluice owns and is backfilled online", async () => {
  const added = randomName("added");
  await admin.query(`CREATE SCHEMA "${added}"`);
  const c = sourceConfig({ tables: [`${added}.*`], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 700 }, heartbeat_interval: 500 });
  configs.push(c);
  const opened: PostgresSource[] = [];
  const pumps: Pump[] = [];
  const stopCheckpoints = checkpointing();
  try {
    await admin.query(`CREATE TABLE "${added}".first (id int PRIMARY KEY, v int NOT NULL, note text)`);
    await admin.query(`INSERT INTO "${added}".first VALUES (1, 1, 'one')`);
    const first = newSource(c);
    opened.push(first);
    await first.connect(null, AbortSignal.timeout(30_000));
    const fold = new Fold("later");
    const initial = pump(first, [fold]);
    pumps.push(initial);
    await waitFor("the initial snapshot", () => streamingOnly(initial));
    initial.stop = true;
    await initial.done;
    await first.close();

    // Added while Sluice is down; the config's pattern already names it.
    await admin.query(`CREATE TABLE "${added}".later (id int PRIMARY KEY, v int NOT NULL, note text)`);
    await admin.query(`INSERT INTO "${added}".later SELECT i, i, 'n' || i FROM generate_series(1, 5000) i`);
    const second = newSource(c);
    opened.push(second);
    await second.connect(initial.checkpoint, AbortSignal.timeout(30_000));
    const published = await admin.query(`SELECT tablename FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1`, [c.publication]);
    assert.deepEqual(published.rows.map((r: { tablename: string }) => r.tablename), ["first", "later"]);
    const state = pump(second, [fold]);
    pumps.push(state);
    // Updates while the backfill reads: a row updated inside its chunk's window comes as the stream's
    // update, not as a snapshot read (the stream carries the newer value), so not every row is "read".
    const finished = () => noTasks(state);
    for (let round = 0; round < 20 && (round === 0 || !finished()); round++) {
      for (let from = 0; from < 5000; from += 100) await admin.query(`UPDATE "${added}".later SET v = -v WHERE id % 3 = 0 AND id > $1 AND id <= $2`, [from, from + 100]);
    }
    await waitFor("the backfill to finish", finished, 120_000);
    await caughtUp(state);
    state.stop = true;
    await admin.query("SELECT pg_logical_emit_message(false, 'test', 'wake')");
    await state.done;
    await second.close();
    const rows = await admin.query<{ id: string; v: string }>(`SELECT id, v FROM "${added}".later ORDER BY id`);
    const visible = fold.visible();
    assert.equal(visible.size, rows.rows.length);
    assert.ok(rows.rows.every((r) => visible.get(r.id)?.["v"] === Number(r.v)), "every row of the added table, with its latest value");
    const unread = rows.rows.map((r) => Number(r.id)).filter((id) => !fold.reads.has(String(id)));
    assert.deepEqual(unread.filter((id) => id % 3 !== 0), [], "every row is read, except rows the stream updated during their chunk's window");

    // Dropped and created again while Sluice is down (a new relation, no longer in the publication): at the next
    // start its targets are emptied before its rows are read, so the dropped table's rows whose keys it lacks go
    // (those changed just before the drop too, which the stream hands on above the backfill's closing reset: the
    // slot's restart_lsn, which the checkpoint's record of running transactions lets pass the resume point first).
    await admin.query("CHECKPOINT");
    await admin.query(`UPDATE "${added}".later SET v = v + 1 WHERE id <= 100`);
    await admin.query(`DROP TABLE "${added}".later`);
    await admin.query(`CREATE TABLE "${added}".later (id int PRIMARY KEY, v int NOT NULL, note text)`);
    await admin.query(`INSERT INTO "${added}".later SELECT i, i, 'again' FROM generate_series(4001, 4300) i`);
    const third = newSource(c);
    opened.push(third);
    await third.connect(state.checkpoint, AbortSignal.timeout(30_000));
    const again = pump(third, [fold]);
    pumps.push(again);
    await waitFor("the table created again, read", () => fold.visible().get("4300")?.["note"] === "again" && noTasks(again), 120_000);
    await caughtUp(again);
    assert.deepEqual([...fold.visible().keys()].map(Number).sort((a, b) => a - b), Array.from({ length: 300 }, (_, i) => 4001 + i), "the targets hold the new table's rows only");
  } finally {
    await stopCheckpoints();
    await stopPumps(pumps, opened);
    await admin.query(`DROP SCHEMA "${added}" CASCADE`);
  }
});

test("a table created while capture streams joins the publication and is backfilled online, without a restart", async () => {
  const created = randomName("created");
  await admin.query(`CREATE SCHEMA "${created}"`);
  const c = sourceConfig({ tables: [`${created}.*`], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 700 }, heartbeat_interval: 500 });
  configs.push(c);
  const opened: PostgresSource[] = [];
  const pumps: Pump[] = [];
  const stopCheckpoints = checkpointing();
  try {
    await admin.query(`CREATE TABLE "${created}".first (id int PRIMARY KEY, v int NOT NULL, note text)`);
    await admin.query(`INSERT INTO "${created}".first VALUES (1, 1, 'one')`);
    const source = newSource(c, { tableDiscoveryMs: 300 });
    opened.push(source);
    await source.connect(null, AbortSignal.timeout(30_000));
    const fold = new Fold("later");
    // A name with a newline: the backfill request (and the truncate of a name created again) carried it in lines.
    const newline = "nl\nline";
    const newlineFold = new Fold(newline);
    const state = pump(source, [fold, newlineFold]);
    pumps.push(state);
    await waitFor("the initial snapshot", () => streamingOnly(state));

    // A migration while Sluice streams: a table with rows (CREATE TABLE AS, whose rows are not decoded), its key, then more changes.
    await admin.query(`CREATE TABLE "${created}".later AS SELECT i AS id, i AS v, 'n' || i AS note FROM generate_series(1, 3000) i`);
    await admin.query(`CREATE TABLE "${created}"."${newline}" AS SELECT i AS id, i AS v, 'n' || i AS note FROM generate_series(1, 50) i`);
    await admin.query(`ALTER TABLE "${created}"."${newline}" ADD PRIMARY KEY (id)`);
    // Looked at (several times) before it has a key: left until it has one.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const keyless = await admin.query(`SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND tablename = 'later'`, [c.publication]);
    assert.equal(keyless.rowCount, 0, "a new table without a key is not taken up yet");
    await admin.query(`ALTER TABLE "${created}".later ADD PRIMARY KEY (id)`);
    await waitFor(
      "the new table in the publication",
      async () => (await admin.query(`SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND tablename = 'later'`, [c.publication])).rowCount === 1,
      30_000,
    );
    await admin.query(`UPDATE "${created}".later SET v = -v WHERE id % 7 = 0`);
    await admin.query(`INSERT INTO "${created}".later VALUES (3001, 3001, 'after')`);
    await waitFor("the backfill to finish", () => fold.visible().size >= 3001 && noTasks(state), 120_000);
    await caughtUp(state);
    const rows = await admin.query<{ id: string; v: string }>(`SELECT id, v FROM "${created}".later ORDER BY id`);
    const visible = fold.visible();
    assert.equal(visible.size, rows.rows.length);
    assert.ok(rows.rows.every((r) => visible.get(r.id)?.["v"] === Number(r.v)), "every row of the new table, with its latest value");
    await waitFor("every row of the table named with a newline", () => newlineFold.visible().size === 50 && noTasks(state), 30_000);

    // Dropped and created again under the same name: a new relation, no longer in the publication.
    await admin.query(`DROP TABLE "${created}".later`);
    await admin.query(`CREATE TABLE "${created}".later (id int PRIMARY KEY, v int NOT NULL, note text)`);
    await admin.query(`INSERT INTO "${created}".later SELECT i, i, 'again' FROM generate_series(5001, 5500) i`);
    await admin.query(`DROP TABLE "${created}"."${newline}"`);
    await admin.query(`CREATE TABLE "${created}"."${newline}" AS SELECT i AS id, i AS v, 'again' AS note FROM generate_series(101, 120) i`);
    await admin.query(`ALTER TABLE "${created}"."${newline}" ADD PRIMARY KEY (id)`);
    await waitFor("the table created again, read", () => [5001, 5250, 5500].every((id) => fold.visible().get(String(id))?.["note"] === "again") && noTasks(state), 60_000);
    await admin.query(`INSERT INTO "${created}".later VALUES (5501, 5501, 'streamed')`);
    await waitFor("a change of the table created again, streamed", () => fold.visible().get("5501")?.["note"] === "streamed", 30_000);
    // The dropped table's rows are gone (a truncate before the new table's rows): the targets hold the new table only.
    assert.deepEqual([...fold.visible().keys()].map(Number).sort((a, b) => a - b), Array.from({ length: 501 }, (_, i) => 5001 + i));
    await waitFor("the table named with a newline, created again, read", () => newlineFold.visible().has("120") && noTasks(state), 30_000);
    assert.deepEqual([...newlineFold.visible().keys()].map(Number).sort((a, b) => a - b), Array.from({ length: 20 }, (_, i) => 101 + i), "the dropped table's rows are gone");
  } finally {
    await stopCheckpoints();
    await stopPumps(pumps, opened);
    await admin.query(`DROP SCHEMA "${created}" CASCADE`);
  }
});

test("a table dropped and created again that is already in the publication when a look first lists it is emptied and read (a put-back raced with the drop)", async () => {
  // What a look's put-back leaves when the captured table is dropped and created again between the look's listing and
  // its ALTER PUBLICATION: the ALTER adds the new table by name, its backfill request names the dropped relid (nothing
  // to read), and the next look finds the new table already in the publication. Staged in one transaction here, so
  // whenever the looks run they find the same thing; the new table's rows (CREATE TABLE AS) are in no change.
  const raced = randomName("raced");
  await admin.query(`CREATE SCHEMA "${raced}"`);
  const c = sourceConfig({ tables: [`${raced}.*`], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 700 }, heartbeat_interval: 500 });
  configs.push(c);
  const opened: PostgresSource[] = [];
  const pumps: Pump[] = [];
  const stopCheckpoints = checkpointing();
  const ids = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
  try {
    await admin.query(`CREATE TABLE "${raced}".t AS SELECT i AS id, i AS v, 'old' AS note FROM generate_series(1, 20) i`);
    await admin.query(`ALTER TABLE "${raced}".t ADD PRIMARY KEY (id)`);
    const source = newSource(c, { tableDiscoveryMs: 300 });
    opened.push(source);
    await source.connect(null, AbortSignal.timeout(30_000));
    const fold = new Fold("t");
    const state = pump(source, [fold]);
    pumps.push(state);
    await waitFor("the initial snapshot", () => fold.visible().size === 20 && streamingOnly(state));

    await admin.query(
      `BEGIN; DROP TABLE "${raced}".t; CREATE TABLE "${raced}".t AS SELECT i AS id, i AS v, 'new' AS note FROM generate_series(101, 130) i; ` +
        `ALTER TABLE "${raced}".t ADD PRIMARY KEY (id); ALTER PUBLICATION "${c.publication}" ADD TABLE "${raced}".t; COMMIT`,
    );
    const keys = () => [...fold.visible().keys()].map(Number).sort((a, b) => a - b);
    await waitFor("the new table's rows, and only them", () => keys().length === 30 && keys()[0] === 101 && noTasks(state), 20_000);
    await admin.query(`INSERT INTO "${raced}".t VALUES (131, 131, 'streamed')`);
    await waitFor("a change of the new table, streamed", () => fold.visible().get("131")?.["note"] === "streamed", 20_000);
    assert.deepEqual(keys(), ids(101, 131));
    assert.ok(ids(101, 130).every((id) => fold.visible().get(String(id))?.["note"] === "new"));
  } finally {
    await stopCheckpoints();
    await stopPumps(pumps, opened);
    await admin.query(`DROP SCHEMA "${raced}" CASCADE`);
  }
});

test("snapshot.mode never: a table dropped and created again that is already in the publication keeps the rows streamed since it joined (no late empty request)", async () => {
  // With no backfill nothing reads the rows again: an empty request written when the look finds the table would
  // erase the changes streamed since the table joined the publication.
  const raced = randomName("racednever");
  await admin.query(`CREATE SCHEMA "${raced}"`);
  const c = sourceConfig({ tables: [`${raced}.*`], snapshot: { mode: "never", parallelism: 1, chunk_rows: 700 }, heartbeat_interval: 500 });
  configs.push(c);
  const opened: PostgresSource[] = [];
  const pumps: Pump[] = [];
  const stopCheckpoints = checkpointing();
  try {
    await admin.query(`CREATE TABLE "${raced}".t (id int PRIMARY KEY, note text)`);
    const source = newSource(c, { tableDiscoveryMs: 300 });
    opened.push(source);
    await source.connect(null, AbortSignal.timeout(30_000));
    const fold = new Fold("t");
    const state = pump(source, [fold]);
    pumps.push(state);
    await waitFor("streaming", () => streamingOnly(state));
    await admin.query(`INSERT INTO "${raced}".t VALUES (1, 'before')`);
    await waitFor("a change of the first table", () => fold.visible().has("1"), 20_000);

    await admin.query(
      `BEGIN; DROP TABLE "${raced}".t; CREATE TABLE "${raced}".t (id int PRIMARY KEY, note text); ` +
        `ALTER PUBLICATION "${c.publication}" ADD TABLE "${raced}".t; COMMIT`,
    );
    await admin.query(`INSERT INTO "${raced}".t VALUES (201, 'streamed')`);
    await waitFor("the new table's change, streamed", () => fold.visible().get("201")?.["note"] === "streamed", 20_000);
    // A few looks later (every 300 ms): the row streamed is still there.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    await admin.query(`INSERT INTO "${raced}".t VALUES (202, 'later')`);
    await waitFor("a later change", () => fold.visible().has("202"), 20_000);
    assert.equal(fold.visible().get("201")?.["note"], "streamed", "the row streamed since the table joined the publication is kept");
  } finally {
    await stopCheckpoints();
    await stopPumps(pumps, opened);
    await admin.query(`DROP SCHEMA "${raced}" CASCADE`);
  }
});

test("a crash between a table joining the publication and its backfill request reaching a checkpoint does not lose the backfill (created while streaming, or added while Sluice was down)", async () => {
  const crashed = randomName("crashed");
  await admin.query(`CREATE SCHEMA "${crashed}"`);
  const c = sourceConfig({ tables: [`${crashed}.*`], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 700 }, heartbeat_interval: 500 });
  configs.push(c);
  const opened: PostgresSource[] = [];
  const pumps: Pump[] = [];
  const stopCheckpoints = checkpointing();
  /** Stops storing checkpoints: what the pump holds now is what a crash from here on resumes from. */
  const frozen = async (state: Pump) => {
    state.pauseWhen = () => true;
    await waitFor("the pump to pause", () => state.paused);
    return state.checkpoint;
  };
  const published = async (table: string) => (await admin.query(`SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND tablename = $2`, [c.publication, table])).rowCount === 1;
  const ids = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
  try {
    await admin.query(`CREATE TABLE "${crashed}".first (id int PRIMARY KEY, v int NOT NULL, note text)`);
    await admin.query(`INSERT INTO "${crashed}".first VALUES (1, 1, 'one')`);
    const folds = { created: new Fold("created"), added: new Fold("added") };
    const all = [folds.created, folds.added];
    const first = newSource(c, { tableDiscoveryMs: 300 });
    opened.push(first);
    await first.connect(null, AbortSignal.timeout(30_000));
    const streaming = pump(first, all);
    pumps.push(streaming);
    await waitFor("the initial snapshot", () => streamingOnly(streaming));

    // Created while capture streams: table discovery adds it to the publication; the process dies before a checkpoint after that is stored.
    const beforeCreated = await frozen(streaming);
    await admin.query(`CREATE TABLE "${crashed}".created (id int PRIMARY KEY, v int NOT NULL, note text)`);
    await admin.query(`INSERT INTO "${crashed}".created SELECT i, i, 'n' || i FROM generate_series(1, 2000) i`);
    await waitFor("the new table in the publication", () => published("created"), 30_000);
    await stopPumps([streaming], [first]);
    const second = newSource(c);
    opened.push(second);
    await second.connect(beforeCreated, AbortSignal.timeout(30_000));
    const resumed = pump(second, all);
    pumps.push(resumed);
    await waitFor("the created table's rows", () => folds.created.visible().size === 2000 && noTasks(resumed), 60_000);
    assert.deepEqual([...folds.created.visible().keys()].map(Number).sort((a, b) => a - b), ids(2000));

    // Added while Sluice is down: the next start adds it to the publication and dies before its backfill is stored.
    const beforeAdded = await frozen(resumed);
    await stopPumps([resumed], [second]);
    await admin.query(`CREATE TABLE "${crashed}".added (id int PRIMARY KEY, v int NOT NULL, note text)`);
    await admin.query(`INSERT INTO "${crashed}".added SELECT i, i, 'n' || i FROM generate_series(1, 1500) i`);
    const third = newSource(c);
    opened.push(third);
    await third.connect(beforeAdded, AbortSignal.timeout(30_000));
    assert.ok(await published("added"), "the start added the table to the publication");
    await third.close();
    const fourth = newSource(c);
    opened.push(fourth);
    await fourth.connect(beforeAdded, AbortSignal.timeout(30_000));
    const again = pump(fourth, all);
    pumps.push(again);
    await waitFor("the added table's rows", () => folds.added.visible().size === 1500 && noTasks(again), 60_000);
    assert.deepEqual([...folds.added.visible().keys()].map(Number).sort((a, b) => a - b), ids(1500));
    assert.equal(folds.created.visible().size, 2000, "the table backfilled before is not emptied");

    // Renamed after it joined the publication, before its request was decoded: the request follows the table (by its
    // relation id) and reads it under the name it has now.
    const beforeRenamed = await frozen(again);
    await stopPumps([again], [fourth]);
    await admin.query(`CREATE TABLE "${crashed}".early (id int PRIMARY KEY, v int NOT NULL, note text)`);
    await admin.query(`INSERT INTO "${crashed}".early SELECT i, i, 'n' || i FROM generate_series(1, 700) i`);
    const joining = newSource(c);
    opened.push(joining);
    await joining.connect(beforeRenamed, AbortSignal.timeout(30_000));
    await joining.close();
    await admin.query(`ALTER TABLE "${crashed}".early RENAME TO later_name`);
    const resuming = newSource(c);
    opened.push(resuming);
    await resuming.connect(beforeRenamed, AbortSignal.timeout(30_000));
    const laterName = new Fold("later_name");
    const renamedState = pump(resuming, [laterName]);
    pumps.push(renamedState);
    await waitFor("the renamed table's rows under its new name", () => laterName.visible().size === 700 && noTasks(renamedState), 60_000);

    // The request decoded while a migration holds a lock on the table: capture goes on (the request takes no lock on
    // it), and the table is read once the lock is gone.
    const beforeLocked = await frozen(renamedState);
    await stopPumps([renamedState], [resuming]);
    await admin.query(`CREATE TABLE "${crashed}".locked (id int PRIMARY KEY, v int NOT NULL, note text)`);
    await admin.query(`INSERT INTO "${crashed}".locked SELECT i, i, 'n' || i FROM generate_series(1, 500) i`);
    const fifth = newSource(c);
    opened.push(fifth);
    await fifth.connect(beforeLocked, AbortSignal.timeout(30_000));
    await fifth.close();
    const migration = await adminClient();
    try {
      await migration.query("BEGIN");
      await migration.query(`LOCK TABLE "${crashed}".locked IN ACCESS EXCLUSIVE MODE`);
      const sixth = newSource(c);
      opened.push(sixth);
      await sixth.connect(beforeLocked, AbortSignal.timeout(30_000));
      const firsts = new Fold("first");
      const locked = new Fold("locked");
      const underLock = pump(sixth, [firsts, locked]);
      pumps.push(underLock);
      await admin.query(`INSERT INTO "${crashed}".first VALUES (2, 2, 'while locked')`);
      await waitFor("a change of another table while the lock is held", () => firsts.visible().has("2"), 30_000);
      await migration.query("COMMIT");
      await waitFor("the locked table's rows", () => locked.visible().size === 500 && noTasks(underLock), 60_000);
    } finally {
      await migration.query("ROLLBACK").catch(() => undefined);
      await migration.end();
    }
  } finally {
    await stopCheckpoints();
    await stopPumps(pumps, opened);
    await admin.query(`DROP SCHEMA "${crashed}" CASCADE`);
  }
});

test("with a publication FOR ALL TABLES, a table created while capture streams is backfilled (rows CREATE TABLE AS wrote too)", async () => {
  const everything = randomName("alltables");
  await admin.query(`CREATE SCHEMA "${everything}"`);
  const c = sourceConfig({ tables: [`${everything}.*`], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 700 }, heartbeat_interval: 500 });
  configs.push(c);
  const opened: PostgresSource[] = [];
  const pumps: Pump[] = [];
  const stopCheckpoints = checkpointing();
  try {
    await admin.query(`CREATE PUBLICATION "${c.publication!}" FOR ALL TABLES`);
    await admin.query(`CREATE TABLE "${everything}".first (id int PRIMARY KEY, v int NOT NULL, note text)`);
    await admin.query(`INSERT INTO "${everything}".first VALUES (1, 1, 'one')`);
    const source = newSource(c, { tableDiscoveryMs: 300 });
    opened.push(source);
    await source.connect(null, AbortSignal.timeout(30_000));
    const later = new Fold("later");
    const state = pump(source, [later]);
    pumps.push(state);
    await waitFor("the initial snapshot", () => streamingOnly(state));
    await admin.query(`CREATE TABLE "${everything}".later AS SELECT i AS id, i AS v, 'n' || i AS note FROM generate_series(1, 1500) i`);
    await admin.query(`ALTER TABLE "${everything}".later ADD PRIMARY KEY (id)`);
    await waitFor("the new table's rows", () => later.visible().size === 1500 && noTasks(state), 60_000);
    assert.deepEqual([...later.visible().keys()].map(Number).sort((a, b) => a - b), Array.from({ length: 1500 }, (_, i) => i + 1));
  } finally {
    await stopCheckpoints();
    await stopPumps(pumps, opened);
    await admin.query(`DROP SCHEMA "${everything}" CASCADE`);
  }
});

test("a table renamed while capture streams is read again under its new name", async () => {
  const renamed = randomName("renamed");
  await admin.query(`CREATE SCHEMA "${renamed}"`);
  const c = sourceConfig({ tables: [`${renamed}.*`], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 700 }, heartbeat_interval: 500 });
  configs.push(c);
  const opened: PostgresSource[] = [];
  const pumps: Pump[] = [];
  const stopCheckpoints = checkpointing();
  try {
    await admin.query(`CREATE TABLE "${renamed}".orig (id int PRIMARY KEY, v int NOT NULL, note text)`);
    await admin.query(`INSERT INTO "${renamed}".orig SELECT i, i, 'n' || i FROM generate_series(1, 2000) i`);
    const source = newSource(c, { tableDiscoveryMs: 300 });
    opened.push(source);
    await source.connect(null, AbortSignal.timeout(30_000));
    const before = new Fold("orig");
    const after = new Fold("moved");
    const old = new Fold("moved_old");
    const copied = new Fold("copy");
    const state = pump(source, [before, after, old, copied]);
    pumps.push(state);
    await waitFor("the initial snapshot", () => streamingOnly(state));
    await admin.query(`UPDATE "${renamed}".orig SET v = -v WHERE id = 1`);
    await waitFor("the update under the old name", () => before.visible().get("1")?.["v"] === -1);

    await admin.query(`ALTER TABLE "${renamed}".orig RENAME TO moved`);
    await admin.query(`UPDATE "${renamed}".moved SET v = -v WHERE id % 5 = 0`);
    // Only the updated rows would reach the new name's topic without a backfill.
    await waitFor("every row under the new name", () => after.visible().size === 2000 && noTasks(state), 120_000);
    await caughtUp(state);
    const rows = await admin.query<{ id: string; v: string }>(`SELECT id, v FROM "${renamed}".moved ORDER BY id`);
    const visible = after.visible();
    assert.ok(rows.rows.every((r) => visible.get(r.id)?.["v"] === Number(r.v)), "every row under the new name, with its latest value");

    // An online schema change's swap: a copy renamed over the original's name. That name's topic holds the rows already.
    await admin.query(`CREATE TABLE "${renamed}".copy (id int PRIMARY KEY, v int NOT NULL, note text)`);
    await admin.query(`INSERT INTO "${renamed}".copy SELECT id, v, 'copy' FROM "${renamed}".moved`);
    await waitFor(
      "the copy in the publication",
      async () => (await admin.query(`SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND tablename = 'copy'`, [c.publication])).rowCount === 1,
      30_000,
    );
    // As an online schema change's tool does, the swap comes once the copy is filled: here, once the copy's own backfill
    // has read it under its name (a backfill still queued at the swap reads the copy under its new name, an extra read).
    await waitFor("the copy read under its name", () => copied.visible().size === 2000 && noTasks(state), 120_000);
    await admin.query(`ALTER TABLE "${renamed}".moved RENAME TO moved_old`);
    await admin.query(`ALTER TABLE "${renamed}".copy RENAME TO moved`);
    await admin.query(`UPDATE "${renamed}".moved SET v = 7 WHERE id = 2`);
    await admin.query(`UPDATE "${renamed}".moved_old SET v = 7 WHERE id = 2`);
    await waitFor("the original, renamed away, read under its new name", () => old.visible().size === 2000 && noTasks(state), 120_000);
    await caughtUp(state);
    assert.equal(after.visible().get("2")?.["note"], "copy");
    // Snapshots run one at a time in the order asked (parallelism 1): one of the copy under "moved" would have run first.
    assert.deepEqual(new Set(after.reads.values()), new Set([1]), "the copy renamed over a captured name is not read again");

    // The copy dropped and, once the catalog shows its name free, the original renamed back onto it: no swap. That
    // name's targets hold the dropped copy's rows: they are emptied, then the original's rows are read.
    await admin.query(`INSERT INTO "${renamed}".moved VALUES (9001, 1, 'copy only')`);
    await waitFor("the copy's new row", () => after.visible().has("9001"));
    await admin.query(`DROP TABLE "${renamed}".moved`);
    await new Promise((resolve) => setTimeout(resolve, 1_000)); // a few looks at the catalog (every 300 ms)
    await admin.query(`ALTER TABLE "${renamed}".moved_old RENAME TO moved`);
    await admin.query(`UPDATE "${renamed}".moved SET v = 8 WHERE id = 3`);
    await waitFor("the original read under its old name again", () => after.visible().get("3")?.["v"] === 8 && after.visible().get("4")?.["note"] === "n4" && noTasks(state), 120_000);
    await caughtUp(state);
    const back = await admin.query<{ id: string; v: string; note: string }>(`SELECT id, v, note FROM "${renamed}".moved ORDER BY id`);
    assert.deepEqual(
      [...after.visible()].map(([id, row]) => [Number(id), row["v"], row["note"]]).sort((a, b) => Number(a[0]) - Number(b[0])),
      back.rows.map((r) => [Number(r.id), Number(r.v), r.note]),
      "the targets hold the original's rows only",
    );
  } finally {
    await stopCheckpoints();
    await stopPumps(pumps, opened);
    await admin.query(`DROP SCHEMA "${renamed}" CASCADE`);
  }
});

test("a table dropped and another renamed onto its name before the catalog is looked at again is no swap: the name's targets hold the renamed table's rows only", async () => {
  const dropped = randomName("dropped");
  await admin.query(`CREATE SCHEMA "${dropped}"`);
  const c = sourceConfig({ tables: [`${dropped}.*`], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 700 }, heartbeat_interval: 500 });
  configs.push(c);
  const opened: PostgresSource[] = [];
  const pumps: Pump[] = [];
  const stopCheckpoints = checkpointing();
  try {
    await admin.query(`CREATE TABLE "${dropped}".x (id int PRIMARY KEY, v int NOT NULL, note text)`);
    await admin.query(`INSERT INTO "${dropped}".x SELECT i, i, 'x' FROM generate_series(1, 1000) i`);
    // Created after x, as an online schema change's copy would be: only x being gone tells it is no swap.
    await admin.query(`CREATE TABLE "${dropped}".y (id int PRIMARY KEY, v int NOT NULL, note text)`);
    await admin.query(`INSERT INTO "${dropped}".y SELECT i, i, 'y' FROM generate_series(501, 1200) i`);
    // No look at the catalog while the test runs: the drop and the rename fall between two looks.
    const source = newSource(c, { tableDiscoveryMs: 3_600_000 });
    opened.push(source);
    await source.connect(null, AbortSignal.timeout(30_000));
    const x = new Fold("x");
    const state = pump(source, [x]);
    pumps.push(state);
    await waitFor("the initial snapshot", () => streamingOnly(state));
    assert.equal(x.visible().size, 1000);

    await admin.query(`DROP TABLE "${dropped}".x`);
    await admin.query(`ALTER TABLE "${dropped}".y RENAME TO x`);
    await admin.query(`UPDATE "${dropped}".x SET v = -v WHERE id = 600`);
    await waitFor("the update under the name x", () => x.visible().get("600")?.["v"] === -600);
    await waitFor("x read again", () => x.visible().get("501")?.["note"] === "y" && noTasks(state), 60_000);
    await caughtUp(state);
    const rows = await admin.query<{ id: string; v: string; note: string }>(`SELECT id, v, note FROM "${dropped}".x ORDER BY id`);
    assert.deepEqual(
      [...x.visible()].map(([id, row]) => [Number(id), row["v"], row["note"]]).sort((a, b) => Number(a[0]) - Number(b[0])),
      rows.rows.map((r) => [Number(r.id), Number(r.v), r.note]),
      "the targets of x hold the renamed table's rows only",
    );
  } finally {
    await stopCheckpoints();
    await stopPumps(pumps, opened);
    await admin.query(`DROP SCHEMA "${dropped}" CASCADE`);
  }
});

test("a column dropped and added again under its name, or renamed, reads the table again: rows not changed since hold the source's values", async () => {
  const columns = randomName("columns");
  await admin.query(`CREATE SCHEMA "${columns}"`);
  const t = `"${columns}".cols`;
  await admin.query(`CREATE TABLE ${t} (id int PRIMARY KEY, v int NOT NULL, note text)`);
  await admin.query(`INSERT INTO ${t} SELECT i, i, 'n' || i FROM generate_series(1, 600) i`);
  const c = sourceConfig({ tables: [`${columns}.*`], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 200 }, heartbeat_interval: 500 });
  configs.push(c);
  const opened: PostgresSource[] = [];
  const pumps: Pump[] = [];
  const fold = new Fold("cols");
  const same = async (list: string) => {
    const rows = await admin.query(`SELECT ${list} FROM ${t} ORDER BY id`);
    const numbers = rows.rows.map((row: Record<string, unknown>) => Object.fromEntries(Object.entries(row).map(([k, v]) => [k, k === "note" || v === null ? v : Number(v)])));
    // A sink writes NULL in a column a change does not have (an update between DROP COLUMN and ADD COLUMN).
    const held = [...fold.visible().values()].map((row) => Object.fromEntries(Object.keys(numbers[0]!).map((k) => [k, row[k] ?? null])));
    assert.deepEqual(held.sort((a, b) => Number(a["id"]) - Number(b["id"])), numbers);
  };
  try {
    const source = newSource(c);
    opened.push(source);
    await source.connect(null, AbortSignal.timeout(30_000));
    const state = pump(source, [fold]);
    pumps.push(state);
    await waitFor("the initial snapshot", () => streamingOnly(state) && fold.reads.size === 600);
    assert.ok([...fold.reads.values()].every((n) => n === 1));

    // Without a read, rows not changed since would keep the dropped column's 'n1'... where the source has NULL.
    await admin.query(`ALTER TABLE ${t} DROP COLUMN note`);
    await admin.query(`UPDATE ${t} SET v = -v WHERE id % 5 = 0`);
    await admin.query(`ALTER TABLE ${t} ADD COLUMN note text`);
    await admin.query(`UPDATE ${t} SET v = 0 WHERE id = 1`);
    // Reads go above the earlier ones: a record of the running transactions lets restart_lsn pass them without waiting for the next.
    await admin.query("CHECKPOINT");
    await waitFor("every row read again", () => [...fold.reads.values()].every((n) => n === 2) && fold.reads.size === 600 && noTasks(state), 120_000);
    await caughtUp(state);
    await same("id, v, note");

    // Renamed: rows not changed since would have no value under the new name.
    await admin.query(`ALTER TABLE ${t} RENAME COLUMN v TO w`);
    await admin.query(`UPDATE ${t} SET w = 1 WHERE id = 1`);
    await admin.query("CHECKPOINT");
    await waitFor("every row read a third time", () => [...fold.reads.values()].every((n) => n === 3) && noTasks(state), 120_000);
    await caughtUp(state);
    await same("id, w, note");

    // A new name is not read again (its rows hold its default, which the sinks fill).
    await admin.query(`ALTER TABLE ${t} ADD COLUMN other int`);
    await admin.query(`UPDATE ${t} SET w = 2 WHERE id = 1`);
    await caughtUp(state);
    assert.ok([...fold.reads.values()].every((n) => n === 3));

    // A widening keeps every value: not read again. A type change that rewrites the values (no WAL for them) is.
    await admin.query(`ALTER TABLE ${t} ALTER COLUMN w TYPE bigint`);
    await admin.query(`UPDATE ${t} SET w = 3 WHERE id = 1`);
    await caughtUp(state);
    assert.ok([...fold.reads.values()].every((n) => n === 3), "a widening is not read again");
    await admin.query(`ALTER TABLE ${t} ALTER COLUMN w TYPE text USING 'x' || w`);
    await admin.query(`UPDATE ${t} SET note = 'typed' WHERE id = 1`);
    await admin.query("CHECKPOINT");
    await waitFor("every row read a fourth time", () => [...fold.reads.values()].every((n) => n === 4) && noTasks(state), 120_000);
    await caughtUp(state);
    const typed = await admin.query<{ id: number; w: string }>(`SELECT id, w FROM ${t} ORDER BY id`);
    assert.deepEqual(
      [...fold.visible().values()].map((row) => [Number(row["id"]), row["w"]]).sort((a, b) => Number(a[0]) - Number(b[0])),
      typed.rows.map((row) => [Number(row.id), row.w]),
    );
  } finally {
    await stopPumps(pumps, opened);
    await admin.query(`DROP SCHEMA "${columns}" CASCADE`);
  }
});

test("a column renamed right after rows were updated reads the table again above those updates: the updated rows get their value under the new name", async () => {
  // Found on a live deployment: rows updated a moment before RENAME COLUMN kept the old layout in every sink (the new
  // column null), since their read again was versioned at the slot's restart_lsn, still below those updates.
  const columns = randomName("renamed");
  await admin.query(`CREATE SCHEMA "${columns}"`);
  const t = `"${columns}".cols`;
  await admin.query(`CREATE TABLE ${t} (id int PRIMARY KEY, v int NOT NULL, note text)`);
  await admin.query(`INSERT INTO ${t} SELECT i, i, 'n' || i FROM generate_series(1, 300) i`);
  const c = sourceConfig({ tables: [`${columns}.*`], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 1000 }, heartbeat_interval: 500 });
  configs.push(c);
  const opened: PostgresSource[] = [];
  const pumps: Pump[] = [];
  const fold = new Fold("cols");
  try {
    const source = newSource(c);
    opened.push(source);
    await source.connect(null, AbortSignal.timeout(30_000));
    const state = pump(source, [fold]);
    pumps.push(state);
    await waitFor("the initial snapshot", () => streamingOnly(state) && fold.reads.size === 300);

    // The slot's restart_lsn moved past the initial snapshot's rows, as a deployment's has long before a migration.
    await admin.query("CHECKPOINT");
    const passed = BigInt((await admin.query<{ lsn: string }>("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::text AS lsn")).rows[0]!.lsn);
    const restartLsn = async () => BigInt((await admin.query<{ lsn: string }>("SELECT (restart_lsn - '0/0'::pg_lsn)::text AS lsn FROM pg_replication_slots WHERE slot_name = $1", [c.slot])).rows[0]!.lsn);
    await waitFor("the slot's restart_lsn past the checkpoint", async () => (await admin.query("CHECKPOINT"), (await restartLsn()) >= passed), 30_000);

    await admin.query(`UPDATE ${t} SET v = v + 1000 WHERE id % 3 = 0`);
    await admin.query(`ALTER TABLE ${t} RENAME COLUMN v TO w`);
    await admin.query(`UPDATE ${t} SET note = 'after' WHERE id = 1`);
    await waitFor("the change after the rename", () => fold.visible().get("1")?.["note"] === "after", 30_000);
    // Records of the running transactions let restart_lsn pass the rename without waiting for the server's own.
    const stopCheckpoints = checkpointing();
    try {
      await waitFor("every row read again", () => [...fold.reads.values()].every((n) => n === 2) && fold.reads.size === 300 && noTasks(state), 60_000);
    } finally {
      await stopCheckpoints();
    }
    await caughtUp(state);
    const rows = (await admin.query<{ id: string; w: string; note: string }>(`SELECT id, w, note FROM ${t} ORDER BY id`)).rows.map((row) => ({ id: Number(row.id), w: Number(row.w), note: row.note }));
    const held = [...fold.visible().values()].map((row) => ({ id: Number(row["id"]), w: row["w"] == null ? null : Number(row["w"]), note: row["note"] }));
    const byId = new Map(rows.map((row) => [row.id, row.w]));
    const wrong = held.filter((row) => row.w !== byId.get(row.id));
    assert.deepEqual(wrong.slice(0, 3), [], `${wrong.length} rows lack their value under the new name`);
    assert.deepEqual(held.sort((a, b) => a.id - b.id), rows);
  } finally {
    await stopPumps(pumps, opened);
    await admin.query(`DROP SCHEMA "${columns}" CASCADE`);
  }
});

test("a table without a unique key, a table the source does not capture and a bad condition are refused with what to do", async () => {
  const source = newSource(config());
  await source.connect(null, AbortSignal.timeout(30_000));
  try {
    await assert.rejects(source.snapshots.plan(`${schema}.keyless`, null), (error: SluiceError) => error.code === "SNAPSHOT_NO_CHUNK_KEY" && /primary key/.test(error.message));
    await assert.rejects(source.snapshots.plan("public.nothing_here", null), (error: SluiceError) => error.code === "SNAPSHOT_TABLE_NOT_CAPTURED");
    await assert.rejects(source.snapshots.plan(`${schema}.items`, "no_such_column > 1"), (error: SluiceError) => error.code === "SNAPSHOT_WHERE_INVALID" && /no_such_column/.test(error.message));
    await assert.rejects(source.snapshots.plan(`${schema}.items`, "id > 1; DROP TABLE x"), (error: SluiceError) => error.code === "SNAPSHOT_WHERE_INVALID");
    const plan = await source.snapshots.plan(`${schema}.items`, "id <= 100");
    assert.equal(plan.reset, false, "a snapshot of some rows removes nothing");
    assert.equal(plan.queuedBehind, 0);
  } finally {
    await source.close();
  }
});

test("the signal table queues an online snapshot where the command line cannot reach the daemon; taken and refused signals are deleted", async () => {
  await admin.query(`CREATE TABLE ${q("signalled")} (id int PRIMARY KEY, v int NOT NULL, note text)`);
  await admin.query(`INSERT INTO ${q("signalled")} SELECT i, i, 'n' || i FROM generate_series(1, 3000) i`);
  await admin.query(`CREATE TABLE ${q("sluice_signals")} (id text PRIMARY KEY, type text NOT NULL, data text)`);
  const c = sourceConfig({ tables: [`${schema}.*`], snapshot: { mode: "never", parallelism: 1, chunk_rows: 1000, signal_table: `${schema}.sluice_signals` }, heartbeat_interval: 500 });
  configs.push(c);
  const source = newSource(c);
  await source.connect(null, AbortSignal.timeout(30_000));
  const fold = new Fold("signalled");
  const state = pump(source, [fold]);
  try {
    await admin.query(`INSERT INTO ${q("sluice_signals")} VALUES ('s1', 'snapshot', $1), ('s2', 'snapshot', '{"table": "${schema}.keyless"}'), ('s3', 'reboot', '{}')`, [JSON.stringify({ table: `${schema}.signalled`, where: null })]);
    await waitFor("every row of the signalled table", () => fold.reads.size === 3000, 120_000);
    await waitFor("the signal rows to be deleted", async () => (await admin.query(`SELECT id FROM ${q("sluice_signals")}`)).rows.length === 0, 60_000);
    assert.deepEqual(source.snapshots.list().failed, [], "refused signals are not snapshots that failed");
  } finally {
    await stopPumps([state], [source]);
  }
});

test("snapshot.method online: the initial snapshot streams at once and reads every table online; a crash resumes it instead of starting over", async () => {
  const initial = randomName("initial");
  await admin.query(`CREATE SCHEMA "${initial}"`);
  const opened: PostgresSource[] = [];
  const pumps: Pump[] = [];
  const c = sourceConfig({ tables: [`${initial}.*`], snapshot: { mode: "initial", method: "online", parallelism: 1, chunk_rows: 500 }, heartbeat_interval: 500 });
  configs.push(c);
  try {
    for (const table of ["a", "b"]) {
      await admin.query(`CREATE TABLE "${initial}".${table} (id int PRIMARY KEY, v int NOT NULL, note text)`);
      await admin.query(`INSERT INTO "${initial}".${table} SELECT i, i, 'n' || i FROM generate_series(1, 4000) i`);
      await admin.query(`ANALYZE "${initial}".${table}`);
    }
    const folds = { a: new Fold("a"), b: new Fold("b") };
    const both = [folds.a, folds.b];
    const first = newSource(c);
    opened.push(first);
    await first.connect(null, AbortSignal.timeout(30_000));
    const interrupted = pump(first, both, { stopBeforeAck: () => folds.a.reads.size + folds.b.reads.size >= 3000 });
    pumps.push(interrupted);
    await interrupted.done;
    await first.close();
    const durable = decodeResume(interrupted.checkpoint!.position.resume).tasks;
    assert.deepEqual(durable.map((t) => t.origin), ["initial", "initial"], "both tables are queued in the checkpoint");
    assert.equal(interrupted.checkpoint!.position.resume?.startsWith("snapshot-incomplete"), false, "not an exported snapshot to start over");

    await admin.query(`DELETE FROM "${initial}".a WHERE id <= 10`);
    const second = newSource(c);
    opened.push(second);
    await second.connect(interrupted.checkpoint, AbortSignal.timeout(30_000));
    const slotAfter = await admin.query(`SELECT count(*)::int AS n FROM pg_replication_slots WHERE slot_name = $1`, [c.slot]);
    assert.equal(Number(slotAfter.rows[0].n), 1, "the same slot: no new one for a new snapshot");
    const resumed = pump(second, both);
    pumps.push(resumed);
    await waitResumed("both tables read", () => noTasks(resumed), 120_000);
    await caughtUp(resumed);
    resumed.stop = true;
    await admin.query("SELECT pg_logical_emit_message(false, 'test', 'wake')");
    await resumed.done;
    await second.close();
    for (const table of ["a", "b"] as const) {
      const rows = await admin.query<{ id: string }>(`SELECT id FROM "${initial}".${table} ORDER BY id`);
      assert.deepEqual([...folds[table].visible().keys()].map(Number).sort((x, y) => x - y), rows.rows.map((r) => Number(r.id)), `table ${table}`);
      const twice = [...folds[table].reads.values()].filter((n) => n > 1).length;
      assert.ok(twice <= 500, `table ${table}: ${twice} rows read twice`);
    }
  } finally {
    await stopPumps(pumps, opened);
    await admin.query(`DROP SCHEMA "${initial}" CASCADE`);
  }
});
