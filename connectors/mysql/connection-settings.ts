/**
 * mysql2 settings for every connection Sluice opens to the captured server. Session settings pin
 * what the value decoders expect: UTC for TIMESTAMP text, utf8mb4 for all text.
 */
import { isIP } from "node:net";
import { checkServerIdentity } from "node:tls";
import type { TLSSocket } from "node:tls";
import type { ConnectionOptions, SslOptions } from "mysql2";
import type { MysqlSourceConfig } from "../../config/schema.ts";
import { currentSecret } from "../../config/secret-files.ts";
import { readTlsFiles } from "../common/tls-files.ts";
import { passwordAuthPlugins } from "./public-key-auth.ts";
import type { Flavor } from "./resume-token.ts";

export type ConnectionPurpose = "catalog" | "snapshot" | "binlog";

export const SESSION_SETTINGS_SQL = "SET SESSION time_zone = '+00:00', SESSION sql_mode = '', NAMES utf8mb4";

/** How long a catalog statement may run (mostly: wait for a metadata lock) before the server gives it up (MysqlSourceOptions.catalogTimeoutMs). */
export const CATALOG_TIMEOUT_MS = 30_000;

/**
 * Limits of the catalog connection's session (table metadata, not the binlog stream). Without them a read of a table's
 * definition that meets an exclusive metadata lock (a DROP or RENAME waiting behind an open transaction holds one on the
 * tables it already locked) waits for lock_wait_timeout, a year by default, and capture stops without a word.
 *
 * The statement limit (MariaDB max_statement_time, MySQL max_execution_time for SELECTs) fails the read with an error.
 * lock_wait_timeout alone would not do: an information_schema read whose table stays locked past it does not fail, it
 * leaves the table out (with a warning), and a definition read would take the table for dropped. So lock_wait_timeout is
 * set a second longer than the statement limit: it only ends the waits of statements the limit does not cover (SHOW
 * CREATE TABLE on MySQL), with ER_LOCK_WAIT_TIMEOUT.
 */
export function catalogSessionSql(flavor: Flavor, timeoutMs: number): string {
  const lockWaitSeconds = Math.ceil(timeoutMs / 1000) + 1;
  const statementLimit = flavor === "mariadb" ? `max_statement_time = ${timeoutMs / 1000}` : `max_execution_time = ${Math.ceil(timeoutMs)}`;
  return `SET SESSION ${statementLimit}, SESSION lock_wait_timeout = ${lockWaitSeconds}`;
}

export function connectionOptions(config: MysqlSourceConfig, purpose: ConnectionPurpose): ConnectionOptions {
  const options: ConnectionOptions = {
    host: config.host,
    port: config.port,
    user: config.user,
    charset: "utf8mb4_general_ci",
    timezone: "Z",
    dateStrings: true,
    supportBigNumbers: true,
    bigNumberStrings: true,
    decimalNumbers: false,
    connectTimeout: 10_000,
    enableKeepAlive: true,
    keepAliveInitialDelay: 10_000,
    multipleStatements: false,
    connectAttributes: { program_name: `sluice:${config.name}:${purpose}` },
  };
  // A password_file is read again for each connection: a password rotated on the server and in the file is taken at the reconnect.
  const password = currentSecret(config, "password");
  if (password !== undefined) options.password = password;
  const ssl = tlsSettings(config);
  if (ssl !== undefined) options.ssl = ssl;
  const authPlugins = passwordAuthPlugins(config);
  if (authPlugins !== undefined) options.authPlugins = authPlugins;
  return options;
}

/** TLS settings whose host is an IP address that Sluice checks against the certificate itself, see below. */
const ipIdentityChecks = new WeakSet<SslOptions>();

/** TLS for every connection, the binlog connection included (it is a mysql2 connection too). */
function tlsSettings(config: MysqlSourceConfig): SslOptions | undefined {
  const { mode } = config.tls;
  if (mode === "disable") return undefined;
  const { ca, cert, key } = readTlsFiles(config.tls, config.name);
  // mysql2 checks a host given as an IP address against the name "localhost" instead of the address.
  const byIp = mode === "verify-full" && isIP(config.host) !== 0;
  const settings: SslOptions = { rejectUnauthorized: mode !== "require", verifyIdentity: mode === "verify-full" && !byIp };
  if (byIp) ipIdentityChecks.add(settings);
  if (cert !== undefined && key !== undefined) Object.assign(settings, { cert, key });
  if (mode !== "require" && ca !== undefined) settings.ca = ca;
  return settings;
}

/**
 * Checks the server certificate of a connected mysql2 connection (its `stream`) against an IP
 * address host, for verify-full; throws the tls module's ERR_TLS_CERT_ALTNAME_INVALID error.
 */
export function verifyIpIdentity(options: ConnectionOptions, stream: unknown): void {
  if (typeof options.ssl !== "object" || !ipIdentityChecks.has(options.ssl)) return;
  const socket = stream as Partial<Pick<TLSSocket, "getPeerCertificate">> | undefined;
  if (typeof socket?.getPeerCertificate !== "function") throw new Error("TLS was not established on the connection");
  const error = checkServerIdentity(options.host ?? "", socket.getPeerCertificate());
  if (error !== undefined) throw error;
}

export function quoteIdentifier(name: string): string {
  return `\`${name.replaceAll("`", "``")}\``;
}

export function quoteString(text: string): string {
  return `'${text.replaceAll("\\", "\\\\").replaceAll("'", "''").replaceAll("\0", "\\0")}'`;
}
