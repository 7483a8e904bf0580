/**
 * Online (incremental) snapshots of PostgreSQL tables while the stream runs: the watermark
 * algorithm of DBLog. For each chunk of a table (by its unique key, in key order):
 *
 *   1. note the slot's restart_lsn (every change not yet committed lies at or after it);
 *   2. write a low watermark: a transactional logical message, which the stream shows in commit order;
 *   3. SELECT the chunk (one short autocommit statement, no long-running transaction);
 *   4. write a high watermark.
 *
 * The stream decoder reports every change it hands on; changes of the table between the two
 * watermarks remove their keys from the chunk (the stream carries a newer value). At the high
 * watermark the chunk's remaining rows are handed on as snapshot reads (op "r") in the stream's
 * order. Their version is restart_lsn - 1: below every change the SELECT could not see, so a
 * streamed change always wins over a chunk row whatever order sinks receive them in, and at or
 * above the changes it did see unless the sink has that very change already. Unchanged TOAST
 * columns of streamed updates are made whole from the chunk rows (unchanged-toast.ts).
 *
 * A whole-table snapshot ends with the table's reset (common/snapshot-reset.ts) at a version below
 * its first chunk's rows: sinks drop the rows the source no longer has. A snapshot with a WHERE
 * condition has no reset. Progress travels with the checkpoint (common/incremental-snapshot-state.ts).
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import type { ClientConfig } from "pg";
import type { Logger } from "pino";
import type { ChangeEvent, Row, TableSnapshotProgress } from "../contracts.ts";
import { SluiceError } from "../errors.ts";
import type { ErrorContext } from "../errors.ts";
import { ChunkSizer } from "../common/chunk-sizer.ts";
import type { FailedSnapshot, SnapshotLedger, SnapshotTask } from "../common/incremental-snapshot-state.ts";
import { SnapshotRates } from "../common/online-snapshot-support.ts";
import type { CapturedTable } from "./captured-tables.ts";
import { insertEvent, truncateEvent } from "./change-events.ts";
import type { EventOrigin } from "./change-events.ts";
import { quoteIdent } from "./connection-settings.ts";
import { formatLsn } from "./lsn.ts";
import { toSluiceError } from "./pg-errors.ts";
import { READABLE_DIRECTLY_SQL } from "./privileges.ts";
import { rowBytes } from "./snapshot-reader.ts";
import { WATERMARK_PREFIX } from "./stream-decoder.ts";
import type { DecodedOutput, StreamInterleave } from "./stream-decoder.ts";
import { foldWindowChange, lacksValues, PartialUpdates, windowRow } from "./unchanged-toast.ts";
import type { WindowChanges } from "./unchanged-toast.ts";

export interface ResolvedTable {
  readonly table: CapturedTable;
  readonly estimatedRows: number | null;
}

export interface IncrementalSnapshotOptions {
  readonly client: ClientConfig;
  readonly sourceName: string;
  readonly slot: string;
  readonly chunkRows: number;
  /** About the most bytes of rows one chunk holds (config/memory.ts onlineChunkBytes): wide rows make chunks of fewer rows. */
  readonly chunkBytes: number;
  /** Tables read at the same time, each on a connection of its own (config snapshot.parallelism). */
  readonly parallelism: number;
  /** Chunks read but not yet handed on, across every table being read (config snapshot.chunks_in_flight): bounds memory. */
  readonly chunksInFlight: number;
  readonly ledger: SnapshotLedger;
  /** The captured table "schema.table" names, as the catalog shows it now (published columns, row filter). */
  readonly resolve: (table: string) => Promise<ResolvedTable>;
  readonly logger: Logger;
  readonly context: ErrorContext;
  readonly onProgress?: () => void;
  /** Tables finished (kept by the source across reconnects, the last 20). */
  readonly finished: TableSnapshotProgress[];
  /**
   * Changes committed at or before this LSN may have been handed on before this engine started (by
   * an earlier connection or process): it did not see them, so chunks are read at versions above
   * them (unchanged-toast.ts). 0 (the default) for a new slot.
   */
  readonly unseenThrough?: bigint;
  /** Per table, the version of rows already read (an exported initial snapshot's): its chunks are read above it. */
  readonly readThrough?: ReadonlyMap<string, bigint>;
}

