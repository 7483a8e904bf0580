/**
 * MySQL 8's caching_sha2_password (on a cache miss) and sha256_password need the password itself. Over TLS it is sent as
 * it is; over plain TCP it is encrypted with the server's RSA public key, which mysql2 asks the server for on that same
 * connection. Anyone between Sluice and the server can answer with a key of their own and read the password. MySQL's own
 * connectors refuse that unless told to (allowPublicKeyRetrieval, --get-server-public-key); so does Sluice: with
 * tls.mode disable, the key comes from server_public_key_file, or is fetched only with allow_public_key_retrieval: true.
 */
import { createPublicKey } from "node:crypto";
import mysql from "mysql2";
import type { ConnectionOptions } from "mysql2";
import type { MysqlSourceConfig } from "../../config/schema.ts";
import { PEM_FILE_MAX_BYTES, readBoundedFile } from "../../config/bounded-file.ts";
import { ConfigError, SluiceError } from "../errors.ts";

type AuthPlugins = NonNullable<ConnectionOptions["authPlugins"]>;
type AuthPlugin = AuthPlugins[string];

export const PUBLIC_KEY_RETRIEVAL_REFUSED = "MYSQL_PUBLIC_KEY_RETRIEVAL_REFUSED";

/** The one-byte packets with which each plugin asks the server for its public key. */
const KEY_REQUESTS = { caching_sha2_password: 0x02, sha256_password: 0x01 } as const;
type KeyPlugin = keyof typeof KEY_REQUESTS;

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
  return { caching_sha2_password: refusingKeyRequests(config, "caching_sha2_password"), sha256_password: refusingKeyRequests(config, "sha256_password") };
}

/** mysql2's plugin, stopped at the point where it would ask the server for its public key. */
function refusingKeyRequests(config: MysqlSourceConfig, plugin: KeyPlugin): AuthPlugin {
  const factory = mysql.authPlugins[plugin]({});
  return (metadata) => {
    const step = factory(metadata);
    return (data) => {
      const answer = step(data);
      if (Buffer.isBuffer(answer) && answer.length === 1 && answer[0] === KEY_REQUESTS[plugin]) throw keyRetrievalRefused(config, plugin);
      return answer;
    };
  };
}

function keyRetrievalRefused(config: MysqlSourceConfig, plugin: KeyPlugin): SluiceError {
  const server = `${config.host}:${config.port}`;
  return new SluiceError(
    `source "${config.name}": MySQL at ${server} needs the password itself (${plugin} full authentication) and the connection is plain TCP (tls.mode: disable): ` +
      "Sluice would have to fetch the server's RSA public key over that connection, where anyone on the network can replace it with their own and read the password. " +
      "Refused before the password was sent. Set tls.mode (verify-full, or at least require), or server_public_key_file (the server's public key PEM: its public_key.pem, or SHOW STATUS LIKE 'Caching_sha2_password_rsa_public_key'), " +
      "or allow_public_key_retrieval: true to accept the risk (docs/security.md)",
    { code: PUBLIC_KEY_RETRIEVAL_REFUSED, retriable: false, context: { source: config.name, server, plugin } },
  );
}

function readServerPublicKey(config: MysqlSourceConfig): string {
  const path = config.server_public_key_file ?? "";
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
