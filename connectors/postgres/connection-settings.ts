/**
 * pg client settings for every connection Sluice opens to the captured database. The session
 * settings pin the text forms the value decoders expect, on normal connections (snapshot) and on
 * the replication connection alike: pgoutput prints values with the walsender's settings.
 */
import type { ClientConfig } from "pg";
import type { ConnectionOptions } from "node:tls";
import type { PostgresSourceConfig } from "../../config/schema.ts";
import { currentSecret } from "../../config/secret-files.ts";
import { readTlsFiles } from "../common/tls-files.ts";

export const SESSION_SETTINGS: Readonly<Record<string, string>> = {
  datestyle: "ISO",
  intervalstyle: "iso_8601",
  timezone: "UTC",
  extra_float_digits: "1",
  bytea_output: "hex",
  lc_monetary: "C",
  client_encoding: "UTF8",
  // Sluice builds SQL text with quoteLiteral: a server, database or role setting of off must not change how it reads.
  standard_conforming_strings: "on",
};

const startupOptions = Object.entries(SESSION_SETTINGS)
  .map(([name, value]) => `-c ${name}=${value}`)
  .join(" ");

/** Every value arrives as the server's text: ../values/ decodes it, the same way as pgoutput's. */
const rawText = { getTypeParser: () => (text: string) => text };

export type ConnectionPurpose = "catalog" | "snapshot" | "replication" | "heartbeat";

/**
 * lock_timeout of the catalog connections (table metadata, the publication, the signal table): without it a catalog read
 * that needs a table's lock (pg_get_expr of a column default opens the table) queues behind an ALTER TABLE that waits for
 * a long transaction, for as long as that lasts, and capture stops without a word. With it the read fails (55P03), which
 * capture retries as an outage (pg-errors.ts). The MySQL source's catalog connection has the same limit.
 */
export const CATALOG_LOCK_TIMEOUT_MS = 30_000;

/** `limits.catalogLockTimeoutMs`: the catalog connections' lock_timeout (default CATALOG_LOCK_TIMEOUT_MS; tests set less). */
export function clientConfig(config: PostgresSourceConfig, purpose: ConnectionPurpose, limits: { catalogLockTimeoutMs?: number } = {}): ClientConfig {
  const settings: ClientConfig & { replication?: string; options?: string } = {
    host: config.host,
    port: config.port,
    user: config.user,
    database: config.database,
    application_name: `sluice:${config.name}:${purpose}`,
    options: purpose === "catalog" ? `${startupOptions} -c lock_timeout=${Math.ceil(limits.catalogLockTimeoutMs ?? CATALOG_LOCK_TIMEOUT_MS)}` : startupOptions,
    ssl: tlsSettings(config),
    types: rawText,
    connectionTimeoutMillis: 10_000,
    keepAlive: true,
  };
  // A password_file is read again for each connection: a password rotated on the server and in the file is taken at the reconnect.
  const password = currentSecret(config, "password");
  if (password !== undefined) settings.password = password;
  if (purpose === "replication") settings.replication = "database";
  return settings;
}

/** TLS for every connection, the replication connection included (pg-logical-replication passes this config to pg). */
function tlsSettings(config: PostgresSourceConfig): false | ConnectionOptions {
  const { mode } = config.tls;
  if (mode === "disable") return false;
  const { ca, cert, key } = readTlsFiles(config.tls, config.name);
  const settings: ConnectionOptions = { rejectUnauthorized: mode !== "require" };
  if (cert !== undefined && key !== undefined) Object.assign(settings, { cert, key });
  if (mode === "require") return settings;
  if (ca !== undefined) settings.ca = ca;
  if (mode === "verify-ca") settings.checkServerIdentity = () => undefined;
  return settings;
}

/** A double-quoted SQL identifier. */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/**
 * A SQL string literal that reads as `text` whatever standard_conforming_strings is: with a backslash in it, an escape
 * string (E'...', backslashes doubled), as PostgreSQL's quote_literal writes it; with standard_conforming_strings off a
 * plain '...' would take a backslash as an escape, and a name ending in one would close the string early.
 */
export function quoteLiteral(text: string): string {
  const quoted = text.replaceAll("'", "''");
  return text.includes("\\") ? `E'${quoted.replaceAll("\\", "\\\\")}'` : `'${quoted}'`;
}

/**
 * A string literal of a replication command (START_REPLICATION's options): the walsender's grammar knows no escape
 * strings and takes backslashes as they are, so only quotes are doubled.
 */
export function quoteReplicationLiteral(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}
