/**
 * Online snapshots and unchanged TOAST values (REPLICA IDENTITY DEFAULT) on the real PostgreSQL.
 * An update that leaves a TOASTed column alone carries it as "unchanged": sinks keep the value
 * they have. A sink filled by the snapshot has no row for a key until its chunk arrives, so when
 * the stream's update replaces the chunk row (updated inside the chunk's window) or outranks it
 * (committed just before the chunk was read, at a version above the chunk's), the snapshot must
 * still deliver the column's value. Here every row is updated while a chunk's read is held inside
 * its window (a lock on the table), and the events, folded as sinks apply them, must hold every
 * row's TOAST value.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type pg from "pg";
import type { ChangeEvent, Checkpoint } from "../contracts.ts";
import { UNCHANGED } from "../contracts.ts";
import type { SluiceError } from "../errors.ts";
import { decodeResume } from "../common/incremental-snapshot-state.ts";
import { adminClient, cleanUp, newSource, randomName, sourceConfig } from "./int-test-support.ts";
import type { PostgresSource } from "./source.ts";

const schema = randomName("snaptoast");
const table = `"${schema}".docs`;
const ROWS = 240;
const CHUNK = 20;
let admin: pg.Client;
const configs: ReturnType<typeof sourceConfig>[] = [];

before(async () => {
  admin = await adminClient();
  await admin.query(`CREATE SCHEMA "${schema}"`);
  await admin.query(`CREATE TABLE ${table} (id int PRIMARY KEY, v int NOT NULL, doc text NOT NULL)`);
  // Stored out of line, uncompressed: 8 KiB of random hex per row is always a TOAST value.
  await admin.query(`ALTER TABLE ${table} ALTER COLUMN doc SET STORAGE EXTERNAL`);
  await admin.query(
    `INSERT INTO ${table} SELECT i, i, (SELECT string_agg(md5(random()::text || i || g), '') FROM generate_series(1, 256) g) FROM generate_series(1, ${ROWS}) i`,
  );
  await admin.query(`ANALYZE ${table}`);
});

after(async () => {
  for (const c of configs) await cleanUp(admin, c);
  await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await admin.end();
});

/** The table as a sink holds it: the newest version per key; an unchanged column keeps the stored value, or is NULL where the sink has no row. */
class Fold {
  readonly rows = new Map<string, { version: bigint; row: Record<string, unknown> | null }>();
  /** Updates with an unchanged column that reached a key the sink had no row for. */
  partialOnMissing = 0;
  apply(event: ChangeEvent): void {
    if (event.source.table !== "docs") return;
    const version = event.source.position.change;
    if (event.op === "t") {
      for (const [key, entry] of this.rows) if (entry.version <= version) this.rows.delete(key);
      return;
    }
    const key = String(event.key["id"]);
    const known = this.rows.get(key);
    if (known !== undefined && known.version >= version) return;
    if (event.op === "d") {
      this.rows.set(key, { version, row: null });
      return;
    }
    const row: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(event.after!)) {
      if (value !== UNCHANGED) row[name] = value;
      else if (known?.row != null) row[name] = known.row[name];
      else {
        row[name] = null;
        this.partialOnMissing++;
      }
    }
    this.rows.set(key, { version, row });
  }
}

interface Pump {
  checkpoint: Checkpoint | null;
  stop: boolean;
  /** While set, nothing is read (the snapshot stalls once its chunks in flight wait for the stream). */
  paused: boolean;
  done: Promise<void>;
}

function pump(source: PostgresSource, fold: Fold): Pump {
  const state: Pump = { checkpoint: null, stop: false, paused: false, done: Promise.resolve() };
  state.done = (async () => {
    const controller = new AbortController();
    while (!state.stop) {
      if (state.paused) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        continue;
      }
      let batch;
      try {
        batch = await source.read(controller.signal);
      } catch (error) {
        if (state.stop || !(error as SluiceError).retriable) throw error;
        await source.connect(state.checkpoint, AbortSignal.timeout(30_000));
        continue;
      }
      for (const event of batch.events) fold.apply(event);
      await batch.ack();
      state.checkpoint = batch.checkpoint;
    }
  })();
  return state;
}

async function waitFor(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

test("rows updated around their chunk's read (an unchanged TOAST column) keep the column's value in every sink, though no sink had the row", async () => {
  const c = sourceConfig({ tables: [`${schema}.*`], snapshot: { mode: "never", parallelism: 1, chunk_rows: CHUNK }, heartbeat_interval: 500 });
  configs.push(c);
  const source = newSource(c);
  await source.connect(null, AbortSignal.timeout(30_000));
  const fold = new Fold();
  const state = pump(source, fold);
  const locker = await adminClient();
  try {
    // Nothing is read from the stream: the snapshot reads its first chunks and waits for their high watermarks.
    state.paused = true;
    const { task } = await source.snapshots.request(`${schema}.docs`, null, "test");
    await locker.query("BEGIN");
    await locker.query(`LOCK TABLE ${table} IN ACCESS EXCLUSIVE MODE`);
    const lockerPid = (await locker.query<{ pid: string }>("SELECT pg_backend_pid()::text AS pid")).rows[0]!.pid;
    state.paused = false;
    // A chunk's SELECT waits for the lock: its low watermark is written, its high one is not.
    await waitFor("a chunk read held by the lock", async () => {
      const blocked = await admin.query<{ n: string }>("SELECT count(*)::text AS n FROM pg_stat_activity WHERE $1::int = ANY(pg_blocking_pids(pid)) AND query LIKE $2", [lockerPid, `%ORDER BY%LIMIT ${CHUNK}`]);
      return Number(blocked.rows[0]!.n) > 0;
    });
    // Inside that chunk's window for its rows; before the reads of the chunks after it; after those before it.
    await locker.query(`UPDATE ${table} SET v = v + 1000`);
    await locker.query("COMMIT");
    const carries = () => state.checkpoint !== null && decodeResume(state.checkpoint.position.resume).tasks.some((t) => t.id === task.id);
    await waitFor("the snapshot to finish", () => state.checkpoint !== null && !carries() && source.snapshots.list().tasks.length === 0);
    const lsn = (await admin.query<{ lsn: string }>("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::text AS lsn")).rows[0]!.lsn;
    await waitFor("the stream to catch up", () => state.checkpoint !== null && state.checkpoint.position.commit >= BigInt(lsn));
  } finally {
    await locker.end().catch(() => undefined);
    state.stop = true;
    const stopped = state.done.catch(() => undefined);
    await source.close();
    await stopped;
    await source.close();
  }
  assert.ok(fold.partialOnMissing > 0, "some updates reached keys the sink had no row for yet (the case under test)");
  const rows = (await admin.query<{ id: string; v: string; doc: string }>(`SELECT id::text, v::text, doc FROM ${table} ORDER BY id`)).rows;
  const wrong: string[] = [];
  for (const row of rows) {
    const held = fold.rows.get(row.id)?.row;
    if (held == null) wrong.push(`${row.id}: missing`);
    else if (held["v"] !== Number(row.v)) wrong.push(`${row.id}: v ${String(held["v"])} instead of ${row.v}`);
    else if (held["doc"] !== row.doc) wrong.push(`${row.id}: doc ${held["doc"] === null ? "NULL" : "wrong"}`);
  }
  assert.deepEqual(wrong.slice(0, 10), [], `${wrong.length} of ${rows.length} rows differ`);
  assert.equal([...fold.rows.values()].filter((e) => e.row !== null).length, ROWS);
});