interface OpenChunk {
  readonly seq: number;
  /** The lane that read it (Lane.index). */
  readonly lane: number;
  readonly taskId: string;
  /** The task's read it belongs to (IncrementalSnapshots.restart starts another). */
  readonly generation: number;
  readonly table: CapturedTable;
  readonly version: bigint;
  /** Task fields fixed by the first chunk read (kept unless the task already has them). */
  readonly resetVersion: string;
  readonly startedAtMs: number;
  readonly rowsEstimated: number | null;
  /** Rows the SELECT asked for (fewer came: the table's last chunk). */
  limit: number;
  /** Set once the SELECT returned (always before the high watermark is written). */
  rows: (string | null)[][] | null;
  /** Keys the stream changed between the watermarks, and what their changes left. */
  readonly changed: Map<string, WindowChanges>;
  truncated: boolean;
  windowOpen: boolean;
  readonly handedOn: PromiseWithResolvers<void>;
}

/** Where reading stands for the task being read (ahead of what the stream has handed on). */
interface ReadCursor {
  readonly taskId: string;
  readonly generation: number;
  lastKey: readonly (string | null)[] | null;
  resetVersion: string | null;
  startedAtMs: number | null;
  readingDone: boolean;
  /** The table as resolved for this task's first chunk (again after any failure). */
  resolved: ResolvedTable | null;
  /** Rows per chunk, from the rows' measured size. */
  readonly sizer: ChunkSizer;
}

/**
 * One table read at a time, on a connection of its own: up to `parallelism` lanes read different
 * tables at once. A table's chunks are read in key order on its lane, so their watermarks, and
 * with them the rows handed on, follow in that order too.
 */
interface Lane {
  readonly index: number;
  /** The task this lane reads (null: none claimed). */
  cursor: ReadCursor | null;
  client: pg.Client | null;
}

/** Keys whose latest update left a TOAST column unchanged, kept for the chunks still to be read (about 100 bytes each). */
const PARTIAL_UPDATES_KEPT = 200_000;

/** How long a chunk read waits for the slot's restart_lsn to pass changes the engine did not see, before going on anyway. */
const UNSEEN_WAIT_MS = 120_000;

/** Identity of a key for comparing chunk rows with streamed changes. */
export function keyText(table: { readonly schema: { readonly key: readonly string[] } }, key: Row): string {
  return JSON.stringify(table.schema.key.map((name) => key[name] ?? null), (_name, value: unknown) => {
    if (typeof value === "bigint") return `${value}n`;
    if (value instanceof Uint8Array) return Buffer.from(value).toString("hex");
    return value;
  });
}

export class IncrementalSnapshots implements StreamInterleave {
  private readonly options: IncrementalSnapshotOptions;
  private readonly logger: Logger;
  /** Watermarks of earlier runs (before a restart) are replayed by the stream and ignored. */
  private readonly runId = randomBytes(6).toString("hex");
  private seq = 0;
  /** Chunks read and not yet handed on (overlapping the stream's round trip keeps the snapshot fast), and chunk reads under way. */
  private inFlight: OpenChunk[] = [];
  private reserved = 0;
  private lanes: Lane[] = [];
  private readonly waiters = new Set<() => void>();
  private readonly failures: FailedSnapshot[] = [];
  private readonly rates = new SnapshotRates();
  private readonly partialUpdates: PartialUpdates;
  /** Per table, the highest change LSN of an update with an unchanged column this engine handed on. */
  private readonly partialSeen = new Map<string, bigint>();
  /** Per table, the highest version of its chunks read: a table read again is read above it, or its rows would not replace those. */
  private readonly readThrough = new Map<string, bigint>();
  /** Chunks are read at versions above this LSN (see IncrementalSnapshotOptions.unseenThrough). */
  private unseenThrough: bigint;
  /** Per task requested after updates with unchanged columns of its table: its chunks are read at versions above them. */
  private readonly seenBeforeRequest = new Map<string, bigint>();
  /** Tasks whose wait for the slot to pass their readAbove was logged. */
  private readonly waitingAbove = new Set<string>();
  private waitingSinceMs: number | null = null;
  /** Per task read again from its first key (restart): how many times; chunks of an earlier read are not handed on. */
  private readonly generations = new Map<string, number>();

