/**
 * A figure read from another party (a sink's lag from the topic log, a slot's lag from the database) that many
 * readers ask for at once: /status, /metrics and the instance announcement. One read runs at a time; a reader
 * that needs a figure read after it asked joins the read queued behind the one running (every reader that comes
 * while it waits joins the same one), so a flood of requests makes at most two reads, not one each. Readers that
 * must not wait at all take the last completed value and its age.
 */
export interface CompletedRead<T> {
  readonly value: T;
  /** When the read that produced it started (ms since the epoch). */
  readonly startedAt: number;
}

export class CoalescedRead<T> {
  readonly #read: () => Promise<T | null>;
  readonly #now: () => number;
  #running: Promise<T | null> | null = null;
  #queued: Promise<T | null> | null = null;
  #last: CompletedRead<T> | null = null;
  #reads = 0;

  /** `read` answers null when it cannot say (failed, or past its own deadline); a null keeps the last value. */
  constructor(read: () => Promise<T | null>, now: () => number = Date.now) {
    this.#read = read;
    this.#now = now;
  }

  /** A value read entirely after this call (null when that read could not say). */
  fresh(): Promise<T | null> {
    if (this.#running === null) return this.#start();
    this.#queued ??= this.#running.then(() => {
      this.#queued = null;
      return this.#start();
    });
    return this.#queued;
  }

  /** The last value read, without waiting; starts a read unless one runs or waits, so the next caller sees a newer one. */
  last(): CompletedRead<T> | null {
    if (this.#running === null) void this.#start();
    return this.#last;
  }

  /** Reads started so far (for tests and diagnostics). */
  get reads(): number {
    return this.#reads;
  }

  #start(): Promise<T | null> {
    const startedAt = this.#now();
    this.#reads += 1;
    const running = this.#read()
      .catch(() => null)
      .then((value) => {
        if (value !== null && (this.#last === null || this.#last.startedAt <= startedAt)) this.#last = { value, startedAt };
        return value;
      })
      .finally(() => {
        if (this.#running === running) this.#running = null;
      });
    this.#running = running;
    return running;
  }
}

/** `work`'s result, or `fallback` when it takes longer than `ms` (the work itself goes on). */
export async function within<T>(work: Promise<T>, ms: number, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<T>((resolve) => (timer = setTimeout(() => resolve(fallback), ms)));
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}
