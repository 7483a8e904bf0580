/**
 * A rebuild's progress as the terminal, /status, `sluice status` and the metrics show it: records
 * read of the records to read (offsets from each partition's first to its end when the rebuild
 * began), records per second, the time left, and the step it is at.
 */
import { formatDuration } from "./snapshot-progress.ts";
import { oneLine } from "./terminal-text.ts";

export type RebuildState = "reading" | "checking" | "swapping" | "done" | "failed";

export interface RebuildProgress {
  readonly sink: string;
  readonly state: RebuildState;
  /** schema.table of the tables rebuilt (known once their topics were probed). */
  readonly tables: readonly string[];
  /** Records read so far (offsets past each partition's first, up to the rebuild's end offsets). */
  readonly recordsDone: number;
  /** Records the rebuild reads; null until the end offsets are taken. */
  readonly recordsTotal: number | null;
  /** Records read that no decoder could read, left out (rebuild-records.ts). */
  readonly recordsLeftOut: number;
  readonly recordsPerSecond: number;
  /** Seconds left at the current rate; null when unknown or not reading. */
  readonly etaSeconds: number | null;
  readonly startedAtMs: number;
  readonly finishedAtMs: number | null;
  /** Why it failed or was refused. */
  readonly error: string | null;
  /** While a step waits out a retriable failure of the target (unreachable): what failed and when it is tried again. */
  readonly waiting?: string | null;
}

/** Follows one rebuild: counts, a smoothed rate, and reports at most every `intervalMs` (state changes at once). */
export class RebuildProgressMeter {
  private current: RebuildProgress;
  private readonly report: (progress: RebuildProgress) => void;
  private readonly intervalMs: number;
  private lastReportMs = 0;
  private sample: { atMs: number; records: number } | null = null;

  constructor(sink: string, report: (progress: RebuildProgress) => void, intervalMs = 500, now = Date.now()) {
    this.report = report;
    this.intervalMs = intervalMs;
    this.current = { sink, state: "reading", tables: [], recordsDone: 0, recordsTotal: null, recordsLeftOut: 0, recordsPerSecond: 0, etaSeconds: null, startedAtMs: now, finishedAtMs: null, error: null };
  }

  get progress(): RebuildProgress {
    return this.current;
  }

  planned(tables: readonly string[], recordsTotal: number, now = Date.now()): void {
    this.current = { ...this.current, tables, recordsTotal };
    this.sample = { atMs: now, records: this.current.recordsDone };
    this.emit(true, now);
  }

  /** Records left out so far: shown with the next report. */
  leftOut(records: number): void {
    this.current = { ...this.current, recordsLeftOut: records };
  }

  read(recordsDone: number, now = Date.now()): void {
    const sample = this.sample ?? { atMs: this.current.startedAtMs, records: 0 };
    let perSecond = this.current.recordsPerSecond;
    const seconds = (now - sample.atMs) / 1000;
    if (seconds >= 1) {
      const instant = (recordsDone - sample.records) / seconds;
      // Smoothed over ~5 samples: the ETA should not jump with every poll.
      perSecond = perSecond === 0 ? instant : perSecond * 0.8 + instant * 0.2;
      this.sample = { atMs: now, records: recordsDone };
    }
    const total = this.current.recordsTotal;
    const etaSeconds = total !== null && perSecond > 0 ? Math.max(0, (total - recordsDone) / perSecond) : null;
    this.current = { ...this.current, recordsDone, recordsPerSecond: perSecond, etaSeconds };
    this.emit(false, now);
  }

  /**
   * A step waits for the target (`what`), or no longer (null): reported at once. While it waits
   * nothing is read: no rate and no time left (the rate before the outage would promise an end
   * that does not come), and the rate is measured afresh from where it goes on.
   */
  waiting(what: string | null, now = Date.now()): void {
    this.current = { ...this.current, waiting: what, ...(what === null ? {} : { recordsPerSecond: 0, etaSeconds: null }) };
    if (what === null && this.sample !== null) this.sample = { atMs: now, records: this.current.recordsDone };
    this.emit(true, now);
  }