  constructor(options: IncrementalSnapshotOptions) {
    this.options = options;
    this.unseenThrough = options.unseenThrough ?? 0n;
    for (const [table, version] of options.readThrough ?? []) this.readThrough.set(table, version);
    this.logger = options.logger.child({ component: "incremental-snapshot" });
    this.partialUpdates = new PartialUpdates(PARTIAL_UPDATES_KEPT, () =>
      this.logger.warn(
        { kept: PARTIAL_UPDATES_KEPT },
        "too many rows updated with unchanged TOAST columns while online snapshots wait for the slot to advance: a sink that has no row yet may get such a column as NULL (REPLICA IDENTITY FULL avoids it; see docs/snapshots.md)",
      ),
    );
  }

  /**
   * Queues a snapshot of `table` (already checked by the caller); returns its task. `above`: its chunks are read at
   * versions above this LSN (a truncate the source wrote for the table just before: rows under it are dropped; the
   * change its renamed columns came with: changes of the old layout below it must not outrank the rows); the task
   * carries it (readAbove), so a restart from a checkpoint, or a reconnect, reads above it too.
   */
  request(table: string, where: string | null, origin: string, id?: string, above?: bigint, partition?: number): SnapshotTask {
    const task: SnapshotTask = {
      id: id ?? `${Date.now().toString(36)}-${randomBytes(3).toString("hex")}`,
      table,
      where,
      lastKey: null,
      rowsDone: 0,
      rowsEstimated: null,
      resetVersion: null,
      requestedAtMs: Date.now(),
      startedAtMs: null,
      origin,
      ...(above === undefined ? {} : { readAbove: String(above) }),
      ...(partition === undefined ? {} : { partition: String(partition) }),
    };
    this.options.ledger.add(task);
    // Updates of the table handed on before now were not kept per key: read above them.
    let seen: bigint | undefined;
    for (const floor of [this.partialSeen.get(table), this.readThrough.get(table)]) if (floor !== undefined && (seen === undefined || floor > seen)) seen = floor;
    if (seen !== undefined) this.seenBeforeRequest.set(task.id, seen);
    this.logger.info({ table, where, origin, id: task.id }, "incremental snapshot requested");
    this.wakeAll();
    return task;
  }

  /**
   * Reads task `id` again from its first key, if its read has begun: the rows it read may no longer be the table's,
   * and rows below its position may be new (a partition detached, refilled and attached again while it was read).
   * Its chunks not handed on yet are dropped. False when no such task is queued.
   */
  restart(id: string): boolean {
    const task = this.options.ledger.tasks.find((t) => t.id === id);
    if (task === undefined) return false;
    const reading = this.lanes.some((lane) => lane.cursor?.taskId === id) || this.inFlight.some((chunk) => chunk.taskId === id);
    if (task.lastKey === null && !reading) return true;
    this.generations.set(id, (this.generations.get(id) ?? 0) + 1);
    this.options.ledger.replace({ ...task, lastKey: null, rowsDone: 0 });
    for (const chunk of this.inFlight) if (chunk.taskId === id) chunk.handedOn.resolve();
    this.inFlight = this.inFlight.filter((chunk) => chunk.taskId !== id);
    for (const lane of this.lanes) if (lane.cursor?.taskId === id) lane.cursor = null;
    this.logger.info({ table: task.table, id, rowsDone: task.rowsDone }, "incremental snapshot of table read again from its first key");
    this.wakeAll();
    return true;
  }

  /** Snapshots not finished yet, in the order they run. */
  tasks(): readonly SnapshotTask[] {
    return this.options.ledger.tasks;
  }

  failed(): readonly FailedSnapshot[] {
    return this.failures;
  }

  progress(): TableSnapshotProgress[] {
    const reading = new Set(this.lanes.flatMap((lane) => (lane.cursor === null ? [] : [lane.cursor.taskId])));
    const running = this.options.ledger.tasks.map((task): TableSnapshotProgress => ({
      table: task.table,
      state: reading.has(task.id) && task.startedAtMs !== null ? "running" : "pending",
      rowsDone: task.rowsDone,
      rowsEstimated: task.rowsEstimated,
      rowsPerSecond: this.rates.perSecond(task.id),
      startedAtMs: task.startedAtMs,
      finishedAtMs: null,
    }));
    return [...this.options.finished, ...running];
  }

