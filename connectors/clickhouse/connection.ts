/**
 * The ClickHouse HTTP calls the sink makes, over @clickhouse/client, with errors sorted the way
 * the sink acts on them: transient (connection refused, timeouts, too many parts, memory, the
 * server's disk full or read-only) ->
 * retried here with backoff, then ConnectionError; rejected data -> ClickHouseDataError (the sink
 * isolates the rows); anything else -> SluiceError, not retried.
 *
 * ClickHouse 18.16 needs nothing special from the client as long as the sink sends no query
 * parameters (18.16 has none: values are literals) and no settings; compression stays off. The
 * client cannot parse 18.16's exception text ("Code: 27, e.displayText() = ..."), so the error code
 * is read from the message here.
 */
import { Agent as HttpsAgent } from "node:https";
import { Readable } from "node:stream";
import { ClickHouseLogLevel, createClient } from "@clickhouse/client";
import type { ClickHouseClient } from "@clickhouse/client";
import { currentSecret } from "../../config/secret-files.ts";
import { retry } from "../../runtime/backoff.ts";
import { deadlineError, pastDeadline } from "../sinks/deadline.ts";
import type { Logger } from "../../runtime/logger.ts";
import { describeTlsFailure } from "../common/tls-errors.ts";
import { readTlsFiles } from "../common/tls-files.ts";
import { describeTlsMessage } from "../common/tls-message.ts";
import { ConnectionError, SluiceError } from "../errors.ts";
import { AUTH_FAILED, errorMessage, TARGET_REPLACED } from "../sinks/errors.ts";
import type { ClickHouseSinkConfig } from "./config.ts";
import { DATA_CODES } from "./server-codes.ts";
import { refusedPath, storageRefusal } from "./server-storage.ts";

/** Server error codes worth retrying: the same request may succeed later. */
/** UNKNOWN_DATABASE. */
const UNKNOWN_DATABASE = 81;
/** UNKNOWN_TABLE. */
const UNKNOWN_TABLE = 60;
/** The sink's own tables in its database (catalog.ts). */
const OWN_TABLES = "_sluice_(?:offsets|tables|targets|truncates)";
const TRANSIENT_CODES = new Set([159, 164, 202, 203, 209, 210, 241, 242, 252, 285, 319, 425, 473, 999]);
/** Unknown user, wrong password, password required, authentication failed (newer servers): the login is refused. */
const AUTH_CODES = new Set([192, 193, 194, 516]);
const NETWORK_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN", "ENOTFOUND", "UND_ERR_SOCKET"]);

export class ClickHouseDataError extends SluiceError {
  readonly serverCode: number;
  constructor(message: string, serverCode: number, context: { sink: string }) {
    super(message, { code: "SINK_DATA_REJECTED", retriable: false, context: { component: "sink", ...context } });
    this.serverCode = serverCode;
  }
}

export function serverErrorCode(error: unknown): number | null {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === "string" && /^\d+$/.test(code)) return Number(code);
  const match = /Code: (\d+)/.exec(errorMessage(error));
  return match ? Number(match[1]) : null;
}

const escapeRegExp = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/**
 * Matches an error naming one of the sink's own tables in `database` (`shop._sluice_offsets`). ClickHouse back-quotes
 * a name that is not a plain identifier (`` `my-db`._sluice_offsets ``, a backquote or backslash in it escaped by a
 * backslash), so both forms are matched.
 */
export function ownTableGonePattern(database: string): RegExp {
  const quoted = `\`${database.replace(/[\\`]/g, "\\$&")}\``;
  // Preceded by a space or the message's start (Table shop._sluice_offsets doesn't exist): not the end of `my-shop`.
  return new RegExp(`(?<=^|[\\s'"(])(?:${escapeRegExp(database)}|${escapeRegExp(quoted)})\\.\`?${OWN_TABLES}\\b`);
}

