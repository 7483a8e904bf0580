/**
 * End to end: Kafka's SCRAM password rotated while the daemon runs (PostgreSQL → Kafka over SASL_SSL → DuckDB), against
 * a private broker (test/services/tls-sinks.ts) whose clients authenticate again on their open connections every few
 * seconds (connections.max.reauth.ms), so a password changed on the broker meets every Kafka client of the daemon:
 * capture's producer, the capture lease, the sink's consumer, the admin. The password is changed on the broker first;
 * the daemon must keep running, say it waits for the brokers (counted, gauge set), and once the password_file holds
 * the new password capture and the sink resume: DuckDB ends equal to PostgreSQL.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type pg from "pg";
import { startTlsKafka } from "../services/tls-sinks.ts";
import type { SecureKafka } from "../services/tls-sinks.ts";
import { dropPostgres, killAllDaemons, pgClient, pgSourceConfig, randomName, removeDir, SluiceDaemon, tempDir, waitFor } from "./helpers.ts";

const schema = randomName("e2e_sasl_rotation");
const source = randomName("src");
const dir = tempDir("kafka-sasl-rotation");
const passwordFile = join(dir, "kafka-password");
/** The broker's connections.max.reauth.ms: kafkajs authenticates again once less than 10 s of it remain, so at every request past 2 s. */
const REAUTH_MS = 12_000;
let client: pg.Client;
let kafka: SecureKafka;
let kafkaClient: { certFile: string; keyFile: string };

before(async () => {
  client = await pgClient();
  await client.query(`CREATE SCHEMA ${schema}; CREATE TABLE ${schema}.items (id integer PRIMARY KEY, label text)`);
  await client.query(`INSERT INTO ${schema}.items SELECT g, 'before ' || g FROM generate_series(1, 20) g`);
  kafka = await startTlsKafka({ reauthMs: REAUTH_MS });
  kafkaClient = await kafka.ca.clientCert("sluice-daemon");
});

after(async () => {
  await killAllDaemons();
  await dropPostgres(client, { slot: `sluice_${source}`, publication: `sluice_${source}`, schema });
  await client.end();
  await kafka?.stop();
  removeDir(dir);
});

async function sinkRows(daemon: SluiceDaemon): Promise<string> {
  const response = await fetch(`${daemon.url}/sinks/local/query`, { method: "POST", body: `SELECT count(*)::INTEGER AS n, sum(id)::INTEGER AS s FROM main."${schema}_items"`, signal: AbortSignal.timeout(30_000) });
  const body = (await response.json()) as { rows?: { n: number; s: number }[] };
  const row = body.rows?.[0];
  return row ? `${row.n} ${row.s}` : `HTTP ${response.status} ${JSON.stringify(body)}`;
}

test("a SCRAM password changed on the broker while the daemon runs, then in its password_file: waited out, then capture and the sink resume", { timeout: 240_000 }, async (t) => {
  const began = Date.now();
  const phase = (what: string) => t.diagnostic(`${what} at ${((Date.now() - began) / 1000).toFixed(1)} s`);
  writeFileSync(passwordFile, kafka.password);
  const daemon = await SluiceDaemon.start(
    dir,
    {
      name: randomName("dep"),
      sources: [pgSourceConfig(source, [`${schema}.*`])],
      topics: {
        kind: "kafka",
        brokers: [`${kafka.host}:${kafka.port}`],
        partitions: 1,
        sasl: { mechanism: "scram-sha-512", username: kafka.user, password_file: passwordFile },
        tls: { ca_file: kafka.ca.caFile, cert_file: kafkaClient.certFile, key_file: kafkaClient.keyFile },
      },
      sinks: [{ kind: "duckdb", name: "local", path: join(dir, "rotation.duckdb"), batch: { max_wait: "100ms" }, retry: { initial: "200ms", max: "2s" } }],
    },
    "rotation",
    { env: { SLUICE_KAFKA_SESSION_MS: "6000" } },
  );
  await waitFor("the snapshot in DuckDB", async () => (await sinkRows(daemon)) === "20 210", { daemon, timeoutMs: 90_000 });

  phase("snapshot applied");
  await kafka.setScramPassword("kafka-scram-rotated");
  phase("password changed on the broker");
  await client.query(`INSERT INTO ${schema}.items SELECT g, 'during ' || g FROM generate_series(21, 30) g`);
  await waitFor("the daemon to report the brokers refusing its credentials", async () => (await daemon.metric("sluice_kafka_auth_refused")) > 0, { daemon, timeoutMs: 60_000 });
  await waitFor("/readyz to say what waits for the brokers", async () => {
    const response = await daemon.get("/readyz");
    return response.status === 503 && /refused the credentials/.test(await response.text());
  }, { daemon, timeoutMs: 30_000 });
  phase("refusal reported");
  assert.ok((await daemon.metric("sluice_kafka_auth_refusals_total")) > 0);
  assert.match(daemon.logTail(400), /Kafka broker [^ ]+ refused the credentials of user \\?"sluice\\?"/);
  assert.equal(daemon.exitStatus, null, `the daemon keeps running\n${daemon.logTail()}`);
  assert.equal(daemon.fatalLine, null, `no component stopped:\n${daemon.fatalLine}`);

  writeFileSync(passwordFile, "kafka-scram-rotated");
  await client.query(`INSERT INTO ${schema}.items SELECT g, 'after ' || g FROM generate_series(31, 40) g`);
  await waitFor("every row in DuckDB", async () => (await sinkRows(daemon)) === "40 820", { daemon, timeoutMs: 90_000 });
  phase("every row applied");
  await waitFor("the gauge back to 0", async () => (await daemon.metric("sluice_kafka_auth_refused")) === 0, { daemon, timeoutMs: 30_000 });
  phase("gauge at 0");
  assert.doesNotMatch(daemon.logTail(2_000), /kafka-scram-rotated|kafka-scram-secret/, "no password in the log");
  await daemon.stop();
  phase("stopped");
});
