/**
 * Snapshot progress as /status, `sluice status`, the metrics and the terminal show it: rows done,
 * the estimate, rows per second and the time left, for the initial snapshot and online ones.
 */
import type { TableSnapshotProgress } from "../connectors/contracts.ts";

export interface SnapshotProgressEntry {
  readonly table: string;
  readonly state: TableSnapshotProgress["state"];
  readonly rowsDone: number;
  readonly rowsEstimated: number | null;
  readonly rowsPerSecond: number;
  /** Seconds left at the current rate; null when unknown (no estimate, no rate, not running). */
  readonly etaSeconds: number | null;
  readonly startedAt: string | null;
  readonly finishedAt: string | null;
}

/** Finished tables stay listed this long. */
const DONE_SHOWN_MS = 10 * 60_000;

export function etaSeconds(progress: TableSnapshotProgress): number | null {
  if (progress.state !== "running" || progress.rowsEstimated === null || progress.rowsPerSecond <= 0) return null;
  return Math.max(0, (progress.rowsEstimated - progress.rowsDone) / progress.rowsPerSecond);
}

/** The tables still to read or running, and those finished in the last minutes. */
export function progressEntries(progress: readonly TableSnapshotProgress[], now = Date.now()): SnapshotProgressEntry[] {
  return progress
    .filter((p) => p.state !== "done" || (p.finishedAtMs !== null && now - p.finishedAtMs < DONE_SHOWN_MS))
    .map((p) => ({
      table: p.table,
      state: p.state,
      rowsDone: p.rowsDone,
      rowsEstimated: p.rowsEstimated,
      rowsPerSecond: Math.round(p.rowsPerSecond),
      etaSeconds: etaSeconds(p) === null ? null : Math.round(etaSeconds(p)!),
      startedAt: p.startedAtMs === null ? null : new Date(p.startedAtMs).toISOString(),
      finishedAt: p.finishedAtMs === null ? null : new Date(p.finishedAtMs).toISOString(),
    }));
}

/** "1h02m", "3m05s", "12s". */
export function formatDuration(seconds: number): string {
  const s = Math.round(seconds);
  if (s >= 3600) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${s}s`;
}
