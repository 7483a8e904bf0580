/**
 * Tells the readers of a topic log in this process that a topic was created, so a sink waiting
 * for its first topic (or for a new table's) looks at once instead of at its next poll of the
 * topic list. Every thread hears it (sinks run in worker threads) through a BroadcastChannel per
 * log; sinks in other processes still find new topics by polling.
 */
import type { EventEmitter } from "node:events";
import { processSignal, raiseProcessSignal } from "../common/process-signal.ts";

/** This thread's notices of the log named `log` (e.g. its file, or its Kafka deployment). */
function noticesOf(log: string): EventEmitter {
  return processSignal(`sluice-topic-created:${log}`, "created");
}

/** Tells this thread and every other thread of the process that the log has a new topic. */
export function announceTopicCreated(log: string): void {
  raiseProcessSignal(noticesOf(log));
}

/** Calls `listener` whenever a topic is created in the log, in any thread of this process; returns the unsubscribe. */
export function onTopicCreated(log: string, listener: () => void): () => void {
  const local = noticesOf(log);
  local.on("created", listener);
  return () => local.off("created", listener);
}
