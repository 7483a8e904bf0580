/**
 * End to end: rebuilds past a record no sink can decode, and rebuilds of one table. PostgreSQL →
 * Kafka → DuckDB (`warehouse`, on_error halt), ClickHouse (`analytics`, on_error dead-letter),
 * Elasticsearch (`search`, on_error halt). Someone produces a foreign record into the customers
 * topic (`printf garbage | kcat -P -t ...customers -k '{"id":1}'`, found on a live deployment):
 * analytics dead-letters it, the others halt the table until `sluice halted skip --execute`.
 * Rebuilds of every sink then failed for ever ("message starts with byte 103, not the magic byte
 * 0", naming nothing). Now `sluice replay --rebuild --table T` rebuilds only that table (orders,
 * never reading the customers topic; the customers index is left as it is), a table the sink does
 * not write is refused, and a rebuild of the whole sink leaves the foreign record out and says
 * where it is.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import kafkajs from "kafkajs";
import type pg from "pg";
import { clickhouse, elasticsearch, kafka } from "../services/ports.ts";
import type { CanonicalTable, SluiceDaemon, TableDef } from "./helpers.ts";
import {
  assertTablesEqual,
  createTableSql,
  deleteElasticIndices,
  deleteElasticOffsets,
  deleteKafkaDeployment,
  dropClickHouseDatabase,
  dropPostgres,
  esRequest,
  expectedEsIds,
  killAllDaemons,
  pgClient,
  pgSourceConfig,
  randomName,
  readClickHouse,
  readDuckDb,
  readElasticsearch,
  readPostgres,
  removeDir,
  runSluice,
  startReady,
  tempDir,
  waitEqual,
  waitFor,
  waitSourcesPast,
} from "./helpers.ts";

const schema = randomName("e2e_foreign");
const source = randomName("src");
const deployment = randomName("dep");
const chDatabase = randomName("e2e_foreign");
const names = { slot: `sluice_${source}`, publication: `sluice_${source}`, schema };
const dir = tempDir("foreign");
const duckPath = join(dir, "warehouse.duckdb");
const SINKS = ["warehouse", "analytics", "search"] as const;
const config = {
  name: deployment,
  sources: [pgSourceConfig(source, [`${schema}.*`])],
  topics: { kind: "kafka", brokers: [...kafka.brokers], partitions: 1, transactions: true, retention: { max_age: 0 } },
  schema_registry: { kind: "builtin", compatibility: "BACKWARD" },
  sinks: [
    { kind: "duckdb", name: "warehouse", path: duckPath, on_error: "halt", batch: { max_wait: "100ms" } },
    { kind: "clickhouse", name: "analytics", url: clickhouse.url, user: clickhouse.username, password: clickhouse.password, database: chDatabase, on_error: "dead-letter", batch: { max_wait: "100ms" } },
    { kind: "elasticsearch", name: "search", nodes: [elasticsearch.url], on_error: "halt", batch: { max_wait: "100ms" } },
  ],
};
const customers: TableDef = { schema, name: "customers", key: ["id"], columns: [{ name: "id", sql: "integer", kind: "int4" }, { name: "name", sql: "text", kind: "text" }] };
const orders: TableDef = { schema, name: "orders", key: ["id"], columns: [{ name: "id", sql: "integer", kind: "int4" }, { name: "amount", sql: "integer", kind: "int4" }] };
const TABLES = [customers, orders];
const target = (def: TableDef) => `${schema}_${def.name}`;
const customersTopic = `${deployment}.${source}.${schema}.customers`;
let client: pg.Client;

before(async () => {
  client = await pgClient();
  await client.query(`CREATE SCHEMA "${schema}"`);
  for (const def of TABLES) await client.query(createTableSql(def));
});

after(async () => {
  await killAllDaemons();
  await dropPostgres(client, names);
  await client.end();
  await deleteKafkaDeployment(deployment).catch((error: unknown) => console.error("Kafka cleanup failed", error));
  await dropClickHouseDatabase(chDatabase);
  await deleteElasticIndices(`${schema}_`);
  await deleteElasticOffsets(["search"], { deployment, targetPrefix: `${schema}_` });
  removeDir(dir);
});

async function assertServers(daemon: SluiceDaemon, label: string): Promise<void> {
  for (const def of TABLES) {
    const expected = () => readPostgres(client, def);
    await waitEqual(`ClickHouse ${def.name} (${label})`, expected, () => readClickHouse(chDatabase, target(def), def), { daemon, timeoutMs: 60_000 });
    await waitEqual(`Elasticsearch ${def.name} (${label})`, async () => expectedEsIds(def, await expected()), () => readElasticsearch(target(def), def), { daemon, timeoutMs: 60_000 });
  }
}

/** The index an Elasticsearch alias points at: a rebuild swaps in a new one. */
async function indexBehind(alias: string): Promise<string> {
  return Object.keys((await esRequest("GET", `/_alias/${alias}`)).json as Record<string, unknown>).join(",");
}

async function produceForeignRecord(): Promise<bigint> {
  const producer = new kafkajs.Kafka({ clientId: "foreign-producer", brokers: [...kafka.brokers], logLevel: kafkajs.logLevel.NOTHING }).producer();
  await producer.connect();
  try {
    const [sent] = await producer.send({ topic: customersTopic, messages: [{ partition: 0, key: '{"id":1}', value: "garbage" }] });
    return BigInt(sent!.baseOffset!);
  } finally {
    await producer.disconnect();
  }
}

