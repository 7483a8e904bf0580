/**
 * mysql2 settings for every connection Sluice opens to the captured server. Session settings pin
 * what the value decoders expect: UTC for TIMESTAMP text, utf8mb4 for all text.
 */
import type { ConnectionOptions, SslOptions } from "mysql2";
import type { MysqlSourceConfig } from "../../config/schema.ts";
import { readTlsFiles } from "../common/tls-files.ts";

export type ConnectionPurpose = "catalog" | "snapshot" | "binlog";

export const SESSION_SETTINGS_SQL = "SET SESSION time_zone = '+00:00', SESSION sql_mode = '', NAMES utf8mb4";

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
  if (config.password !== undefined) options.password = config.password;
  const ssl = tlsSettings(config);
  if (ssl !== undefined) options.ssl = ssl;
  return options;
}

/** TLS for every connection, the binlog connection included (it is a mysql2 connection too). */
function tlsSettings(config: MysqlSourceConfig): SslOptions | undefined {
  const { mode } = config.tls;
  if (mode === "disable") return undefined;
  const { ca, cert, key } = readTlsFiles(config.tls, config.name);
  const settings: SslOptions = { rejectUnauthorized: mode !== "require", verifyIdentity: mode === "verify-full" };
  if (cert !== undefined && key !== undefined) Object.assign(settings, { cert, key });
  if (mode !== "require" && ca !== undefined) settings.ca = ca;
  return settings;
}

export function quoteIdentifier(name: string): string {
  return `\`${name.replaceAll("`", "``")}\``;
}

export function quoteString(text: string): string {
  return `'${text.replaceAll("\\", "\\\\").replaceAll("'", "''").replaceAll("\0", "\\0")}'`;
}
