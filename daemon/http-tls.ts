/**
 * The HTTP server's certificate and key (http.tls): read as the start and SIGHUP read them, and checked before a
 * listener takes them, so a file that is not PEM or a key that is not the certificate's is named with its key in the
 * config (sluice validate, the start, a reload), not left to OpenSSL's "PEM routines::no start line" from inside
 * Node's HTTPS server.
 */
import { createPrivateKey, X509Certificate } from "node:crypto";
import { createSecureContext } from "node:tls";
import { PEM_FILE_MAX_BYTES, readBoundedFile } from "../config/bounded-file.ts";
import { describeFsError } from "../config/document.ts";
import type { SluiceConfig } from "../config/schema.ts";
import { SluiceError } from "../connectors/errors.ts";
import type { TlsCredentials } from "./http-server.ts";

export interface TlsProblem {
  readonly path: readonly (string | number)[];
  readonly message: string;
}

/** Reads http.tls's certificate and key (undefined without http.tls); throws HTTP_TLS_FILE or HTTP_TLS_INVALID naming the file. */
export function readTlsCredentials(config: SluiceConfig): TlsCredentials | undefined {
  const problem = checkTls(config);
  if (problem === null) return undefined;
  if ("credentials" in problem) return problem.credentials;
  throw new SluiceError(`${problem.message} (http.tls.${String(problem.path.at(-1))})`, { code: problem.code, context: { component: "http" } });
}

/** sluice validate's check of http.tls: the problem at its key, or none. */
export function httpTlsProblems(config: SluiceConfig): TlsProblem[] {
  const problem = checkTls(config);
  return problem === null || "credentials" in problem ? [] : [{ path: problem.path, message: problem.message }];
}

type Checked = { readonly credentials: TlsCredentials } | { readonly path: readonly (string | number)[]; readonly message: string; readonly code: string };

function checkTls(config: SluiceConfig): Checked | null {
  const tls = config.http.tls;
  if (!tls) return null;
  const at = (key: "cert_file" | "key_file") => ["http", "tls", key] as const;
  const read = (key: "cert_file" | "key_file", what: string): Buffer | Checked => {
    try {
      return readBoundedFile(tls[key], PEM_FILE_MAX_BYTES);
    } catch (error) {
      return { path: at(key), message: `cannot read the HTTP server's ${what} "${tls[key]}": ${describeFsError(error)}`, code: "HTTP_TLS_FILE" };
    }
  };
  const cert = read("cert_file", "certificate");
  if (!Buffer.isBuffer(cert)) return cert;
  const key = read("key_file", "private key");
  if (!Buffer.isBuffer(key)) return key;
  try {
    new X509Certificate(cert);
  } catch (error) {
    return { path: at("cert_file"), message: `"${tls.cert_file}" holds no certificate Sluice can use (PEM, -----BEGIN CERTIFICATE-----): ${openSslReason(error)}`, code: "HTTP_TLS_INVALID" };
  }
  try {
    createPrivateKey(key);
  } catch (error) {
    return { path: at("key_file"), message: `"${tls.key_file}" holds no private key Sluice can use (PEM, unencrypted): ${openSslReason(error)}`, code: "HTTP_TLS_INVALID" };
  }
  try {
    createSecureContext({ cert, key });
  } catch (error) {
    const mismatch = /key values mismatch/.test((error as Error).message);
    const message = mismatch
      ? `the private key "${tls.key_file}" is not the key of the certificate "${tls.cert_file}" (its first certificate must be the server's own, then its chain)`
      : `the certificate "${tls.cert_file}" and private key "${tls.key_file}" cannot be used together: ${openSslReason(error)}`;
    return { path: at("key_file"), message, code: "HTTP_TLS_INVALID" };
  }
  return { credentials: { cert, key } };
}

function openSslReason(error: unknown): string {
  return (error as Error).message.replace(/^error:[0-9A-F]+:/, "");
}
