/**
 * End to end: one poison outbox event must not stop the outbox stream. Any user connected to the database may emit a
 * logical message with the outbox prefix; one that is not JSON, nested too deep, larger than outbox.max_message_bytes,
 * or an outbox row with a part missing used to halt its outbox pseudo-table or table until an operator skipped it,
 * so every later event waited. With on_invalid dead-letter (the default) each goes to <deployment>.dlq.<source>.messages
 * (a logical message: bounded, anyone may emit one) or <deployment>.dlq.<source> (a row: kept) with its reason (stream, position, why; a message over the limit keeps its size and first bytes), is counted in
 * sluice_outbox_dead_lettered_total, and the events after it are published. Over the embedded log and Kafka
 * (transactions); on_invalid halt still halts.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type pg from "pg";
import type { StoredRecord } from "../../connectors/contracts.ts";
import { openTopicLogForCommand } from "../../connectors/topics/open.ts";
import { deserializeEventBytes } from "../../daemon/event-json.ts";
import { createLogger } from "../../runtime/logger.ts";
import { kafka } from "../services/ports.ts";
import type { SluiceDaemon } from "./helpers.ts";
import { deleteKafkaDeployment, dropPostgres, killAllDaemons, pgClient, pgSourceConfig, randomName, removeDir, runSluice, startReady, tempDir, waitFor } from "./helpers.ts";

const schema = randomName("e2e_obdlq");
const dir = tempDir("outbox-dlq");
const runs: { source: string; deployment: string; kafka: boolean }[] = [];
/** 200 KiB of content, over the tests' max_message_bytes of 64KiB. */
const LARGE_PAD = 200 * 1024;
let client: pg.Client;

before(async () => {
  client = await pgClient();
  await client.query(`CREATE SCHEMA "${schema}"`);
  await client.query(`CREATE TABLE "${schema}".items (id integer PRIMARY KEY)`);
  // Parts nullable: a row with one missing is what the router refuses.
  await client.query(`CREATE TABLE "${schema}".outbox (id text PRIMARY KEY, aggregatetype text, aggregateid text, type text, payload jsonb)`);
});

after(async () => {
  await killAllDaemons();
  for (const run of runs) {
    await dropPostgres(client, { slot: `sluice_${run.source}`, publication: `sluice_${run.source}` });
    if (run.kafka) await deleteKafkaDeployment(run.deployment).catch(() => undefined);
  }
  await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await client.end();
  removeDir(dir);
});

type Topics = Record<string, unknown>;

function setup(topics: Topics, outbox: Record<string, unknown> = {}) {
  const source = randomName("src");
  const deployment = randomName("dep");
  const prefix = randomName("events");
  runs.push({ source, deployment, kafka: topics["kind"] === "kafka" });
  const config = {
    name: deployment,
    sources: [pgSourceConfig(source, [`${schema}.*`], { outbox: { tables: [`${schema}.outbox`], message_prefix: prefix, max_message_bytes: "64KiB", aggregate_types: ["order"], ...outbox } })],
    topics,
    sinks: [],
  };
  return { source, deployment, prefix, config };
}

/** Every record of the topics up to their ends now, read as a command reads beside the daemon (Kafka: committed transactions only). */
async function readTopics(topics: Topics, deployment: string, names: readonly string[]): Promise<StoredRecord[]> {
  const log = await openTopicLogForCommand(topics as never, deployment, createLogger("silent"), "read-only");
  try {
    // Names only: listTopics() describes every topic on the shared broker, one request each.
    const existing = new Set(await log.topicNames());
    const wanted = names.filter((name) => existing.has(name));
    if (wanted.length === 0) return [];
    // Up to the end offsets taken now; a Kafka transaction's commit marker takes the last offset of a partition.
    const marker = topics["kind"] === "kafka" ? 1n : 0n;
    const ends = new Map<string, bigint>();
    for (const topic of wanted) for (const end of await log.endOffsets(topic)) ends.set(`${topic}/${end.partition}`, end.offset - marker);
    const consumer = await log.consumer(randomName(`${deployment}.e2e_reader`), wanted);
    const out: StoredRecord[] = [];
    const next = new Map<string, bigint>();
    try {
      for (let idle = 0; idle < 20 && ![...ends].every(([partition, end]) => (next.get(partition) ?? 0n) >= end); ) {
        const records = await consumer.poll({ maxRecords: 1_000, maxBytes: 16 * 2 ** 20, maxWaitMs: 200 });
        idle = records.length === 0 ? idle + 1 : 0;
        for (const record of records) next.set(`${record.topic}/${record.partition}`, record.offset + 1n);
        out.push(...records);
      }
    } finally {
      await consumer.close();
    }
    return out;
  } finally {
    await log.close();
  }
}