  step(state: RebuildState, error: string | null = null, now = Date.now()): void {
    const finished = state === "done" || state === "failed";
    this.current = {
      ...this.current,
      state,
      error,
      etaSeconds: state === "done" ? 0 : state === "reading" ? this.current.etaSeconds : null,
      ...(state === "reading" ? {} : { recordsPerSecond: state === "done" && this.current.recordsDone > 0 ? this.current.recordsDone / Math.max(0.001, (now - this.current.startedAtMs) / 1000) : 0 }),
      finishedAtMs: finished ? now : null,
    };
    this.emit(true, now);
  }

  private emit(force: boolean, now: number): void {
    if (!force && now - this.lastReportMs < this.intervalMs) return;
    this.lastReportMs = now;
    this.report(this.current);
  }
}

/** How /status shows a rebuild (times as ISO text, numbers rounded). */
export interface RebuildProgressEntry {
  /** "interrupted": a rebuild that stopped before its swap left its shadows (interrupted-rebuilds.ts). */
  readonly state: RebuildState | "interrupted";
  readonly tables: readonly string[];
  /** Interrupted: the half-built tables or indexes, and since when they are there. */
  readonly shadows?: readonly string[];
  readonly since?: string;
  readonly recordsDone: number;
  readonly recordsTotal: number | null;
  /** Absent from a daemon before it was counted. */
  readonly recordsLeftOut?: number;
  readonly recordsPerSecond: number;
  readonly etaSeconds: number | null;
  readonly startedAt: string;
  readonly finishedAt: string | null;
  readonly error: string | null;
  /** While the rebuild waits out a failure of its target (RebuildProgress.waiting); absent otherwise. */
  readonly waiting?: string;
}

/** A finished rebuild stays listed this long. */
const DONE_SHOWN_MS = 10 * 60_000;

export function rebuildEntry(progress: RebuildProgress | null, now = Date.now()): RebuildProgressEntry | null {
  if (progress === null) return null;
  if (progress.finishedAtMs !== null && now - progress.finishedAtMs >= DONE_SHOWN_MS) return null;
  return {
    state: progress.state,
    tables: progress.tables,
    recordsDone: progress.recordsDone,
    recordsTotal: progress.recordsTotal,
    recordsLeftOut: progress.recordsLeftOut,
    recordsPerSecond: Math.round(progress.recordsPerSecond),
    etaSeconds: progress.etaSeconds === null ? null : Math.round(progress.etaSeconds),
    startedAt: new Date(progress.startedAtMs).toISOString(),
    finishedAt: progress.finishedAtMs === null ? null : new Date(progress.finishedAtMs).toISOString(),
    error: progress.error,
    ...(progress.waiting ? { waiting: progress.waiting } : {}),
  };
}

/** "rebuild warehouse [#####...............]  25%  250,000 / 1,000,000 records  12,000 records/s  ETA 1m02s  reading" */
export function rebuildLine(progress: Pick<RebuildProgress, "sink" | "state" | "recordsDone" | "recordsTotal" | "recordsPerSecond" | "etaSeconds"> & { readonly recordsLeftOut?: number }): string {
  const total = progress.recordsTotal;
  const fraction = total !== null && total > 0 ? Math.min(1, progress.recordsDone / total) : progress.state === "done" ? 1 : 0;
  const width = 20;
  const filled = Math.round(fraction * width);
  const percent = total !== null ? `${Math.floor(fraction * 100)}%`.padStart(4) : "  ?%";
  const counts = `${progress.recordsDone.toLocaleString("en-US")}${total !== null ? ` / ${total.toLocaleString("en-US")}` : ""} records`;
  const rate = progress.state === "reading" && progress.recordsPerSecond > 0 ? `  ${Math.round(progress.recordsPerSecond).toLocaleString("en-US")} records/s` : "";
  const eta = progress.state === "reading" && progress.etaSeconds !== null ? `  ETA ${formatDuration(progress.etaSeconds)}` : "";
  const leftOut = progress.recordsLeftOut ? `  ${progress.recordsLeftOut.toLocaleString("en-US")} undecodable left out` : "";
  return `rebuild ${oneLine(progress.sink)} [${"#".repeat(filled)}${".".repeat(width - filled)}] ${percent}  ${counts}${leftOut}${rate}${eta}  ${progress.state}`;
}
