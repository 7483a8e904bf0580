/**
 * Halted tables as operators see them (/status, `sluice halted`), and how one is released:
 * `retry` reads the table again from its poison record (after the cause was fixed), `skip` sends
 * the poison record to the sink's dead-letter topic with its reason and goes on after it.
 */

/** A sink table halted by a record it could not apply. */
export interface HaltedSinkTable {
  readonly topic: string;
  readonly table: string;
  readonly error: string;
  /** "<partition>:<offset>" of the poison record. */
  readonly offset: string;
  readonly partition: number;
  /** The poison record's offset (decimal text: offsets are 64-bit). */
  readonly recordOffset: string;
  /** When the table halted (ISO 8601). */
  readonly since: string;
  /** The commands that release it. */
  readonly release: string;
}

export type HaltAction = "retry" | "skip";

export interface HaltReleaseReport {
  readonly sink: string;
  readonly table: string;
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  readonly error: string;
  readonly action: HaltAction;
  readonly executed: boolean;
  /** Where `skip` sends (or sent) the poison record. */
  readonly deadLetterTopic?: string;
  /** `skip --through/--all-pending`: per partition, the last offset whose refused records go to the dead-letter topic, and how many records that range holds. */
  readonly skipThrough?: readonly { readonly partition: number; readonly through: string; readonly records: string }[];
  /** What was done, or what `--execute` would do. */
  readonly description: string;
}

/** What releasing a table halted at capture did, or would do (`sluice halted retry|skip --source`). */
export interface CaptureReleaseReport {
  readonly source: string;
  readonly table: string;
  readonly action: HaltAction;
  readonly executed: boolean;
  /** The halt's error and code. */
  readonly error: string;
  readonly code: string;
  /** Where the table's changes wait, and how many of them (before the release). */
  readonly parkingTopic: string;
  readonly parked: number;
  /** After --execute: changes re-published to the table's topic, and the error if it halted again. */
  readonly republished?: number;
  readonly haltedAgain?: string;
  /**
   * A skip's range (`skip --source`, alone: the halting change; `--through OFFSET | --all-pending`: through that parking
   * offset): its first and last parking offsets, how many parked changes of the table it holds (the halting one is
   * skipped, each other one if capture refuses it again for `reason`), and the first of them.
   */
  readonly skipRange?: { readonly from: string; readonly through: string; readonly changes: number; readonly reason: string; readonly listed: readonly ParkedChange[] };
  /** After a skip's --execute: how many parked changes were skipped, and the first of them. */
  readonly skipped?: number;
  readonly skippedChanges?: readonly ParkedChange[];
  readonly description: string;
}

/** `sluice halted skip --source ... --through OFFSET` (a parking topic offset) or `--all-pending` (the table's last parked change now). */
export type CaptureSkipThrough = bigint | "pending";

/** A parked change as a capture skip names it; never a value but the key's (personal columns' left out). */
export interface ParkedChange {
  /** Its offset in the parking topic (decimal text). */
  readonly offset: string;
  readonly op: string;
  /** The row's key as JSON, a personal column's value as "(personal)". */
  readonly key: string;
  /** Its source position (LSN, GTID or binlog file:offset). */
  readonly position: string;
}

/**
 * The operator commands that release a halted sink table, for log lines, errors and /status.
 * `ranged`: the halt is one `skip --all-pending` takes (a refusal of the records, not of the target).
 */
export function releaseHint(sink: string, table: string, ranged = true): string {
  const args = `--sink ${sink} --table ${table}`;
  const range = ranged ? "add --all-pending to do the same for every record of the table the sink refuses so up to the end of its topic now, e.g. a keyless table's; " : "";
  return `fix the cause and run "sluice halted retry ${args} --execute", or move the record to the dead-letter topic with "sluice halted skip ${args} --execute" (${range}all dry runs without --execute; see docs/operations.md, "Halted tables")`;
}

export const NOT_HALTED = "HALT_NOT_FOUND";
/** sluice halted retry --force on a halt the sink has nothing to overrule for (Sink.acceptTargetAsIs). */
export const HALT_FORCE_INVALID = "HALT_FORCE_INVALID";