const header = (record: StoredRecord, name: string) => (record.headers?.[name] === undefined ? undefined : Buffer.from(record.headers[name]).toString("utf8"));
const message = (id: string) => JSON.stringify({ id, aggregatetype: "order", aggregateid: "o-1", type: "order.paid", payload: { id } });

/**
 * Started, and streaming: events committed before the source's slot exists are not published (docs/outbox.md), and over
 * Kafka the daemon says ready before its capture lease is held and the slot made.
 */
async function startStreaming(config: Record<string, unknown>): Promise<SluiceDaemon> {
  const daemon = await startReady(dir, config, "sluice");
  await waitFor("the source streaming", async () => {
    const source = (await daemon.status()).sources[0];
    return source?.position != null && (source.snapshots ?? []).every((s) => s.state === "done");
  }, { daemon, timeoutMs: 60_000 });
  return daemon;
}

/** One transaction: a good message, four poison events between good ones, a row of an ordinary table. */
async function writePoisonTransaction(prefix: string): Promise<void> {
  const emit = (content: string) => client.query("SELECT pg_logical_emit_message(true, $1, $2::text)", [prefix, content]);
  // Each test's rows have their own ids (the table is shared): r0 and r1 are the headers' ids, the key is the run's.
  const run = randomName("r");
  await client.query("BEGIN");
  try {
    await emit(message("m1"));
    await emit("not json {");
    await emit(`${"[".repeat(2_000)}${"]".repeat(2_000)}`);
    await emit(`{"id":"big","pad":"${"y".repeat(LARGE_PAD)}"}`);
    await client.query(`INSERT INTO "${schema}".outbox VALUES ($1, 'order', NULL, 'order.paid', '{}')`, [`${run}-r0`]);
    await client.query(`INSERT INTO "${schema}".outbox VALUES ($1, 'order', 'o-1', 'order.paid', '{"id": "r1"}')`, [`${run}-r1`]);
    await emit(message("m2"));
    await client.query(`INSERT INTO "${schema}".items VALUES ($1)`, [Math.floor(Math.random() * 1e9)]);
    await client.query("COMMIT");
  } catch (error) {
    await client.query("ROLLBACK");
    throw error;
  }
}

const scenarios: [string, () => Topics][] = [
  ["embedded log", () => ({ kind: "embedded", path: join(dir, `${randomName("log")}.db`) })],
  ["Kafka, transactions", () => ({ kind: "kafka", brokers: [...kafka.brokers], partitions: 1, transactions: true, retention: { max_age: 0 } })],
];

