/**
 * Follows which rows of an exported initial snapshot each batch hands on, so the batch's
 * checkpoint says how far the snapshot got (positions.ts ExportedSnapshotProgress): the tables
 * whose reset was handed on are done; for a table part-way through, the key of its last row handed
 * on. Rows are followed by key per table, in the order read (keyset order); a row SnapshotMarkers
 * holds back counts only once it is handed on, so the checkpoint never runs ahead of the rows.
 */
import type { ChangeEvent } from "../contracts.ts";
import { tableName } from "../contracts.ts";
import type { ExportedSnapshotProgress } from "./positions.ts";
import type { SnapshotRow } from "./snapshot-reader.ts";

type Key = readonly (string | null)[] | null;

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
  private readonly reading = new Map<string, { lastKey: Key; rowsDone: number }>();
  /** Keys of rows taken from the buffer and not handed on yet, per table (at most the one held back). */
  private readonly waiting = new Map<string, Key[]>();

  constructor(maxDoneChars = MAX_DONE_CHARS) {
    this.maxDoneChars = maxDoneChars;
  }

  /** A row taken from the snapshot's buffer (a reset too: it hands on nothing of its own to follow). */
  taken(row: SnapshotRow): void {
    if (row.values === null) return;
    const values = row.values;
    const table = tableName(row.table.schema);
    const key = row.table.uniqueKey ? row.table.keyIndexes.map((i) => values[i] ?? null) : null;
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
        this.reading.set(table, { lastKey: key, rowsDone: (entry?.rowsDone ?? 0) + 1 });
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
    return { done: [...this.done], reading: [...this.reading].map(([table, { lastKey, rowsDone }]) => ({ table, lastKey, rowsDone })) };
  }
}
