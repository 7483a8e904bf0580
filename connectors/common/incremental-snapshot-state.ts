/**
 * What an online (incremental) snapshot has read so far, and how that travels with the source's
 * checkpoint: the tasks (one per requested table) ride in Position.resume, so the topic log stores
 * a chunk's progress atomically with the chunk's rows. A crash resumes at the chunk after the last
 * one whose rows are durable (the chunk in flight is read again: at most one chunk twice).
 *
 * A task changes when the stream reaches a chunk's high watermark (its rows are handed on there).
 * The ledger keeps each change with the stream position it belongs to, so a checkpoint carries
 * exactly the progress of the rows before it, even when a batch ends before a chunk's rows.
 */
import { comparePositions } from "../contracts.ts";
import type { Position } from "../contracts.ts";

export interface SnapshotTask {
  /** Unique per request: names the task in /status and the admin API. */
  readonly id: string;
  /** "schema.table" (MySQL: "database.table"). */
  readonly table: string;
  /** Extra SQL condition (sluice snapshot --where); null reads the whole table. */
  readonly where: string | null;
  /** Text of the key columns of the last row handed on, null before the first chunk. */
  readonly lastKey: readonly (string | null)[] | null;
  readonly rowsDone: number;
  readonly rowsEstimated: number | null;
  /**
   * A whole-table snapshot ends with a reset (a truncate, source.snapshot true) at this version
   * (decimal): below every row the snapshot hands on, so sinks drop only rows the source no
   * longer has. Fixed before the first chunk; null until then.
   */
  readonly resetVersion: string | null;
  readonly requestedAtMs: number;
  readonly startedAtMs: number | null;
  /** How the snapshot was asked for: "cli", "signal", "table-added", "table-renamed", "columns-changed", "xa-rolled-back", "initial". */
  readonly origin: string;
  /**
   * Its rows are read at versions above this one (decimal; PostgreSQL): the source emptied the table's targets just
   * before, with a truncate at or below it, and sinks drop rows at or below a truncate's version; or the table's
   * columns were renamed (or added again) at this change, and its changes in the old layout below it would outrank the
   * rows read. Kept with the task, so a restart reads above it too.
   */
  readonly readAbove?: string;
  /**
   * PostgreSQL: the relation id (decimal) of one leaf partition of the partitioned `table`, read alone (FROM ONLY the
   * leaf) and handed on as the root's rows: a partition attached while capture streams. Reading the root with a
   * condition on tableoid would walk every other partition's key index, as PostgreSQL does not prune by tableoid.
   */
  readonly partition?: string;
}

/** What a snapshot request would do: the dry run's answer, and the request's. */
export interface OnlineSnapshotPlan {
  readonly source: string;
  readonly table: string;
  readonly key: readonly string[];
  readonly keySource: string;
  readonly where: string | null;
  /** The planner's estimate of the rows to read (with the WHERE condition). */
  readonly estimatedRows: number | null;
  readonly chunkRows: number;
  readonly estimatedChunks: number | null;
  /** A whole-table snapshot ends with a reset that removes rows the source no longer has. */
  readonly reset: boolean;
  /** Snapshots queued before this one. */
  readonly queuedBehind: number;
}

export interface FailedSnapshot {
  readonly id: string;
  readonly table: string;
  readonly error: string;
  readonly code: string;
  readonly atMs: number;
}

/** What a source that takes online snapshots offers the daemon (admin API, signal table, tables added later). */
export interface OnlineSnapshotting {
  plan(table: string, where: string | null): Promise<OnlineSnapshotPlan>;
  request(table: string, where: string | null, origin: string, id?: string): Promise<{ plan: OnlineSnapshotPlan; task: SnapshotTask }>;
  /** Snapshots queued or running, and the last ones that failed. */
  list(): { readonly tasks: readonly SnapshotTask[]; readonly failed: readonly FailedSnapshot[] };
  /**
   * Task `id` as the last checkpoint stored carries it (its lastKey: the rows it handed on durably, in this run or an
   * earlier one); null when none carries it yet. list() shows the tasks ahead of that, as the engine reads them.
   */
  stored(id: string): SnapshotTask | null;
}

