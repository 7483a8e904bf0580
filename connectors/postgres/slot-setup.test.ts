import { test } from "node:test";
import assert from "node:assert/strict";
import { pino } from "pino";
import type { PostgresSourceConfig } from "../../config/schema.ts";
import type { Checkpoint } from "../contracts.ts";
import { SluiceError } from "../errors.ts";
import { exportedSnapshotProgress, isSnapshotIncomplete, SNAPSHOT_INCOMPLETE, snapshotIncompleteResume, throughPosition } from "./positions.ts";
import { addedTablesStatement, captureNames, planStart, settleStart, STANDBY_CATCH_UP_MS } from "./slot-setup.ts";
import type { StartPlan } from "./slot-setup.ts";

const config = (mode: "initial" | "never" | "when-needed", createSlot = true) =>
  ({ name: "shop", snapshot: { mode, parallelism: 1, chunk_rows: 10 }, create_slot: createSlot }) as PostgresSourceConfig;

const slot = (overrides: Record<string, string | null> = {}) => ({
  plugin: "pgoutput",
  slot_type: "logical",
  database: "sluice",
  active: "f",
  active_pid: null,
  restart_lsn: "0/100",
  confirmed_flush_lsn: "0/1001",
  wal_status: "reserved",
  ...overrides,
});

const db = (row: Record<string, string | null> | null) => ({
  query: async () => ({ rows: row === null ? [] : [row] }),
}) as never;

const checkpoint = (position = throughPosition(0x1000n)): Checkpoint => ({ source: "shop", position });
const names = captureNames({ name: "Shop" } as PostgresSourceConfig);
const logger = pino({ level: "silent" });

async function plan(mode: "initial" | "never" | "when-needed", row: Record<string, string | null> | null, from: Checkpoint | null, createSlot = true): Promise<StartPlan> {
  return planStart(db(row), config(mode, createSlot), names, from, "sluice", logger, { component: "test" });
}

async function refusal(promise: Promise<unknown>): Promise<SluiceError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof SluiceError);
    return error;
  }
  assert.fail("expected a refusal");
}

test("default names: slot lower-cased, publication as the source", () => {
  assert.deepEqual(names, { slot: "sluice_shop", publication: "sluice_Shop" });
  assert.throws(() => captureNames({ name: "x", slot: "Bad-Slot" } as PostgresSourceConfig), /lower case/);
});

test("no checkpoint: snapshot on a new slot; an existing slot is dropped first; never streams from the slot", async () => {
  assert.deepEqual(await plan("initial", null, null), { kind: "snapshot", dropExisting: false });
  assert.deepEqual(await plan("initial", slot(), null), { kind: "snapshot", dropExisting: true });
  assert.deepEqual(await plan("never", null, null), { kind: "create-and-stream" });
  assert.deepEqual(await plan("never", slot(), null), { kind: "stream", startLsn: 0x1001n, flushedLsn: 0x1001n, skipThrough: null });
  assert.equal((await refusal(plan("initial", slot({ active: "t", active_pid: "42" }), null))).retriable, true);
  assert.equal((await refusal(plan("initial", null, null, false))).code, "PG_SLOT_MISSING");
});

test("a usable checkpoint resumes past it", async () => {
  assert.deepEqual(await plan("initial", slot(), checkpoint()), { kind: "stream", startLsn: 0x1001n, flushedLsn: 0x1001n, skipThrough: throughPosition(0x1000n) });
  const inside = { commit: 0x2000n, change: 0x1800n };
  assert.deepEqual(await plan("never", slot(), checkpoint(inside)), { kind: "stream", startLsn: 0x2000n, flushedLsn: 0x2000n, skipThrough: inside });
});

test("missing, invalidated or overtaken slots are refused with the data-loss error, unless when-needed", async () => {
  const cases = [
    [null, /does not exist/],
    [slot({ wal_status: "lost" }), /invalidated/],
    [slot({ restart_lsn: null }), /invalidated/],
    [slot({ confirmed_flush_lsn: "0/5000" }), /confirmed up to 0\/5000, beyond the checkpoint \(0\/1001\)/],
  ] as const;
  for (const [row, problem] of cases) {
    for (const mode of ["initial", "never"] as const) {
      const error = await refusal(plan(mode, row, checkpoint()));
      assert.equal(error.code, "PG_SLOT_UNUSABLE");
      assert.equal(error.retriable, false);
      assert.match(error.message, problem);
      assert.match(error.message, /would lose the changes/);
      assert.match(error.message, /snapshot\.mode: when-needed/);
      assert.equal(error.context["slot"], "sluice_shop");
    }
    assert.deepEqual(await plan("when-needed", row, checkpoint()), { kind: "snapshot", dropExisting: row !== null });
  }
});

test("a checkpoint from an unfinished snapshot without its progress starts over; a foreign slot is refused", async () => {
  const incomplete = checkpoint({ commit: 0x1000n, change: 0x900n, resume: SNAPSHOT_INCOMPLETE });
  assert.deepEqual(await plan("initial", slot(), incomplete), { kind: "snapshot", dropExisting: true });
  assert.equal((await refusal(plan("initial", slot({ plugin: "wal2json" }), null))).code, "PG_SLOT_FOREIGN");
  assert.equal((await refusal(plan("initial", slot({ database: "other" }), checkpoint()))).code, "PG_SLOT_FOREIGN");
});