for (const [label, topicsOf] of scenarios) {
  test(`${label}: poison outbox events are dead-lettered with their reason and the events after them flow`, { timeout: 120_000 }, async () => {
    const { source, deployment, prefix, config } = setup(topicsOf());
    const daemon = await startStreaming(config);
    await writePoisonTransaction(prefix);
    const table = `pg_logical_message.${prefix}`;

    const published = await waitFor("the good events of the transaction on their topic", async () => {
      const records = await readTopics(config.topics, deployment, [`${deployment}.outbox.order`]);
      return records.length >= 3 ? records : undefined;
    }, { daemon, timeoutMs: 60_000 });
    assert.deepEqual(published.map((r) => header(r, "id")?.replace(/^r_[0-9a-f]+-/, "")), ["m1", "r1", "m2"], "in commit order, none held back by the poison between them");
    const status = await daemon.status();
    assert.deepEqual(status.sources[0]?.halted, [], "nothing halted");

    const messageLetters = await readTopics(config.topics, deployment, [`${deployment}.dlq.${source}.messages`]);
    const rowLetters = await readTopics(config.topics, deployment, [`${deployment}.dlq.${source}`]);
    assert.equal(messageLetters.length, 3, "each poison message kept, once, in the messages' dead-letter topic");
    assert.equal(rowLetters.length, 1, "the poison row kept, once, in the source's dead-letter topic");
    const letters = [...messageLetters, ...rowLetters];
    const [notJson, deep, large, row] = letters as [StoredRecord, StoredRecord, StoredRecord, StoredRecord];
    for (const letter of letters) {
      assert.match(header(letter, "sluice.reason")!, new RegExp(`^outbox .*; source ${source}, position [0-9A-F]+/[0-9A-F]+ \\(commit [0-9A-F]+/[0-9A-F]+\\); `));
      assert.equal(header(letter, "sluice.check"), "outbox");
    }
    assert.match(header(notJson, "sluice.reason")!, new RegExp(`^outbox ${table.replace(".", "\\.")}: the logical message's content is not JSON;.*kept whole$`));
    assert.equal(deserializeEventBytes(notJson.value!).after?.["content"], "not json {");
    assert.match(header(deep, "sluice.reason")!, /refused unread: its arrays and objects are nested more than 1000 deep/);
    assert.equal(header(deep, "sluice.kept"), "whole");
    const size = LARGE_PAD + '{"id":"big","pad":""}'.length;
    assert.match(header(large, "sluice.reason")!, new RegExp(`content is ${size} bytes, over outbox.max_message_bytes \\(65536\\).*kept: its first 65536 of ${size} bytes of content$`));
    assert.equal(header(large, "sluice.kept"), "prefix");
    assert.equal(header(large, "sluice.bytes"), String(size));
    assert.equal((deserializeEventBytes(large.value!).after?.["content"] as string).length, 65_536);
    assert.ok(large.value!.length < 70_000, "the dead letter holds the prefix, not the message");
    assert.equal(header(row, "sluice.table"), `${schema}.outbox`);
    assert.match(header(row, "sluice.reason")!, /the outbox row has no aggregate id \(column aggregateid\)/);

    assert.equal(await daemon.metric("sluice_outbox_dead_lettered_total", { source, table, reason: "invalid" }), 2);
    assert.equal(await daemon.metric("sluice_outbox_dead_lettered_total", { source, table, reason: "too-large" }), 1);
    assert.equal(await daemon.metric("sluice_outbox_dead_lettered_total", { source, table: `${schema}.outbox`, reason: "invalid" }), 1);
    if (!label.startsWith("Kafka")) {
      const listed = await runSluice(["dead-letters", "-c", daemon.configFile, "--source", source]);
      assert.equal(listed.code, 0, listed.stderr);
      assert.equal(listed.stdout.match(/check outbox/g)?.length, 1, listed.stdout);
      const messages = await runSluice(["dead-letters", "-c", daemon.configFile, "--source", source, "--messages"]);
      assert.equal(messages.code, 0, messages.stderr);
      assert.equal(messages.stdout.match(/check outbox/g)?.length, 3, messages.stdout);
      assert.match(messages.stdout, /kept: its first 65536 of \d+ bytes of content/);
    }
    assert.equal(daemon.exitStatus, null);
    await daemon.stop();
  });
}