  /** Reads chunks until `signal` aborts, on up to `parallelism` lanes; waits for requests when there is nothing to read. */
  async run(signal: AbortSignal): Promise<void> {
    const lanes = Array.from({ length: Math.max(1, this.options.parallelism) }, (_, index): Lane => ({ index, cursor: null, client: null }));
    this.lanes = lanes;
    try {
      await Promise.all(lanes.map((lane) => this.runLane(lane, signal)));
    } finally {
      await Promise.all(lanes.map((lane) => this.closeClient(lane)));
    }
  }

  async close(): Promise<void> {
    this.wakeAll();
    await Promise.all(this.lanes.map((lane) => this.closeClient(lane)));
  }

  private async runLane(lane: Lane, signal: AbortSignal): Promise<void> {
    let failuresInRow = 0;
    while (!signal.aborted) {
      const task = this.claim(lane);
      if (task === undefined) {
        await this.sleep(signal);
        continue;
      }
      try {
        await this.step(lane, task, signal);
        failuresInRow = 0;
      } catch (error) {
        if (signal.aborted) break;
        const failure = toSluiceError(error, `incremental snapshot of ${task.table} failed`, { ...this.options.context, table: task.table });
        // Read again from what the stream handed on: this lane's chunks in flight are dropped.
        this.inFlight = this.inFlight.filter((c) => c.lane !== lane.index);
        lane.cursor = null;
        this.wakeAll();
        // A schema change can fail a chunk read with the table as resolved before: read it once more, resolved anew.
        if (failure.retriable || failuresInRow === 0) {
          failuresInRow++;
          const delayMs = Math.min(30_000, 500 * 2 ** Math.min(failuresInRow, 6));
          this.logger.warn({ err: failure.message, table: task.table, delayMs }, "incremental snapshot chunk failed; retrying");
          await this.closeClient(lane);
          await delay(signal, delayMs);
          continue;
        }
        this.logger.error({ err: failure.message, ...failure.toLog() }, "incremental snapshot of table failed; going on with the others");
        this.failures.push({ id: task.id, table: task.table, error: failure.message, code: failure.code, atMs: Date.now() });
        if (this.failures.length > 20) this.failures.shift();
        this.options.ledger.remove(task.id);
        this.generations.delete(task.id);
        this.forgetUnlessQueued(task.table);
      }
    }
  }

  /** The task `lane` reads: the one it holds while that is queued, else the first queued task no other lane holds (tables run in the order asked for). */
  private claim(lane: Lane): SnapshotTask | undefined {
    const tasks = this.options.ledger.tasks;
    if (lane.cursor !== null) {
      const held = tasks.find((t) => t.id === lane.cursor!.taskId);
      if (held !== undefined) return held;
      lane.cursor = null;
    }
    const taken = new Set(this.lanes.flatMap((other) => (other === lane || other.cursor === null ? [] : [other.cursor.taskId])));
    return tasks.find((t) => !taken.has(t.id));
  }

