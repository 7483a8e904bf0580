/**
 * Online snapshots and unchanged TOAST values (REPLICA IDENTITY DEFAULT) on the real PostgreSQL.
 * An update that leaves a TOASTed column alone carries it as "unchanged": sinks keep the value
 * they have. A sink filled by the snapshot has no row for a key until its chunk arrives, so when
 * the stream's update replaces the chunk row (updated inside the chunk's window) or outranks it
 * (committed just before the chunk was read, at a version above the chunk's), the snapshot must
 * still deliver the column's value. Here every row is updated while a chunk's read is held inside
 * its window (a lock on the table), and the events, folded as sinks apply them, must hold every
 * row's TOAST value; then the same across a crash, with the updates handed on before it and the
 * rows read after it.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type pg from "pg";
import { decodeResume } from "../common/incremental-snapshot-state.ts";
import type { Pump } from "../common/online-snapshot-test-support.ts";
import { carries, Fold, noTasks, pump, stopPumps, waitCheckpointAt, waitFor } from "../common/online-snapshot-test-support.ts";
import { adminClient, checkpointing, cleanUp, newSource, randomName, sourceConfig } from "./int-test-support.ts";

const schema = randomName("snaptoast");
const q = (name: string) => `"${schema}".${name}`;
const table = q("docs");
const ROWS = 240;
const CHUNK = 20;
let admin: pg.Client;
const configs: ReturnType<typeof sourceConfig>[] = [];

before(async () => {
  admin = await adminClient();
  await admin.query(`CREATE SCHEMA "${schema}"`);
  for (const name of ["docs", "resumed"]) {
    await admin.query(`CREATE TABLE ${q(name)} (id int PRIMARY KEY, v int NOT NULL, doc text NOT NULL)`);
    // Stored out of line, uncompressed: 8 KiB of random hex per row is always a TOAST value.
    await admin.query(`ALTER TABLE ${q(name)} ALTER COLUMN doc SET STORAGE EXTERNAL`);
    await admin.query(
      `INSERT INTO ${q(name)} SELECT i, i, (SELECT string_agg(md5(random()::text || i || g), '') FROM generate_series(1, 256) g) FROM generate_series(1, ${ROWS}) i`,
    );
    await admin.query(`ANALYZE ${q(name)}`);
  }
  await admin.query(`CREATE TABLE ${q("scratch")} (i int)`);
});

after(async () => {
  for (const c of configs) await cleanUp(admin, c);
  await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await admin.end();
});

test("rows updated around their chunk's read (an unchanged TOAST column) keep the column's value in every sink, though no sink had the row", async () => {
  const c = sourceConfig({ tables: [`${schema}.*`], snapshot: { mode: "never", parallelism: 1, chunk_rows: CHUNK }, heartbeat_interval: 500 });
  configs.push(c);
  const source = newSource(c);
  await source.connect(null, AbortSignal.timeout(30_000));
  const fold = new Fold("docs");
  // Nothing is read from the stream: the snapshot reads its first chunks and waits for their high watermarks.
  const state = pump(source, [fold], { paused: true });
  const locker = await adminClient();
  try {
    const { task } = await source.snapshots.request(`${schema}.docs`, null, "test");
    await locker.query("BEGIN");
    await locker.query(`LOCK TABLE ${table} IN ACCESS EXCLUSIVE MODE`);
    const lockerPid = (await locker.query<{ pid: string }>("SELECT pg_backend_pid()::text AS pid")).rows[0]!.pid;
    state.paused = false;
    // A chunk's SELECT waits for the lock: its low watermark is written, its high one is not (its LIMIT is the chunk sizer's, at most CHUNK).
    await waitFor("a chunk read held by the lock", async () => {
      const blocked = await admin.query<{ n: string }>("SELECT count(*)::text AS n FROM pg_stat_activity WHERE $1::int = ANY(pg_blocking_pids(pid)) AND query LIKE $2", [lockerPid, "%ORDER BY%LIMIT %"]);
      return Number(blocked.rows[0]!.n) > 0;
    });
    // Inside that chunk's window for its rows; before the reads of the chunks after it; after those before it.
    await locker.query(`UPDATE ${table} SET v = v + 1000`);
    await locker.query("COMMIT");
    await waitFor("the snapshot to finish", () => state.checkpoint !== null && !carries(state, task.id) && source.snapshots.list().tasks.length === 0);
    await caughtUp(state);
  } finally {
    await locker.end().catch(() => undefined);
    await stopPumps([state], [source]);
  }
  assert.ok(fold.partialOnMissing > 0, "some updates reached keys the sink had no row for yet (the case under test)");
  await assertTable("docs", fold);
});

test("across a crash: rows updated (an unchanged TOAST column) and handed on before it, read by the resumed snapshot after it, keep the column's value", async () => {
  const c = sourceConfig({ tables: [`${schema}.*`], snapshot: { mode: "never", parallelism: 1, chunk_rows: CHUNK }, heartbeat_interval: 500 });
  configs.push(c);
  const fold = new Fold("resumed");
  const first = newSource(c);
  const second = newSource(c);
  const holder = await adminClient();
  let resumed: Pump | null = null;
  try {
    await first.connect(null, AbortSignal.timeout(30_000));
    // An open transaction that wrote something holds the slot's restart_lsn below the updates (begun once the slot exists: creating one waits for it).
    await holder.query("BEGIN");
    await holder.query(`INSERT INTO ${q("scratch")} VALUES (1)`);
    const before = pump(first, [fold], { stopAfterAck: () => fold.updates >= ROWS, paused: true });
    await first.snapshots.request(`${schema}.resumed`, null, "test");
    await admin.query(`UPDATE ${q("resumed")} SET v = v + 1000`);
    before.paused = false;
    // The crash comes once every update is handed on and acknowledged, before most chunks are.
    await before.done;
    await first.close();
    assert.ok(fold.partialOnMissing > 0, "some updates reached keys the sink had no row for yet (the case under test)");
    const checkpoint = before.checkpoint!;
    assert.equal(decodeResume(checkpoint.position.resume).tasks.length, 1, "the snapshot is still under way at the crash");

    await second.connect(checkpoint, AbortSignal.timeout(30_000));
    resumed = pump(second, [fold]);
    const state = resumed;
    await holder.query("ROLLBACK");
    // The resumed snapshot waits for restart_lsn to pass the updates handed on before the crash: checkpoints move it on
    // within a second of the rollback, not at the server's next running-transactions record (~15 s).
    const stopCheckpoints = checkpointing();
    try {
      await waitFor("the resumed snapshot to finish", () => noTasks(state) && second.snapshots.list().tasks.length === 0);
    } finally {
      await stopCheckpoints();
    }
    await caughtUp(state);
  } finally {
    await holder.end().catch(() => undefined);
    await first.close();
    if (resumed !== null) await stopPumps([resumed], [second]);
    else await second.close();
  }
  await assertTable("resumed", fold);
});

/** Waits until the stream has handed on everything committed so far (the current WAL position). */
async function caughtUp(state: Pump): Promise<void> {
  const lsn = (await admin.query<{ lsn: string }>("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::text AS lsn")).rows[0]!.lsn;
  await waitCheckpointAt(state, BigInt(lsn));
}

async function assertTable(name: string, fold: Fold): Promise<void> {
  const rows = (await admin.query<{ id: string; v: string; doc: string }>(`SELECT id::text, v::text, doc FROM ${q(name)} ORDER BY id`)).rows;
  const wrong: string[] = [];
  for (const row of rows) {
    const held = fold.rows.get(row.id)?.row;
    if (held == null) wrong.push(`${row.id}: missing`);
    else if (held["v"] !== Number(row.v)) wrong.push(`${row.id}: v ${String(held["v"])} instead of ${row.v}`);
    else if (held["doc"] !== row.doc) wrong.push(`${row.id}: doc ${held["doc"] === null ? "NULL" : "wrong"}`);
  }
  assert.deepEqual(wrong.slice(0, 10), [], `${wrong.length} of ${rows.length} rows differ`);
  assert.equal([...fold.rows.values()].filter((e) => e.row !== null).length, ROWS);
}
