/**
 * The reset that opens every table's snapshot: a truncate event (op "t", source.snapshot true)
 * published before the table's first snapshot row, so a snapshot that starts over (after a crash
 * in an earlier attempt, or a re-snapshot on a new slot or binlog position) leaves no rows behind
 * that an earlier capture wrote and the source has deleted since.
 *
 * Its version is one below the snapshot rows': sinks drop every row at or below it (all that
 * earlier captures wrote: their positions all precede the new snapshot's) and keep the new
 * snapshot's rows and every later streamed change. Consumers that apply a topic in order without
 * versions see "truncate, then the table's rows", which ends in the same state.
 */
import type { Position } from "../contracts.ts";

export function snapshotResetPosition(snapshot: Position): Position {
  return { commit: snapshot.commit, change: snapshot.change - 1n };
}