  /** Decoder hook: a watermark in commit order. Hands on the chunk's rows at its high watermark. */
  watermark(content: string, commitLsn: bigint, out: DecodedOutput): void {
    const [runId, seqText, kind] = content.split(":");
    if (runId !== this.runId) return;
    const chunk = this.inFlight.find((c) => c.seq === Number(seqText));
    if (chunk === undefined) return;
    if (kind === "low") {
      chunk.windowOpen = true;
      return;
    }
    if (kind !== "high" || chunk.rows === null) return;
    // High watermarks commit in the order they were written: this is the oldest chunk in flight.
    this.inFlight = this.inFlight.filter((c) => c !== chunk);
    const task = this.options.ledger.tasks.find((t) => t.id === chunk.taskId);
    // A chunk of a read started again since (restart) is not handed on: its position is not the task's.
    if (task === undefined || chunk.generation !== (this.generations.get(task.id) ?? 0)) {
      chunk.handedOn.resolve();
      this.wakeAll();
      return;
    }
    const { table, rows, version } = chunk;
    const origin: EventOrigin = { sourceName: this.options.sourceName, position: { commit: commitLsn, change: version }, txId: null, commitTimeMs: Date.now(), snapshot: true };
    let handedOn = 0;
    if (!chunk.truncated) {
      const tableName = `${table.schema.schema}.${table.schema.table}`;
      for (const row of rows) {
        const read = insertEvent(table, row, origin, "r");
        const key = keyText(table, read.key);
        const inWindow = chunk.changed.get(key);
        let event: ChangeEvent | null = read;
        if (inWindow !== undefined) event = windowRow(read, inWindow);
        else {
          const outranking = this.partialUpdates.above(tableName, key, version);
          if (outranking !== null) event = { ...read, source: { ...read.source, position: { ...read.source.position, change: outranking } } };
        }
        if (event === null) continue;
        // Debezium marks the reads of incremental snapshots so in source.snapshot.
        out.events.push({ ...event, source: { ...event.source, snapshotMarker: "incremental" } });
        handedOn++;
      }
    }
    const last = rows.length < chunk.limit;
    const lastRow = rows.at(-1);
    const next: SnapshotTask = {
      ...task,
      lastKey: lastRow === undefined ? task.lastKey : table.keyIndexes.map((i) => lastRow[i] ?? null),
      rowsDone: task.rowsDone + rows.length,
      resetVersion: task.resetVersion ?? chunk.resetVersion,
      startedAtMs: task.startedAtMs ?? chunk.startedAtMs,
      rowsEstimated: task.rowsEstimated ?? chunk.rowsEstimated,
    };
    if (last && task.where === null) {
      out.events.push(truncateEvent(table, { ...origin, position: { commit: commitLsn, change: BigInt(next.resetVersion!) } }));
    }
    this.options.ledger.record(origin.position, task.id, last ? null : next);
    out.chunkHandedOn = true;
    this.rates.update(next);
    if (last) {
      const now = Date.now();
      this.options.finished.push({ table: task.table, state: "done", rowsDone: next.rowsDone, rowsEstimated: next.rowsEstimated, rowsPerSecond: this.rates.perSecond(task.id), startedAtMs: next.startedAtMs, finishedAtMs: now });
      if (this.options.finished.length > 20) this.options.finished.shift();
      this.rates.forget(task.id);
      this.generations.delete(task.id);
      this.forgetUnlessQueued(task.table);
      for (const lane of this.lanes) if (lane.cursor?.taskId === task.id) lane.cursor = null;
      this.logger.info({ table: task.table, rows: next.rowsDone, handedOnLastChunk: handedOn, id: task.id }, "incremental snapshot of table finished");
    }
    this.options.onProgress?.();
    chunk.handedOn.resolve();
    this.wakeAll();
  }

  /** Decoder hook: every change handed on. Inside a chunk's window its key leaves the chunk. */
  changed(event: ChangeEvent): void {
    const tasks = this.options.ledger.tasks;
    if (lacksValues(event)) {
      const table = `${event.source.schema}.${event.source.table}`;
      const change = event.source.position.change;
      if ((this.partialSeen.get(table) ?? -1n) < change) this.partialSeen.set(table, change);
      if (tasks.some((t) => t.table === table)) this.partialUpdates.record(table, keyText(event, event.key), event);
    }
    if (tasks.length === 0) return;
    for (const chunk of this.inFlight) {
      if (!chunk.windowOpen || event.source.table !== chunk.table.schema.table || event.source.schema !== chunk.table.schema.schema) continue;
      if (event.op === "t") chunk.truncated = true;
      else {
        const key = keyText(chunk.table, event.key);
        chunk.changed.set(key, foldWindowChange(chunk.changed.get(key), event));
      }
    }
  }

  /** Drops the updates kept for `table` once no snapshot of it is queued. */
  private forgetUnlessQueued(table: string): void {
    if (!this.options.ledger.tasks.some((t) => t.table === table)) this.partialUpdates.forget(table);
  }

