/**
 * Turns what mysql2 and the server throw into Sluice errors that say whether retrying can help:
 * lost connections, server shutdowns, deadlocks and lock waits heal; bad credentials, missing
 * privileges and binlog positions the server no longer has do not.
 */
import { ConnectionError, SluiceError } from "../errors.ts";
import type { ErrorContext } from "../errors.ts";
import { describeTlsFailure } from "../common/tls-errors.ts";

const RETRIABLE_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EAI_AGAIN",
  "ENOTFOUND",
  "PROTOCOL_CONNECTION_LOST",
  "PROTOCOL_SEQUENCE_TIMEOUT",
  "ER_SERVER_SHUTDOWN",
  "ER_CON_COUNT_ERROR",
  "ER_TOO_MANY_USER_CONNECTIONS",
  "ER_LOCK_DEADLOCK",
  "ER_LOCK_WAIT_TIMEOUT",
  "ER_QUERY_INTERRUPTED",
  "ER_CONNECTION_KILLED",
  "ER_NET_READ_ERROR",
  "ER_NET_READ_INTERRUPTED",
  "ER_NET_WRITE_INTERRUPTED",
  "ER_NET_ERROR_ON_WRITE",
  "ER_TABLE_DEF_CHANGED",
  "ER_CLIENT_INTERACTION_TIMEOUT",
]);

/**
 * Server error numbers worth retrying, for codes mysql2 does not name (1969: MariaDB's max_statement_time, 3024: MySQL's
 * max_execution_time exceeded; 1226: an account resource limit, MAX_USER_CONNECTIONS (met by a reconnect while the server
 * still holds the session it replaces), MAX_CONNECTIONS_PER_HOUR or MAX_QUERIES_PER_HOUR, which heal).
 */
const RETRIABLE_ERRNOS = new Set([1040, 1053, 1152, 1158, 1159, 1160, 1161, 1205, 1213, 1226, 1317, 1412, 1927, 1969, 2006, 2013, 3024, 4031]);

/** Errors of a statement the catalog session's limits ended (connection-settings.ts, catalogSessionSql): statement time, lock wait. */
const GAVE_UP_ERRNOS = new Set([1205, 1969, 3024]);

/**
 * A catalog read the server gave up, nearly always because another session holds a metadata lock on a table it reads.
 * Names what was read; retriable: the lock is held for a time, capture tries again as after an outage.
 */
export class CatalogWaitError extends Error {
  readonly code = "MYSQL_CATALOG_TIMEOUT";
  readonly errno: number;

  constructor(what: string, cause: Error & { errno: number }) {
    super(
      `${what}: the server gave up the read (${cause.message}): another session holds a metadata lock on the table, e.g. a DDL, or a DROP or RENAME waiting behind an open transaction (SHOW PROCESSLIST: "Waiting for table metadata lock"); tried again`,
      { cause },
    );
    this.errno = cause.errno;
  }

  /** The CatalogWaitError for `error` when the session's limits ended the statement, else undefined. */
  static of(error: unknown, what: string): CatalogWaitError | undefined {
    const { errno } = (error ?? {}) as { errno?: unknown };
    return error instanceof Error && typeof errno === "number" && GAVE_UP_ERRNOS.has(errno) ? new CatalogWaitError(what, error as Error & { errno: number }) : undefined;
  }
}

const PERMANENT_CODES: Readonly<Record<string, string>> = {
  ER_ACCESS_DENIED_ERROR: "MYSQL_AUTH_FAILED",
  ER_DBACCESS_DENIED_ERROR: "MYSQL_PRIVILEGE_MISSING",
  ER_SPECIFIC_ACCESS_DENIED_ERROR: "MYSQL_PRIVILEGE_MISSING",
  ER_TABLEACCESS_DENIED_ERROR: "MYSQL_PRIVILEGE_MISSING",
  ER_MASTER_FATAL_ERROR_READING_BINLOG: "MYSQL_BINLOG_UNAVAILABLE",
};

/**
 * Logins the server refuses for the account's state rather than the password given, by errno (mysql2 names MariaDB's
 * after unrelated MySQL errors): the account locked (MySQL 3118 ER_ACCOUNT_HAS_BEEN_LOCKED, MariaDB 4151 "this account is
 * locked"), blocked after failed logins (MySQL 3955, FAILED_LOGIN_ATTEMPTS; MariaDB 4150, max_password_errors), the
 * password expired (1862 at the login; 1820 ER_MUST_CHANGE_PASSWORD at the first statement of MariaDB's sandbox session).
 * MariaDB 10.11's 4150, 4151 and 1820 seen live.
 */
const ACCOUNT_REFUSED_ERRNOS = new Set([1820, 1862, 3118, 3955, 4150, 4151]);

export const ER_MASTER_FATAL_ERROR_READING_BINLOG = 1236;
/** MariaDB's ER_SLAVE_SAME_ID (mysql2 names 4052 after a MySQL error); MySQL sends 1236 with the same words. */
const ER_SLAVE_SAME_ID = 4052;
/** The code of a binlog stream the server ended because another replica asked for the binlog with its server_id. */
export const MYSQL_REPLICA_REPLACED = "MYSQL_REPLICA_REPLACED";

