/**
 * Compatibility levels, as Confluent's registry defines them: which earlier versions a new schema
 * is checked against (the latest only, or all for *_TRANSITIVE) and in which direction
 * (BACKWARD: the new schema reads old data; FORWARD: old schemas read new data; FULL: both).
 */
import type { AvroType } from "./avro-parse.ts";
import { checkReaderWriter } from "./compatibility.ts";
import type { Incompatibility } from "./compatibility.ts";

export const COMPATIBILITY_LEVELS = [
  "BACKWARD",
  "BACKWARD_TRANSITIVE",
  "FORWARD",
  "FORWARD_TRANSITIVE",
  "FULL",
  "FULL_TRANSITIVE",
  "NONE",
] as const;

export type CompatibilityLevel = (typeof COMPATIBILITY_LEVELS)[number];

export const DEFAULT_COMPATIBILITY_LEVEL: CompatibilityLevel = "BACKWARD";

export function isCompatibilityLevel(value: unknown): value is CompatibilityLevel {
  return typeof value === "string" && (COMPATIBILITY_LEVELS as readonly string[]).includes(value);
}

export interface VersionedSchema {
  readonly version: number;
  readonly schema: AvroType;
}

export interface VersionIncompatibility extends Incompatibility {
  /** The earlier version the new schema conflicts with. */
  readonly version: number;
  /** "backward": the new schema cannot read that version's data; "forward": that version cannot read the new schema's data. */
  readonly direction: "backward" | "forward";
}

/**
 * Checks a candidate against earlier versions (oldest first) at a level. Returns every
 * incompatibility; an empty list means compatible.
 */
export function checkAgainstHistory(candidate: AvroType, history: readonly VersionedSchema[], level: CompatibilityLevel): VersionIncompatibility[] {
  if (level === "NONE" || history.length === 0) return [];
  const transitive = level.endsWith("_TRANSITIVE");
  const against = transitive ? [...history].reverse() : history.slice(-1);
  const backward = level.startsWith("BACKWARD") || level.startsWith("FULL");
  const forward = level.startsWith("FORWARD") || level.startsWith("FULL");
  const problems: VersionIncompatibility[] = [];
  for (const earlier of against) {
    if (backward) {
      for (const problem of checkReaderWriter(candidate, earlier.schema)) problems.push({ ...problem, version: earlier.version, direction: "backward" });
    }
    if (forward) {
      for (const problem of checkReaderWriter(earlier.schema, candidate)) problems.push({ ...problem, version: earlier.version, direction: "forward" });
    }
  }
  return problems;
}

/** One line a person reads: what breaks, against which version, where. */
export function describeIncompatibility(problem: VersionIncompatibility, level: CompatibilityLevel): string {
  const direction =
    problem.direction === "backward"
      ? `the new schema cannot read data written with version ${problem.version}`
      : `version ${problem.version} cannot read data written with the new schema`;
  return `${problem.message} (${problem.kind} at ${problem.path}; ${direction}; compatibility ${level})`;
}
