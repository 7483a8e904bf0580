/**
 * Capture over TLS from a private PostgreSQL that accepts only `hostssl` (scram-sha-256, or a
 * client certificate for cert_capture), its certificate signed by a CA made for this test:
 * verify-full and a client certificate work on every connection (catalog, snapshot, replication);
 * a wrong CA, a wrong password or a missing client certificate are permanent errors naming the
 * server, not connection failures to retry.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { makeCa, startTlsPostgres } from "../../test/services/tls.ts";
import type { TestCa, TlsServer } from "../../test/services/tls.ts";
import type { PostgresSourceConfig } from "../../config/schema.ts";
import { SluiceError } from "../errors.ts";
import { CapturePipeline } from "../../daemon/capture.ts";
import type { ChangeEncoder } from "../../daemon/capture.ts";
import { EmbeddedTopicLog } from "../embedded/embedded-log.ts";
import { byId, connectError, newSource, readUntil, snapshotFinished, sourceConfig, testLogger } from "./int-test-support.ts";

let server: TlsServer;
let admin: pg.Client;
let otherCa: TestCa;
let otherCaDir: string;

function tlsConfig(overrides: Partial<PostgresSourceConfig> = {}): PostgresSourceConfig {
  return sourceConfig({
    tables: ["public.accounts"],
    host: server.host,
    port: server.port,
    user: "capture",
    password: "capture-secret",
    database: "postgres",
    create_publication: false,
    publication: "accounts_pub",
    tls: { mode: "verify-full", ca_file: server.ca.caFile },
    ...overrides,
  });
}

before(async () => {
  server = await startTlsPostgres({ certUsers: ["cert_capture"] });
  otherCaDir = mkdtempSync("/var/tmp/sluice-other-ca-");
  otherCa = await makeCa(otherCaDir, "other");
  admin = new pg.Client({ host: server.host, port: server.port, user: server.admin.user, password: server.admin.password, database: "postgres", ssl: { ca: readFileSync(server.ca.caFile, "utf8") } });
  await admin.connect();
  await admin.query("CREATE TABLE accounts (id int PRIMARY KEY, owner text NOT NULL)");
  await admin.query("INSERT INTO accounts SELECT i, 'owner ' || i FROM generate_series(1, 20) i");
  await admin.query("CREATE PUBLICATION accounts_pub FOR TABLE accounts");
  await admin.query("CREATE ROLE capture LOGIN REPLICATION PASSWORD 'capture-secret'");
  await admin.query("CREATE ROLE cert_capture LOGIN REPLICATION");
  await admin.query("GRANT SELECT ON accounts TO capture, cert_capture");
});

after(async () => {
  await admin?.end().catch(() => undefined);
  await server?.stop();
  if (otherCaDir !== undefined) rmSync(otherCaDir, { recursive: true, force: true });
});

async function sslOfSluiceConnections(source: string): Promise<Record<string, string>> {
  const { rows } = await admin.query<{ application_name: string; ssl: boolean }>(
    "SELECT a.application_name, s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.application_name LIKE $1",
    [`sluice:${source}:%`],
  );
  return Object.fromEntries(rows.map((r) => [r.application_name.split(":")[2]!, String(r.ssl)]));
}

async function captureThrough(config: PostgresSourceConfig, id: number): Promise<void> {
  const source = newSource(config);
  try {
    await source.connect(null, AbortSignal.timeout(30_000));
    const snapshot = await readUntil(source, snapshotFinished);
    const { rows } = await admin.query<{ n: string }>("SELECT count(*) AS n FROM accounts");
    assert.equal(snapshot.events.filter((e) => e.op === "r").length, Number(rows[0]!.n));
    await admin.query("INSERT INTO accounts VALUES ($1, 'streamed over TLS')", [id]);
    const streamed = await readUntil(source, (c) => byId(c.events, id) !== undefined);
    assert.equal(byId(streamed.events, id, "c")?.after?.["owner"], "streamed over TLS");
    const ssl = await sslOfSluiceConnections(config.name);
    assert.equal(ssl["replication"], "true", `the replication connection uses TLS: ${JSON.stringify(ssl)}`);
    assert.equal(ssl["catalog"], "true", `the catalog connection uses TLS: ${JSON.stringify(ssl)}`);
  } finally {
    await source.close();
    await admin.query("SELECT pg_drop_replication_slot($1) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active", [config.slot]).catch(() => undefined);
  }
}

test("captures (snapshot and stream) through verify-full with a password: every connection is TLS", async () => {
  await captureThrough(tlsConfig(), 1001);
});

test("captures through a client certificate (cert authentication, no password) with verify-ca", async () => {
  const { certFile, keyFile } = await server.ca.clientCert("cert_capture");
  const config = tlsConfig({ user: "cert_capture", tls: { mode: "verify-ca", ca_file: server.ca.caFile, cert_file: certFile, key_file: keyFile } });
  delete config.password;
  await captureThrough(config, 1002);
});

test("a server certificate from another CA: PG_TLS_FAILED, not retriable, naming the server", async () => {
  const error = await connectError(tlsConfig({ tls: { mode: "verify-full", ca_file: otherCa.caFile } }));
  assert.equal(error.code, "PG_TLS_FAILED");
  assert.equal(error.retriable, false);
  assert.match(error.message, /certificate verify failed/);
  assert.ok(error.message.includes(`PostgreSQL at ${server.host}:${server.port}`), error.message);
});

test("verify-full checks the host name: \"localhost\" is not in the certificate (PG_TLS_FAILED); verify-ca does not check it", async () => {
  const error = await connectError(tlsConfig({ host: "localhost" }));
  assert.equal(error.code, "PG_TLS_FAILED");
  assert.equal(error.retriable, false);
  assert.match(error.message, /certificate verify failed: .*localhost/);
  const source = newSource(tlsConfig({ host: "localhost", tls: { mode: "verify-ca", ca_file: server.ca.caFile } }));
  try {
    await source.connect(null, AbortSignal.timeout(30_000));
  } finally {
    await source.close();
  }
});

test("capture (the daemon's pipeline) gives up at the first TLS or login failure instead of retrying it as an outage", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sluice-tls-log-"));
  const log = EmbeddedTopicLog.open({ path: join(dir, "log.db"), logger: testLogger() });
  try {
    await log.createTopic({ name: "t.parked", partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
    for (const [overrides, code] of [
      [{ tls: { mode: "verify-full", ca_file: otherCa.caFile } }, "PG_TLS_FAILED"],
      [{ password: "wrong" }, "PG_AUTH_FAILED"],
    ] as const) {
      const source = newSource(tlsConfig(overrides));
      let connects = 0;
      const connect = source.connect.bind(source);
      source.connect = (from, signal) => {
        connects++;
        return connect(from, signal);
      };
      const encoder: ChangeEncoder = { encode: () => Promise.reject(new Error("nothing is captured")) };
      const pipeline = new CapturePipeline({ source, log, encoder, logger: testLogger(), parkingTopic: "t.parked", reconnect: { initialMs: 1, maxMs: 1 } });
      const stop = new AbortController();
      const timer = setTimeout(() => stop.abort(), 10_000);
      await assert.rejects(pipeline.run(stop.signal), (error: unknown) => error instanceof SluiceError && error.code === code);
      clearTimeout(timer);
      assert.equal(connects, 1, `${code}: one attempt, no retries`);
    }
  } finally {
    await log.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("no ca_file trusts only public CAs: the test CA's certificate is refused", async () => {
  const error = await connectError(tlsConfig({ tls: { mode: "verify-full" } }));
  assert.equal(error.code, "PG_TLS_FAILED");
  assert.equal(error.retriable, false);
});

test("a wrong password: PG_AUTH_FAILED, not retriable, naming the user and the server", async () => {
  const error = await connectError(tlsConfig({ password: "wrong" }));
  assert.equal(error.code, "PG_AUTH_FAILED");
  assert.equal(error.retriable, false);
  assert.match(error.message, /password authentication failed for user "capture"/);
  assert.ok(error.message.includes(`PostgreSQL at ${server.host}:${server.port}`), error.message);
  assert.ok(!error.message.includes("wrong"), "the password is not in the message");
});

test("no password configured for a password login: PG_AUTH_FAILED saying so", async () => {
  const config = tlsConfig();
  delete config.password;
  const error = await connectError(config);
  assert.equal(error.code, "PG_AUTH_FAILED");
  assert.equal(error.retriable, false);
  assert.match(error.message, /asks for a password and none is configured/);
});

test("the certificate user without a client certificate, and plain TCP to a hostssl-only server: PG_AUTH_FAILED", async () => {
  const noCert = await connectError(tlsConfig({ user: "cert_capture" }));
  assert.equal(noCert.code, "PG_AUTH_FAILED");
  assert.equal(noCert.retriable, false);
  const plain = await connectError(tlsConfig({ tls: { mode: "disable" } }));
  assert.equal(plain.code, "PG_AUTH_FAILED");
  assert.match(plain.message, /no encryption/);
});

test("an unreadable ca_file is a configuration error naming the option", async () => {
  const error = await connectError(tlsConfig({ tls: { mode: "verify-full", ca_file: "/nonexistent/ca.pem" } }));
  assert.equal(error.code, "TLS_FILE_UNREADABLE");
  assert.equal(error.retriable, false);
  assert.match(error.message, /tls\.ca_file \/nonexistent\/ca\.pem/);
});
