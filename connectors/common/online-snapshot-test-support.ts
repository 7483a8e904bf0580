/**
 * Test support for the online-snapshot integration tests of every source: a table folded from
 * change events as sinks apply them, a pump that reads, folds and acknowledges a source's batches
 * as capture does (its last checkpoint is what a crash resumes from), a random workload, and the
 * waits and checks they share.
 */
import assert from "node:assert/strict";
import type { ChangeEvent, Checkpoint, Source } from "../contracts.ts";
import { UNCHANGED } from "../contracts.ts";
import type { SluiceError } from "../errors.ts";
import { decodeResume } from "./incremental-snapshot-state.ts";
import { keepEntries } from "../topics/checkpoint-codec.ts";

type Held = { version: bigint; row: Record<string, unknown> | null };

/** Snapshot reads handed on so far, by every fold: orders the reads of different tables. */
let readsSeen = 0;

/**
 * A table (key column `id`) as the sinks hold it: per key the newest version, deletes kept as
 * tombstones; a truncate removes what is at or below it; an unchanged column keeps the value held,
 * or is NULL where the sink has no row yet.
 */
export class Fold {
  readonly rows = new Map<string, Held>();
  /** Snapshot reads per key. */
  readonly reads = new Map<string, number>();
  /** Where this table's first and last snapshot reads came among every fold's reads (null: none yet). */
  firstRead: number | null = null;
  lastRead: number | null = null;
  /** Updates with an unchanged column that reached a key the sink had no row for. */
  partialOnMissing = 0;
  updates = 0;
  /** As the sinks keep it: the highest truncate's version; a row at or below it is dropped. */
  truncatedThrough = -1n;
  readonly table: string;

  constructor(table: string) {
    this.table = table;
  }

  apply(event: ChangeEvent): void {
    if (event.source.table !== this.table) return;
    if (event.op === "u") this.updates++;
    const version = event.source.position.change;
    if (event.op === "t") {
      for (const [key, entry] of this.rows) if (entry.version <= version) this.rows.delete(key);
      if (version > this.truncatedThrough) this.truncatedThrough = version;
      return;
    }
    const key = String(event.key["id"]);
    if (event.op === "r") {
      this.reads.set(key, (this.reads.get(key) ?? 0) + 1);
      this.lastRead = readsSeen++;
      this.firstRead ??= this.lastRead;
    }
    if (version <= this.truncatedThrough) return;
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

  visible(): Map<string, Record<string, unknown>> {
    const out = new Map<string, Record<string, unknown>>();
    for (const [key, entry] of this.rows) if (entry.row !== null) out.set(key, entry.row);
    return out;
  }
}

export interface Pump {
  checkpoint: Checkpoint | null;
  stop: boolean;
  /** While set, nothing is read (the snapshot stalls once its chunks in flight wait for the stream). */
  paused: boolean;
  /** Checked after each batch: when it holds, the pump pauses itself (a poll from outside may come too late on a fast machine). */
  pauseWhen?: (() => boolean) | undefined;
  done: Promise<void>;
}

export interface PumpOptions {
  /**
   * Checked after a batch is folded, before it is acknowledged: when it holds, the pump stops there.
   * A crash after the batch's records reached the topics but before its checkpoint did: they come again.
   */
  stopBeforeAck?: () => boolean;
  /** Checked after a batch is acknowledged: when it holds, the pump stops (a crash right after a checkpoint). */
  stopAfterAck?: () => boolean;
  /** Starts paused. */
  paused?: boolean;
}

type PumpedSource = Pick<Source, "connect" | "read">;

/** Reads, folds and acknowledges batches until stopped; the last acknowledged checkpoint is what a crash would resume from. */
export function pump(source: PumpedSource, folds: readonly Pick<Fold, "apply">[], options: PumpOptions = {}): Pump {
  const state: Pump = { checkpoint: null, stop: false, paused: options.paused ?? false, done: Promise.resolve() };
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
        // The shared server's connections are sometimes ended by other tests: go on from the last checkpoint, as capture does.
        if (state.stop || !(error as SluiceError).retriable) throw error;
        await source.connect(state.checkpoint, AbortSignal.timeout(30_000));
        continue;
      }
      for (const event of batch.events) for (const fold of folds) fold.apply(event);
      if (options.stopBeforeAck?.()) {
        state.stop = true;
        break;
      }
      await batch.ack();
      // As a topic log keeps it: the checkpoint with the entries stored beside it so far (Checkpoint.entries).
      state.checkpoint = keepEntries(state.checkpoint, batch.checkpoint);
      if (options.stopAfterAck?.()) {
        state.stop = true;
        break;
      }
      if (state.pauseWhen?.()) {
        state.pauseWhen = undefined;
        state.paused = true;
      }
    }
  })();
  return state;
}

