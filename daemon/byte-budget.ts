/** Bytes held at once by many holders together (request bodies, query answers): a holder takes before it holds, and gives back. */
export class ByteBudget {
  readonly limit: number;
  #held = 0;

  constructor(limit: number) {
    this.limit = limit;
  }

  get heldBytes(): number {
    return this.#held;
  }

  /** Counts `bytes` more if they fit, or when nothing is held (one holder always gets its bytes, whatever their size); else nothing. */
  take(bytes: number): boolean {
    if (this.#held > 0 && this.#held + bytes > this.limit) return false;
    this.#held += bytes;
    return true;
  }

  give(bytes: number): void {
    this.#held -= bytes;
  }
}
