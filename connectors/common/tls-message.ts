/**
 * Recognises a failed TLS handshake from the message alone, for clients that keep only the text of
 * Node's error (the Elasticsearch transport wraps it in its own ConnectionError without the code).
 * The texts are OpenSSL's certificate verification results and alerts as Node reports them.
 */

const CERTIFICATE_MESSAGES =
  /self[- ]signed certificate|unable to verify the first certificate|unable to get (local )?issuer certificate|certificate has expired|certificate is not yet valid|Hostname\/IP does not match certificate's altnames|certificate signature failure|unsuitable certificate purpose|invalid CA certificate/i;
const HANDSHAKE_MESSAGES = /SSL routines|wrong version number|alert (bad|unknown|unsupported) certificate|alert certificate required|alert handshake failure|packet length too long/i;

/** "certificate verify failed: ..." / "TLS handshake failed: ..." when the message says so, undefined otherwise. */
export function describeTlsMessage(message: string): string | undefined {
  if (CERTIFICATE_MESSAGES.test(message)) return `certificate verify failed: ${message}`;
  if (HANDSHAKE_MESSAGES.test(message)) return `TLS handshake failed: ${message}`;
  return undefined;
}
