/**
 * Recognises a failed TLS handshake in what Node's tls module (under pg and mysql2) throws:
 * an untrusted, expired or wrongly named server certificate, a client certificate the server
 * refused, or a server without TLS. None of these heals by retrying.
 */

const CERTIFICATE_CODES = new Set([
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "UNABLE_TO_DECRYPT_CERT_SIGNATURE",
  "CERT_SIGNATURE_FAILURE",
  "CERT_NOT_YET_VALID",
  "CERT_HAS_EXPIRED",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
  "CERT_REVOKED",
  "INVALID_CA",
  "PATH_LENGTH_EXCEEDED",
  "INVALID_PURPOSE",
  "HOSTNAME_MISMATCH",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

/** "certificate verify failed: ..." / "TLS handshake failed: ..." for a TLS failure, undefined for anything else. */
export function describeTlsFailure(error: unknown): string | undefined {
  const { code } = (error ?? {}) as { code?: unknown };
  const message = error instanceof Error ? error.message : String(error);
  if (typeof code === "string" && CERTIFICATE_CODES.has(code)) return `certificate verify failed: ${message}`;
  // mysql2 replaces the tls module's code with its own.
  if (code === "HANDSHAKE_SSL_ERROR" && /certificate|self.signed|Hostname\/IP does not match|issuer/i.test(message)) return `certificate verify failed: ${message}`;
  if (code === "HANDSHAKE_SSL_ERROR") return `TLS handshake failed: ${message}`;
  const handshake = typeof code === "string" && (code.startsWith("ERR_SSL_") || code === "HANDSHAKE_NO_SSL_SUPPORT" || (code.startsWith("ERR_TLS_") && code !== "ERR_TLS_HANDSHAKE_TIMEOUT"));
  if (handshake) return `TLS handshake failed: ${message}`;
  if (/does not support SSL|does not support secure connection/i.test(message)) return `TLS handshake failed: ${message}`;
  return undefined;
}