test("on_invalid halt: a poison message halts the outbox pseudo-table as before, its events parked; started again with dead-letter, the parked events are dead-lettered or published", { timeout: 120_000 }, async () => {
  const { source, deployment, prefix, config } = setup({ kind: "embedded", path: join(dir, `${randomName("log")}.db`) }, { on_invalid: "halt" });
  const daemon = await startStreaming(config);
  await writePoisonTransaction(prefix);
  const halted = await waitFor("the outbox pseudo-table and table to halt", async () => {
    const tables = (await daemon.status()).sources[0]?.halted ?? [];
    return tables.length === 2 ? tables : undefined;
  }, { daemon, timeoutMs: 60_000 });
  const message = halted.find((h) => h.table === `pg_logical_message.${prefix}`);
  assert.equal(message?.code, "OUTBOX_EVENT_INVALID");
  assert.match(message.error, /content is not JSON/);
  // The batch that halted them is durable once m1 (before the poison) is on its topic.
  const before = await waitFor("m1 published", async () => {
    const records = await readTopics(config.topics, deployment, [`${deployment}.outbox.order`]);
    return records.length > 0 ? records : undefined;
  }, { daemon, timeoutMs: 60_000 });
  assert.deepEqual(before.map((r) => header(r, "id")), ["m1"]);
  assert.deepEqual(await readTopics(config.topics, deployment, [`${deployment}.dlq.${source}`, `${deployment}.dlq.${source}.messages`]), []);
  await daemon.stop();

  const outbox = (config.sources[0] as { outbox: Record<string, unknown> }).outbox;
  outbox["on_invalid"] = "dead-letter";
  const again = await startStreaming(config);
  const published = await waitFor("the parked good events published", async () => {
    const records = await readTopics(config.topics, deployment, [`${deployment}.outbox.order`]);
    return records.length >= 3 ? records : undefined;
  }, { daemon: again, timeoutMs: 60_000 });
  assert.deepEqual(published.map((r) => header(r, "id")?.replace(/^r_[0-9a-f]+-/, "")).sort(), ["m1", "m2", "r1"]);
  assert.deepEqual((await readTopics(config.topics, deployment, [`${deployment}.dlq.${source}.messages`])).map((r) => header(r, "sluice.kept")), ["whole", "whole", "prefix"]);
  assert.deepEqual((await readTopics(config.topics, deployment, [`${deployment}.dlq.${source}`])).map((r) => header(r, "sluice.kept")), ["whole"]);
  assert.deepEqual((await again.status()).sources[0]?.halted, []);
  await again.stop();
});

test("Avro payloads: an outbox row whose aggregate type has no schema in outbox.payload.schemas halts (OUTBOX_SCHEMA_MISSING) whatever on_invalid says; parked by an on_invalid halt run, it is not dead-lettered at the first start with dead-letter; once the config names a schema its events are published in order", { timeout: 120_000 }, async () => {
  const orderSchema = join(dir, `${randomName("order")}.avsc`);
  const invoiceSchema = join(dir, `${randomName("invoice")}.avsc`);
  const record = (name: string) => JSON.stringify({ type: "record", name, fields: [{ name: "id", type: "string" }] });
  writeFileSync(orderSchema, record("Order"));
  writeFileSync(invoiceSchema, record("Invoice"));
  const outbox: Record<string, unknown> = { on_invalid: "halt", aggregate_types: ["order", "invoice"], payload: { format: "avro", schemas: { order: orderSchema } } };
  const { source, deployment, config } = setup({ kind: "embedded", path: join(dir, `${randomName("log")}.db`) }, outbox);
  // A row of the outbox table (its writer is the application); a logical message with such a type is dead-lettered (outbox-router.test).
  const table = `${schema}.outbox`;
  const run = randomName("a");
  const haltedOn = async (daemon: SluiceDaemon) =>
    waitFor("the outbox table halted", async () => (await daemon.status()).sources[0]?.halted.find((h) => h.table === table), { daemon, timeoutMs: 60_000 });
  const ids = async (topic: string) => (await readTopics(config.topics, deployment, [`${deployment}.outbox.${topic}`])).map((r) => header(r, "id")?.slice(run.length + 1));

  const first = await startStreaming(config);
  await client.query("BEGIN");
  for (const [id, type] of [["m1", "order"], ["i1", "invoice"], ["m2", "order"]] as const) {
    await client.query(`INSERT INTO "${schema}".outbox VALUES ($1, $2, 'a-1', $3, $4)`, [`${run}-${id}`, type, `${type}.made`, JSON.stringify({ id })]);
  }
  await client.query("COMMIT");
  const halted = await haltedOn(first);
  assert.equal(halted.code, "OUTBOX_SCHEMA_MISSING");
  assert.match(halted.error, /no schema for aggregate type "invoice"/);
  await waitFor("m1 published", async () => (await ids("order")).length === 1, { daemon: first, timeoutMs: 60_000 });
  await first.stop();

  // The first start with dead-letter re-encodes the parked events: the one with no schema halts again, nothing is dead-lettered.
  outbox["on_invalid"] = "dead-letter";
  const second = await startStreaming(config);
  assert.equal((await haltedOn(second)).code, "OUTBOX_SCHEMA_MISSING");
  assert.deepEqual(await readTopics(config.topics, deployment, [`${deployment}.dlq.${source}`, `${deployment}.dlq.${source}.messages`]), [], "no dead letter");
  assert.deepEqual(await ids("order"), ["m1"]);
  await second.stop();

  // The config names the schema: the parked events are published, in order.
  (outbox["payload"] as { schemas: Record<string, string> }).schemas["invoice"] = invoiceSchema;
  const third = await startStreaming(config);
  await waitFor("the parked events published", async () => (await ids("order")).length === 2 && (await ids("invoice")).length === 1, { daemon: third, timeoutMs: 60_000 });
  assert.deepEqual(await ids("order"), ["m1", "m2"]);
  assert.deepEqual(await ids("invoice"), ["i1"]);
  assert.deepEqual((await third.status()).sources[0]?.halted, []);
  await third.stop();
});

