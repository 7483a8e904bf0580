/**
 * Online snapshots and unchanged TOAST columns. Under REPLICA IDENTITY DEFAULT an update that
 * leaves a TOASTed column alone does not carry it (the column is UNCHANGED: sinks keep the value
 * they have). A sink the snapshot fills has no row for a key until the key's chunk arrives, so a
 * streamed update of that key must not be the only thing it gets:
 *
 * - inside a chunk's window the update replaces the chunk row. The row handed on instead is the
 *   update's, its unchanged columns taken from the chunk row: no change in the window carried
 *   them, so they held the same value all through the window, the one the chunk read. Its
 *   version is the last such change's commit LSN: above the changes folded in, below any later
 *   change of the row (which waits for that commit's row lock).
 * - before the window, an update at a version above the chunk's (restart_lsn - 1) outranks the
 *   chunk row in every sink. The chunk read it (it committed before the low watermark), so the
 *   chunk row is handed on at that update's commit LSN instead.
 */
import type { ChangeEvent, ColumnValue, Row } from "../contracts.ts";
import { UNCHANGED } from "../contracts.ts";

export function hasUnchanged(row: Row | null): boolean {
  if (row === null) return false;
  for (const name in row) if (row[name] === UNCHANGED) return true;
  return false;
}

/** The change's row after it, an unchanged column taken from `before` where the replica identity sent it (FULL). */
function rowAfter(event: ChangeEvent): Record<string, ColumnValue> {
  const row: Record<string, ColumnValue> = { ...event.after };
  const before = event.before;
  if (before !== null) for (const name in row) if (row[name] === UNCHANGED && before[name] !== undefined) row[name] = before[name]!;
  return row;
}

/** Whether an update lacks a column's value (unchanged TOAST that no before-image holds). */
export function lacksValues(event: ChangeEvent): boolean {
  return event.op === "u" && hasUnchanged(event.after) && (event.before === null || hasUnchanged(rowAfter(event)));
}

/** What the changes of one key inside a chunk's window leave for the sinks. */
export interface WindowChanges {
  /** Commit LSN of the last change of the key in the window. */
  readonly commit: bigint;
  /**
   * The row the changes leave, with UNCHANGED where none of them carried the column; null when
   * nothing is missing (a change carried the whole row, or the row was deleted).
   */
  readonly partial: { readonly event: ChangeEvent; readonly row: Readonly<Record<string, ColumnValue>> } | null;
}

/** Folds one more change of a key in the window (in stream order) into what the earlier ones left. */
export function foldWindowChange(prior: WindowChanges | undefined, event: ChangeEvent): WindowChanges {
  const commit = event.source.position.commit;
  if (event.op === "d" || event.after === null || !hasUnchanged(event.after)) return { commit, partial: null };
  // A whole row from an earlier change in the window is in the sinks: they keep its values.
  if (prior !== undefined && prior.partial === null && event.op === "u") return { commit, partial: null };
  const earlier = prior?.partial?.row;
  const row = rowAfter(event);
  if (earlier !== undefined) for (const name in row) if (row[name] === UNCHANGED && earlier[name] !== undefined) row[name] = earlier[name]!;
  return { commit, partial: hasUnchanged(row) ? { event, row } : null };
}

/** The chunk row `read` as the row the window's changes left, the columns they did not carry taken from it; at their version. */
export function windowRow(read: ChangeEvent, changes: WindowChanges): ChangeEvent | null {
  const partial = changes.partial;
  if (partial === null) return null;
  const chunkRow = read.after ?? {};
  const row: Record<string, ColumnValue> = { ...partial.row };
  for (const name in row) if (row[name] === UNCHANGED && chunkRow[name] !== undefined) row[name] = chunkRow[name]!;
  return {
    ...read,
    key: partial.event.key,
    after: row,
    schema: partial.event.schema,
    source: { ...read.source, position: { ...read.source.position, change: changes.commit } },
  };
}

interface LatestUpdate {
  readonly change: bigint;
  readonly commit: bigint;
}

/**
 * The latest update with an unchanged column per key of the tables being snapshotted, kept while
 * a chunk may still be read at a version below it. Bounded: beyond `limit` keys, new keys are not
 * kept (and `onFull` is told once).
 */
export class PartialUpdates {
  private readonly byTable = new Map<string, Map<string, LatestUpdate>>();
  private size = 0;
  private readonly limit: number;
  private readonly onFull: () => void;
  private full = false;

  constructor(limit: number, onFull: () => void) {
    this.limit = limit;
    this.onFull = onFull;
  }

  record(table: string, key: string, event: ChangeEvent): void {
    let keys = this.byTable.get(table);
    if (keys === undefined) {
      keys = new Map();
      this.byTable.set(table, keys);
    }
    if (!keys.has(key)) {
      if (this.size >= this.limit) {
        if (!this.full) this.onFull();
        this.full = true;
        return;
      }
      this.size++;
    }
    keys.set(key, { change: event.source.position.change, commit: event.source.position.commit });
  }

  /** The commit LSN of the key's latest update above `version`, if any. */
  above(table: string, key: string, version: bigint): bigint | null {
    const latest = this.byTable.get(table)?.get(key);
    return latest !== undefined && latest.change > version ? latest.commit : null;
  }

  /** Forgets updates at or below `version`: no chunk still to be handed on is read below it. */
  prune(version: bigint): void {
    for (const [table, keys] of this.byTable) {
      for (const [key, latest] of keys) {
        if (latest.change > version) continue;
        keys.delete(key);
        this.size--;
      }
      if (keys.size === 0) this.byTable.delete(table);
    }
    if (this.size < this.limit) this.full = false;
  }

  forget(table: string): void {
    const keys = this.byTable.get(table);
    if (keys === undefined) return;
    this.size -= keys.size;
    this.byTable.delete(table);
    if (this.size < this.limit) this.full = false;
  }
}
