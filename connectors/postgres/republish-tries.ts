/**
 * Which captured tables found out of the publication the catalog look puts back now. One put back is not tried again
 * until it has left the publication again; one the look failed to put back (ensurePublication warned why: a lock or
 * statement timeout on the ALTER, a publication Sluice does not own) is tried again after `retryMs`, not at every look.
 */
export class RepublishTries {
  private readonly done = new Set<number>();
  private readonly failedAt = new Map<number, number>();
  private readonly retryMs: number;

  constructor(retryMs: number) {
    this.retryMs = retryMs;
  }

  /** Of the tables out of the publication now (`out`), those to put back at `now`; forgets the tables back in it. */
  due<T extends { readonly relid: number }>(out: readonly T[], now: number): T[] {
    const outNow = new Set(out.map((t) => t.relid));
    for (const relid of this.done) if (!outNow.has(relid)) this.done.delete(relid);
    for (const relid of this.failedAt.keys()) if (!outNow.has(relid)) this.failedAt.delete(relid);
    return out.filter((t) => !this.done.has(t.relid) && now - (this.failedAt.get(t.relid) ?? -Infinity) >= this.retryMs);
  }

  /** After a try at `now`: `added` are back in the publication, the rest of `tried` failed. */
  tried(tried: readonly { readonly relid: number }[], added: readonly { readonly relid: number }[], now: number): void {
    const back = new Set(added.map((t) => t.relid));
    for (const t of tried) {
      if (back.has(t.relid)) {
        this.done.add(t.relid);
        this.failedAt.delete(t.relid);
      } else this.failedAt.set(t.relid, now);
    }
  }

  /** Tables warned about elsewhere (the start, a table added while streaming), not to be tried by the look. */
  markDone(relid: number): void {
    this.done.add(relid);
  }

  clear(): void {
    this.done.clear();
    this.failedAt.clear();
  }
}
