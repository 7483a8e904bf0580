/**
 * Capture over TLS from a private MariaDB with require_secure_transport=ON, its certificate signed
 * by a CA made for this test: verify-full with a password, and a client certificate (REQUIRE X509),
 * on every connection (catalog, snapshot, binlog: the server refuses any without TLS). A wrong CA,
 * a wrong password, a missing client certificate or plain TCP are permanent errors naming the
 * server, not connection failures to retry.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import mysql from "mysql2/promise";
import type { Connection } from "mysql2/promise";
import { makeCa, startTlsMariadb } from "../../test/services/tls.ts";
import type { TestCa, TlsServer } from "../../test/services/tls.ts";
import type { MysqlSourceConfig } from "../../config/schema.ts";
import { connectError, newSource, readUntil, snapshotFinished, sourceConfig } from "./int-test-support.ts";

let server: TlsServer;
let admin: Connection;
let otherCa: TestCa;
let otherCaDir: string;

function tlsConfig(overrides: Partial<MysqlSourceConfig> = {}): MysqlSourceConfig {
  return sourceConfig({
    tables: ["shop.accounts"],
    host: server.host,
    port: server.port,
    user: "capture",
    password: "capture-secret",
    tls: { mode: "verify-full", ca_file: server.ca.caFile },
    ...overrides,
  });
}

before(async () => {
  server = await startTlsMariadb();
  otherCaDir = mkdtempSync("/var/tmp/sluice-other-ca-");
  otherCa = await makeCa(otherCaDir, "other");
  admin = await mysql.createConnection({
    host: server.host,
    port: server.port,
    user: server.admin.user,
    password: server.admin.password,
    ssl: { ca: readFileSync(server.ca.caFile, "utf8") },
    multipleStatements: true,
  });
  await admin.query(`
    CREATE DATABASE shop;
    CREATE TABLE shop.accounts (id INT PRIMARY KEY, owner VARCHAR(100) NOT NULL);
    INSERT INTO shop.accounts SELECT seq, CONCAT('owner ', seq) FROM shop.seq_1_to_20;
    CREATE USER capture@'%' IDENTIFIED BY 'capture-secret';
    CREATE USER cert_capture@'%' REQUIRE X509;
    GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO capture@'%', cert_capture@'%';
  `);
});

after(async () => {
  await admin?.end().catch(() => undefined);
  await server?.stop();
  if (otherCaDir !== undefined) rmSync(otherCaDir, { recursive: true, force: true });
});

async function captureThrough(config: MysqlSourceConfig, id: number): Promise<void> {
  const source = newSource(config);
  try {
    await source.connect(null, AbortSignal.timeout(30_000));
    const snapshot = await readUntil(source, snapshotFinished);
    const [rows] = await admin.query<mysql.RowDataPacket[]>("SELECT COUNT(*) AS n FROM shop.accounts");
    assert.equal(snapshot.events.filter((e) => e.op === "r").length, Number(rows[0]!["n"]));
    await admin.query("INSERT INTO shop.accounts VALUES (?, 'streamed over TLS')", [id]);
    const streamed = await readUntil(source, (c) => c.events.some((e) => e.op === "c" && e.after?.["id"] === id));
    assert.equal(streamed.events.find((e) => e.after?.["id"] === id)?.after?.["owner"], "streamed over TLS");
  } finally {
    await source.close();
  }
}

test("captures (snapshot and binlog) through verify-full with a password from a server that refuses plain TCP", async () => {
  await captureThrough(tlsConfig(), 1001);
});

test("captures through a client certificate (REQUIRE X509) with verify-ca", async () => {
  const { certFile, keyFile } = await server.ca.clientCert("cert_capture");
  const config = tlsConfig({ user: "cert_capture", tls: { mode: "verify-ca", ca_file: server.ca.caFile, cert_file: certFile, key_file: keyFile } });
  delete config.password;
  await captureThrough(config, 1002);
});

test("a server certificate from another CA: MYSQL_TLS_FAILED, not retriable, naming the server", async () => {
  const error = await connectError(tlsConfig({ tls: { mode: "verify-full", ca_file: otherCa.caFile } }));
  assert.equal(error.code, "MYSQL_TLS_FAILED");
  assert.equal(error.retriable, false);
  assert.match(error.message, /certificate verify failed/);
  assert.ok(error.message.includes(`MySQL/MariaDB at ${server.host}:${server.port}`), error.message);
});

test("verify-full checks the host name: \"localhost\" is not in the certificate (MYSQL_TLS_FAILED); verify-ca does not check it", async () => {
  const error = await connectError(tlsConfig({ host: "localhost" }));
  assert.equal(error.code, "MYSQL_TLS_FAILED");
  assert.equal(error.retriable, false);
  assert.match(error.message, /certificate verify failed: .*localhost/);
  const source = newSource(tlsConfig({ host: "localhost", tls: { mode: "verify-ca", ca_file: server.ca.caFile } }));
  try {
    await source.connect(null, AbortSignal.timeout(30_000));
  } finally {
    await source.close();
  }
});

test("a wrong password: MYSQL_AUTH_FAILED, not retriable, naming the user and the server", async () => {
  const error = await connectError(tlsConfig({ password: "wrong" }));
  assert.equal(error.code, "MYSQL_AUTH_FAILED");
  assert.equal(error.retriable, false);
  assert.match(error.message, /Access denied for user 'capture'/);
  assert.ok(error.message.includes(`MySQL/MariaDB at ${server.host}:${server.port}`), error.message);
});

test("the certificate user without a client certificate, and plain TCP: refused for good", async () => {
  const noCert = await connectError(tlsConfig({ user: "cert_capture" }));
  assert.equal(noCert.code, "MYSQL_AUTH_FAILED");
  assert.equal(noCert.retriable, false);
  const plain = await connectError(tlsConfig({ tls: { mode: "disable" } }));
  assert.equal(plain.code, "MYSQL_AUTH_FAILED");
  assert.equal(plain.retriable, false);
});
