import { test } from "node:test";
import assert from "node:assert/strict";
import type { MysqlSourceConfig } from "../../config/schema.ts";
import { connectionOptions, verifyIpIdentity } from "./connection-settings.ts";

function config(host: string, mode: MysqlSourceConfig["tls"]["mode"]): MysqlSourceConfig {
  return {
    kind: "mysql",
    name: "app",
    host,
    port: 3306,
    user: "capture",
    tls: { mode },
    snapshot: { mode: "initial", parallelism: 1, chunk_rows: 10 },
    decimal_mode: "precise",
    envelope: "debezium",
    time_precision_mode: "adaptive",
    skipped_operations: ["t"],
    transaction_metadata: false,
    max_buffer_bytes: 2 ** 20,
    heartbeat_interval: 1000,
    server_id: 1234,
    zero_dates: "null",
    partition_drops: "mirror",
    allow_public_key_retrieval: false,
    tables: ["db.t"],
  };
}

const peer = (subjectaltname: string) => ({ getPeerCertificate: () => ({ subject: { CN: "server" }, subjectaltname }) });

test("verify-full to an IP address: Sluice checks the address against the certificate (mysql2 would check \"localhost\")", () => {
  const options = connectionOptions(config("127.0.0.1", "verify-full"), "binlog");
  assert.equal((options.ssl as { verifyIdentity?: boolean }).verifyIdentity, false);
  verifyIpIdentity(options, peer("IP Address:127.0.0.1"));
  assert.throws(() => verifyIpIdentity(options, peer("DNS:localhost")), { code: "ERR_TLS_CERT_ALTNAME_INVALID" });
  assert.throws(() => verifyIpIdentity(options, undefined), /TLS was not established/);
});

test("verify-full to a host name is left to mysql2; verify-ca and require check no name", () => {
  const byName = connectionOptions(config("db.example", "verify-full"), "catalog");
  assert.equal((byName.ssl as { verifyIdentity?: boolean }).verifyIdentity, true);
  verifyIpIdentity(byName, peer("DNS:other.example"));
  for (const mode of ["verify-ca", "require"] as const) {
    const options = connectionOptions(config("127.0.0.1", mode), "catalog");
    assert.equal((options.ssl as { verifyIdentity?: boolean }).verifyIdentity, false);
    verifyIpIdentity(options, peer("DNS:other.example"));
  }
  assert.equal(connectionOptions(config("127.0.0.1", "disable"), "catalog").ssl, undefined);
});
