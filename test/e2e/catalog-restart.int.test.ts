/**
 * End to end: a captured table taken out of the publication and put back while no process captures (the daemon
 * stopped; the leader killed before a standby takes over) has its changes meanwhile in the topic once capture
 * resumes. pgoutput never sends the changes of a table outside the publication, and the catalog looks compared with
 * what they saw since the process started, so they were lost without a word. What the looks saw now rides the
 * checkpoints (connectors/postgres/catalog-marks.ts), kept by either topic log and read by whichever process resumes.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type pg from "pg";
import type { StoredRecord } from "../../connectors/contracts.ts";
import { openTopicLogForCommand } from "../../connectors/topics/open.ts";
import { loadConfigFile } from "../../config/load.ts";
import { openRegistry, recordDecoder } from "../../daemon/components.ts";
import { createLogger } from "../../runtime/logger.ts";
import { kafka } from "../services/ports.ts";
import {
  deleteKafkaDeployment,
  dropPostgres,
  killAllDaemons,
  pgClient,
  pgSourceConfig,
  randomName,
  readEmbeddedTopics,
  removeDir,
  SluiceDaemon,
  startReady,
  tempDir,
  waitCaughtUp,
  waitFor,
} from "./helpers.ts";

const schema = randomName("e2e_catrestart");
const dir = tempDir("catalog-restart");
const sources: string[] = [];
const deployments: string[] = [];
let client: pg.Client;

before(async () => {
  client = await pgClient();
  await client.query(`CREATE SCHEMA "${schema}"`);
});

after(async () => {
  await killAllDaemons();
  for (const source of sources) await dropPostgres(client, { slot: `sluice_${source}`, publication: `sluice_${source}` });
  await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await client.end();
  for (const deployment of deployments) await deleteKafkaDeployment(deployment).catch((error: unknown) => console.error("Kafka cleanup failed", error));
  removeDir(dir);
});

/** A table of its own and a deployment capturing it into `topics`. */
async function setup(table: string, topics: Record<string, unknown>) {
  await client.query(`CREATE TABLE "${schema}"."${table}" (id int PRIMARY KEY, note text)`);
  await client.query(`INSERT INTO "${schema}"."${table}" SELECT i, 'n' || i FROM generate_series(1, 20) i`);
  const source = randomName("src");
  const deployment = randomName("dep");
  sources.push(source);
  deployments.push(deployment);
  const config = { name: deployment, sources: [pgSourceConfig(source, [`${schema}.${table}`])], topics, sinks: [] };
  return { config, topic: `${deployment}.${source}.${schema}.${table}`, publication: `sluice_${source}` };
}

/** Out of the publication, a row inserted, back in: pgoutput never sends the insert. */
async function outAndBack(publication: string, table: string): Promise<void> {
  await client.query(`ALTER PUBLICATION "${publication}" DROP TABLE "${schema}"."${table}"`);
  await client.query(`INSERT INTO "${schema}"."${table}" VALUES (1000, 'while out')`);
  await client.query(`ALTER PUBLICATION "${publication}" ADD TABLE "${schema}"."${table}"`);
}

const KAFKA_TOPICS = { kind: "kafka", brokers: [...kafka.brokers], partitions: 1, transactions: true, retention: { max_age: 0 } };

/** The ids of the rows in a Kafka topic (the records' values decoded). */
async function kafkaIds(configFile: string, topic: string): Promise<Set<unknown>> {
  const loaded = loadConfigFile(configFile);
  const log = await openTopicLogForCommand(loaded.topics, loaded.name, createLogger("warn"), "read-only");
  try {
    const decoder = recordDecoder((await openRegistry(loaded, log)).registry);
    const ids = new Set<unknown>();
    for (const record of await (log as unknown as { readWholeTopic(topic: string): Promise<StoredRecord[]> }).readWholeTopic(topic)) {
      if (record.value !== null) ids.add((await decoder.decode(record))?.after?.["id"]);
    }
    return ids;
  } finally {
    await log.close();
  }
}

test("embedded log: a table taken out of the publication and put back while the daemon is stopped has its insert meanwhile in the topic after the restart", async () => {
  const { config, topic, publication } = await setup("emb", { kind: "embedded", path: join(dir, "emb.db") });
  let daemon = await startReady(dir, config, "emb");
  await waitCaughtUp(daemon, client, { timeoutMs: 60_000 });
  await daemon.stop();

  await outAndBack(publication, "emb");
  daemon = await startReady(dir, config, "emb");
  await waitFor("the table read again", async () => (await daemon.status()).sources[0]?.snapshots?.some((s) => s.state === "done") === true, { daemon, timeoutMs: 60_000, intervalMs: 200 });
  await waitCaughtUp(daemon, client, { timeoutMs: 30_000 });
  await daemon.stop();
  const ids = new Set((await readEmbeddedTopics(join(dir, "emb.db"), [topic], { decode: true })).map((r) => r.event?.after?.["id"]));
  assert.ok(ids.has(1000), "the row inserted while the table was out of the publication");
});

test("Kafka: a table taken out of the publication and put back while the daemon is stopped has its insert meanwhile in the topic after the restart", async () => {
  const { config, topic, publication } = await setup("kfk", KAFKA_TOPICS);
  let daemon = await startReady(dir, config, "kfk");
  await waitCaughtUp(daemon, client, { timeoutMs: 60_000 });
  await daemon.stop();

  await outAndBack(publication, "kfk");
  daemon = await startReady(dir, config, "kfk");
  const started = daemon;
  await waitFor("the row in the topic", async () => (await kafkaIds(started.configFile, topic)).has(1000), { daemon, timeoutMs: 60_000, intervalMs: 500 });
  await daemon.stop();
});

test("Kafka, capture standby: a table taken out of the publication and put back after the leader was killed, before the standby takes over, has its insert meanwhile in the topic", async () => {
  const { config, topic, publication } = await setup("stb", KAFKA_TOPICS);
  // The broker's smallest session timeout: a dead leader keeps the lease this long.
  const options = { args: ["--role", "capture"], env: { SLUICE_CAPTURE_LEASE_SESSION_MS: "6000" } };
  const leader = await SluiceDaemon.start(dir, config, "stb-leader", options);
  const role = async (daemon: SluiceDaemon) => ((await daemon.status()) as unknown as { instance: { capture: string | null } }).instance.capture;
  await waitFor("the first process to lead", async () => (await role(leader)) === "leader", { daemon: leader, timeoutMs: 60_000, intervalMs: 200 });
  await waitCaughtUp(leader, client, { timeoutMs: 60_000 });
  const standby = await SluiceDaemon.start(dir, config, "stb-standby", options);
  await waitFor("the second process to stand by", async () => (await role(standby)) === "standby", { daemon: standby, timeoutMs: 60_000, intervalMs: 200 });

  await leader.kill();
  await outAndBack(publication, "stb");
  await waitFor("the standby to lead", async () => (await role(standby)) === "leader", { daemon: standby, timeoutMs: 30_000, intervalMs: 200 });
  await waitFor("the row in the topic", async () => (await kafkaIds(standby.configFile, topic)).has(1000), { daemon: standby, timeoutMs: 60_000, intervalMs: 500 });
  await standby.stop();
});
