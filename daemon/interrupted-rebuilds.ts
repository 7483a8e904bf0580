/**
 * A rebuild stopped before its swap (kill -9, a stop, a crash) leaves its shadows in the target:
 * new generations half filled, which keep receiving the sink's live writes but are never swapped
 * in, as a rebuild never resumes. At start the sink's thread lists them, warns, and /status shows
 * them (`rebuild.state: "interrupted"`) until a rebuild of their tables finishes or they are
 * abandoned (`sluice replay --abandon-rebuild`, rebuild-abandon.ts).
 */
import type { RebuildShadow } from "../connectors/sinks/contract.ts";
import { rebuildEntry } from "./rebuild-progress.ts";
import type { RebuildProgress, RebuildProgressEntry } from "./rebuild-progress.ts";

export interface InterruptedRebuild {
  /** schema.table of each shadow's table, or its target where the target does not record the table. */
  readonly tables: readonly string[];
  /** The shadows' tables or indexes, `<target>__v<N>`. */
  readonly shadows: readonly string[];
  /** When the earliest was prepared, where the target records it; else when this process found them. */
  readonly sinceMs: number;
  /** Whether `sinceMs` is when this process found them (the target does not record when they were prepared). */
  readonly sinceFound: boolean;
}

/** schema.table, as `sluice replay --rebuild --table` and `sluice halted` take it (the target's name when it does not record the table). */
export function shadowTable(shadow: RebuildShadow): string {
  return shadow.table === null ? shadow.target : `${shadow.table.schema}.${shadow.table.table}`;
}

/** The shadows as an interrupted rebuild, null when there are none. */
export function interruptedRebuild(shadows: readonly RebuildShadow[], foundAtMs: number): InterruptedRebuild | null {
  if (shadows.length === 0) return null;
  const prepared = shadows.map((s) => s.preparedAtMs).filter((ms) => ms !== null);
  return {
    tables: [...new Set(shadows.map(shadowTable))].sort(),
    shadows: shadows.map((s) => s.physical).sort(),
    sinceMs: prepared.length === shadows.length ? Math.min(...prepared) : foundAtMs,
    sinceFound: prepared.length !== shadows.length,
  };
}

/** What to do, for the log and /status. */
export function interruptedRemedy(sink: string, interrupted: InterruptedRebuild): string {
  const tables = interrupted.tables.map((t) => ` --table ${t}`).join("");
  return (
    `run the rebuild again to finish it (it starts over, replacing these tables): sluice replay -c CONFIG --sink ${sink} --from-beginning --rebuild${tables} --execute; ` +
    `or drop them and keep the live tables as they are: sluice replay -c CONFIG --sink ${sink} --abandon-rebuild --execute (a dry run without --execute)`
  );
}

export function interruptedMessage(sink: string, interrupted: InterruptedRebuild): string {
  return (
    `sink "${sink}": a rebuild did not finish (the process was stopped or killed before its swap): its half-built ${interrupted.shadows.length === 1 ? "table" : "tables"} ` +
    `${interrupted.shadows.join(", ")} (of ${interrupted.tables.join(", ")}) ${interrupted.shadows.length === 1 ? "is still in the target and receives" : "are still in the target and receive"} this sink's writes, ` +
    `but a rebuild never resumes and ${interrupted.shadows.length === 1 ? "it is" : "they are"} never swapped in; the live tables serve unchanged. ` +
    `Unless another process of this sink is rebuilding it now, ${interruptedRemedy(sink, interrupted)}`
  );
}

/** How /status shows it: as a rebuild entry, so clients that list rebuilds list it too. */
export function interruptedEntry(sink: string, interrupted: InterruptedRebuild): RebuildProgressEntry {
  const since = new Date(interrupted.sinceMs).toISOString();
  return {
    state: "interrupted",
    tables: interrupted.tables,
    shadows: interrupted.shadows,
    since,
    recordsDone: 0,
    recordsTotal: null,
    recordsLeftOut: 0,
    recordsPerSecond: 0,
    etaSeconds: null,
    startedAt: since,
    finishedAt: null,
    error: `interrupted before its swap: ${interruptedRemedy(sink, interrupted)}`,
  };
}

/** A sink's `rebuild` in /status: one running, else an interrupted one, else the last (listed a while once finished). */
export function sinkRebuildEntry(sink: string, progress: RebuildProgress | null, interrupted: InterruptedRebuild | null, now = Date.now()): RebuildProgressEntry | null {
  const running = progress !== null && progress.finishedAtMs === null;
  if (!running && interrupted !== null) return interruptedEntry(sink, interrupted);
  return rebuildEntry(progress, now);
}
