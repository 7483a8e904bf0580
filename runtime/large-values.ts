/**
 * Gives back the memory of a large value once a stage let go of it.
 *
 * Why: a value of tens of MiB passes a thread as a few buffers and an external string, all
 * outside V8's heap. V8 frees them only at a collection, and a thread whose heap barely grew (the
 * value is not in it) may not collect for seconds: the capture thread still held three copies of
 * a 64 MiB value while the sink wrote it to DuckDB, each a copy the memory plan does not count.
 * So a stage that has let go of a record this large collects at once. Rare (only such records),
 * and a full collection of a small heap takes milliseconds.
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

/** A record at least this large is let go of with a collection (bigger than any batch of small records' single record). */
export const LARGE_VALUE_BYTES = 8 * 2 ** 20;

let collect: (() => void) | null = null;

/** Collects garbage when `bytes` (the largest record a stage just let go of) is LARGE_VALUE_BYTES or more. */
export function releaseLargeValue(bytes: number): void {
  if (bytes < LARGE_VALUE_BYTES) return;
  if (collect === null) {
    // V8's gc function, for this thread, in a context of its own; the flag is set back so no later context (a thread started after) gets a global gc.
    setFlagsFromString("--expose-gc");
    collect = runInNewContext("gc") as () => void;
    setFlagsFromString("--no-expose-gc");
  }
  collect();
}
