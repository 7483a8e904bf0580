/**
 * Wakes readers of an embedded log when records are appended. Within one process every
 * EmbeddedTopicLog on the same file shares one notifier per thread, and notifiers of the same file
 * in other threads (sinks run in worker threads) hear of appends through a BroadcastChannel, so
 * readers wake at once without polling; appends by another process are noticed by a bounded poll
 * (the waiter's `pollMs`).
 */
import type { EventEmitter } from "node:events";
import { processSignal, raiseProcessSignal } from "../common/process-signal.ts";

/** The file's notifier in this thread: emits "append" for appends made in any thread. */
export function notifierFor(file: string): EventEmitter {
  return processSignal(`sluice-embedded-log:${file}`, "append");
}

/** Wakes this thread's readers of the file and those of every other thread. */
export function notifyAppend(notifier: EventEmitter): void {
  raiseProcessSignal(notifier);
}

/** Resolves on the next append notice, after `pollMs`, at `deadline`, or when `signal` aborts, whichever is first. */
export function waitForAppend(notifier: EventEmitter, pollMs: number, deadlineMs: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const wait = Math.max(0, Math.min(pollMs, deadlineMs - Date.now()));
    const done = () => {
      clearTimeout(timer);
      notifier.off("append", done);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, wait);
    notifier.on("append", done);
    if (signal?.aborted) done();
    else signal?.addEventListener("abort", done, { once: true });
  });
}
