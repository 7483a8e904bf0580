import assert from "node:assert/strict";
import { test } from "node:test";
import { describeTlsMessage } from "./tls-message.ts";

test("Node's certificate verification texts are certificate failures; OpenSSL alerts are handshake failures; anything else is not TLS", () => {
  for (const message of [
    "self-signed certificate in certificate chain",
    "unable to verify the first certificate; if the root CA is installed locally, try running Node.js with --use-system-ca",
    "unable to get local issuer certificate",
    "certificate has expired",
    "Hostname/IP does not match certificate's altnames: IP: 10.0.0.1 is not in the cert's list: 127.0.0.1",
  ]) {
    assert.equal(describeTlsMessage(message), `certificate verify failed: ${message}`);
  }
  for (const message of [
    "40BD04BFB57F0000:error:0A00045C:SSL routines:ssl3_read_bytes:tlsv13 alert certificate required",
    "C0E7A6C5:error:0A00010B:SSL routines:ssl3_get_record:wrong version number",
  ]) {
    assert.equal(describeTlsMessage(message), `TLS handshake failed: ${message}`);
  }
  for (const message of ["connect ECONNREFUSED 127.0.0.1:9200", "other side closed", "Request timed out", "security_exception: unable to authenticate user"]) {
    assert.equal(describeTlsMessage(message), undefined);
  }
});
