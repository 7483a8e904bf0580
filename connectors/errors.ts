/**
 * One base error for the whole daemon. Every error says what it concerns (component, table,
 * position) and whether retrying can help; retry loops read only `retriable`.
 */
export interface ErrorContext {
  component?: string;
  source?: string;
  sink?: string;
  table?: string;
  position?: string;
  [key: string]: string | number | undefined;
}

export interface SluiceErrorOptions {
  code: string;
  retriable?: boolean;
  context?: ErrorContext;
  cause?: unknown;
}

export class SluiceError extends Error {
  readonly code: string;
  readonly retriable: boolean;
  readonly context: ErrorContext;

  constructor(message: string, options: SluiceErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = options.code;
    this.retriable = options.retriable ?? false;
    this.context = options.context ?? {};
  }

  /** Fields for a structured (pino) log line. */
  toLog(): Record<string, unknown> {
    return {
      code: this.code,
      retriable: this.retriable,
      ...this.context,
      cause: this.cause instanceof Error ? this.cause.message : this.cause,
    };
  }
}

/** Bad configuration or command-line usage: never retried, exit code 2. */
export class ConfigError extends SluiceError {
  constructor(message: string, options: Omit<SluiceErrorOptions, "retriable"> & { code?: string }) {
    super(message, { ...options, code: options.code ?? "CONFIG_INVALID", retriable: false });
  }
}

/** A connection or I/O failure that may heal: retried with backoff. */
export class ConnectionError extends SluiceError {
  constructor(message: string, options: Omit<SluiceErrorOptions, "retriable" | "code"> & { code?: string }) {
    super(message, { ...options, code: options.code ?? "CONNECTION_FAILED", retriable: true });
  }
}

export function isRetriable(error: unknown): boolean {
  return error instanceof SluiceError && error.retriable;
}
