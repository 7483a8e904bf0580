/**
 * Requests given a deadline (an AbortSignal.timeout, e.g. committedOffsets' default) rather than a
 * stop: when it passes, the target did not answer in time, an outage to wait out, not a refusal.
 */
import { ConnectionError } from "../errors.ts";
import type { ErrorContext } from "../errors.ts";

/** Whether `signal` was aborted by its own timeout (not by a stop). */
export function pastDeadline(signal: AbortSignal): boolean {
  return signal.aborted && (signal.reason as { name?: unknown } | undefined)?.name === "TimeoutError";
}

/** The retriable error for a request given up at its deadline. */
export function deadlineError(what: string, target: string, context: ErrorContext, cause: unknown): ConnectionError {
  return new ConnectionError(`${target} did not answer ${what} before its deadline; retrying`, { code: "SINK_UNAVAILABLE", context, cause });
}