export class ClickHouseConnection {
  readonly #client: ClickHouseClient;
  readonly #sink: string;
  readonly #logger: Logger;
  readonly #retry: { initial: number; max: number };
  /** scheme://host:port of the server, for messages. */
  readonly #url: string;
  readonly #user: string;
  /** Matches an error naming one of the sink's own tables (`<database>._sluice_offsets`, ...). */
  readonly #ownTableGone: RegExp;

  constructor(config: ClickHouseSinkConfig, logger: Logger) {
    this.#sink = config.name;
    this.#ownTableGone = ownTableGonePattern(config.database);
    this.#logger = logger;
    this.#retry = config.retry;
    this.#url = new URL(config.url).origin;
    this.#user = config.user;
    const tls = config.tls ? readTlsFiles(config.tls, { label: `sink "${config.name}"`, section: "tls", context: { component: "sink", sink: config.name } }) : undefined;
    this.#client = createClient({
      url: config.url,
      username: config.user,
      // Read again at each open: a password_file rotated while the sink ran is taken when it reconnects.
      password: currentSecret(config, "password") ?? "",
      // An agent of our own, so a CA file, a client certificate, or both work (the client's `tls` option wants the CA always).
      ...(tls ? { http_agent: new HttpsAgent({ ...tls, rejectUnauthorized: true, keepAlive: true }), set_basic_auth_header: true } : {}),
      request_timeout: 120_000,
      compression: { request: false, response: false },
      log: { level: ClickHouseLogLevel.OFF },
    });
  }

  async version(signal: AbortSignal): Promise<string> {
    return (await this.select("SELECT version() FORMAT TabSeparated", signal)).toString("utf8").trim();
  }

  async command(sql: string, signal: AbortSignal): Promise<void> {
    await this.#call(sql, signal, async () => {
      const result = await this.#client.exec({ query: sql, abort_signal: signal });
      await drain(result.stream);
    });
  }

  /** The raw response body (TabSeparated output is bytes, not necessarily UTF-8; RowBinary is binary). */
  async select(sql: string, signal: AbortSignal): Promise<Buffer> {
    return this.#call(sql, signal, async () => {
      const result = await this.#client.exec({ query: sql, abort_signal: signal });
      return collect(result.stream);
    });
  }

  /** One INSERT of rows already in `format` (the body, or its pieces in order): atomic per request for ClickHouse (one block). */
  async insert(table: string, columns: readonly string[], format: "RowBinary" | "TabSeparated", body: Buffer | readonly Buffer[], signal: AbortSignal): Promise<void> {
    const sql = `INSERT INTO ${table} (${columns.join(", ")}) FORMAT ${format}`;
    await this.#call(sql, signal, async () => {
      const result = await this.#client.exec({ query: sql, values: Readable.from(Buffer.isBuffer(body) ? [body] : body), abort_signal: signal });
      await drain(result.stream);
    });
  }

  async close(): Promise<void> {
    await this.#client.close();
  }

  async #call<T>(sql: string, signal: AbortSignal, operation: () => Promise<T>): Promise<T> {
    try {
      return await retry(
        async () => {
          try {
            return await operation();
          } catch (error) {
            throw this.#classify(error, sql);
          }
        },
        {
          initialMs: this.#retry.initial,
          maxMs: this.#retry.max,
          maxAttempts: 4,
          signal,
          onRetry: (error, attempt, delayMs) => this.#logger.warn({ error: errorMessage(error), attempt, delayMs }, "ClickHouse request failed; retrying"),
        },
      );
    } catch (error) {
      // The client reports its abort as "The user aborted a request." whatever aborted it: a deadline passed is an outage.
      if (pastDeadline(signal)) throw deadlineError(sql.length > 200 ? `${sql.slice(0, 200)}\u2026` : sql, `ClickHouse ${this.#url}`, { component: "sink", sink: this.#sink }, error);
      throw error;
    }
  }

  #classify(error: unknown, sql: string): Error {
    if (error instanceof SluiceError) return error;
    const context = { component: "sink", sink: this.#sink };
    const statement = sql.length > 200 ? `${sql.slice(0, 200)}\u2026` : sql;
    const code = serverErrorCode(error);
    if (code !== null && AUTH_CODES.has(code)) {
      return new SluiceError(`ClickHouse ${this.#url} refused the sink's login as user "${this.#user}" (error ${code}): ${errorMessage(error).trim()}; check the sink's user and password`, {
        code: AUTH_FAILED,
        context: { ...context, url: this.#url },
        cause: error,
      });
    }
    const tlsFailure = code === null ? (describeTlsFailure(error) ?? describeTlsMessage(errorMessage(error))) : undefined;
    if (tlsFailure !== undefined) {
      return new SluiceError(`ClickHouse ${this.#url}: ${tlsFailure}; check the sink's tls.ca_file (the CA that signed ClickHouse's certificate), cert_file/key_file, and that the URL's host is in the certificate`, {
        code: "SINK_TLS_FAILED",
        context: { ...context, url: this.#url },
        cause: error,
      });
    }
    // DROP DATABASE removes the tables one by one: a statement in between finds the database but not its table.
    const ownTableGone = code === UNKNOWN_TABLE && this.#ownTableGone.test(errorMessage(error));
    if (code === UNKNOWN_DATABASE || ownTableGone) {
      // Dropped under the running sink (an operator's DROP DATABASE, or one of Sluice's own tables dropped by hand): the runner
      // opens the sink again, which makes the database and its own tables anew, and reads from the offsets found there (none:
      // as a new sink, each row applied again by version), as at a start.
      const what = ownTableGone ? "its ClickHouse database (or one of Sluice's own tables in it) was dropped" : "its ClickHouse database was dropped";
      return new SluiceError(`sink ${this.#sink}: ${what} while the sink wrote into it (error ${code}: ${errorMessage(error).trim()})`, {
        code: TARGET_REPLACED,
        context: { ...context, url: this.#url },
        cause: error,
      });
    }
    const storage = storageRefusal(code, errorMessage(error));
    if (storage !== null) {
      // A full or read-only disk on the server lifts once an operator frees space: waited out like an outage, not a stop.
      const where = refusedPath(errorMessage(error));
      return new ConnectionError(
        `ClickHouse ${this.#url} cannot store the sink's writes: ${storage}${where === null ? "" : ` (${where})`}; free space on the ClickHouse server's disk (or make it writable again), the sink retries until it can: error ${code ?? "?"}: ${errorMessage(error).trim()} (${statement})`,
        { code: "SINK_UNAVAILABLE", context: { ...context, url: this.#url }, cause: error },
      );
    }
    if (code !== null) {
      const message = `ClickHouse error ${code}: ${errorMessage(error).trim()} (${statement})`;
      if (TRANSIENT_CODES.has(code)) return new ConnectionError(message, { code: "SINK_UNAVAILABLE", context, cause: error });
      if (DATA_CODES.has(code)) return new ClickHouseDataError(message, code, { sink: this.#sink });
      return new SluiceError(message, { code: "SINK_REQUEST_FAILED", context, cause: error });
    }
    const netCode = (error as { code?: unknown } | null)?.code;
    const message = errorMessage(error);
    if ((typeof netCode === "string" && NETWORK_CODES.has(netCode)) || /socket hang up|timeout|ECONN|network/i.test(message)) {
      return new ConnectionError(`ClickHouse unreachable: ${message}`, { code: "SINK_UNAVAILABLE", context, cause: error });
    }
    if ((error as { name?: unknown } | null)?.name === "AbortError") return error as Error;
    return new SluiceError(`ClickHouse request failed: ${message} (${statement})`, { code: "SINK_REQUEST_FAILED", context, cause: error });
  }
}

async function collect(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

async function drain(stream: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of stream) {
    // discard the (empty) response body so the connection is reused
  }
}
