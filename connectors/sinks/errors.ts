/** The errors every sink raises with the same codes and context (component, sink, table, column, position). */
import { SluiceError } from "../errors.ts";
import type { ErrorContext } from "../errors.ts";

export const SCHEMA_UNSUPPORTED = "SINK_SCHEMA_UNSUPPORTED";
export const ROW_REJECTED = "SINK_ROW_REJECTED";
export const REBUILD_STATE = "SINK_REBUILD_STATE";
export const TARGET_BLOCKED = "SINK_TARGET_BLOCKED";
/** A target changed by hand so that it no longer matches what the sink wrote (a ClickHouse table or column dropped): the runtime halts the table. */
export const CATALOG_MISMATCH = "SINK_CATALOG_MISMATCH";

/**
 * The sink's server refuses its credentials (authentication) or its user's rights (authorization).
 * At the start a plain config error; once the sink ran, the runtime waits it out as that sink's
 * outage (a rotated password), opening the sink again with backoff: the other sinks and capture go on.
 */
export const AUTH_FAILED = "SINK_AUTH_FAILED";

/** Whether `error` is the sink's server refusing its credentials or rights (AUTH_FAILED). */
export function isAuthRefusal(error: unknown): error is SluiceError {
  return error instanceof SluiceError && error.code === AUTH_FAILED;
}

/**
 * The target the sink writes is no longer the one it opened (a DuckDB file deleted or replaced at
 * its path while the sink runs): writes are refused until the sink is opened again, and the
 * runtime then resumes from the offsets the target at the path keeps (none: from the beginning).
 */
export const TARGET_REPLACED = "SINK_TARGET_REPLACED";

/** A schema change the target cannot take; the runtime halts the table. */
export function schemaUnsupported(message: string, context: { sink: string; table: string; column?: string }, cause?: unknown): SluiceError {
  const full: ErrorContext = { component: "sink", ...context };
  return new SluiceError(`sink "${context.sink}", table ${context.table}${context.column ? `, column "${context.column}"` : ""}: ${message}`, {
    code: SCHEMA_UNSUPPORTED,
    retriable: false,
    context: full,
    cause,
  });
}

/** A value the sink cannot convert for its target, found before sending; `column` names where. */
export class ValueRejected extends Error {
  readonly column: string | undefined;
  constructor(message: string, column?: string) {
    super(message);
    this.name = "ValueRejected";
    this.column = column;
  }
}

/** A row the target rejects (poison): reported per item, never retried. */
export function rowRejected(
  reason: string,
  context: { sink: string; table: string; position?: string; column?: string | undefined },
  cause?: unknown,
): SluiceError {
  const where = context.column ? ` column "${context.column}"` : "";
  const clean: ErrorContext = { component: "sink", sink: context.sink, table: context.table };
  if (context.position !== undefined) clean.position = context.position;
  if (context.column !== undefined) clean.column = context.column;
  return new SluiceError(`sink "${context.sink}" rejected a row of ${context.table}${where}: ${reason}`, {
    code: ROW_REJECTED,
    retriable: false,
    context: clean,
    cause,
  });
}

/** A SINK_TARGET_BLOCKED error: `liftsByItself` when the target may lift the block on its own, so the runtime retries the table by itself. */
export class TargetBlockedError extends SluiceError {
  readonly liftsByItself: boolean;

  constructor(message: string, liftsByItself: boolean, context: ErrorContext, cause?: unknown) {
    super(message, { code: TARGET_BLOCKED, retriable: false, context, cause });
    this.liftsByItself = liftsByItself;
  }
}

/**
 * The table's target refuses every write for a reason of its own, not of the row (an Elasticsearch
 * index block: index.blocks.write, or read_only_allow_delete at the flood-stage disk watermark).
 * The runtime halts the table under either on_error policy: dead-lettering would empty the table's
 * stream into the dead-letter topic while the block lasts. Without a `remedy`, the block is one
 * the target (or its operator) lifts and nothing else needs doing: the runtime retries the table by
 * itself (retry.blocked_interval). A `remedy` names what an operator must decide first (an index
 * deleted: fill it again, or go on with the changes from here only): then only the operator's
 * `sluice halted retry` reads the table again. `readAgain` overrides that: a remedy the operator applies to the target alone
 * (an alias put right) needs no command to go on after it. `headline` says what the target did when it is not a refusal
 * (writes accepted into another index).
 */
export function targetBlocked(reason: string, context: { sink: string; table: string; position?: string }, remedy?: string, cause?: unknown, readAgain = remedy === undefined, headline = "the target refuses writes"): TargetBlockedError {
  const clean: ErrorContext = { component: "sink", sink: context.sink, table: context.table };
  if (context.position !== undefined) clean.position = context.position;
  const at = context.position === undefined ? "" : ` (at ${context.position})`;
  const next = remedy ?? "it is read again by itself (retry.blocked_interval) and goes on once the block is lifted; sluice halted retry reads it again at once";
  return new TargetBlockedError(`sink "${context.sink}", table ${context.table}: ${headline}${at}: ${reason}; the table halts (under on_error dead-letter too): ${next}`, readAgain, clean, cause);
}

/** Whether a table halted by `error` may go on by itself: its target refused writes with a block the target lifts (targetBlocked without a remedy). */
export function liftsByItself(error: unknown): boolean {
  return error instanceof TargetBlockedError && error.liftsByItself;
}

export function rebuildState(message: string, context: { sink: string; table: string }): SluiceError {
  return new SluiceError(`sink "${context.sink}", table ${context.table}: ${message}`, {
    code: REBUILD_STATE,
    retriable: false,
    context: { component: "sink", ...context },
  });
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