test("a foreign record in one topic: a rebuild of another table (--table) and of the whole sink succeed, the whole one leaving the record out and naming it", { timeout: 600_000 }, async (t) => {
  await client.query(`INSERT INTO "${schema}".customers SELECT g, 'c' || g FROM generate_series(1, 10) g`);
  await client.query(`INSERT INTO "${schema}".orders SELECT g, g * 10 FROM generate_series(1, 30) g`);
  const daemon = await startReady(dir, config, "foreign");
  await assertServers(daemon, "before the foreign record");

  const offset = await produceForeignRecord();
  const where = `${customersTopic}:0:${offset}`;
  t.diagnostic(`foreign record at ${where}`);
  await client.query(`UPDATE "${schema}".customers SET name = 'after' WHERE id = 2`);
  await client.query(`UPDATE "${schema}".orders SET amount = -1 WHERE id = 3`);
  await waitSourcesPast(daemon, client);

  // Live: the halt sinks halt customers at the record; the operator skips it to the dead-letter topic.
  await Promise.all(
    ["warehouse", "search"].map(async (sink) => {
      const halted = await waitFor(`sink ${sink} to halt customers`, async () => (await daemon.status()).sinks.find((s) => s.name === sink)?.halted.find((h) => h.topic === customersTopic), { daemon, timeoutMs: 60_000 });
      assert.match(halted.error, /magic byte/);
      const skipped = await runSluice(["halted", "-c", daemon.configFile, "skip", "--sink", sink, "--table", customersTopic, "--execute"]);
      assert.equal(skipped.code, 0, `halted skip of ${sink}: ${skipped.stderr}`);
    }),
  );
  await assertServers(daemon, "after the skip");

  const rebuild = (sink: string, ...args: string[]) => runSluice(["replay", "-c", daemon.configFile, "--sink", sink, "--from-beginning", "--rebuild", ...args]);
  // Each sink's commands are its own: the three sinks' commands run side by side, one step at a time.
  const eachSink = (step: (sink: string) => Promise<void>) => Promise.all(SINKS.map(step));
  await eachSink(async (sink) => {
    const unknown = await rebuild(sink, "--table", `${schema}.nope`, "--execute");
    assert.equal(unknown.code, 1, `${sink}: ${unknown.stdout}`);
    assert.match(unknown.stderr, new RegExp(`sink "${sink}" writes no table "${schema}.nope" \\(give schema.table or its topic; its tables: ${schema}.customers, ${schema}.orders\\)`));
    const dry = await rebuild(sink, "--table", `${schema}.orders`);
    assert.equal(dry.code, 0, `${sink}: ${dry.stderr}`);
    assert.match(dry.stdout, new RegExp(`each of the tables ${schema}.orders gets a new generation.*Its other tables are left as they are`, "s"));
  });

  // One table: only orders is rebuilt; customers' topic (with the foreign record) is not read, its index not replaced.
  const customersIndex = await indexBehind(target(customers));
  const ordersIndex = await indexBehind(target(orders));
  await eachSink(async (sink) => {
    const one = await rebuild(sink, "--table", `${schema}.orders`, "--execute");
    t.diagnostic(`${sink} --table: ${one.stdout.trim()}`);
    assert.equal(one.code, 0, `rebuild of ${sink} --table ${schema}.orders failed: ${one.stderr}`);
    assert.match(one.stdout, new RegExp(`rebuilt 1 table \\(${schema}.orders\\) from \\d+ records, swapped in\\.`));
    assert.doesNotMatch(one.stdout, /left out/);
  });
  assert.equal(await indexBehind(target(customers)), customersIndex, "the customers index is left as it is");
  assert.notEqual(await indexBehind(target(orders)), ordersIndex, "the orders index is a new one");

  // The whole sink: the foreign record is left out and named.
  await eachSink(async (sink) => {
    const all = await rebuild(sink, "--execute");
    t.diagnostic(`${sink}: ${all.stdout.trim()}`);
    assert.equal(all.code, 0, `rebuild of ${sink} failed: ${all.stderr}`);
    assert.match(all.stdout, new RegExp(`rebuilt 2 tables \\(${schema}.customers, ${schema}.orders\\) from \\d+ records, swapped in; left out 1 record no decoder can read \\(no change in it\\): ${where.replaceAll(".", "\\.")} \\(.*magic byte`));
  });

  await client.query(`INSERT INTO "${schema}".customers VALUES (11, 'late')`);
  await client.query(`UPDATE "${schema}".orders SET amount = 7 WHERE id = 7`);
  await waitSourcesPast(daemon, client);
  await assertServers(daemon, "after the rebuilds");
  assert.deepEqual((await daemon.status()).sinks.map((s) => [s.name, s.halted.length]).sort(), SINKS.map((s) => [s, 0]).sort(), "no table halted");
  await daemon.stop();
  const duck = await readDuckDb(duckPath, TABLES.map((def) => ({ def, target: target(def) })));
  for (const [i, def] of TABLES.entries()) assertTablesEqual((await readPostgres(client, def)) as CanonicalTable, duck[i]!.rows, `DuckDB ${def.name}`);
});
