/**
 * A FIFO of items with a byte bound, between a producer (the replication socket, snapshot
 * workers) and read(). Producers check `full` and stop (pause the socket, await space); the
 * reader shifts items out and wakes them. `peakBytes` shows the bound held.
 *
 * Each item also counts ITEM_OVERHEAD_BYTES: small changes (a 100-byte WAL message) cost about
 * twice their size again in JS objects (the item, its Buffer view, a bigint position), so a bound
 * on payload bytes alone let memory reach about three times the bound.
 */
export const ITEM_OVERHEAD_BYTES = 256;

export class ByteBoundedBuffer<T> {
  readonly maxBytes: number;
  private items: { item: T; bytes: number }[] = [];
  private head = 0;
  private usedBytes = 0;
  private peak = 0;
  private failure: Error | null = null;
  private finished = false;
  private itemWaiters: (() => void)[] = [];
  private spaceWaiters: (() => void)[] = [];
  private lowWaterListeners: (() => void)[] = [];

  constructor(maxBytes: number) {
    this.maxBytes = maxBytes;
  }

  get bytes(): number {
    return this.usedBytes;
  }

  get peakBytes(): number {
    return this.peak;
  }

  get length(): number {
    return this.items.length - this.head;
  }

  get full(): boolean {
    return this.usedBytes >= this.maxBytes;
  }

  /** `bytes`: the item's own size; the buffer adds its per-item overhead. */
  push(item: T, bytes: number): void {
    if (this.failure !== null) return;
    const cost = bytes + ITEM_OVERHEAD_BYTES;
    this.items.push({ item, bytes: cost });
    this.added(cost);
  }

  /** Counts an item of `cost` bytes in (a subclass that stores items its own way calls these two). */
  protected added(cost: number): void {
    this.usedBytes += cost;
    if (this.usedBytes > this.peak) this.peak = this.usedBytes;
    wake(this.itemWaiters);
  }

  /** Counts an item of `cost` bytes out, waking a producer waiting for room. */
  protected removed(cost: number): void {
    this.usedBytes -= cost;
    if (!this.full) wake(this.spaceWaiters);
    if (this.usedBytes <= this.maxBytes / 2) for (const listener of this.lowWaterListeners) listener();
  }

  peek(): T | undefined {
    return this.items[this.head]?.item;
  }

  /** What the next item counts against the bound (its bytes and the per-item overhead); 0 when empty. */
  get nextBytes(): number {
    return this.items[this.head]?.bytes ?? 0;
  }

  shift(): T | undefined {
    const entry = this.items[this.head];
    if (entry === undefined) return undefined;
    this.items[this.head] = undefined as never;
    this.head++;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    this.removed(entry.bytes);
    return entry.item;
  }

  /** Called whenever the buffer drains to half its bound or less: time to resume a paused producer. */
  onLowWater(listener: () => void): void {
    this.lowWaterListeners.push(listener);
  }

  /** Fails every waiter now and later; items already queued can still be shifted. */
  fail(error: Error): void {
    if (this.failure !== null) return;
    this.failure = error;
    wake(this.itemWaiters);
    wake(this.spaceWaiters);
  }

  /** The producer is done: waiters for items wake, and waitForItem resolves false once the buffer is empty. */
  end(): void {
    this.finished = true;
    wake(this.itemWaiters);
  }

  get ended(): boolean {
    return this.finished;
  }

  get failed(): Error | null {
    return this.failure;
  }

  clear(): void {
    this.items = [];
    this.head = 0;
    this.cleared();
  }

  /** Counts everything out at once. */
  protected cleared(): void {
    this.usedBytes = 0;
    wake(this.spaceWaiters);
  }

  /** Resolves true when an item is available, false after `timeoutMs`; rejects on failure or abort. */
  waitForItem(signal: AbortSignal, timeoutMs = Infinity): Promise<boolean> {
    return this.wait(this.itemWaiters, () => this.length > 0 || this.finished, signal, timeoutMs).then((ready) => ready && this.length > 0);
  }

  /** Resolves when the buffer is below its bound; rejects on failure or abort. */
  async waitForSpace(signal: AbortSignal): Promise<void> {
    await this.wait(this.spaceWaiters, () => !this.full, signal, Infinity);
  }

  private wait(waiters: (() => void)[], ready: () => boolean, signal: AbortSignal, timeoutMs: number): Promise<boolean> {
    if (ready()) return Promise.resolve(true);
    if (this.failure !== null) return Promise.reject(this.failure);
    if (signal.aborted) return Promise.reject(signal.reason as Error);
    return new Promise<boolean>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const finish = () => {
        if (timer !== undefined) clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        const index = waiters.indexOf(onWake);
        if (index >= 0) waiters.splice(index, 1);
      };
      const onWake = () => {
        if (this.failure !== null && !ready()) {
          finish();
          reject(this.failure);
        } else if (ready()) {
          finish();
          resolve(true);
        }
      };
      const onAbort = () => {
        finish();
        reject(signal.reason as Error);
      };
      waiters.push(onWake);
      signal.addEventListener("abort", onAbort, { once: true });
      if (timeoutMs !== Infinity) {
        timer = setTimeout(() => {
          finish();
          resolve(false);
        }, Math.max(0, timeoutMs));
      }
    });
  }
}

function wake(waiters: (() => void)[]): void {
  // Called for every item pushed and shifted: no copy when nobody waits.
  if (waiters.length === 0) return;
  for (const waiter of [...waiters]) waiter();
}
