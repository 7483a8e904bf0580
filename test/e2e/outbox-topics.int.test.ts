/**
 * End to end: which topics the outbox makes. On PostgreSQL 15 any role that may connect to the captured database may
 * call pg_logical_emit_message (EXECUTE is PUBLIC's; no table privilege is needed), so a login with no privilege at all
 * emits outbox messages here. The topic of an event's aggregate type used to be made before its payload was checked
 * (an Avro message of an unlisted type, or one its schema refuses, made its topic and then was dead-lettered), and any
 * number of aggregate types made as many topics. Now everything is checked before a topic is made, and the topics are
 * bounded by outbox.max_topics (existing ones counted, also across restarts) or the allow-list outbox.aggregate_types,
 * which a config with message_prefix must set (config/schema.ts; else any login could fill max_topics and halt the
 * application's rows, or a new type's messages would be lost); a refused message is dead-lettered (reason topic-refused) to <deployment>.dlq.<source>.messages,
 * a refused row halts its outbox table (OUTBOX_TOPIC_REFUSED).
 */
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import pg from "pg";
import { openTopicLogForCommand } from "../../connectors/topics/open.ts";
import { createLogger } from "../../runtime/logger.ts";
import { deleteKafkaDeployment, testDeployment } from "../../connectors/kafka/kafka-test-config.ts";
import { kafka, postgres } from "../services/ports.ts";
import type { SluiceDaemon } from "./helpers.ts";
import { dropPostgres, killAllDaemons, pgClient, pgSourceConfig, randomName, readEmbeddedTopics, removeDir, startReady, tempDir, waitFor } from "./helpers.ts";

const schema = randomName("e2e_obtop");
const role = randomName("e2e_nobody");
const dir = tempDir("outbox-topics");
const sources: string[] = [];
const kafkaDeployments: string[] = [];
let admin: pg.Client;
/** A login with no privilege granted: what PUBLIC may do, it may. */
let nobody: pg.Client;

before(async () => {
  admin = await pgClient();
  await admin.query(`CREATE SCHEMA "${schema}"`);
  await admin.query(`CREATE TABLE "${schema}".outbox (id text PRIMARY KEY, aggregatetype text, aggregateid text, type text, payload jsonb)`);
  await admin.query(`CREATE ROLE "${role}" LOGIN PASSWORD 'nobody' NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION`);
  nobody = new pg.Client({ ...postgres, user: role, password: "nobody" });
  await nobody.connect();
});

after(async () => {
  await killAllDaemons();
  await nobody.end();
  for (const source of sources) await dropPostgres(admin, { slot: `sluice_${source}`, publication: `sluice_${source}` });
  for (const deployment of kafkaDeployments) await deleteKafkaDeployment(deployment).catch(() => undefined);
  await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await admin.query(`DROP ROLE IF EXISTS "${role}"`);
  await admin.end();
  removeDir(dir);
});

function setup(outbox: Record<string, unknown>) {
  const source = randomName("src");
  const deployment = randomName("dep");
  const prefix = randomName("events");
  const logPath = join(dir, `${randomName("log")}.db`);
  sources.push(source);
  const config = {
    name: deployment,
    sources: [pgSourceConfig(source, [`${schema}.*`], { outbox: { tables: [`${schema}.outbox`], message_prefix: prefix, ...outbox } })],
    topics: { kind: "embedded", path: logPath },
    sinks: [],
  };
  return { source, deployment, prefix, logPath, config };
}

async function startStreaming(config: Record<string, unknown>): Promise<SluiceDaemon> {
  const daemon = await startReady(dir, config, "sluice");
  await waitFor("the source streaming", async () => (await daemon.status()).sources[0]?.position != null, { daemon, timeoutMs: 60_000 });
  return daemon;
}

async function topicNames(logPath: string): Promise<string[]> {
  const log = await openTopicLogForCommand({ kind: "embedded", path: logPath } as never, "reader", createLogger("silent"), "read-only");
  try {
    return await log.topicNames();
  } finally {
    await log.close();
  }
}

const event = (id: string, type: string, payload: unknown = { id }) => JSON.stringify({ id, aggregatetype: type, aggregateid: "a-1", type: `${type}.made`, payload });

/** Emitted by the login with no privileges, in one transaction. */
async function emitAsNobody(prefix: string, contents: readonly string[]): Promise<void> {
  await nobody.query("BEGIN");
  for (const content of contents) await nobody.query("SELECT pg_logical_emit_message(true, $1, $2::text)", [prefix, content]);
  await nobody.query("COMMIT");
}

async function deadLetters(logPath: string, deployment: string, source: string, count: number, daemon: SluiceDaemon) {
  return waitFor(`${count} dead letters`, async () => {
    const letters = await readEmbeddedTopics(logPath, [`${deployment}.dlq.${source}.messages`]);
    return letters.length >= count ? letters : undefined;
  }, { daemon, timeoutMs: 30_000 });
}

