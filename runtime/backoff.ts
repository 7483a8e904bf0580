import { isRetriable } from "../connectors/errors.ts";

export interface BackoffPolicy {
  /** First delay, milliseconds. */
  readonly initialMs: number;
  /** Largest delay, milliseconds. */
  readonly maxMs: number;
  readonly multiplier?: number;
}

/** Exponential backoff with full jitter: attempt n waits a random time in [0, min(max, initial·mult^n)]. */
export function backoffDelay(policy: BackoffPolicy, attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxMs, policy.initialMs * (policy.multiplier ?? 2) ** attempt);
  return Math.round(ceiling * (0.5 + random() / 2));
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason as Error);
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason as Error);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

export interface RetryOptions extends BackoffPolicy {
  readonly signal?: AbortSignal;
  /** Called before each wait, e.g. to log the error and mark the component not ready. */
  readonly onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
  /** Give up after this many attempts; default: never while errors are retriable. */
  readonly maxAttempts?: number;
}

/** Runs `operation` until it succeeds; retries only errors marked retriable, never programming or config errors. */
export async function retry<T>(operation: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await operation(attempt);
    } catch (error) {
      if (!isRetriable(error) || options.signal?.aborted) throw error;
      if (options.maxAttempts !== undefined && attempt + 1 >= options.maxAttempts) throw error;
      const delay = backoffDelay(options, attempt);
      options.onRetry?.(error, attempt, delay);
      await sleep(delay, options.signal);
    }
  }
}