const MARK = "\nsnapshots:";

/** Position.resume carrying the tasks after the source's own token (e.g. a GTID set); undefined when both are empty. */
export function encodeResume(base: string | undefined, tasks: readonly SnapshotTask[]): string | undefined {
  if (tasks.length === 0) return base;
  return `${base ?? ""}${MARK}${JSON.stringify(tasks)}`;
}

export function decodeResume(resume: string | undefined): { base: string | undefined; tasks: SnapshotTask[] } {
  if (resume === undefined) return { base: undefined, tasks: [] };
  const at = resume.indexOf(MARK);
  if (at < 0) return { base: resume, tasks: [] };
  const base = resume.slice(0, at);
  const parsed: unknown = JSON.parse(resume.slice(at + MARK.length));
  if (!Array.isArray(parsed)) throw new Error("the checkpoint's snapshot progress is not a list");
  return { base: base === "" ? undefined : base, tasks: parsed as SnapshotTask[] };
}

/** Base token of a resume string without the snapshot progress. */
export function resumeBase(resume: string | undefined): string | undefined {
  return decodeResume(resume).base;
}

interface PendingChange {
  readonly position: Position;
  tasks: SnapshotTask[];
}

export class SnapshotLedger {
  private live: SnapshotTask[];
  private durable: SnapshotTask[];
  private pending: PendingChange[] = [];

  constructor(restored: readonly SnapshotTask[]) {
    this.live = [...restored];
    this.durable = [...restored];
  }

  /** The tasks as the snapshot engine sees them (ahead of what is durable). */
  get tasks(): readonly SnapshotTask[] {
    return this.live;
  }

  /** A new request counts at once: it needs no rows before it to be durable. */
  add(task: SnapshotTask): void {
    this.live = [...this.live, task];
    this.durable = [...this.durable, task];
    for (const change of this.pending) change.tasks = [...change.tasks, task];
  }

  /** Drops a task at once (cancelled, or failed in a way reading again cannot fix). */
  remove(id: string): void {
    const without = (tasks: readonly SnapshotTask[]) => tasks.filter((t) => t.id !== id);
    this.live = without(this.live);
    this.durable = without(this.durable);
    for (const change of this.pending) change.tasks = without(change.tasks);
  }

  /** Puts `task` in place of the task of its id at once, also in what is durable (a read started again from its first key). */
  replace(task: SnapshotTask): void {
    const replaced = (tasks: readonly SnapshotTask[]) => tasks.map((t) => (t.id === task.id ? task : t));
    this.live = replaced(this.live);
    this.durable = replaced(this.durable);
    for (const change of this.pending) change.tasks = replaced(change.tasks);
  }

  /** Task `id` after the rows handed on at `position` (a chunk's rows; null: the table is done). */
  record(position: Position, id: string, next: SnapshotTask | null): void {
    this.live = this.live.flatMap((t) => (t.id !== id ? [t] : next === null ? [] : [next]));
    this.pending.push({ position, tasks: this.live });
  }

  /** Task `id` as the last checkpoint handed on carries it, null when it does not. */
  stored(id: string): SnapshotTask | null {
    return this.durable.find((t) => t.id === id) ?? null;
  }

  /** Whether the last checkpoint handed on carries task `id`. */
  isDurable(id: string): boolean {
    return this.durable.some((t) => t.id === id);
  }

  /** The tasks a checkpoint at `position` carries: every change at or before it. */
  tasksAt(position: Position): readonly SnapshotTask[] {
    while (this.pending.length > 0 && comparePositions(this.pending[0]!.position, position) <= 0) this.durable = this.pending.shift()!.tasks;
    return this.durable;
  }
}