/** The server ended a binlog dump because a replica with the same server_id asked for the binlog since. */
export function isReplicaReplaced(error: unknown): boolean {
  const { errno } = (error ?? {}) as { errno?: unknown };
  if (errno === ER_SLAVE_SAME_ID) return true;
  return errno === ER_MASTER_FATAL_ERROR_READING_BINLOG && error instanceof Error && /same server_uuid\/server_id/i.test(error.message);
}

export function isRetriableMysqlError(error: unknown): boolean {
  const { code, errno } = (error ?? {}) as { code?: unknown; errno?: unknown };
  if (typeof code === "string" && RETRIABLE_CODES.has(code)) return true;
  if (typeof errno === "number" && RETRIABLE_ERRNOS.has(errno)) return true;
  const message = error instanceof Error ? error.message : String(error);
  return /Connection lost|closed state|socket hang up|read ECONNRESET|connect ETIMEDOUT/i.test(message);
}

/** Where, for messages: "MySQL/MariaDB at 127.0.0.1:3306 (source app)". */
function serverText(context: ErrorContext): string {
  const at = context.server === undefined ? "" : ` at ${context.server}`;
  const source = context.source === undefined ? "" : ` (source ${context.source})`;
  return `MySQL/MariaDB${at}${source}`;
}

/** ER_USER_LIMIT_REACHED: an account resource limit (MAX_USER_CONNECTIONS and the hourly ones). */
const ER_USER_LIMIT_REACHED = 1226;
/** ER_TOO_MANY_USER_CONNECTIONS: the server's max_user_connections. */
const ER_TOO_MANY_USER_CONNECTIONS = 1203;

/**
 * The most connections a source opens as its account at once: the catalog and the binlog, up to snapshot.parallelism
 * for the initial snapshot and as many lanes for online snapshots, and one for the signal table.
 */
export function connectionsNeeded(snapshot: { readonly parallelism: number; readonly signal_table?: string | undefined }): number {
  return 2 + 2 * snapshot.parallelism + (snapshot.signal_table === undefined ? 0 : 1);
}

/** What to do about an account's MAX_USER_CONNECTIONS, with the count of this source when its context holds it. */
function userConnectionsRemedy(context: ErrorContext): string {
  const needed = context["connectionsNeeded"];
  const count = typeof needed === "number" ? `up to ${needed} connections with this config` : "up to 2 + 2 × snapshot.parallelism connections (+1 with snapshot.signal_table)";
  return `Sluice opens ${count} (the catalog and the binlog, snapshot.parallelism for the initial snapshot and as many for online snapshots, one for the signal table): if the account's MAX_USER_CONNECTIONS (or the server's max_user_connections) is below that, raise it (one more leaves room for a reconnect) or lower snapshot.parallelism; tried again`;
}

export function toSluiceError(error: unknown, what: string, context: ErrorContext): SluiceError {
  if (error instanceof SluiceError) return error;
  const detail = error instanceof Error ? error.message : String(error);
  const { code, errno } = (error ?? {}) as { code?: unknown; errno?: unknown };
  const fullContext: ErrorContext = typeof errno === "number" ? { ...context, errno } : context;
  const tls = describeTlsFailure(error);
  if (tls !== undefined) {
    return new SluiceError(`${what}: ${serverText(context)}: ${tls}; check tls.mode and tls.ca_file (the CA that signed the server's certificate)`, {
      code: "MYSQL_TLS_FAILED",
      retriable: false,
      cause: error,
      context: fullContext,
    });
  }
  if (code === "ER_ACCESS_DENIED_ERROR" || code === "ER_ACCESS_DENIED_NO_PASSWORD_ERROR") {
    return new SluiceError(`${what}: ${serverText(context)} refused the login: ${detail}; check user, password, the account's host and REQUIRE settings, and tls (a server with require_secure_transport refuses plain TCP this way)`, {
      code: "MYSQL_AUTH_FAILED",
      retriable: false,
      cause: error,
      context: fullContext,
    });
  }
  if (typeof errno === "number" && ACCOUNT_REFUSED_ERRNOS.has(errno)) {
    return new SluiceError(`${what}: ${serverText(context)} refused the login: ${detail}; the account is locked, blocked after failed logins, or its password expired: have an administrator unlock it (ALTER USER ... ACCOUNT UNLOCK; MariaDB's max_password_errors: FLUSH PRIVILEGES) or set a new password`, {
      code: "MYSQL_AUTH_FAILED",
      retriable: false,
      cause: error,
      context: fullContext,
    });
  }
  if (error instanceof CatalogWaitError) return new ConnectionError(`${what}: ${detail}`, { code: error.code, cause: error, context: fullContext });
  if (errno === ER_TOO_MANY_USER_CONNECTIONS || (errno === ER_USER_LIMIT_REACHED && /max_user_connections/i.test(detail))) {
    return new ConnectionError(`${what}: ${detail}; ${userConnectionsRemedy(context)}`, { cause: error, context: fullContext });
  }
  if (isRetriableMysqlError(error)) return new ConnectionError(`${what}: ${detail}`, { cause: error, context: fullContext });
  const sluiceCode = (typeof code === "string" ? PERMANENT_CODES[code] : undefined) ?? "MYSQL_ERROR";
  const hint = sluiceCode === "MYSQL_PRIVILEGE_MISSING" ? ` (${serverText(context)}; docs/mysql.md lists the grants Sluice's user needs)` : "";
  return new SluiceError(`${what}: ${detail}${hint}`, { code: sluiceCode, retriable: false, cause: error, context: fullContext });
}