test("outbox.max_message_bytes not set: the deployment's topics.max_record_bytes bounds a logical message, which is cut when decoded and dead-lettered naming that bound; the dead letter fits the record limit", { timeout: 120_000 }, async () => {
  const { source, deployment, prefix, config } = setup({ kind: "embedded", path: join(dir, `${randomName("log")}.db`), max_record_bytes: "64KiB" });
  delete (config.sources[0] as { outbox: Record<string, unknown> }).outbox["max_message_bytes"];
  const daemon = await startStreaming(config);
  await client.query("BEGIN");
  await client.query("SELECT pg_logical_emit_message(true, $1, $2::text)", [prefix, `{"id":"big","pad":"${"y".repeat(LARGE_PAD)}"}`]);
  await client.query("SELECT pg_logical_emit_message(true, $1, $2::text)", [prefix, message("m1")]);
  await client.query("COMMIT");
  const [letter] = await waitFor("the dead letter", async () => {
    const letters = await readTopics(config.topics, deployment, [`${deployment}.dlq.${source}.messages`]);
    return letters.length > 0 ? letters : undefined;
  }, { daemon, timeoutMs: 60_000 });
  const size = LARGE_PAD + '{"id":"big","pad":""}'.length;
  // "only its first bytes were kept": cut by the source when decoded, not refused whole by the router.
  assert.match(header(letter!, "sluice.reason")!, new RegExp(`content is ${size} bytes, over outbox.max_message_bytes \\(65536: topics.max_record_bytes, as it is not set\\); only its first bytes were kept`));
  const published = await waitFor("m1 published", async () => {
    const records = await readTopics(config.topics, deployment, [`${deployment}.outbox.order`]);
    return records.length > 0 ? records : undefined;
  }, { daemon, timeoutMs: 60_000 });
  assert.deepEqual(published.map((r) => header(r, "id")), ["m1"]);
  // Its 64 KiB prefix and headers would be over the 64 KiB record limit: a shorter prefix, and nothing halted.
  assert.ok(letter!.value!.length < 65_536);
  assert.match(header(letter!, "sluice.reason")!, new RegExp(`kept: its first 32768 of ${size} bytes of content$`));
  assert.deepEqual((await daemon.status()).sources[0]?.halted, []);
  await daemon.stop();
});