  /**
   * Reads the task's next chunk while the chunks in flight (every lane's) are within the budget;
   * otherwise waits for this lane's oldest chunk to be handed on, or for any if it has none.
   */
  private async step(lane: Lane, task: SnapshotTask, signal: AbortSignal): Promise<void> {
    if (lane.cursor === null || lane.cursor.taskId !== task.id) {
      const sizer = new ChunkSizer(this.options.chunkRows, this.options.chunkBytes);
      lane.cursor = { taskId: task.id, generation: this.generations.get(task.id) ?? 0, lastKey: task.lastKey, resetVersion: task.resetVersion, startedAtMs: task.startedAtMs, readingDone: false, resolved: null, sizer };
    }
    const cursor = lane.cursor;
    if (!cursor.readingDone && this.inFlight.length + this.reserved < Math.max(1, this.options.chunksInFlight)) {
      this.reserved++;
      let read: boolean;
      try {
        read = await this.readChunk(lane, task, cursor);
      } finally {
        this.reserved--;
      }
      if (!read) await delay(signal, 1000);
      return;
    }
    const oldest = this.inFlight.find((c) => c.lane === lane.index);
    if (oldest !== undefined) {
      await untilOrAborted(oldest.handedOn.promise, signal);
      return;
    }
    if (cursor.readingDone) {
      // Everything read was handed on but the task is still there: it finished while we looked, or is read again.
      if (this.options.ledger.tasks.some((t) => t.id === task.id)) lane.cursor = null;
      return;
    }
    // The budget is taken by other lanes' chunks: one of them handed on wakes this lane.
    await this.sleep(signal);
  }

  /** Reads the task's next chunk; false when it must wait for the slot's restart_lsn first. */
  private async readChunk(lane: Lane, task: SnapshotTask, cursor: ReadCursor): Promise<boolean> {
    cursor.resolved ??= await this.options.resolve(task.table);
    const { table, estimatedRows } = cursor.resolved;
    if (!table.uniqueKey) throw noChunkKey(task.table, this.options.context);
    const client = await this.connection(lane);
    const restartLsn = await this.restartLsn(client);
    if (!this.readableAt(task, restartLsn)) return false;
    if (cursor.resetVersion === null || cursor.startedAtMs === null) {
      cursor.resetVersion ??= String(restartLsn - 2n);
      cursor.startedAtMs ??= Date.now();
      this.logger.info({ table: task.table, key: table.schema.key, where: task.where, estimatedRows, id: task.id }, "incremental snapshot of table started");
    }
    const seq = ++this.seq;
    if ((this.readThrough.get(task.table) ?? -1n) < restartLsn - 1n) this.readThrough.set(task.table, restartLsn - 1n);
    const chunk: OpenChunk = {
      seq,
      lane: lane.index,
      taskId: task.id,
      generation: cursor.generation,
      table,
      version: restartLsn - 1n,
      resetVersion: cursor.resetVersion,
      startedAtMs: cursor.startedAtMs,
      rowsEstimated: task.rowsEstimated ?? estimatedRows,
      limit: cursor.sizer.next(),
      rows: null,
      changed: new Map(),
      truncated: false,
      windowOpen: false,
      handedOn: Promise.withResolvers(),
    };
    this.inFlight.push(chunk);
    this.partialUpdates.prune(this.inFlight.reduce((lowest, c) => (c.version < lowest ? c.version : lowest), chunk.version));
    await this.emitWatermark(client, seq, "low");
    const rows = await this.select(client, table, task.where, cursor.lastKey, chunk.limit, task.partition);
    chunk.rows = rows;
    cursor.sizer.observe(rows.length, rows.reduce((sum, row) => sum + rowBytes(row), 0));
    const lastRow = rows.at(-1);
    if (lastRow !== undefined) cursor.lastKey = table.keyIndexes.map((i) => lastRow[i] ?? null);
    if (rows.length < chunk.limit) cursor.readingDone = true;
    await this.emitWatermark(client, seq, "high");
    return true;
  }

