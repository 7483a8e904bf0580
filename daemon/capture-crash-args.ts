/** What capture-kill9.int.test.ts passes its child, capture-crash-writer.ts (a module of its own: importing the child would run it). */
import type { TopicsConfig } from "../config/schema.ts";

export interface CaptureCrashArgs {
  readonly deployment: string;
  readonly topics: TopicsConfig;
  readonly topic: string;
  readonly source: string;
  readonly changesPerBatch: number;
}

/** Checkpoint positions the child stores: commit = CAPTURE_CRASH_BASE + batch. */
export const CAPTURE_CRASH_BASE = 1_000_000n;