test("a checkpoint from an unfinished snapshot with its progress resumes on the same slot; without a usable slot it starts over", async () => {
  const progress = { done: ["s.small"], reading: [{ table: "s.big", lastKey: ["500"], rowsDone: 500 }] };
  const incomplete = checkpoint({ commit: 0x1000n, change: 0x900n, resume: snapshotIncompleteResume(progress) });
  assert.equal(isSnapshotIncomplete(incomplete.position), true);
  assert.deepEqual(exportedSnapshotProgress(incomplete.position), progress);
  // The slot as the snapshot left it: confirmed up to its consistent point.
  const atConsistentPoint = slot({ confirmed_flush_lsn: "0/1000" });
  assert.deepEqual(await plan("initial", atConsistentPoint, incomplete), { kind: "resume-snapshot", progress, consistentPoint: 0x1000n, resetVersion: 0x8ffn });
  assert.deepEqual(await plan("initial", null, incomplete), { kind: "snapshot", dropExisting: false }, "slot gone");
  assert.deepEqual(await plan("initial", slot({ wal_status: "lost", restart_lsn: null }), incomplete), { kind: "snapshot", dropExisting: true }, "slot invalidated");
  assert.deepEqual(await plan("initial", slot({ confirmed_flush_lsn: "0/2000" }), incomplete), { kind: "snapshot", dropExisting: true }, "slot used by another consumer");
});

test("tables added to the publication: their truncates before the ALTER PUBLICATION, their backfill requests after it, in one query (one transaction)", () => {
  const ref = (table: string, relid: number) => ({ schema: "public", table, relid, kind: "r", estimatedRows: 0 });
  const tables = [ref("a", 1), ref("b", 2)];
  const alter = 'ALTER PUBLICATION "p" ADD TABLE "public"."a", "public"."b"';
  const statement = addedTablesStatement("s1", tables, alter, (t) => t.relid === 2, true);
  assert.equal(
    statement,
    [
      `SELECT pg_logical_emit_message(true, 'sluice.recreated', '{"slot":"s1","table":"public.b"}')`,
      alter,
      `SELECT pg_logical_emit_message(true, 'sluice.backfill', '{"slot":"s1","table":"public.a","emptied":false,"relid":1}')`,
      `SELECT pg_logical_emit_message(true, 'sluice.backfill', '{"slot":"s1","table":"public.b","emptied":true,"relid":2}')`,
    ].join("; "),
  );
  assert.equal(addedTablesStatement("s1", tables, alter, () => false, false), alter, "snapshot.mode never: no backfill asked for");
  assert.equal(addedTablesStatement("s1", tables, "", () => false, true).split("; ").length, 2, "a publication of all tables: the requests alone");
});

test("a standby whose replayed WAL is below the checkpoint (just restarted: it replays from its last restartpoint) is waited for, then refused as another history", async () => {
  // Every query of the fake answers this row: the slot's columns and the history check's.
  const behind = (standby: boolean) => db({ ...slot(), standby: standby as never, lsn: "0/800" });
  const start = (row: ReturnType<typeof db>, catchUp: { behindSinceMs: number | null }) =>
    planStart(row, config("when-needed"), names, checkpoint(), "sluice", logger, { component: "test", source: "shop" }, catchUp);
  const catchUp = { behindSinceMs: null };
  const waiting = await refusal(start(behind(true), catchUp));
  assert.equal(waiting.code, "PG_STANDBY_BEHIND");
  assert.equal(waiting.retriable, true);
  assert.match(waiting.message, /replayed up to 0\/800/);
  assert.equal((await refusal(start(behind(true), { behindSinceMs: Date.now() - STANDBY_CATCH_UP_MS - 1 }))).code, "PG_HISTORY_CHANGED", "still behind after the wait: another history");
  const primary = await refusal(start(behind(false), { behindSinceMs: null }));
  assert.equal(primary.code, "PG_HISTORY_CHANGED");
  assert.equal(primary.retriable, false);
  // Caught up: the wait is over, the next time behind starts a new one.
  assert.equal((await start(db({ ...slot(), standby: true as never, lsn: "0/2000" }), catchUp)).kind, "stream");
  assert.equal(catchUp.behindSinceMs, null);
});

test("a new snapshot's old slot is dropped by settleStart, before the publication is created again: a start that stops after it leaves the slot's absence as the record (PostgreSQL 18's publication dropped while stopped; the broken slot a stream showed)", async () => {
  const cases = [
    { why: "PostgreSQL 18, the publication missing at a start that resumes a checkpoint", version: 180001, publication: false, brokenBy: null },
    { why: "what the last stream showed (held in memory only)", version: 150010, publication: true, brokenBy: 'publication "sluice_shop" was dropped while the slot still had changes to stream' },
  ];
  for (const { why, version, publication, brokenBy } of cases) {
    const queries: string[] = [];
    const catalog = {
      query: async (sql: string) => {
        queries.push(sql);
        if (sql.includes("FROM pg_publication WHERE")) return { rows: publication ? [{ all_tables: "f", via_root: "t" }] : [] };
        if (sql.includes("FROM pg_replication_slots WHERE slot_name")) return { rows: [slot()] };
        if (sql.includes("pg_is_in_recovery")) return { rows: [{ standby: false, lsn: "0/2000" }] };
        return { rows: [] };
      },
    } as never;
    const c = { ...config("when-needed"), create_publication: true } as PostgresSourceConfig;
    const planned = await settleStart(catalog, c, names, checkpoint(), { database: "sluice", version }, logger, { component: "test" }, { behindSinceMs: null }, brokenBy);
    assert.deepEqual(planned, { kind: "snapshot", dropExisting: true }, why);
    assert.ok(queries.some((q) => q.includes("pg_drop_replication_slot")), `${why}: the old slot is dropped before settleStart returns`);
    assert.ok(!queries.some((q) => /CREATE PUBLICATION|ALTER PUBLICATION/.test(q)), why);
  }
});
