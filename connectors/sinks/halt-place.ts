/**
 * Where a table under `on_error: halt` stops within one write: at its first failing change, by version, then by place
 * in the write. Many changes can share a version (an initial snapshot's rows, the rows of one multi-row statement),
 * and the runner reads a halted table on from its poison record (`sluice halted skip`: from the record after it):
 * a change of the poison's version that came before it must be applied, or it is never applied at all.
 */
import type { RowChange } from "./batch.ts";

export interface HaltPlace {
  readonly version: bigint;
  /** The change's index in the write (topic order within a partition). */
  readonly index: number;
}

/** The earlier of two places (null: none yet). */
export function earlierPlace(a: HaltPlace | null, b: HaltPlace): HaltPlace {
  return a === null || b.version < a.version || (b.version === a.version && b.index < a.index) ? b : a;
}

/** Where a failing row (all its folded changes fail together) puts the halt: at its first change. */
export function failedRowPlace(row: Pick<RowChange, "version" | "indices">): HaltPlace {
  let index = row.indices[0]!;
  for (const i of row.indices) if (i < index) index = i;
  return { version: row.version, index };
}

/** Whether every change folded into the row comes before the halt (a row that comes after it waits for a retry). */
export function beforeHalt(row: Pick<RowChange, "version" | "indices">, halt: HaltPlace | null): boolean {
  if (halt === null || row.version < halt.version) return true;
  return row.version === halt.version && row.indices.every((index) => index < halt.index);
}