  /**
   * Whether a chunk of `task` read now (at version restartLsn - 1) outranks every update with an
   * unchanged column the engine did not keep per key: those handed on before it started, and
   * those of the table before the task was requested. Otherwise such an update would outrank the
   * chunk row in a sink that has no row, leaving the column null. Waits for the slot to advance
   * (the server moves restart_lsn on at least every 15 s while there is traffic), at most
   * UNSEEN_WAIT_MS: a transaction left open on the server holds restart_lsn back.
   */
  private readableAt(task: SnapshotTask, restartLsn: bigint): boolean {
    // Below the truncate the source wrote for the task a sink drops the rows, below a change of the table in its old layout
    // (columns renamed) the rows lose to it: no going on before the slot passes it.
    if (belowEmptying(task, restartLsn)) {
      if (!this.waitingAbove.has(task.id)) {
        this.waitingAbove.add(task.id);
        this.logger.info(
          { table: task.table, restartLsn: formatLsn(restartLsn), until: formatLsn(BigInt(task.readAbove ?? 0)), origin: task.origin },
          task.origin === "columns-changed"
            ? "online snapshot waits for the slot's restart_lsn to pass the commit that renamed the table's columns"
            : "online snapshot waits for the slot's restart_lsn to pass the truncate that emptied the table's targets",
        );
      }
      return false;
    }
    this.waitingAbove.delete(task.id);
    const seen = this.seenBeforeRequest.get(task.id) ?? 0n;
    const floor = seen > this.unseenThrough ? seen : this.unseenThrough;
    // A chunk row's version is restartLsn - 1; a sink applies only a higher version than the one it holds.
    if (restartLsn - 1n > floor) {
      this.unseenThrough = 0n;
      this.seenBeforeRequest.delete(task.id);
      this.waitingSinceMs = null;
      return true;
    }
    const now = Date.now();
    if (this.waitingSinceMs === null) {
      this.waitingSinceMs = now;
      this.logger.info({ table: task.table, restartLsn: formatLsn(restartLsn), until: formatLsn(floor) }, "online snapshot waits for the slot's restart_lsn to pass the changes handed on before it");
      return false;
    }
    if (now - this.waitingSinceMs < UNSEEN_WAIT_MS) return false;
    this.logger.warn(
      { table: task.table, restartLsn: formatLsn(restartLsn), until: formatLsn(floor), waitedMs: now - this.waitingSinceMs },
      "the slot's restart_lsn does not advance (a long transaction on the server?): online snapshot goes on; an unchanged TOAST column of a row updated just before may stay null in a sink that had no row (see docs/snapshots.md)",
    );
    this.unseenThrough = 0n;
    this.seenBeforeRequest.delete(task.id);
    this.waitingSinceMs = null;
    return true;
  }

  private async select(client: pg.Client, table: CapturedTable, where: string | null, lastKey: readonly (string | null)[] | null, limit: number, partition?: string): Promise<(string | null)[][]> {
    const keyColumns = table.keyIndexes.map((i) => table.columns[i]!);
    const keyList = keyColumns.map((c) => quoteIdent(c.name)).join(", ");
    const conditions: string[] = [];
    if (table.rowFilter !== null) conditions.push(`(${table.rowFilter})`);
    if (where !== null) conditions.push(`(${where})`);
    const values: (string | null)[] = [];
    if (lastKey !== null) {
      conditions.push(`(${keyList}) > (${keyColumns.map((c, i) => `$${i + 1}::${c.sqlType}`).join(", ")})`);
      values.push(...lastKey);
    }
    const root = `${table.kind === "p" ? "" : "ONLY "}${quoteIdent(table.schema.schema)}.${quoteIdent(table.schema.table)}`;
    // A leaf Sluice's role may not read directly (its grants were changed since the request): through the root, whose
    // grants PostgreSQL checks then; the task's where (tableoid) limits it to the leaf.
    const from = partition === undefined ? root : await this.partitionNow(client, table, partition, root);
    // A partition detached or dropped since: none of its rows is in the root any more.
    if (from === null) return [];
    const text =
      `SELECT ${table.columns.map((c) => quoteIdent(c.name)).join(", ")} FROM ${from}` +
      `${conditions.length > 0 ? ` WHERE ${conditions.join(" AND ")}` : ""} ORDER BY ${keyList} LIMIT ${limit}`;
    // A WHERE condition may come from whoever can write the signal table: it is evaluated in a read-only transaction
    // (a function it calls cannot write: nextval, lo_from_bytea, ...), rolled back so that no setting it makes
    // (set_config(..., false)) outlives the read. The watermarks around the read are written outside it.
    await client.query("BEGIN READ ONLY");
    try {
      const result = await client.query<(string | null)[]>({ text, values, rowMode: "array" });
      return result.rows;
    } finally {
      await client.query("ROLLBACK");
    }
  }

