/**
 * A named signal heard by every thread of this process (sinks run in worker threads): an emitter
 * per name in each thread, joined across threads by a counter in memory all threads share. Other
 * processes do not hear it; their readers poll.
 *
 * Not a BroadcastChannel: Node hands each message of one to its listeners as a MessageEvent, whose
 * class lives in Node's bundled undici, so the first message a thread received loaded undici (with
 * http2 and web streams) into that thread for good: ~2.5 MiB more heap in use and ~5 MiB more RSS
 * per sink thread (measured in a worker; docs/benchmarks.md, memory budget).
 *
 * The shared memory is a table of name slots and counters, made by the main thread and handed to
 * every worker it starts (worker_threads environment data; daemon/sink-thread.ts loads this module
 * before it starts one). Raising a signal adds one to its counter and wakes the threads waiting on
 * it (Atomics.notify); each thread waits with Atomics.waitAsync, which keeps no thread alive.
 */
import { EventEmitter } from "node:events";
import { getEnvironmentData, setEnvironmentData } from "node:worker_threads";

const SLOTS = 64;
const SHARED_KEY = "sluice-process-signals";

/** [0, SLOTS): the hash of the name holding each slot (0: free); [SLOTS, 2 × SLOTS): each slot's counter. */
const shared = sharedTable();

function sharedTable(): Int32Array {
  const inherited = getEnvironmentData(SHARED_KEY);
  if (inherited instanceof SharedArrayBuffer) return new Int32Array(inherited);
  // The main thread, or a thread started before any thread made the table: it makes it, and threads started from here on share it.
  const buffer = new SharedArrayBuffer(2 * SLOTS * Int32Array.BYTES_PER_ELEMENT);
  setEnvironmentData(SHARED_KEY, buffer);
  return new Int32Array(buffer);
}

interface Wiring {
  readonly counter: number;
  readonly event: string;
  /** The counter's value this thread has emitted for. */
  seen: number;
}

const signals = new Map<string, EventEmitter>();
const wiring = new WeakMap<EventEmitter, Wiring>();

/** FNV-1a of the name's UTF-16 code units, never 0 (a free slot). */
function nameHash(name: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) hash = Math.imul(hash ^ name.charCodeAt(i), 0x01000193);
  return hash === 0 ? 1 : hash;
}

/**
 * The counter of `name`: the slot its hash holds, claimed if none does. Names whose hashes are
 * equal, or any name once every slot is taken, share a counter: their listeners then also wake
 * for the other's signal, which costs a look, never a missed signal.
 */
function counterOf(name: string): number {
  const hash = nameHash(name);
  for (let i = 0; i < SLOTS; i++) {
    const slot = ((hash >>> 0) + i) % SLOTS;
    const holder = Atomics.compareExchange(shared, slot, 0, hash);
    if (holder === 0 || holder === hash) return SLOTS + slot;
  }
  return SLOTS + ((hash >>> 0) % SLOTS);
}

function listen(emitter: EventEmitter, wired: Wiring): void {
  const woke = () => {
    const now = Atomics.load(shared, wired.counter);
    if (now !== wired.seen) {
      wired.seen = now;
      emitter.emit(wired.event);
    }
    wait();
  };
  const wait = () => {
    const result = Atomics.waitAsync(shared, wired.counter, wired.seen);
    if (result.async) void result.value.then(woke);
    else queueMicrotask(woke);
  };
  wait();
}

/** This thread's emitter of the signal `name`: it emits `event` when the signal is raised in any thread. */
export function processSignal(name: string, event: string): EventEmitter {
  let local = signals.get(name);
  if (!local) {
    const emitter = new EventEmitter();
    emitter.setMaxListeners(0);
    const counter = counterOf(name);
    const wired: Wiring = { counter, event, seen: Atomics.load(shared, counter) };
    wiring.set(emitter, wired);
    signals.set(name, emitter);
    listen(emitter, wired);
    local = emitter;
  }
  return local;
}

/** Raises the signal in this thread and in every other thread of the process. */
export function raiseProcessSignal(signal: EventEmitter): void {
  const wired = wiring.get(signal);
  if (wired === undefined) throw new Error("raiseProcessSignal: not an emitter made by processSignal");
  // This thread emits now; its own waiter then finds nothing new (unless another thread raised it meanwhile).
  wired.seen = (Atomics.add(shared, wired.counter, 1) + 1) | 0;
  signal.emit(wired.event);
  Atomics.notify(shared, wired.counter);
}
