/**
 * Cuts a long synchronous loop on the main thread into slices of about SLICE_MS, with a turn of
 * the event loop between them, so that I/O callbacks waiting meanwhile run.
 *
 * Why: capture decodes and encodes a batch of thousands of changes in one go (tens of
 * milliseconds, more on a loaded machine) while the previous batch is on its way to Kafka. Every
 * round trip of that delivery (AddPartitionsToTxn, each Produce, EndTxn) completes only when the
 * main thread next looks at its sockets: run to the end, the loop held each response up to its
 * whole length, and the delivery, which overlaps it, ran that much longer.
 */
import { setImmediate as nextTurn } from "node:timers/promises";

/** The longest slice of work between two turns of the event loop. */
export const SLICE_MS = 2;
/** The clock is read once per this many steps of the loop. */
const STEPS_PER_CLOCK_READ = 64;

export class IoSlices {
  private started = performance.now();
  private steps = 0;

  /** Counts one step of the loop; true when the slice is over and the loop should `yield()`. */
  due(): boolean {
    if (++this.steps % STEPS_PER_CLOCK_READ !== 0) return false;
    return performance.now() - this.started >= SLICE_MS;
  }

  /** Lets the event loop turn once (pending I/O callbacks run), then starts the next slice. */
  async yield(): Promise<void> {
    await nextTurn();
    this.started = performance.now();
  }
}
