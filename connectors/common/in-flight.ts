/**
 * Work under way that a close() lets finish before it tears down what the work uses (e.g. a
 * client library that would reconnect a closed client for a request still running).
 */
export class InFlight {
  readonly #running = new Set<Promise<unknown>>();

  /** Tracks `work` until it settles; resolves or rejects as it does. */
  async track<T>(work: Promise<T>): Promise<T> {
    this.#running.add(work);
    try {
      return await work;
    } finally {
      this.#running.delete(work);
    }
  }

  /** Resolves once nothing is under way, including work tracked while waiting. */
  async settled(): Promise<void> {
    while (this.#running.size > 0) await Promise.allSettled([...this.#running]);
  }
}
