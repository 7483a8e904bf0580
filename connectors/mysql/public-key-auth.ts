/**
 * MySQL 8's caching_sha2_password (on a cache miss) and sha256_password need the password itself. Over TLS it is sent as
 * it is; over plain TCP it is encrypted with the server's RSA public key, which mysql2 asks the server for on that same
 * connection. Anyone between Sluice and the server can answer with a key of their own and read the password. MySQL's own
 * connectors refuse that unless told to (allowPublicKeyRetrieval, --get-server-public-key); so does Sluice: with
 * tls.mode disable, the key comes from server_public_key_file, or is fetched only with allow_public_key_retrieval: true.
 *
 * Without either, every caching_sha2_password/sha256_password login over plain TCP is refused, the ones the server's
 * login cache lets through without the password (fast authentication) too: a deployment that works from the cache
 * would otherwise be refused only at the first login after the server's next restart, FLUSH PRIVILEGES or failover,
 * during that incident rather than when it was deployed.
 */
import { createPublicKey } from "node:crypto";
import mysql from "mysql2";
import type { ConnectionOptions } from "mysql2";
import type { MysqlSourceConfig } from "../../config/schema.ts";
import { PEM_FILE_MAX_BYTES, readBoundedFile } from "../../config/bounded-file.ts";
import { noteUnreadableSecretFile } from "../../config/secret-files.ts";
import { ConfigError, SluiceError } from "../errors.ts";

type AuthPlugins = NonNullable<ConnectionOptions["authPlugins"]>;
type AuthPlugin = AuthPlugins[string];

export const PUBLIC_KEY_RETRIEVAL_REFUSED = "MYSQL_PUBLIC_KEY_RETRIEVAL_REFUSED";

type KeyPlugin = "caching_sha2_password" | "sha256_password";

/** The plugins to pass to mysql2 for `config`'s connections; undefined keeps mysql2's own (TLS on, or the opt-in set). */
export function passwordAuthPlugins(config: MysqlSourceConfig): AuthPlugins | undefined {
  if (config.tls.mode !== "disable") return undefined;
  if (config.server_public_key_file !== undefined) {
    const serverPublicKey = readServerPublicKey(config);
    return {
      caching_sha2_password: mysql.authPlugins.caching_sha2_password({ serverPublicKey }),
      sha256_password: mysql.authPlugins.sha256_password({ serverPublicKey }),
    };
  }
  if (config.allow_public_key_retrieval) return undefined;
  return { caching_sha2_password: refusingPlainLogins(config, "caching_sha2_password"), sha256_password: refusingPlainLogins(config, "sha256_password") };
}

/**
 * A plugin that refuses the login as soon as the server asks for it: an account on caching_sha2_password or
 * sha256_password over plain TCP with no safe way to send its password in full. The server's cache may let this login
 * through (fast authentication) but not the first one after its next restart, FLUSH PRIVILEGES or failover.
 */
function refusingPlainLogins(config: MysqlSourceConfig, plugin: KeyPlugin): AuthPlugin {
  return () => () => {
    throw keyRetrievalRefused(config, plugin);
  };
}

function keyRetrievalRefused(config: MysqlSourceConfig, plugin: KeyPlugin): SluiceError {
  const server = `${config.host}:${config.port}`;
  return new SluiceError(
    `source "${config.name}": the MySQL account at ${server} logs in with ${plugin} and the connection is plain TCP (tls.mode: disable). ` +
      "Whenever the server has not cached the login (after its restart, a FLUSH PRIVILEGES or a failover; always for sha256_password) the password must be sent in full, " +
      "and Sluice would have to fetch the server's RSA public key over that connection, where anyone on the network can replace it with their own and read the password. " +
      "Refused now, before any password was sent, rather than at that later login. Set tls.mode (verify-full, or at least require), or server_public_key_file (the server's public key PEM: its public_key.pem, or SHOW STATUS LIKE 'Caching_sha2_password_rsa_public_key'), " +
      "or allow_public_key_retrieval: true to accept the risk (docs/security.md)",
    { code: PUBLIC_KEY_RETRIEVAL_REFUSED, retriable: false, context: { source: config.name, server, plugin } },
  );
}

/** The key each source's server_public_key_file gave at its last good read: what a failed read at a reconnection falls back to. */
const lastPublicKey = new Map<string, string>();

/**
 * server_public_key_file as it stands now, read again at each connection (a key pair replaced on the server). A read that
 * fails after one succeeded in this process (a Secret mount being swapped) keeps the key read last and is reported;
 * at the first read it is a configuration error.
 */
function readServerPublicKey(config: MysqlSourceConfig): string {
  const path = config.server_public_key_file ?? "";
  const remembered = `${config.name}\0${path}`;
  try {
    const pem = readPublicKeyFile(config, path);
    lastPublicKey.set(remembered, pem);
    return pem;
  } catch (error) {
    const previous = lastPublicKey.get(remembered);
    if (previous === undefined) throw error;
    const cause = (error as { cause?: { code?: unknown } }).cause;
    const code = typeof cause?.code === "string" ? cause.code : "EINVAL";
    noteUnreadableSecretFile({ name: config.name, key: "server_public_key", file: path, code, reason: (error as Error).message });
    return previous;
  }
}

function readPublicKeyFile(config: MysqlSourceConfig, path: string): string {
  const context = { source: config.name, option: "server_public_key_file", path };
  let pem: string;
  try {
    pem = readBoundedFile(path, PEM_FILE_MAX_BYTES).toString("utf8");
  } catch (error) {
    throw new ConfigError(`source "${config.name}": cannot read server_public_key_file ${path}: ${(error as Error).message}`, { code: "TLS_FILE_UNREADABLE", cause: error, context });
  }
  try {
    createPublicKey(pem);
  } catch (error) {
    throw new ConfigError(`source "${config.name}": server_public_key_file ${path} holds no PEM public key: ${(error as Error).message}`, { code: "TLS_FILE_UNREADABLE", cause: error, context });
  }
  return pem;
}
