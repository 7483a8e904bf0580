/** Checkpoint positions the crash writer stores: commit = CRASH_BASE + batch, change = 2·CRASH_BASE + batch (beyond 2^53). */
export const CRASH_BASE = 2n ** 60n;
