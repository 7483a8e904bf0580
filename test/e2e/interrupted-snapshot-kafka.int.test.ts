/**
 * End to end (issue 12, item 6), over Kafka: PostgreSQL → Kafka (3 partitions, transactions) →
 * ClickHouse and Elasticsearch. The daemon is killed (-9) while the snapshot reads the second of
 * two tables, rows are deleted, and the resumed snapshot (the first table is not read again, the
 * second goes on online after its last stored key) must leave both sinks equal to
 * PostgreSQL. Then fresh sinks (a new ClickHouse database, new Elasticsearch indexes) read every
 * topic from the beginning and must end equal too: the table resets sit in partition 0 while the
 * rows they remove are spread over all three, so this also checks that the order in which
 * partitions are read does not matter.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type pg from "pg";
import { clickhouse, elasticsearch, kafka } from "../services/ports.ts";
import {
  clickhouseFloatEquality,
  createTableSql,
  deleteElasticIndices,
  deleteElasticOffsets,
  deleteKafkaDeployment,
  dropClickHouseDatabase,
  dropPostgres,
  expectedEsIds,
  expectedFor,
  killAllDaemons,
  pgClient,
  pgSourceConfig,
  qualifiedName,
  randomName,
  readClickHouse,
  readElasticsearch,
  readPostgres,
  removeDir,
  SluiceDaemon,
  tempDir,
  waitCaughtUp,
  waitEqual,
  waitFor,
} from "./helpers.ts";
import type { TableDef } from "./helpers.ts";

const schema = randomName("e2e_resnapk");
const source = randomName("src");
const deployment = randomName("dep");
const names = { slot: `sluice_${source}`, publication: `sluice_${source}`, schema };
const chDatabase = randomName("e2e_ch");
const freshDatabase = randomName("e2e_chf");
const table = (name: string): TableDef => ({
  schema,
  name,
  columns: [
    { name: "id", sql: "bigint", kind: "int8" },
    { name: "note", sql: "text", kind: "text" },
    { name: "n", sql: "integer", kind: "int4" },
  ],
  key: ["id"],
});
const first = table("first_read");
const second = table("second_read");
const tables = [first, second];
// Read in this order with parallelism 1: the larger estimate first.
const ROWS = { first_read: 9_000, second_read: 6_000 } as const;
const dir = tempDir("resnapk");
const sinkNames = { warehouse: randomName("warehouse"), search: randomName("search"), freshWarehouse: randomName("fresh_wh"), freshSearch: randomName("fresh_search") };
const batch = { max_rows: 500, max_wait: "50ms" };
const clickhouseSink = (name: string, database: string) => ({ kind: "clickhouse", name, url: clickhouse.url, user: clickhouse.username, password: clickhouse.password, database, batch });
const elasticSink = (name: string, target: string) => ({ kind: "elasticsearch", name, nodes: [elasticsearch.url], target, batch });
const config = {
  name: deployment,
  sources: [pgSourceConfig(source, [`${schema}.*`], { snapshot: { mode: "initial", parallelism: 1, chunk_rows: 20 }, max_buffer_bytes: 64 * 1024 })],
  topics: { kind: "kafka", brokers: [...kafka.brokers], partitions: 3, transactions: true, retention: { max_age: 0 } },
  sinks: [clickhouseSink(sinkNames.warehouse, chDatabase), elasticSink(sinkNames.search, "{schema}_{table}")],
};
// The killed daemon's sink consumers stay in their groups for their Kafka session: the broker's least (6 s), not 30 s.
const SESSION_ENV = { SLUICE_KAFKA_SESSION_MS: "6000" };
let client: pg.Client;

before(async () => {
  client = await pgClient();
  await client.query(`CREATE SCHEMA "${schema}"`);
  for (const def of tables) {
    await client.query(createTableSql(def));
    await client.query(`INSERT INTO ${qualifiedName(def)} SELECT g, 'row ' || g || repeat('.', 40), g % 97 FROM generate_series(1, ${ROWS[def.name as keyof typeof ROWS]}) g`);
    await client.query(`ANALYZE ${qualifiedName(def)}`);
  }
});

after(async () => {
  await killAllDaemons();
  await dropPostgres(client, names);
  await client.end();
  await deleteKafkaDeployment(deployment).catch((error: unknown) => console.error("Kafka cleanup failed", error));
  await dropClickHouseDatabase(chDatabase);
  await dropClickHouseDatabase(freshDatabase);
  await deleteElasticIndices(`${schema}_`);
  await deleteElasticIndices(`fresh_${schema}_`);
  await deleteElasticOffsets(Object.values(sinkNames));
  removeDir(dir);
});

async function assertSinksEqual(daemon: SluiceDaemon, database: string, prefix: string, label: string): Promise<void> {
  for (const def of tables) {
    const rows = await readPostgres(client, def);
    await waitEqual(`ClickHouse ${database}.${schema}_${def.name} (${label})`, expectedFor("clickhouse", def, rows), () => readClickHouse(database, `${schema}_${def.name}`, def), {
      daemon,
      timeoutMs: 30_000,
      same: clickhouseFloatEquality(def),
    });
    await waitEqual(`Elasticsearch ${prefix}${schema}_${def.name} (${label})`, expectedEsIds(def, expectedFor("elasticsearch", def, rows)), () => readElasticsearch(`${prefix}${schema}_${def.name}`, def), { daemon, timeoutMs: 30_000 });
  }
}

test("Kafka → ClickHouse + Elasticsearch: a snapshot resumed after kill -9 leaves no deleted rows, also for sinks replaying from the beginning", { timeout: 300_000 }, async (t) => {
  let daemon = await SluiceDaemon.start(dir, config, "run1", { env: SESSION_ENV });
  const seen = await waitFor(
    `snapshot rows of ${second.name} in Kafka`,
    async () => {
      const published = await daemon.metric("sluice_changes_captured_total", { table: `${schema}.${second.name}`, op: "r" });
      return published >= 200 && published;
    },
    { daemon, timeoutMs: 120_000, intervalMs: 20 },
  );
  await daemon.kill();
  t.diagnostic(`killed with ${seen} of ${ROWS.second_read} rows of ${second.name} published`);
  assert.ok(seen < ROWS.second_read, "the kill landed inside the snapshot of the second table");

  await client.query(`DELETE FROM ${qualifiedName(first)} WHERE id % 7 = 0`);
  await client.query(`DELETE FROM ${qualifiedName(second)} WHERE id % 5 = 0 OR id <= 50`);

  daemon = await SluiceDaemon.start(dir, config, "run2", { env: SESSION_ENV });
  // The restart resumes the snapshot on the same slot: the second table goes on online after its last stored key.
  const running = daemon;
  await waitFor(
    `the resumed snapshot of ${second.name} to finish`,
    async () => {
      const status = (await (await running.get("/status")).json()) as { sources: { ready: boolean; snapshots?: { table: string; state: string }[] }[] };
      return status.sources.length > 0 && status.sources.every((s) => s.ready && !(s.snapshots ?? []).some((p) => p.table === `${schema}.${second.name}` && p.state !== "done"));
    },
    { daemon, timeoutMs: 150_000, intervalMs: 200 },
  );
  assert.equal(await daemon.metric("sluice_changes_captured_total", { table: `${schema}.${first.name}`, op: "r" }), 0, "the table the snapshot finished is not read again");
  await client.query(`DELETE FROM ${qualifiedName(second)} WHERE id % 13 = 0`);
  await waitCaughtUp(daemon, client, { timeoutMs: 180_000 });
  await assertSinksEqual(daemon, chDatabase, "", "after the restarted snapshot");
  await daemon.stop();

  daemon = await SluiceDaemon.start(dir, { ...config, sinks: [clickhouseSink(sinkNames.freshWarehouse, freshDatabase), elasticSink(sinkNames.freshSearch, "fresh_{schema}_{table}")] }, "fresh", { env: SESSION_ENV });
  await waitCaughtUp(daemon, client, { timeoutMs: 180_000 });
  await assertSinksEqual(daemon, freshDatabase, "fresh_", "fresh sinks reading from the beginning");
  await daemon.stop();
});
