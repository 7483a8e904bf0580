/** Collects per-item failures of one write; an index is reported once, with its first error. */
import type { SinkItemFailure } from "../contracts.ts";

export class Failures {
  readonly #byIndex = new Map<number, SinkItemFailure>();

  add(indices: readonly number[], error: Error, retriable = false): void {
    for (const index of indices) if (!this.#byIndex.has(index)) this.#byIndex.set(index, { index, error, retriable });
  }

  get size(): number {
    return this.#byIndex.size;
  }

  list(): SinkItemFailure[] {
    return [...this.#byIndex.values()].sort((a, b) => a.index - b.index);
  }
}
