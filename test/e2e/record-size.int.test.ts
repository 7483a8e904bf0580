/**
 * End to end (issue 12, item 3): record sizes with Kafka. Kafka refuses records over a topic's
 * max.message.bytes (1 MB by default) as non-retriable, which stopped the daemon. Sluice now sets
 * `topics.max_record_bytes` as max.message.bytes on the topics it creates and lets its consumers
 * fetch such records: a 2 MB row arrives in the sink. A row over the limit halts its table at
 * capture (parked whole, error naming table, key and size) while the other tables flow on.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import kafkajs from "kafkajs";
import type pg from "pg";
import { deserializeEvent } from "../../daemon/event-json.ts";
import { kafka } from "../services/ports.ts";
import { deleteKafkaDeployment, dropPostgres, killAllDaemons, pgClient, pgSourceConfig, randomName, removeDir, SluiceDaemon, tempDir, waitFor, waitSourcesPast } from "./helpers.ts";

const schema = randomName("e2e_size");
const source = randomName("src");
const deployment = randomName("dep");
const names = { slot: `sluice_${source}`, publication: `sluice_${source}`, schema };
const dir = tempDir("size");
const LIMIT = 4 * 2 ** 20;
const topic = (table: string) => `${deployment}.${source}.${schema}.${table}`;
const parking = `${deployment}.sluice.halted.${source}`;
let client: pg.Client;

before(async () => {
  client = await pgClient();
  await client.query(`CREATE SCHEMA "${schema}"`);
  for (const table of ["big", "huge", "old", "ok"]) await client.query(`CREATE TABLE "${schema}".${table} (id int PRIMARY KEY, b text)`);
});

after(async () => {
  await killAllDaemons();
  await dropPostgres(client, names);
  await client.end();
  await deleteKafkaDeployment(deployment);
  removeDir(dir);
});

/** Incompressible text of `bytes` characters (hex digests), so no layer can make the row small. */
const randomText = (bytes: number) => `(SELECT string_agg(md5(random()::text || g::text), '') FROM generate_series(1, ${bytes / 32}) g)`;

async function query(daemon: SluiceDaemon, sql: string): Promise<Record<string, unknown>[]> {
  const response = await fetch(`${daemon.url}/sinks/warehouse/query`, { method: "POST", body: sql, signal: AbortSignal.timeout(10_000) });
  if (response.status !== 200) throw new Error(`query answered ${response.status}: ${await response.text()}`);
  return ((await response.json()) as { rows: Record<string, unknown>[] }).rows;
}

async function readTopic(name: string, count: number): Promise<kafkajs.KafkaMessage[]> {
  const client = new kafkajs.Kafka({ clientId: "sluice-e2e-size", brokers: [...kafka.brokers], logLevel: kafkajs.logLevel.NOTHING });
  const consumer = client.consumer({ groupId: randomName(`${deployment}.reader`), maxBytesPerPartition: 64 * 2 ** 20 });
  const messages: kafkajs.KafkaMessage[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [name], fromBeginning: true });
    let done!: () => void;
    const finished = new Promise<void>((resolve) => (done = resolve));
    await consumer.run({
      eachMessage: async ({ message }) => {
        messages.push(message);
        if (messages.length >= count) done();
      },
    });
    await Promise.race([finished, new Promise((_, reject) => setTimeout(() => reject(new Error(`read ${messages.length} of ${count} records of ${name}`)), 60_000))]);
  } finally {
    await consumer.disconnect();
  }
  return messages;
}

