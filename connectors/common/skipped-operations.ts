/**
 * Which operations a source's data topics leave out: its `skipped_operations` (Debezium's
 * `skipped.operations`, default truncates), none with `envelope: sluice`. Transaction metadata
 * counts only the other events, as Debezium counts only the events it emits: a transaction's END
 * says how many records of it a consumer of the data topics will meet.
 */
import type { Op } from "../contracts.ts";

export interface SkippedOperationsConfig {
  readonly envelope: "debezium" | "sluice";
  readonly skipped_operations: readonly Op[];
}

export function skippedOperations(config: SkippedOperationsConfig): ReadonlySet<Op> {
  return new Set(config.envelope === "sluice" ? [] : config.skipped_operations);
}
