/**
 * Abandoning an interrupted rebuild (`sluice replay --sink NAME --abandon-rebuild [--table T]...
 * [--execute]`): drops the shadows a rebuild that stopped before its swap left in the target
 * (interrupted-rebuilds.ts). The live tables are not touched. Run by the sink's thread when a
 * daemon runs it, else by the command itself under the sink's lease.
 */
import { SluiceError } from "../connectors/errors.ts";
import type { RebuildableSink, RebuildShadow } from "../connectors/sinks/contract.ts";
import { tableLabel } from "../connectors/sinks/naming.ts";
import type { Logger } from "../runtime/logger.ts";
import { shadowTable } from "./interrupted-rebuilds.ts";
import { sinkSharedError } from "./rebuild-sharing.ts";
import type { OtherSinkProcess } from "./rebuild-sharing.ts";
import { oneLine } from "./terminal-text.ts";

/** Refused: a rebuild of the sink runs in this process; its shadows are not interrupted. */
export const REBUILD_RUNNING = "REBUILD_RUNNING";

export interface AbandonedShadow {
  /** schema.table, or the target where the target does not record the table. */
  readonly table: string;
  /** The half-built table or index. */
  readonly physical: string;
}

export interface AbandonReport {
  /** The shadows dropped, or that would be in a dry run. */
  readonly shadows: readonly AbandonedShadow[];
  readonly dropped: boolean;
  /** Tables asked for that have no shadow. */
  readonly notFound: readonly string[];
  /** Shadows whose table the target does not record: the sink cannot drop them; they are dropped by hand. */
  readonly unowned: readonly AbandonedShadow[];
}

function matches(shadow: RebuildShadow, wanted: string): boolean {
  return shadowTable(shadow) === wanted || (shadow.table !== null && tableLabel(shadow.table) === wanted) || shadow.target === wanted || shadow.physical === wanted;
}

/**
 * `sharing`: the other processes running the sink (rebuild-sharing.ts). Dropping is refused
 * (REBUILD_SINK_SHARED) while there are any: one that started while the shadows existed writes into them.
 */
export async function abandonRebuild(
  sink: RebuildableSink,
  tables: readonly string[],
  execute: boolean,
  signal: AbortSignal,
  logger: Logger,
  sharing?: { readonly group: string; readonly others: () => Promise<readonly OtherSinkProcess[]> },
): Promise<AbandonReport> {
  const { owned, unowned, notFound } = planAbandon((await sink.rebuildShadows?.(signal)) ?? [], tables);
  if (execute && owned.length > 0 && sharing !== undefined) {
    const others = await sharing.others();
    if (others.length > 0) throw sinkSharedError(sink.name, sharing.group, others, "abandon");
  }
  if (execute) {
    for (const shadow of owned) {
      await sink.abortRebuild(shadow.table!, signal);
      logger.warn({ sink: sink.name, table: shadowTable(shadow), shadow: shadow.physical }, "interrupted rebuild abandoned: its half-built table dropped; the live table serves unchanged");
    }
  }
  return { shadows: owned.map(describe), dropped: execute && owned.length > 0, notFound, unowned };
}

export interface AbandonPlan {
  /** The chosen shadows whose table the target records: the ones the sink can drop. */
  readonly owned: readonly RebuildShadow[];
  readonly unowned: readonly AbandonedShadow[];
  readonly notFound: readonly string[];
}

/** Which of the target's shadows `tables` (none: all) choose. */
export function planAbandon(all: readonly RebuildShadow[], tables: readonly string[]): AbandonPlan {
  const chosen = tables.length === 0 ? all : all.filter((shadow) => tables.some((wanted) => matches(shadow, wanted)));
  return {
    owned: chosen.filter((shadow) => shadow.table !== null),
    unowned: chosen.filter((shadow) => shadow.table === null).map(describe),
    notFound: tables.filter((wanted) => !all.some((shadow) => matches(shadow, wanted))),
  };
}

/** The report of a plan nothing was dropped for (a dry run, or nothing the sink can drop). */
export function undroppedReport(plan: AbandonPlan): AbandonReport {
  return { shadows: plan.owned.map(describe), dropped: false, notFound: plan.notFound, unowned: plan.unowned };
}

function describe(shadow: RebuildShadow): AbandonedShadow {
  return { table: shadowTable(shadow), physical: shadow.physical };
}

export function rebuildRunningError(sink: string): SluiceError {
  return new SluiceError(`sink "${sink}" is rebuilding now: its new tables are not an interrupted rebuild; nothing dropped. Wait for the rebuild to finish (sluice status shows it)`, {
    code: REBUILD_RUNNING,
    context: { component: "rebuild", sink },
  });
}

/** The command's report, for its standard output. */
export function describeAbandon(sink: string, report: AbandonReport, execute: boolean): string {
  const lines: string[] = [];
  // Table names as the daemon or the target gives them: each on one line.
  const list = (shadows: readonly AbandonedShadow[]) => shadows.map((s) => `${oneLine(s.table)} (${oneLine(s.physical)})`).join(", ");
  if (report.notFound.length > 0) lines.push(`No interrupted rebuild of ${report.notFound.map(oneLine).join(", ")} in sink "${sink}".`);
  if (report.unowned.length > 0) {
    lines.push(`Half-built ${list(report.unowned)}: the target does not record their table, so Sluice cannot drop them; drop them by hand (docs/operations.md, "Interrupted rebuilds").`);
  }
  if (report.shadows.length === 0) {
    if (report.notFound.length === 0 && report.unowned.length === 0) lines.push(`Sink "${sink}" has no interrupted rebuild: nothing to abandon.`);
    return `${lines.join("\n")}\n`;
  }
  if (execute) lines.push(`Done: dropped the half-built ${list(report.shadows)} of sink "${sink}"; the live tables serve unchanged.`);
  else lines.push(`Abandoning the interrupted rebuild of sink "${sink}" drops the half-built ${list(report.shadows)}; the live tables are left as they are.`, "Dry run: nothing changed. Run again with --execute.");
  return `${lines.join("\n")}\n`;
}
