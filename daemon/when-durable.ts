/**
 * Work a produced record asks for once it is durable, not when it is encoded (e.g. counting a dead letter in a metric).
 * An encoding may be thrown away and done again: a batch encoded again after an operator's release, the changes the
 * source sends again after a write that failed, parked changes re-published at a start whose write failed. A count kept
 * at encoding counted such a record once per encoding; capture runs this work once, after the write that stored it.
 */
import type { ProducedRecord } from "../connectors/contracts.ts";

const WHEN_DURABLE = Symbol("sluice.whenDurable");

type Marked = ProducedRecord & { [WHEN_DURABLE]?: () => void };

/** `record`, asking for `work` once the topic log stored it (capture: durableWork); after any work it asked for already. */
export function whenDurable<T extends ProducedRecord>(record: T, work: () => void): T {
  const marked = record as Marked;
  const before = marked[WHEN_DURABLE];
  marked[WHEN_DURABLE] =
    before === undefined
      ? work
      : () => {
          before();
          work();
        };
  return record;
}

/** The work the records ask for, to run once their write is durable; null when none asks (nearly every batch). */
export function durableWork(records: readonly ProducedRecord[]): (() => void)[] | null {
  let work: (() => void)[] | null = null;
  for (let r = 0; r < records.length; r++) {
    const asked = (records[r] as Marked)[WHEN_DURABLE];
    if (asked !== undefined) (work ??= []).push(asked);
  }
  return work;
}

/** Runs what durableWork collected. */
export function runDurableWork(work: readonly (() => void)[] | null): void {
  if (work !== null) for (const task of work) task();
}
