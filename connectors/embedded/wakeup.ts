/**
 * Wakes readers of an embedded log when records are appended. Within one process every
 * EmbeddedTopicLog on the same file shares one notifier, so readers wake at once without polling;
 * appends by another process are noticed by a bounded poll (the waiter's `pollMs`).
 */
import { EventEmitter } from "node:events";

const notifiers = new Map<string, EventEmitter>();

export function notifierFor(file: string): EventEmitter {
  let notifier = notifiers.get(file);
  if (!notifier) {
    notifier = new EventEmitter();
    notifier.setMaxListeners(0);
    notifiers.set(file, notifier);
  }
  return notifier;
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
    signal?.addEventListener("abort", done, { once: true });
  });
}