test("with Kafka a 2 MB row arrives (topics get max.message.bytes); a row over topics.max_record_bytes halts only its table, parked whole", { timeout: 240_000 }, async (t) => {
  // A topic that exists from before, with the broker's default max.message.bytes (about 1 MB).
  const setup = new kafkajs.Kafka({ clientId: "sluice-e2e-size", brokers: [...kafka.brokers], logLevel: kafkajs.logLevel.NOTHING }).admin();
  await setup.connect();
  await setup.createTopics({ waitForLeaders: true, topics: [{ topic: topic("old"), numPartitions: 1, replicationFactor: 1 }] });
  await setup.disconnect();
  const daemon = await SluiceDaemon.start(dir, {
    name: deployment,
    sources: [pgSourceConfig(source, [`${schema}.*`])],
    topics: { kind: "kafka", brokers: [...kafka.brokers], partitions: 1, max_record_bytes: "4MiB" },
    sinks: [{ kind: "duckdb", name: "warehouse", path: join(dir, "warehouse.duckdb"), batch: { max_wait: "50ms" } }],
  });
  await client.query(`INSERT INTO "${schema}".ok VALUES (1, 'before')`);
  await waitFor("the ok row in DuckDB", async () => Number((await query(daemon, `SELECT count(*) AS n FROM "${schema}_ok"`))[0]?.["n"]) === 1, { daemon, timeoutMs: 90_000 });

  await client.query(`INSERT INTO "${schema}".big VALUES (1, ${randomText(2 * 2 ** 20)})`);
  await client.query(`INSERT INTO "${schema}".huge VALUES (7, ${randomText(6 * 2 ** 20)})`);
  await client.query(`UPDATE "${schema}".huge SET b = 'small again' WHERE id = 7`);
  await client.query(`INSERT INTO "${schema}".old VALUES (1, 'small'), (2, ${randomText(2 * 2 ** 20)})`);
  await client.query(`INSERT INTO "${schema}".ok VALUES (2, 'after')`);

  const rows = await waitFor("the 2 MB row in DuckDB", async () => {
    const found = await query(daemon, `SELECT id::int AS id, length(b)::int AS n FROM "${schema}_big"`);
    return found.length === 1 ? found : undefined;
  }, { daemon, timeoutMs: 90_000 });
  assert.deepEqual(rows, [{ id: 1, n: 2 * 2 ** 20 }]);

  const halted = await waitFor("/status to show table huge halted", async () => (await daemon.status()).sources[0]?.halted.find((h) => h.table.endsWith(`${schema}.huge`)), { daemon, timeoutMs: 30_000 });
  t.diagnostic(`halted: ${JSON.stringify(halted)}`);
  const detail = halted as typeof halted & { key?: string; bytes?: number };
  assert.equal(halted.code, "RECORD_TOO_LARGE");
  assert.equal(detail.key, '{"id":7}');
  assert.ok(detail.bytes! > LIMIT && detail.bytes! < LIMIT * 2, `size ${detail.bytes}`);
  assert.match(halted.error, new RegExp(`table ${schema}\\.huge: .*key \\{"id":7\\} is a ${detail.bytes}-byte topic record, over topics\\.max_record_bytes \\(${LIMIT}\\)`));

  // The existing topic's smaller limit counts: that table halts too (Kafka would refuse the record and stop capture).
  const old = await waitFor("/status to show table old halted", async () => (await daemon.status()).sources[0]?.halted.find((h) => h.table.endsWith(`${schema}.old`)), { daemon, timeoutMs: 30_000 });
  assert.equal(old.code, "RECORD_TOO_LARGE");
  // The topic sets no max.message.bytes of its own: the brokers' message.max.bytes limits it, and the error says so.
  assert.match(old.error, new RegExp(`key \\{"id":2\\} is a \\d+-byte topic record, over message\\.max\\.bytes of the brokers, which topic ${topic("old").replaceAll(".", "\\.")} takes \\(it sets no max\\.message\\.bytes\\) \\(\\d+; raise it`));
  assert.equal(await daemon.metric("sluice_capture_table_halts_total", { code: "RECORD_TOO_LARGE" }), 2);

  await waitFor("the ok row after the halt in DuckDB", async () => Number((await query(daemon, `SELECT count(*) AS n FROM "${schema}_ok"`))[0]?.["n"]) === 2, { daemon, timeoutMs: 30_000 });
  await waitSourcesPast(daemon, client, 60_000);
  assert.equal(Number((await query(daemon, `SELECT count(*) AS n FROM "${schema}_huge"`).catch(() => [{ n: 0 }]))[0]?.["n"]), 0);

  // The topics Sluice created carry the limit (its own topics four times it).
  const admin = new kafkajs.Kafka({ clientId: "sluice-e2e-size", brokers: [...kafka.brokers], logLevel: kafkajs.logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    const described = await admin.describeConfigs({
      includeSynonyms: false,
      resources: [topic("big"), parking].map((name) => ({ type: kafkajs.ConfigResourceTypes.TOPIC, name, configNames: ["max.message.bytes"] })),
    });
    const limits = Object.fromEntries(described.resources.map((r) => [r.resourceName, r.configEntries[0]?.configValue]));
    assert.deepEqual(limits, { [topic("big")]: String(LIMIT), [parking]: String(4 * LIMIT) });
  } finally {
    await admin.disconnect();
  }

  // Nothing lost: both changes of huge and the big row of old are parked, whole.
  // The 6 MB change is over the limit as one parking record too: it is split into parts ("sluice.part" i/n) that fit.
  const messages = await readTopic(parking, 4);
  assert.deepEqual(messages.map((m) => m.headers?.["sluice.part"]?.toString() ?? "-"), ["1/2", "2/2", "-", "-"]);
  assert.ok(messages.every((m) => m.value!.length <= LIMIT));
  const parked = [Buffer.concat([messages[0]!.value!, messages[1]!.value!]), messages[2]!.value!, messages[3]!.value!].map((value) => deserializeEvent(value.toString("utf8")));
  assert.deepEqual(
    parked.map((e) => [e.schema.table, e.op, e.after?.["id"], String(e.after?.["b"]).length]),
    [["huge", "c", 7, 6 * 2 ** 20], ["huge", "u", 7, "small again".length], ["old", "c", 2, 2 * 2 ** 20]],
  );
  await daemon.stop();
});
