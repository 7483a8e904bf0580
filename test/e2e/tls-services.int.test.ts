/**
 * End to end (issue 13, item 3): the daemon captures PostgreSQL into a Kafka that takes only
 * SASL_SSL (SCRAM-SHA-512, client certificate required) and applies it to a ClickHouse that
 * serves only HTTPS with a password — private servers from test/services/tls-sinks.ts. Then a
 * daemon whose ClickHouse password is wrong: the sink stops at once with SINK_AUTH_FAILED naming
 * ClickHouse and its address (and the daemon exits 1, as for any component that fails for good), and a daemon whose Kafka CA is wrong does not start, with
 * KAFKA_TLS_FAILED naming the broker; neither waits the failure out like an outage.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type pg from "pg";
import { ClickHouseConnection } from "../../connectors/clickhouse/connection.ts";
import { testLogger, testSinkConfig } from "../../connectors/sinks/test-config.ts";
import { makeCa } from "../services/tls.ts";
import { startTlsClickHouse, startTlsKafka } from "../services/tls-sinks.ts";
import type { SecureServer } from "../services/tls-sinks.ts";
import { dropPostgres, freePort, killAllDaemons, pgClient, pgSourceConfig, randomName, removeDir, REPO, SluiceDaemon, tempDir, waitFor } from "./helpers.ts";

const schema = randomName("e2e_tls");
const source = randomName("src");
// The wrong-password daemon's own slot: on the first test's slot it could wait for that daemon's walsender to go (31 s once, 3 s usually).
const wrongPasswordSource = randomName("src");
const dir = tempDir("tls-services");
let client: pg.Client;
let kafka: SecureServer;
let clickhouse: SecureServer;
let kafkaClient: { certFile: string; keyFile: string };

before(async () => {
  client = await pgClient();
  await client.query(`CREATE SCHEMA ${schema}; CREATE TABLE ${schema}.items (id integer PRIMARY KEY, label text)`);
  await client.query(`INSERT INTO ${schema}.items SELECT g, 'before ' || g FROM generate_series(1, 20) g`);
  [kafka, clickhouse] = await Promise.all([startTlsKafka(), startTlsClickHouse()]);
  kafkaClient = await kafka.ca.clientCert("sluice-daemon");
});

after(async () => {
  await killAllDaemons();
  await dropPostgres(client, { slot: `sluice_${wrongPasswordSource}`, publication: `sluice_${wrongPasswordSource}` });
  await dropPostgres(client, { slot: `sluice_${source}`, publication: `sluice_${source}`, schema });
  await client.end();
  await Promise.all([kafka?.stop(), clickhouse?.stop()]);
  removeDir(dir);
});

function kafkaTopics(caFile = kafka.ca.caFile): Record<string, unknown> {
  return {
    kind: "kafka",
    brokers: [`${kafka.host}:${kafka.port}`],
    partitions: 1,
    sasl: { mechanism: "scram-sha-512", username: kafka.user, password: kafka.password },
    tls: { ca_file: caFile, cert_file: kafkaClient.certFile, key_file: kafkaClient.keyFile },
  };
}

function clickhouseSink(password: string): Record<string, unknown> {
  return { kind: "clickhouse", name: "warehouse", url: `https://${clickhouse.host}:${clickhouse.port}`, user: clickhouse.user, password, tls: { ca_file: clickhouse.ca.caFile }, batch: { max_wait: "100ms" } };
}

async function clickhouseRows(): Promise<string> {
  const config = testSinkConfig("clickhouse", { name: "reader", url: `https://${clickhouse.host}:${clickhouse.port}`, user: clickhouse.user, password: clickhouse.password, database: "default", native_deletes: false, tls: { ca_file: clickhouse.ca.caFile } });
  const connection = new ClickHouseConnection(config, testLogger());
  try {
    return (await connection.select(`SELECT count(), sum(id) FROM default.${schema}_items FORMAT TabSeparated`, AbortSignal.timeout(10_000))).toString("utf8").trim();
  } finally {
    await connection.close();
  }
}

test("PostgreSQL → Kafka over SASL_SSL → ClickHouse over HTTPS: snapshot and live changes arrive", { timeout: 300_000 }, async () => {
  const daemon = await SluiceDaemon.start(dir, { name: randomName("dep"), sources: [pgSourceConfig(source, [`${schema}.*`])], topics: kafkaTopics(), sinks: [clickhouseSink(clickhouse.password)] }, "secure");
  await waitFor("the snapshot's 20 rows in ClickHouse", async () => (await clickhouseRows().catch(() => "")) === "20\t210" || undefined, { daemon, timeoutMs: 120_000 });
  await client.query(`INSERT INTO ${schema}.items SELECT g, 'live ' || g FROM generate_series(21, 30) g`);
  await waitFor("the live rows in ClickHouse", async () => (await clickhouseRows().catch(() => "")) === "30\t465" || undefined, { daemon, timeoutMs: 120_000 });
  await daemon.stop();
});

test("a wrong ClickHouse password: the sink stops at once with SINK_AUTH_FAILED naming ClickHouse, and the daemon with it", { timeout: 180_000 }, async () => {
  const wrong = "wrong-clickhouse-password";
  const daemon = await SluiceDaemon.start(dir, { name: randomName("dep"), sources: [pgSourceConfig(wrongPasswordSource, [`${schema}.*`])], topics: kafkaTopics(), sinks: [clickhouseSink(wrong)] }, "wrong-password");
  // A component that fails for good stops the daemon (exit 1), saying why.
  const exit = await Promise.race([daemon.exited, new Promise<null>((resolve) => setTimeout(() => resolve(null), 90_000).unref())]);
  assert.ok(exit !== null, `the daemon kept running (retrying the login?)\n${daemon.logTail()}`);
  assert.equal(exit.code, 1);
  const line = daemon.fatalLine ?? "";
  assert.match(line, /"code":"SINK_AUTH_FAILED"/);
  assert.match(line, new RegExp(`sink warehouse stopped: ClickHouse https://${clickhouse.host}:${clickhouse.port} refused the sink's login`));
  assert.doesNotMatch(daemon.logTail(500), new RegExp(wrong));
  // The stop comes while capture is still starting (the sink fails first): capture stops at once, not at the
  // graceful shutdown's timeout (a term's captures were handed a stop signal that had already fired).
  assert.doesNotMatch(daemon.logTail(500), /graceful shutdown timed out/);
  await daemon.kill();
});

test("a Kafka CA that did not sign the broker's certificate: sluice run exits with KAFKA_TLS_FAILED naming the broker", { timeout: 180_000 }, async () => {
  const other = await makeCa(tempDir("other-ca"), "other");
  try {
    const configFile = join(dir, "wrong-ca.yaml");
    writeFileSync(configFile, JSON.stringify({ name: randomName("dep"), http: { listen: `127.0.0.1:${await freePort()}` }, sources: [pgSourceConfig(source, [`${schema}.*`])], topics: kafkaTopics(other.caFile), sinks: [clickhouseSink(clickhouse.password)] }));
    // Killed after 120 s if it keeps running (retrying the handshake as if Kafka were down).
    const run = await new Promise<{ killed: boolean; code: number; output: string }>((resolve) => {
      execFile(process.execPath, [join(REPO, "daemon/sluice.js"), "run", "-c", configFile], { cwd: dir, timeout: 120_000, maxBuffer: 64 * 2 ** 20 }, (error, stdout, stderr) => {
        resolve({ killed: error?.killed ?? false, code: typeof error?.code === "number" ? error.code : error ? 1 : 0, output: `${stdout}\n${stderr}` });
      });
    });
    assert.equal(run.killed, false, "sluice run kept running (retrying) instead of failing");
    assert.notEqual(run.code, 0);
    const output = run.output;
    assert.match(output, /KAFKA_TLS_FAILED/);
    assert.match(output, new RegExp(`Kafka ${kafka.host}:${kafka.port}: certificate verify failed`));
  } finally {
    removeDir(other.dir);
  }
});
