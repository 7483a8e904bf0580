/**
 * A named signal heard by every thread of this process (sinks run in worker threads): an emitter
 * per name in each thread, joined across threads by a BroadcastChannel of that name. Other
 * processes do not hear it; their readers poll.
 */
import { EventEmitter } from "node:events";
import { BroadcastChannel } from "node:worker_threads";

const signals = new Map<string, EventEmitter>();
const wiring = new WeakMap<EventEmitter, { readonly channel: BroadcastChannel; readonly event: string }>();

/** This thread's emitter of the signal `name`: it emits `event` when the signal is raised in any thread. */
export function processSignal(name: string, event: string): EventEmitter {
  let local = signals.get(name);
  if (!local) {
    const emitter = new EventEmitter();
    emitter.setMaxListeners(0);
    const channel = new BroadcastChannel(name);
    channel.onmessage = () => emitter.emit(event);
    // The channel alone must not keep a process or thread alive.
    channel.unref();
    wiring.set(emitter, { channel, event });
    signals.set(name, emitter);
    local = emitter;
  }
  return local;
}

/** Raises the signal in this thread and in every other thread of the process. */
export function raiseProcessSignal(signal: EventEmitter): void {
  const wired = wiring.get(signal);
  if (wired === undefined) throw new Error("raiseProcessSignal: not an emitter made by processSignal");
  signal.emit(wired.event);
  wired.channel.postMessage(0);
}