test("PostgreSQL: a login with no privilege may emit a logical message (EXECUTE is PUBLIC's); revoking EXECUTE on both forms from PUBLIC stops it", async () => {
  const { rows } = await nobody.query<{ lsn: string }>("SELECT pg_logical_emit_message(true, 'sluice-test', 'x')::text AS lsn");
  assert.match(rows[0]!.lsn, /^[0-9A-F]+\/[0-9A-F]+$/);
  // Checked in a transaction that is rolled back: the shared server's functions keep their privileges.
  await admin.query("BEGIN");
  try {
    await admin.query("REVOKE EXECUTE ON FUNCTION pg_logical_emit_message(boolean, text, text), pg_logical_emit_message(boolean, text, bytea) FROM PUBLIC");
    await admin.query(`SET LOCAL ROLE "${role}"`);
    await assert.rejects(admin.query("SELECT pg_logical_emit_message(true, 'sluice-test', 'x')"), (error: { code?: string }) => error.code === "42501");
  } finally {
    await admin.query("ROLLBACK");
  }
});

test("Avro: a message of an aggregate type with no schema, or whose payload its schema refuses, is dead-lettered before any topic is made", { timeout: 60_000 }, async () => {
  const orderSchema = join(dir, `${randomName("order")}.avsc`);
  writeFileSync(orderSchema, JSON.stringify({ type: "record", name: "Order", fields: [{ name: "id", type: "string" }] }));
  // Both types listed (a message makes a topic only for a listed type): the one with no schema is refused for that.
  const { source, deployment, prefix, logPath, config } = setup({ aggregate_types: ["order", "attacker_made_1"], payload: { format: "avro", schemas: { order: orderSchema } } });
  const daemon = await startStreaming(config);
  await emitAsNobody(prefix, [event("x1", "attacker_made_1"), event("x2", "order", { id: 7 })]);
  const letters = await deadLetters(logPath, deployment, source, 2, daemon);
  const reasons = letters.map((l) => l.headers["sluice.reason"]);
  assert.match(reasons[0]!, /names no schema for the logical message's aggregate type "attacker_made_1"/);
  assert.match(reasons[1]!, /does not fit the Avro schema of order/);
  const topics = await topicNames(logPath);
  assert.ok(!topics.includes(`${deployment}.outbox.attacker_made_1`), `no topic for the unlisted type: ${topics.join(", ")}`);
  assert.ok(!topics.includes(`${deployment}.outbox.order`), `no topic for a payload its schema refuses: ${topics.join(", ")}`);
  await emitAsNobody(prefix, [event("m1", "order")]);
  await waitFor("m1 published", async () => (await readEmbeddedTopics(logPath, [`${deployment}.outbox.order`])).length === 1, { daemon, timeoutMs: 30_000 });
  await daemon.stop();
});

test("outbox.max_topics (rows only: with message_prefix, aggregate_types is required): rows make topics up to it, then a row halts its table; existing topics are written and counted, also after a restart", { timeout: 60_000 }, async () => {
  const { deployment, logPath, config } = setup({ max_topics: 2, message_prefix: undefined });
  const row = (id: string, type: string) => admin.query(`INSERT INTO "${schema}".outbox VALUES ($1, $2, 'a-1', $3, '{}')`, [`${deployment}-${id}`, type, `${type}.made`]);
  const daemon = await startStreaming(config);
  await row("a1", "a");
  await row("b1", "b");
  await row("a2", "a");
  await waitFor("a1, b1 and a2 published", async () => (await readEmbeddedTopics(logPath, [`${deployment}.outbox.a`, `${deployment}.outbox.b`])).length === 3, { daemon, timeoutMs: 30_000 });
  assert.deepEqual((await topicNames(logPath)).filter((t) => t.startsWith(`${deployment}.outbox.`)).sort(), [`${deployment}.outbox.a`, `${deployment}.outbox.b`]);
  await daemon.stop();

  // Started again: the two topics that exist are counted before a third is made: a row of a new type halts.
  const again = await startStreaming(config);
  await row("b2", "b");
  await row("c1", "c");
  const halted = await waitFor("the outbox table halted", async () => (await again.status()).sources[0]?.halted.find((h) => h.table === `${schema}.outbox`), { daemon: again, timeoutMs: 30_000 });
  assert.equal(halted.code, "OUTBOX_TOPIC_REFUSED");
  assert.match(halted.error, /aggregate type "c" would make a new topic .*outbox\.max_topics 2.*Change the config and restart.*sluice halted skip --source/);
  await waitFor("b2 published", async () => (await readEmbeddedTopics(logPath, [`${deployment}.outbox.b`])).length === 2, { daemon: again, timeoutMs: 30_000 });
  assert.deepEqual((await topicNames(logPath)).filter((t) => t.startsWith(`${deployment}.outbox.`)).sort(), [`${deployment}.outbox.a`, `${deployment}.outbox.b`]);
  await again.stop();
});

test("outbox.aggregate_types: a message of an unlisted type is dead-lettered and a row of one halts its table, before a topic is made; listed types are published", { timeout: 60_000 }, async () => {
  const { source, deployment, prefix, logPath, config } = setup({ aggregate_types: ["order"] });
  const daemon = await startStreaming(config);
  await emitAsNobody(prefix, [event("c1", "customer"), event("o1", "order")]);
  await admin.query(`INSERT INTO "${schema}".outbox VALUES ('r2', 'invoice', 'a-1', 'invoice.made', '{}')`);
  const [letter] = await deadLetters(logPath, deployment, source, 1, daemon);
  assert.match(letter!.headers["sluice.reason"]!, new RegExp(`the aggregate type "customer" \\(topic ${deployment}\\.outbox\\.customer\\) is not among outbox\\.aggregate_types`));
  const halted = await waitFor("the outbox table halted", async () => (await daemon.status()).sources[0]?.halted.find((h) => h.table === `${schema}.outbox`), { daemon, timeoutMs: 30_000 });
  assert.equal(halted.code, "OUTBOX_TOPIC_REFUSED");
  await waitFor("o1 published", async () => (await readEmbeddedTopics(logPath, [`${deployment}.outbox.order`])).length === 1, { daemon, timeoutMs: 30_000 });
  assert.deepEqual((await topicNames(logPath)).filter((t) => t.startsWith(`${deployment}.outbox.`)), [`${deployment}.outbox.order`]);
  await daemon.stop();
});

test("dead-letter topics at start: <deployment>.dlq.<source>.messages bounded (1 GiB by default), <deployment>.dlq.<source> kept for ever unless dead_letter_retention is set; a changed retention is applied at the next start, before any dead letter, and logged", { timeout: 60_000 }, async () => {
  const { source, deployment, logPath, config } = setup({ aggregate_types: ["order"] });
  const spec = async (topic: string) => {
    const log = await openTopicLogForCommand({ kind: "embedded", path: logPath } as never, "reader", createLogger("silent"), "read-only");
    try {
      const found = (await log.listTopics([topic]))[0];
      return found === undefined ? undefined : [found.retentionMs, found.retentionBytes];
    } finally {
      await log.close();
    }
  };
  const rows = `${deployment}.dlq.${source}`;
  const messages = `${deployment}.dlq.${source}.messages`;
  const daemon = await startStreaming(config);
  assert.deepEqual(await spec(messages), [null, 2 ** 30]);
  assert.deepEqual(await spec(rows), [null, null], "a dead letter there is its change's only copy: kept");
  await daemon.stop();

  (config.sources[0] as Record<string, unknown>)["dead_letter_retention"] = { max_age: "30d" };
  ((config.sources[0] as Record<string, unknown>)["outbox"] as Record<string, unknown>)["message_dead_letter_retention"] = { max_bytes: "64MiB" };
  const again = await startStreaming(config);
  // No dead letter written: declared with the source's retention at capture start.
  assert.deepEqual(await spec(messages), [null, 64 * 2 ** 20]);
  assert.deepEqual(await spec(rows), [30 * 86_400_000, null]);
  await again.stop();
  assert.match(readFileSync(again.logFile, "utf8"), new RegExp(`topic ${rows.replaceAll(".", "\\.")}: retention changed from kept for ever to max_age 2592000000 ms, as the config now says; records beyond it are dropped`));
});

test("Kafka: a message of an unlisted aggregate type makes no topic on the broker; rows of listed types make theirs", { timeout: 90_000 }, async () => {
  const deployment = testDeployment("dep_obtop");
  kafkaDeployments.push(deployment);
  const { source, prefix, config } = setup({ aggregate_types: ["a", "b"] });
  const topics = { kind: "kafka", brokers: [...kafka.brokers], partitions: 1, retention: { max_age: 0 } };
  Object.assign(config, { name: deployment, topics });
  const brokerTopics = async () => {
    const log = await openTopicLogForCommand(topics as never, deployment, createLogger("silent"), "read-only");
    try {
      return (await log.topicNames()).filter((t) => t.startsWith(`${deployment}.outbox.`)).sort();
    } finally {
      await log.close();
    }
  };
  const daemon = await startStreaming(config);
  await admin.query(`INSERT INTO "${schema}".outbox VALUES ($1, 'a', 'a-1', 'a.made', '{}'), ($2, 'b', 'a-1', 'b.made', '{}')`, [`${deployment}-a1`, `${deployment}-b1`]);
  await emitAsNobody(prefix, [event("c1", "c")]);
  await waitFor("c1 dead-lettered", async () => (await daemon.metric("sluice_outbox_dead_lettered_total", { source, reason: "topic-refused" })) === 1, { daemon, timeoutMs: 60_000 });
  assert.deepEqual(await brokerTopics(), [`${deployment}.outbox.a`, `${deployment}.outbox.b`]);
  await daemon.stop();
});
