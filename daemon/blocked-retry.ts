/**
 * Automatic retries of tables halted because their target refuses writes for a reason of its own
 * (SINK_TARGET_BLOCKED: an Elasticsearch index block such as the flood-stage
 * read_only_allow_delete, which Elasticsearch lifts by itself once disk frees). Unlike a poison
 * row, such a cause heals without an operator, so the table is read again from the record that
 * halted it after `intervalMs`, then at doubling intervals up to ten times that, until the write
 * goes through. The halt stays what operators see (status, metrics) until then; a retry is the
 * same as `sluice halted retry`, so nothing is skipped or reordered.
 */
import { backoffDelay } from "../runtime/backoff.ts";

interface Entry<State> {
  /** The halt being retried, as last seen (kept for status while it is read again). */
  state: State;
  /** Retries started so far. */
  attempts: number;
  /** The next retry's timer while the table waits; null while it is being read again. */
  timer: NodeJS.Timeout | null;
  /** When the next retry is due (ms since the epoch), or null while it is being read again. */
  dueAt: number | null;
}

export class BlockedRetries<State> {
  private readonly intervalMs: number;
  private readonly onDue: (key: string) => void;
  private readonly entries = new Map<string, Entry<State>>();

  /** `onDue` is called with a halt's key when its retry is due. */
  constructor(intervalMs: number, onDue: (key: string) => void) {
    this.intervalMs = intervalMs;
    this.onDue = onDue;
  }

  get size(): number {
    return this.entries.size;
  }

  /** The halt last seen under `key` if it is being retried (a table halting again keeps its first halt's time). */
  last(key: string): State | undefined {
    return this.entries.get(key)?.state;
  }

  /** A table halted (again) for a blocked target: its next retry is scheduled. Returns the wait and how many retries came before. */
  schedule(key: string, state: State): { readonly delayMs: number; readonly attempts: number } {
    const entry = this.entries.get(key) ?? { state, attempts: 0, timer: null, dueAt: null };
    entry.state = state;
    this.entries.set(key, entry);
    if (entry.timer !== null) clearTimeout(entry.timer);
    const delayMs = backoffDelay({ initialMs: this.intervalMs, maxMs: this.intervalMs * 10 }, entry.attempts);
    entry.dueAt = Date.now() + delayMs;
    entry.timer = setTimeout(() => {
      entry.timer = null;
      this.onDue(key);
    }, delayMs);
    entry.timer.unref();
    return { delayMs, attempts: entry.attempts };
  }

  /** The due retry started (the table is being read again): returns its number, counting from 1. */
  started(key: string): number {
    const entry = this.entries.get(key);
    if (entry === undefined) return 0;
    entry.dueAt = null;
    return ++entry.attempts;
  }

  /** Halts being read again by a retry: still shown as halted until their record is applied. */
  inFlight(): { readonly key: string; readonly state: State }[] {
    return [...this.entries].filter(([, entry]) => entry.timer === null && entry.dueAt === null).map(([key, entry]) => ({ key, state: entry.state }));
  }

  /** When the retry of `key` is due, or null (being read again, or not retried). */
  dueAt(key: string): number | null {
    return this.entries.get(key)?.dueAt ?? null;
  }

  /** Retries started before the one in flight or due for `key`. */
  attempts(key: string): number {
    return this.entries.get(key)?.attempts ?? 0;
  }

  /** The table went through (or an operator released it): no more retries. */
  forget(key: string): void {
    const entry = this.entries.get(key);
    if (entry?.timer) clearTimeout(entry.timer);
    this.entries.delete(key);
  }

  stop(): void {
    for (const entry of this.entries.values()) if (entry.timer !== null) clearTimeout(entry.timer);
    this.entries.clear();
  }
}