  /**
   * The leaf partition by relation id, quoted, while it is still a partition under the root (by id: a rename keeps it);
   * `root` when Sluice's role may not read the leaf directly.
   */
  private async partitionNow(client: pg.Client, table: CapturedTable, partition: string, root: string): Promise<string | null> {
    const result = await client.query<{ schema: string; name: string; readable: string }>(
      `WITH RECURSIVE up(relid) AS (
         SELECT $1::oid
         UNION ALL
         SELECT i.inhparent FROM up JOIN pg_inherits i ON i.inhrelid = up.relid
       )
       SELECT n.nspname AS schema, c.relname AS name, ${READABLE_DIRECTLY_SQL} AS readable
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.oid = $1::oid AND c.relispartition AND EXISTS (SELECT 1 FROM up WHERE up.relid = $2::oid)`,
      [partition, table.relid],
    );
    const row = result.rows[0];
    if (row === undefined) return null;
    return row.readable === "true" ? `ONLY ${quoteIdent(row.schema)}.${quoteIdent(row.name)}` : root;
  }

  private async restartLsn(client: pg.Client): Promise<bigint> {
    const result = await client.query<{ restart_lsn: string | null }>("SELECT (restart_lsn - '0/0'::pg_lsn)::text AS restart_lsn FROM pg_replication_slots WHERE slot_name = $1", [this.options.slot]);
    const text = result.rows[0]?.restart_lsn;
    if (text == null) {
      throw new SluiceError(`replication slot "${this.options.slot}" is gone or invalidated`, { code: "PG_SLOT_MISSING", retriable: true, context: { ...this.options.context, slot: this.options.slot } });
    }
    return BigInt(text.split(".")[0]!);
  }

  private async emitWatermark(client: pg.Client, seq: number, kind: "low" | "high"): Promise<void> {
    await client.query("SELECT pg_logical_emit_message(true, $1, $2)", [WATERMARK_PREFIX, `${this.runId}:${seq}:${kind}`]);
  }

  private async connection(lane: Lane): Promise<pg.Client> {
    if (lane.client !== null) return lane.client;
    const client = new pg.Client(this.options.client);
    client.on("error", (error) => this.logger.warn({ err: error.message }, "incremental snapshot connection failed"));
    lane.client = client;
    try {
      await client.connect();
      await client.query("SET statement_timeout = 0");
    } catch (error) {
      lane.client = null;
      await client.end().catch(() => undefined);
      throw error;
    }
    return client;
  }

  private async closeClient(lane: Lane): Promise<void> {
    const client = lane.client;
    lane.client = null;
    if (client !== null) await client.end().catch(() => undefined);
  }

  /** Until a request comes, a chunk is handed on or dropped, or `signal` aborts. */
  private sleep(signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        signal.removeEventListener("abort", done);
        this.waiters.delete(done);
        resolve();
      };
      if (signal.aborted) return resolve();
      this.waiters.add(done);
      signal.addEventListener("abort", done, { once: true });
    });
  }

  private wakeAll(): void {
    for (const wake of [...this.waiters]) wake();
  }
}

/** Waits `ms`, or less when `signal` aborts. */
function delay(signal: AbortSignal, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    if (signal.aborted) done();
    else signal.addEventListener("abort", done, { once: true });
  });
}

/** Waits for `promise`, or rejects when `signal` aborts first (leaving no listener behind). */
function untilOrAborted(promise: Promise<void>, signal: AbortSignal): Promise<void> {
  signal.throwIfAborted();
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      () => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error as Error);
      },
    );
  });
}

/** Whether a chunk of `task` read at restart_lsn `restartLsn` (version restartLsn - 1) would sit at or below its readAbove (the truncate that emptied its targets, the change that renamed its columns). */
export function belowEmptying(task: SnapshotTask, restartLsn: bigint): boolean {
  return task.readAbove !== undefined && restartLsn - 1n <= BigInt(task.readAbove);
}

export function noChunkKey(table: string, context: ErrorContext): SluiceError {
  return new SluiceError(
    `table ${table} has no primary key or replica identity index, so an online snapshot cannot read it in key order: ` +
      `add a primary key (or ALTER TABLE ... REPLICA IDENTITY USING INDEX on a unique index of NOT NULL columns), ` +
      `or take a new initial snapshot of the source (snapshot.mode, see docs/snapshots.md)`,
    { code: "SNAPSHOT_NO_CHUNK_KEY", context: { ...context, table } },
  );
}
