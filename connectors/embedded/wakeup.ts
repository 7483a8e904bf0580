/**
 * Wakes readers of an embedded log when records are appended. Within one process every
 * EmbeddedTopicLog on the same file shares one notifier per thread, and notifiers of the same file
 * in other threads (sinks run in worker threads) hear of appends through a BroadcastChannel, so
 * readers wake at once without polling; appends by another process are noticed by a bounded poll
 * (the waiter's `pollMs`).
 */
import { EventEmitter } from "node:events";
import { BroadcastChannel } from "node:worker_threads";

const notifiers = new Map<string, EventEmitter>();
const channels = new WeakMap<EventEmitter, BroadcastChannel>();

/** The file's notifier in this thread: emits "append" for appends made in any thread. */
export function notifierFor(file: string): EventEmitter {
  let notifier = notifiers.get(file);
  if (!notifier) {
    const local = new EventEmitter();
    local.setMaxListeners(0);
    const channel = new BroadcastChannel(`sluice-embedded-log:${file}`);
    channel.onmessage = () => local.emit("append");
    // The channel alone must not keep a process or thread alive.
    channel.unref();
    channels.set(local, channel);
    notifiers.set(file, local);
    notifier = local;
  }
  return notifier;
}

/** Wakes this thread's readers of the file and those of every other thread. */
export function notifyAppend(notifier: EventEmitter): void {
  notifier.emit("append");
  channels.get(notifier)?.postMessage(0);
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
