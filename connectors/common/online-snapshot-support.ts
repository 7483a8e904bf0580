/**
 * Pieces every source's online (incremental) snapshot engine needs, whatever the database: the
 * identity of a row key for comparing chunk rows with streamed changes, a smoothed rows-per-second
 * rate for progress, and a wait that ends when the engine stops.
 */
import type { Row } from "../contracts.ts";
import type { SnapshotTask } from "./incremental-snapshot-state.ts";

/**
 * Identity of a key (its columns' values in key order) for comparing chunk rows with streamed changes.
 * A one-column number or text key (the common case, once per chunk row) skips JSON: its identity
 * starts with "#" or "$", which a JSON array's never does.
 */
export function keyIdentity(keyColumns: readonly string[], key: Row): string {
  if (keyColumns.length === 1) {
    const value = key[keyColumns[0]!];
    if (typeof value === "number") return `#${value}`;
    if (typeof value === "string") return `$${value}`;
  }
  return JSON.stringify(keyColumns.map((name) => key[name] ?? null), (_name, value: unknown) => {
    if (typeof value === "bigint") return `${value}n`;
    if (value instanceof Uint8Array) return Buffer.from(value).toString("hex");
    return value;
  });
}

/** Rows per second of each running task, smoothed over ~5 updates so a terminal's ETA does not jump with every chunk. */
export class SnapshotRates {
  private readonly rates = new Map<string, { atMs: number; rows: number; perSecond: number }>();

  perSecond(id: string): number {
    return this.rates.get(id)?.perSecond ?? 0;
  }

  update(task: SnapshotTask): void {
    const now = Date.now();
    const previous = this.rates.get(task.id);
    if (previous === undefined) {
      const elapsed = (now - (task.startedAtMs ?? now)) / 1000;
      this.rates.set(task.id, { atMs: now, rows: task.rowsDone, perSecond: elapsed > 0 ? task.rowsDone / elapsed : 0 });
      return;
    }
    const seconds = (now - previous.atMs) / 1000;
    if (seconds < 1) return;
    const instant = (task.rowsDone - previous.rows) / seconds;
    const perSecond = previous.perSecond === 0 ? instant : previous.perSecond * 0.8 + instant * 0.2;
    this.rates.set(task.id, { atMs: now, rows: task.rowsDone, perSecond });
  }

  forget(id: string): void {
    this.rates.delete(id);
  }
}

/** Waits for `promise`, or rejects when `signal` aborts first (leaving no listener behind). */
export function untilOrAborted(promise: Promise<void>, signal: AbortSignal): Promise<void> {
  signal.throwIfAborted();
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      () => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error as Error);
      },
    );
  });
}
