/**
 * Turns what pg throws into Sluice errors that say whether retrying can help: network failures,
 * server shutdowns and busy slots heal; bad credentials, missing databases and missing privileges
 * do not.
 */
import { ConnectionError, SluiceError } from "../errors.ts";
import type { ErrorContext } from "../errors.ts";
import { describeTlsFailure } from "../common/tls-errors.ts";

const RETRIABLE_NETWORK_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN", "ENOTFOUND"]);

/** SQLSTATEs (or classes, two characters) worth retrying; 55P03: lock_timeout (the catalog connection's, connection-settings.ts) ended a wait for a lock. */
const RETRIABLE_SQLSTATES = ["08", "53", "57P01", "57P02", "57P03", "55006", "55P03", "58", "40001", "40P01"];

const PERMANENT_SQLSTATES: Readonly<Record<string, string>> = {
  "28000": "PG_AUTH_FAILED",
  "28P01": "PG_AUTH_FAILED",
  "3D000": "PG_DATABASE_MISSING",
  "42501": "PG_PRIVILEGE_MISSING",
};

function sqlState(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

export function isRetriablePgError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === "string" && RETRIABLE_NETWORK_CODES.has(code)) return true;
  const state = sqlState(error);
  if (state !== undefined) return RETRIABLE_SQLSTATES.some((prefix) => state.startsWith(prefix));
  const message = error instanceof Error ? error.message : String(error);
  return /Connection terminated|timeout expired|connection timeout|socket hang up|Client has encountered a connection error|Connection ended|not queryable/i.test(message);
}

/** Where, for messages: "PostgreSQL at 127.0.0.1:5432 (source app)". */
function serverText(context: ErrorContext): string {
  const at = context.server === undefined ? "" : ` at ${context.server}`;
  const source = context.source === undefined ? "" : ` (source ${context.source})`;
  return `PostgreSQL${at}${source}`;
}

export function toSluiceError(error: unknown, what: string, context: ErrorContext): SluiceError {
  if (error instanceof SluiceError) return error;
  const detail = error instanceof Error ? error.message : String(error);
  const state = sqlState(error);
  const fullContext: ErrorContext = state === undefined ? context : { ...context, sqlstate: state };
  const tls = describeTlsFailure(error);
  if (tls !== undefined) {
    return new SluiceError(`${what}: ${serverText(context)}: ${tls}; check tls.mode and tls.ca_file (the CA that signed the server's certificate)`, {
      code: "PG_TLS_FAILED",
      retriable: false,
      cause: error,
      context: fullContext,
    });
  }
  if (/client password must be a string|password must be a string/i.test(detail)) {
    return new SluiceError(`${what}: ${serverText(context)} asks for a password and none is configured (set password or password_file)`, {
      code: "PG_AUTH_FAILED",
      retriable: false,
      cause: error,
      context: fullContext,
    });
  }
  if (state === "28000" || state === "28P01") {
    return new SluiceError(`${what}: ${serverText(context)} refused the login: ${detail}; check user, password and pg_hba.conf`, {
      code: "PG_AUTH_FAILED",
      retriable: false,
      cause: error,
      context: fullContext,
    });
  }
  if (isRetriablePgError(error)) {
    return new ConnectionError(`${what}: ${detail}`, { cause: error, context: fullContext, code: state === "55006" ? "PG_OBJECT_IN_USE" : state === "55P03" ? "PG_LOCK_TIMEOUT" : "CONNECTION_FAILED" });
  }
  const code = (state !== undefined ? PERMANENT_SQLSTATES[state] : undefined) ?? "PG_ERROR";
  const hint = code === "PG_PRIVILEGE_MISSING" ? ` (${serverText(context)}; docs/postgres.md lists the grants Sluice's role needs)` : "";
  return new SluiceError(`${what}: ${detail}${hint}`, { code, retriable: false, cause: error, context: fullContext });
}

/**
 * pgoutput's `publication "P" does not exist` for the publication the stream reads: told by its SQLSTATE (42704,
 * undefined_object) and the publication's name, not by the English text, which lc_messages may translate (and whose
 * quotes then differ: »P«, « P »).
 */
export function isPublicationDropped(error: unknown, publication: string): boolean {
  const detail = error instanceof Error ? error.message : String(error);
  // `replication slot "S" does not exist` is 42704 too, and by default the slot and the publication share a name: the
  // server's routine (never translated) tells it (ReplicationSlotAcquire).
  const routine = (error as { routine?: unknown } | null)?.routine;
  if (typeof routine === "string" && /Slot/.test(routine)) return false;
  return sqlState(error) === "42704" && detail.includes(publication);
}

/**
 * Capture's failure when the publication was dropped (or dropped and created again) while the slot still had changes
 * to stream. Each change is decoded with the catalog as of its own WAL position, so no change made while the publication
 * was missing can be streamed from this slot: retrying, a restart and creating the publication again all fail at the
 * same change. Up to PostgreSQL 17 the stream fails at the first such change (`error`); PostgreSQL 18's pgoutput only
 * logs a WARNING ('skipped loading publication') and leaves the changes out, so the catalog look that finds the
 * publication missing fails capture the same way (`seenBy` "look"). With `renewing` (snapshot.mode when-needed) the
 * source takes a new snapshot on a new slot at its reconnect: retriable; otherwise permanent, saying how to capture again.
 */
export function publicationDroppedError(
  error: unknown,
  names: { readonly slot: string; readonly publication: string },
  context: ErrorContext,
  renewing = false,
  seenBy: "stream" | "look" = "stream",
): SluiceError {
  const slotLiteral = `'${names.slot.replaceAll("'", "''")}'`;
  const seen =
    seenBy === "stream"
      ? `replication stream failed: publication "${names.publication}" was dropped while slot "${names.slot}" still had changes to stream `
      : `publication "${names.publication}" is missing (dropped while capture streams from slot "${names.slot}"; PostgreSQL 18 leaves the changes made meanwhile out of the stream without failing it) `;
  const what =
    seen +
    `(${serverText(context)}, at ${context.position ?? "?"}). PostgreSQL decodes each change with the catalog as it was when the change was made, ` +
    `so the changes made while the publication was missing cannot be streamed from this slot, and creating it again does not help. `;
  const next = renewing
    ? `Taking a new snapshot on a new slot (snapshot.mode when-needed); each table's snapshot reset removes from the sinks the rows deleted meanwhile (docs/postgres.md#a-dropped-publication).`
    : `To capture again from a new consistent snapshot: drop the slot (SELECT pg_drop_replication_slot(${slotLiteral})), set snapshot.mode: when-needed ` +
      `for this source and restart; each table's snapshot reset then removes from the sinks the rows deleted meanwhile (docs/postgres.md#a-dropped-publication).`;
  return new SluiceError(what + next, {
    code: "PG_PUBLICATION_DROPPED",
    retriable: renewing,
    cause: error,
    context: { ...context, sqlstate: "42704", slot: names.slot, publication: names.publication },
  });
}
