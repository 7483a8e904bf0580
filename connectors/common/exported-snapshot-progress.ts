/**
 * How far an exported (consistent) initial snapshot got, as the rows stored with each checkpoint
 * show it, and how a resume goes on from there with the online machinery (docs/snapshots.md, "A
 * resumable initial snapshot"). The same for PostgreSQL and MySQL/MariaDB.
 *
 * The tracker follows which rows each batch hands on: the tables whose reset was handed on are
 * done; for a table part-way through, the key of its last row handed on. Rows are followed by key
 * per table, in the order read (keyset order); a row SnapshotMarkers holds back counts only once
 * it is handed on, so the checkpoint never runs ahead of the rows.
 */
import type { ChangeEvent } from "../contracts.ts";
import { tableName } from "../contracts.ts";
import type { SnapshotTask } from "./incremental-snapshot-state.ts";

/** Text of a row's key columns, as the source's online snapshots page by it; null for a table without a usable key. */
export type SnapshotKey = readonly (string | null)[] | null;

/**
 * The tables whose rows and reset are all stored, and for each table part-way through, the key of
 * the last row stored and how many rows were stored. Tables named in neither were not started.
 */
export interface ExportedSnapshotProgress {
  readonly done: readonly string[];
  readonly reading: readonly ReadingTable[];
}

/** A table part-way through; `keyColumns` names the key `lastKey` is of (absent in checkpoints written before it was recorded). */
export interface ReadingTable {
  readonly table: string;
  readonly lastKey: SnapshotKey;
  readonly rowsDone: number;
  readonly keyColumns?: readonly string[];
}

/** The progress a checkpoint carried (parsed JSON); null when it is not one. */
export function parseExportedSnapshotProgress(value: unknown): ExportedSnapshotProgress | null {
  if (typeof value !== "object" || value === null) return null;
  const { done, reading } = value as Partial<ExportedSnapshotProgress>;
  if (!Array.isArray(done) || !Array.isArray(reading)) return null;
  return { done, reading };
}

/**
 * The finished tables' names a checkpoint carries at most (their length in characters): every
 * checkpoint carries the list, and a Kafka record is at most 1 MiB by default. Tables finished
 * beyond it are not listed: a resume reads them again online (correct, only slower).
 */
export const MAX_DONE_CHARS = 256 * 1024;

export class ExportedSnapshotTracker {
  private readonly done: string[] = [];
  private doneChars = 0;
  private readonly maxDoneChars: number;
  private readonly reading = new Map<string, { lastKey: SnapshotKey; rowsDone: number; keyColumns: readonly string[] | undefined }>();
  /** Keys of rows taken from the buffer and not handed on yet, per table (at most the one held back). */
  private readonly waiting = new Map<string, SnapshotKey[]>();

  constructor(maxDoneChars = MAX_DONE_CHARS) {
    this.maxDoneChars = maxDoneChars;
  }

  /** A row of `table` ("schema.table") taken from the snapshot's buffer (not its reset: that hands on nothing to follow). */
  taken(table: string, key: SnapshotKey): void {
    const queue = this.waiting.get(table);
    if (queue === undefined) this.waiting.set(table, [key]);
    else queue.push(key);
  }

  /** Events a batch hands on, in order. */
  handedOn(events: readonly ChangeEvent[]): void {
    for (const event of events) {
      const table = tableName(event.schema);
      if (event.op === "r") {
        const key = this.waiting.get(table)?.shift() ?? null;
        const entry = this.reading.get(table);
        this.reading.set(table, { lastKey: key, rowsDone: (entry?.rowsDone ?? 0) + 1, keyColumns: key === null ? undefined : event.schema.key });
      } else if (event.op === "t" && event.source.snapshot) {
        this.reading.delete(table);
        this.waiting.delete(table);
        if (this.doneChars + table.length + 3 > this.maxDoneChars) continue;
        this.doneChars += table.length + 3;
        this.done.push(table);
      }
    }
  }

  progress(): ExportedSnapshotProgress {
    return {
      done: [...this.done],
      reading: [...this.reading].map(([table, { lastKey, rowsDone, keyColumns }]) => ({ table, lastKey, rowsDone, ...(keyColumns === undefined ? {} : { keyColumns }) })),
    };
  }
}

/** A table an interrupted snapshot had not finished, as the catalog shows it now. */
export interface TableLeft {
  readonly name: string;
  /** Columns of the key online snapshots page by. */
  readonly keyLength: number;
  /** Their names: a stored key of other columns (the key changed while Sluice was down) is not continued from. */
  readonly keyColumns?: readonly string[];
  readonly estimatedRows: number | null;
}

/**
 * The online snapshot tasks that finish an interrupted exported snapshot: the tables part-way
 * through first (their sinks hold part of them already), going on after their last stored key with
 * their reset at `resetVersion` (the interrupted snapshot's: one below its rows, so the rows it
 * stored stay and only rows the source no longer has go), then the tables not started, read whole
 * (each with its own reset), the largest first.
 */
export function resumedSnapshotTasks(progress: ExportedSnapshotProgress, left: readonly TableLeft[], resetVersion: bigint, now = Date.now()): SnapshotTask[] {
  const reading = new Map(progress.reading.map((r) => [r.table, r]));
  const ordered = [...left].sort((a, b) => Number(reading.has(b.name)) - Number(reading.has(a.name)) || (b.estimatedRows ?? 0) - (a.estimatedRows ?? 0));
  return ordered.map(({ name, keyLength, keyColumns, estimatedRows }, index): SnapshotTask => {
    const stored = reading.get(name);
    // A key whose columns changed while Sluice was down cannot be continued from (its order is another): the table is read whole again.
    const sameColumns = stored?.keyColumns === undefined || keyColumns === undefined || (stored.keyColumns.length === keyColumns.length && stored.keyColumns.every((c, i) => c === keyColumns[i]));
    const lastKey = stored?.lastKey?.length === keyLength && sameColumns ? stored.lastKey : null;
    return {
      id: `initial-${now.toString(36)}-${index}`,
      table: name,
      where: null,
      lastKey,
      rowsDone: lastKey === null ? 0 : (stored?.rowsDone ?? 0),
      rowsEstimated: estimatedRows !== null && estimatedRows >= 0 ? estimatedRows : null,
      resetVersion: stored === undefined ? null : resetVersion.toString(),
      requestedAtMs: now,
      startedAtMs: stored === undefined ? null : now,
      origin: "initial",
    };
  });
}
