/**
 * A batch's tables written side by side. A source transaction often touches several tables, and
 * a target answers each table's write in a round trip of its own (an insert, a bulk request):
 * written one after another, their round trips add up in every batch's latency. Each table's own
 * changes stay in one task, in order; tables are independent (each row carries its version).
 * Memory: the tables' encoded rows are held at once, no more than one batch of a single table
 * holds (the batch bounds both).
 */

/** Tables written at once by one batch. */
export const TABLES_IN_FLIGHT = 4;

/**
 * Runs the tasks, at most `limit` at a time, and returns once every one started has finished; after
 * a failure no further task starts, and the first failure in task order is thrown. Never returns
 * (or throws) while a task still runs, so a retry of the whole write cannot overlap a write of the
 * failed attempt.
 */
export async function settleInTurn(tasks: readonly (() => Promise<void>)[], limit = TABLES_IN_FLIGHT): Promise<void> {
  const outcomes: { failed: boolean; error?: unknown }[] = tasks.map(() => ({ failed: false }));
  let next = 0;
  let failed = false;
  const lane = async (): Promise<void> => {
    while (next < tasks.length && !failed) {
      const index = next++;
      try {
        await tasks[index]!();
      } catch (error) {
        outcomes[index] = { failed: true, error };
        failed = true;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, limit), tasks.length) }, lane));
  const failure = outcomes.find((outcome) => outcome.failed);
  if (failure) throw failure.error;
}
