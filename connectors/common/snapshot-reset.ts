/**
 * The reset that closes every table's snapshot: a truncate event (op "t", source.snapshot true)
 * published after the table's last snapshot row, so a snapshot that starts over (after a crash
 * in an earlier attempt, or a re-snapshot on a new slot or binlog position) leaves no rows behind
 * that an earlier capture wrote and the source has deleted since.
 *
 * Its version is one below the snapshot rows': sinks drop every row at or below it (all that
 * earlier captures wrote: their positions all precede the new snapshot's) and keep the new
 * snapshot's rows and every later streamed change, whatever order they arrive in. It comes last
 * so that sinks never show the table empty while its rows are read again (it came first once,
 * and a big table vanished for minutes). Consumers that apply a topic in order without versions
 * must skip it (op "t" with source.snapshot true): it only removes an interrupted attempt's rows.
 * It is queued before the snapshot ends, so a crash before it is written leaves the snapshot
 * incomplete in the checkpoint and the table is read again, reset included. Capture writes it to
 * the control topic (daemon/control-records.ts), as every truncate, including the one closing an
 * online snapshot (postgres/incremental-snapshot.ts); sinks hold it until every partition of the
 * table's data topic is applied past the rows written before it (daemon/snapshot-reset-gate.ts).
 */
import type { Position } from "../contracts.ts";

export function snapshotResetPosition(snapshot: Position): Position {
  return { commit: snapshot.commit, change: snapshot.change - 1n };
}
