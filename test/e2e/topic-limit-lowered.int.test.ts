/**
 * A data topic's max.message.bytes lowered by hand (kafka-configs --alter --add-config max.message.bytes=...) while the
 * daemon captures into it, then a change larger than the new limit. Kafka refuses the batch holding it as
 * MESSAGE_TOO_LARGE, which is final for a limit Sluice knew: the whole capture stopped and the daemon exited (found by a
 * live probe at 3000 bytes). The batch's topics are now read again: the change over the new limit halts its table
 * (RECORD_TOO_LARGE naming table and key, parked), as after a restart, and the other tables flow on.
 * PostgreSQL -> the shared Kafka (own deployment) -> DuckDB.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import kafkajs from "kafkajs";
import type pg from "pg";
import { kafka } from "../services/ports.ts";
import { deleteKafkaDeployment, dropPostgres, killAllDaemons, pgClient, pgSourceConfig, randomName, removeDir, runSluice, SluiceDaemon, tempDir, waitFor } from "./helpers.ts";

const schema = randomName("e2e_lowered");
const source = randomName("src");
const deployment = randomName("dep");
const names = { slot: `sluice_${source}`, publication: `sluice_${source}`, schema };
const dir = tempDir("lowered");
const topic = (table: string) => `${deployment}.${source}.${schema}.${table}`;
let client: pg.Client;

before(async () => {
  client = await pgClient();
  await client.query(`CREATE SCHEMA "${schema}"`);
  for (const table of ["notes", "ok", "logs"]) await client.query(`CREATE TABLE "${schema}".${table} (id int PRIMARY KEY, b text)`);
  await client.query(`INSERT INTO "${schema}".notes VALUES (1, 'small'), (2, 'small')`);
});

after(async () => {
  await killAllDaemons();
  await dropPostgres(client, names);
  await client.end();
  await deleteKafkaDeployment(deployment);
  removeDir(dir);
});

async function count(daemon: SluiceDaemon, table: string): Promise<number> {
  const response = await fetch(`${daemon.url}/sinks/warehouse/query`, { method: "POST", body: `SELECT count(*)::int AS n FROM "${schema}_${table}"`, signal: AbortSignal.timeout(10_000) });
  if (response.status !== 200) return -1;
  return Number(((await response.json()) as { rows: { n: number }[] }).rows[0]?.n);
}

/** As kafka-configs --add-config does: the topic's other settings kept (AlterConfigs alone would reset them). */
async function lowerLimit(name: string, bytes: number, config = "max.message.bytes"): Promise<void> {
  const admin = new kafkajs.Kafka({ clientId: "sluice-e2e-lowered", brokers: [...kafka.brokers], logLevel: kafkajs.logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    const described = await admin.describeConfigs({ includeSynonyms: false, resources: [{ type: kafkajs.ConfigResourceTypes.TOPIC, name }] });
    const entries = new Map((described.resources[0]?.configEntries ?? []).filter((e) => !e.isDefault && !e.readOnly).map((e) => [e.configName, e.configValue]));
    entries.set(config, String(bytes));
    await admin.alterConfigs({ validateOnly: false, resources: [{ type: kafkajs.ConfigResourceTypes.TOPIC, name, configEntries: [...entries].map(([n, value]) => ({ name: n, value })) }] });
    // Applied by the broker once it reads the change from the metadata log.
    for (let i = 0; i < 100; i++) {
      const now = await admin.describeConfigs({ includeSynonyms: false, resources: [{ type: kafkajs.ConfigResourceTypes.TOPIC, name, configNames: [config] }] });
      if (now.resources[0]?.configEntries.find((e) => e.configName === config)?.configValue === String(bytes)) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } finally {
    await admin.disconnect();
  }
}

test("a topic's max.message.bytes, then another's segment.bytes, lowered while the daemon runs: a change over it halts only its table, the daemon goes on", { timeout: 120_000 }, async (t) => {
  const daemon = await SluiceDaemon.start(dir, {
    name: deployment,
    sources: [pgSourceConfig(source, [`${schema}.*`])],
    topics: { kind: "kafka", brokers: [...kafka.brokers], partitions: 1, transactions: true, linger: "5ms" },
    sinks: [{ kind: "duckdb", name: "warehouse", path: join(dir, "warehouse.duckdb"), batch: { max_wait: "50ms" } }],
  });
  await waitFor("the notes rows in DuckDB", async () => (await count(daemon, "notes")) === 2, { daemon, timeoutMs: 60_000 });

  await lowerLimit(topic("notes"), 3000);
  await client.query(`UPDATE "${schema}".notes SET b = repeat('y', 6000) WHERE id = 1`);
  await client.query(`UPDATE "${schema}".notes SET b = 'still small' WHERE id = 2`);
  await client.query(`INSERT INTO "${schema}".ok VALUES (1, 'after')`);

  const halted = await waitFor("/status to show table notes halted", async () => (await daemon.status()).sources[0]?.halted.find((h) => h.table === `${schema}.notes`), { daemon, timeoutMs: 30_000 });
  t.diagnostic(`halted: ${JSON.stringify(halted)}`);
  assert.equal(halted.code, "RECORD_TOO_LARGE");
  assert.equal((halted as typeof halted & { key?: string }).key, '{"id":1}');
  assert.match(halted.error, new RegExp(`over max\\.message\\.bytes of topic ${topic("notes").replaceAll(".", "\\.")} \\(3000; raise it`));
  await waitFor("the ok row in DuckDB", async () => (await count(daemon, "ok")) === 1, { daemon, timeoutMs: 30_000 });
  assert.equal(daemon.exitStatus, null, `the daemon exited\n${daemon.logTail()}`);
  assert.equal(daemon.fatalLine, null);
  assert.match(daemon.logTail(400), /KAFKA_TOPIC_LIMIT_LOWERED/);

  // The limit raised again by hand, then the table retried: the release reads the topic's limit again (before, it kept
  // the 3000 it had learned and the table halted again at once, until a restart).
  await lowerLimit(topic("notes"), 1_000_000);
  const retried = await runSluice(["halted", "-c", daemon.configFile, "retry", "--source", source, "--table", `${schema}.notes`, "--execute"]);
  assert.equal(retried.code, 0, `${retried.stdout}${retried.stderr}`);
  await waitFor("the 6000-byte note in DuckDB", async () => {
    const response = await fetch(`${daemon.url}/sinks/warehouse/query`, { method: "POST", body: `SELECT length(b)::int AS n FROM "${schema}_notes" WHERE id = 1`, signal: AbortSignal.timeout(10_000) });
    return response.status === 200 && Number(((await response.json()) as { rows: { n: number }[] }).rows[0]?.n) === 6000;
  }, { daemon, timeoutMs: 30_000 });
  assert.equal((await daemon.status()).sources[0]?.halted.length, 0);

  // A topic's segment.bytes lowered below a change (Kafka refuses a partition's records of a request over it too,
  // RECORD_LIST_TOO_LARGE, whatever max.message.bytes says): before, that refusal was final and the daemon exited.
  await client.query(`INSERT INTO "${schema}".logs VALUES (1, 'small')`);
  await waitFor("the logs row in DuckDB", async () => (await count(daemon, "logs")) === 1, { daemon, timeoutMs: 30_000 });
  await lowerLimit(topic("logs"), 2 ** 20, "segment.bytes");
  await client.query(`UPDATE "${schema}".logs SET b = repeat('z', 1500000) WHERE id = 1`);
  await client.query(`INSERT INTO "${schema}".ok VALUES (2, 'after the segment')`);
  const segment = await waitFor("/status to show table logs halted", async () => (await daemon.status()).sources[0]?.halted.find((h) => h.table === `${schema}.logs`), { daemon, timeoutMs: 30_000 });
  assert.equal(segment.code, "RECORD_TOO_LARGE");
  assert.match(segment.error, new RegExp(`table ${schema}\\.logs: the change of the row with key \\{"id":1\\} is a \\d+-byte topic record, over segment\\.bytes of topic ${topic("logs").replaceAll(".", "\\.")} \\(1048576; raise it`));
  await waitFor("the second ok row in DuckDB", async () => (await count(daemon, "ok")) === 2, { daemon, timeoutMs: 30_000 });
  assert.equal(daemon.exitStatus, null, `the daemon exited\n${daemon.logTail()}`);
  await daemon.stop();
});
