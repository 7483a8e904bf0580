/**
 * One run of an async job shared by every caller that asks while it runs: a flood of requests for
 * the same answer (GET /metrics is open to anyone who reaches the daemon) makes it once, not once
 * per request. 400 connections each sending 20 pipelined GET /metrics had 8,000 gatherings (each
 * sink thread's metrics, merged, rendered) in progress at once and ran the main thread's heap out
 * of memory: the daemon ended.
 */
export function sharedRun<T>(run: () => Promise<T>): () => Promise<T> {
  let running: Promise<T> | null = null;
  return () =>
    (running ??= run().finally(() => {
      running = null;
    }));
}
