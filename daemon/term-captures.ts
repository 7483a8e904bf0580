/** The captures of one term of the capture lease, run together. */

/**
 * Runs every capture until `signal` aborts (the term ended, the daemon stops) or one fails, which
 * ends the others; rejects with the first failure. A signal aborted before the call (a stop that
 * came while the term was being set up) ends them at once: an abort event already fired is not
 * fired again for a listener added later.
 */
export async function runTermCaptures(runs: readonly ((signal: AbortSignal) => Promise<void>)[], signal: AbortSignal): Promise<void> {
  const failed = new AbortController();
  const ended = AbortSignal.any([signal, failed.signal]);
  const outcomes = await Promise.allSettled(
    runs.map((run) =>
      run(ended).catch((error: unknown) => {
        failed.abort(error);
        throw error;
      }),
    ),
  );
  const failure = outcomes.find((outcome): outcome is PromiseRejectedResult => outcome.status === "rejected");
  if (failure) throw failure.reason;
}
