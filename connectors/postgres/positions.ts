/**
 * How PostgreSQL positions are built and what they let Sluice acknowledge.
 *
 * A change's position is (commit LSN of its transaction, LSN of its own WAL record). Positions that
 * mark "everything through LSN x is done" have commit === change === x: the end of a transaction
 * (x = its commit LSN) or a heartbeat message outside any transaction. A change's own LSN is always
 * below its commit LSN, so the two kinds never collide, and a checkpoint says by itself whether its
 * transaction was complete.
 */
import type { Position } from "../contracts.ts";
import { formatLsn } from "./lsn.ts";
import { parseExportedSnapshotProgress } from "../common/exported-snapshot-progress.ts";
import type { ExportedSnapshotProgress } from "../common/exported-snapshot-progress.ts";

/** Position.resume of checkpoints taken while the initial snapshot is still running. */
export const SNAPSHOT_INCOMPLETE = "snapshot-incomplete";

export function throughPosition(lsn: bigint): Position {
  return { commit: lsn, change: lsn };
}

export function isThroughPosition(position: Position): boolean {
  return position.commit === position.change;
}

/**
 * Snapshot rows: after every change the snapshot shows (those committed before the consistent
 * point) and before every streamed change. Streamed transactions commit at or after the consistent
 * point, and all their changes lie at or after the slot's restart_lsn, so (consistent point,
 * restart_lsn - 1) is below them whether compared by commit first or by change alone.
 */
export function snapshotPosition(consistentPoint: bigint, restartLsn: bigint): Position {
  return { commit: consistentPoint, change: restartLsn - 1n };
}

/**
 * The LSN to report as flushed (the slot's confirmed_flush_lsn) once everything up to `position`
 * is durable. The server resends every transaction whose commit record starts at or after it.
 * A complete transaction: past its commit record. Partway through one: its commit LSN, so the
 * whole transaction comes again and the events already stored are skipped by position.
 */
export function flushLsnFor(position: Position): bigint {
  return isThroughPosition(position) ? position.commit + 1n : position.commit;
}

export function isSnapshotIncomplete(position: Position): boolean {
  return position.resume === SNAPSHOT_INCOMPLETE || (position.resume?.startsWith(`${SNAPSHOT_INCOMPLETE}${PROGRESS_MARK}`) ?? false);
}

/** How far an exported initial snapshot got (common/exported-snapshot-progress.ts); a crash resumes from it (slot-setup.ts planStart; docs/snapshots.md). */
export type { ExportedSnapshotProgress };

const PROGRESS_MARK = "\nexported:";

/**
 * The catalog marks (catalog-marks.ts) an exported snapshot's checkpoints carry at most, in characters: they ride in
 * each of them (the layouts' record, which carries them past the snapshot, is not written before it ends).
 */
export const MAX_SNAPSHOT_MARKS_CHARS = 64 * 1024;

/**
 * Position.resume of a checkpoint taken during an exported snapshot, with its progress and the catalog marks read before
 * it (a `marks` field of the progress, which an older Sluice ignores), so a start resuming the snapshot compares its
 * catalog looks with them. Marks over MAX_SNAPSHOT_MARKS_CHARS are left out.
 */
export function snapshotIncompleteResume(progress: ExportedSnapshotProgress, marks: string | null = null): string {
  const carried = marks !== null && marks.length <= MAX_SNAPSHOT_MARKS_CHARS ? { ...progress, marks } : progress;
  return `${SNAPSHOT_INCOMPLETE}${PROGRESS_MARK}${JSON.stringify(carried)}`;
}

/** The catalog marks an incomplete exported snapshot's checkpoint carries (snapshotIncompleteResume); null when none. */
export function exportedSnapshotMarks(position: Position): string | null {
  const prefix = `${SNAPSHOT_INCOMPLETE}${PROGRESS_MARK}`;
  if (position.resume?.startsWith(prefix) !== true) return null;
  const marks = (JSON.parse(position.resume.slice(prefix.length)) as { marks?: unknown }).marks;
  return typeof marks === "string" ? marks : null;
}

/** The progress an incomplete snapshot's checkpoint carries; null for checkpoints without (written before it was kept). */
export function exportedSnapshotProgress(position: Position): ExportedSnapshotProgress | null {
  const prefix = `${SNAPSHOT_INCOMPLETE}${PROGRESS_MARK}`;
  if (position.resume?.startsWith(prefix) !== true) return null;
  return parseExportedSnapshotProgress(JSON.parse(position.resume.slice(prefix.length)));
}

/**
 * A position for people (logs, /status, errors), in PostgreSQL's LSN notation: "0/1CD6E7F0" when
 * everything through that LSN is done; a change's own LSN followed by its transaction's commit LSN.
 */
export function formatPostgresPosition(position: Position): string {
  const text = isThroughPosition(position) ? formatLsn(position.commit) : `${formatLsn(position.change)} (commit ${formatLsn(position.commit)})`;
  return isSnapshotIncomplete(position) ? `${text}, snapshot incomplete` : text;
}
