import { test } from "node:test";
import assert from "node:assert/strict";
import { describeTlsFailure } from "./tls-errors.ts";

const failure = (message: string, code?: string) => Object.assign(new Error(message), code === undefined ? {} : { code });

test("certificate failures from the tls module and from mysql2's HANDSHAKE_SSL_ERROR", () => {
  assert.equal(describeTlsFailure(failure("self-signed certificate in certificate chain", "SELF_SIGNED_CERT_IN_CHAIN")), "certificate verify failed: self-signed certificate in certificate chain");
  assert.match(describeTlsFailure(failure("Hostname/IP does not match certificate's altnames", "ERR_TLS_CERT_ALTNAME_INVALID"))!, /^certificate verify failed/);
  assert.match(describeTlsFailure(failure("certificate has expired", "HANDSHAKE_SSL_ERROR"))!, /^certificate verify failed/);
  assert.match(describeTlsFailure(failure("wrong version number", "HANDSHAKE_SSL_ERROR"))!, /^TLS handshake failed/);
});

test("handshakes the server refused, and servers without TLS", () => {
  assert.match(describeTlsFailure(failure("tlsv1 alert unknown ca", "ERR_SSL_TLSV1_ALERT_UNKNOWN_CA"))!, /^TLS handshake failed/);
  assert.match(describeTlsFailure(failure("The server does not support SSL connections"))!, /^TLS handshake failed/);
  assert.match(describeTlsFailure(failure("Server does not support secure connection", "HANDSHAKE_NO_SSL_SUPPORT"))!, /^TLS handshake failed/);
});

test("network failures and everything else are not TLS failures (a handshake timeout is an outage)", () => {
  for (const [message, code] of [["connect ECONNREFUSED", "ECONNREFUSED"], ["timeout", "ERR_TLS_HANDSHAKE_TIMEOUT"], ["password authentication failed", "28P01"], ["boom", undefined]] as const) {
    assert.equal(describeTlsFailure(failure(message, code)), undefined, message);
  }
  assert.equal(describeTlsFailure(undefined), undefined);
});