/** Stops pumps and closes their sources, whatever failed: a pump left running would reconnect its closed source forever. */
export async function stopPumps(pumps: readonly Pump[], sources: readonly Pick<Source, "close">[]): Promise<void> {
  for (const state of pumps) state.stop = true;
  // A stopped pump's pending read fails with SOURCE_CLOSED once its source closes: that is expected here.
  const stopped = pumps.map((state) => state.done.catch(() => undefined));
  for (const source of sources) await source.close();
  await Promise.all(stopped);
  // A pump may have reconnected its source just before it saw the stop.
  for (const source of sources) await source.close();
}

export async function waitFor(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The pump's last checkpoint carries snapshot task `id` (still under way). */
export const carries = (state: Pump, id: string): boolean => state.checkpoint !== null && decodeResume(state.checkpoint.position.resume).tasks.some((t) => t.id === id);

/** The pump's last checkpoint carries no snapshot task. */
export const noTasks = (state: Pump): boolean => state.checkpoint !== null && decodeResume(state.checkpoint.position.resume).tasks.length === 0;

/** Waits until the pump's checkpoint reached the source position `at` (taken when the caller's writes were done). */
export async function waitCheckpointAt(state: Pump, at: bigint): Promise<void> {
  await waitFor("the stream to catch up", () => state.checkpoint !== null && state.checkpoint.position.commit >= at);
}

/** The database's statements for each kind of change of the random workload, on key `id`. */
export interface WorkloadStatements {
  begin(): Promise<unknown>;
  commit(): Promise<unknown>;
  /** v + 1 and the note grows. */
  update(id: number): Promise<unknown>;
  delete(id: number): Promise<unknown>;
  /** Inserts (0, 'new'), or sets v = -1 where the key exists. */
  upsert(id: number): Promise<unknown>;
  /** Inserts (0, 'appended') above the table's keys. */
  append(id: number): Promise<unknown>;
}

/** Random small transactions until stopped: updates, deletes and inserts across keys 1..`rows`, appends above; resolves with the changes made. */
export async function randomTransactions(rows: number, stop: { stopped: boolean }, statements: WorkloadStatements): Promise<number> {
  let next = rows + 1;
  let changes = 0;
  const pick = () => 1 + Math.floor(Math.random() * rows);
  while (!stop.stopped) {
    await statements.begin();
    for (let i = 0; i < 5; i++) {
      const r = Math.random();
      if (r < 0.55) await statements.update(pick());
      else if (r < 0.75) await statements.delete(pick());
      else if (r < 0.9) await statements.upsert(pick());
      else await statements.append(next++);
      changes++;
    }
    await statements.commit();
  }
  return changes;
}

/** The fold holds exactly the source's rows (id, v, note), none missing, none wrong, none extra. */
export function assertFoldHolds(fold: Fold, rows: readonly { id: string | number; v: unknown; note: string | null }[]): void {
  const visible = fold.visible();
  const missing: (string | number)[] = [];
  const wrong: string[] = [];
  for (const row of rows) {
    const held = visible.get(String(row.id));
    if (held === undefined) missing.push(row.id);
    else if (held["v"] !== Number(row.v) || held["note"] !== row.note) wrong.push(`${row.id}: ${JSON.stringify(held)} vs ${JSON.stringify(row)}`);
    visible.delete(String(row.id));
  }
  assert.deepEqual({ missing: missing.slice(0, 10), wrong: wrong.slice(0, 10), extra: [...visible.keys()].slice(0, 10) }, { missing: [], wrong: [], extra: [] });
  assert.equal(fold.visible().size, rows.length);
}
