/**
 * Gives back the memory of a large value once a stage let go of it.
 *
 * Why: a value of tens of MiB passes a thread as a few buffers and an external string, all
 * outside V8's heap. V8 frees them only at a collection, and a thread whose heap barely grew (the
 * value is not in it) may not collect for seconds: the capture thread still held three copies of
 * a 64 MiB value while the sink wrote it to DuckDB, each a copy the memory plan does not count.
 * So a stage that has let go of a record this large asks for a full collection. A full collection
 * stops the thread (a mark-compact of its whole heap), so a thread collects so only when at least
 * a large value's worth of memory is outside its heap, and at most once per
 * MIN_COLLECT_INTERVAL_MS (and per COLLECT_TIME_SHARE times the last one's duration): a table of
 * only large rows does not pause capture or a sink on every batch. A release within the interval
 * leaves one collection due at its end.
 */
import { getHeapStatistics, setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

/** A record at least this large is let go of with a collection (bigger than any batch of small records' single record). */
export const LARGE_VALUE_BYTES = 8 * 2 ** 20;
/** The least time between two collections of one thread asked for here. */
export const MIN_COLLECT_INTERVAL_MS = 1_000;
/** The least time between two collections, in durations of the last one: they take at most 1/this of a thread's time. */
export const COLLECT_TIME_SHARE = 20;

export interface LargeValueReleaserOptions {
  /** A full collection of this thread's heap; null: none to be had (releases do nothing). */
  readonly collect: () => (() => void) | null;
  /** Bytes outside the heap held by this thread's objects (V8's external memory). */
  readonly externalBytes: () => number;
  /** Milliseconds, rising. */
  readonly now: () => number;
  /** Runs `run` after `ms` without keeping the thread alive. */
  readonly schedule: (run: () => void, ms: number) => void;
}

/** A thread's collections after large values, rate-limited. */
export class LargeValueReleaser {
  readonly #options: LargeValueReleaserOptions;
  #collect: (() => void) | null | undefined;
  #attempts = 0;
  #nextAt = -Infinity;
  #due = false;

  constructor(options: LargeValueReleaserOptions) {
    this.#options = options;
  }

  /** Asks for a collection when `bytes` (the largest record a stage just let go of) is LARGE_VALUE_BYTES or more. */
  release(bytes: number): void {
    if (bytes < LARGE_VALUE_BYTES || this.#due) return;
    const wait = this.#nextAt - this.#options.now();
    if (wait <= 0) {
      this.#collectIfHeld();
      return;
    }
    this.#due = true;
    this.#options.schedule(() => {
      this.#due = false;
      this.#collectIfHeld();
    }, wait);
  }

  #collectIfHeld(): void {
    // Less than a large value outside the heap (a minor collection freed it already): nothing to give back. Not compared
    // with what the last collection left: a value another stage still held then is part of that, and is let go of now.
    if (this.#options.externalBytes() < LARGE_VALUE_BYTES) return;
    const collect = this.#gc();
    if (collect === null) return;
    const started = this.#options.now();
    collect();
    const ended = this.#options.now();
    this.#nextAt = ended + Math.max(MIN_COLLECT_INTERVAL_MS, COLLECT_TIME_SHARE * (ended - started));
  }

  #gc(): (() => void) | null {
    // Taken once; a failed attempt (another thread set the flag back meanwhile) is tried again a few times.
    if (this.#collect === undefined || (this.#collect === null && this.#attempts < 3)) {
      this.#attempts++;
      this.#collect = this.#options.collect();
    }
    return this.#collect;
  }
}

/** Whether this process was started with V8's gc exposed (then every context has it and the flag is left alone). */
function startedWithExposedGc(): boolean {
  const options = [...process.execArgv, ...(process.env["NODE_OPTIONS"] ?? "").split(/\s+/)];
  return options.some((option) => option === "--expose-gc" || option === "--expose_gc");
}

/**
 * V8's gc function for this thread, from a context of its own, or null. The flag is process-wide and
 * other threads set it too, so this never throws: a context made while another thread had set the
 * flag back has no gc (null, tried again later). The flag is set back only if the process was not
 * started with it, so threads started later keep a gc they were started with.
 */
export function obtainGc(): (() => void) | null {
  const own = (globalThis as { gc?: unknown }).gc;
  if (typeof own === "function") return own as () => void;
  const keepFlag = startedWithExposedGc();
  try {
    setFlagsFromString("--expose-gc");
    const found: unknown = runInNewContext("typeof gc === 'function' ? gc : null");
    return typeof found === "function" ? (found as () => void) : null;
  } catch {
    return null;
  } finally {
    if (!keepFlag) setFlagsFromString("--no-expose-gc");
  }
}

const thisThread = new LargeValueReleaser({
  collect: obtainGc,
  externalBytes: () => getHeapStatistics().external_memory,
  now: () => performance.now(),
  schedule: (run, ms) => setTimeout(run, ms).unref(),
});

/** Asks this thread for a collection when `bytes` (the largest record a stage just let go of) is LARGE_VALUE_BYTES or more; rate-limited (LargeValueReleaser). */
export function releaseLargeValue(bytes: number): void {
  thisThread.release(bytes);
}
