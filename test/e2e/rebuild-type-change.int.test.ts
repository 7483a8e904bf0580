/**
 * End to end: the operator's path after a type change no sink can follow. PostgreSQL → Kafka →
 * ClickHouse, Elasticsearch and DuckDB; `ALTER COLUMN amount TYPE text` on a numeric(12,2) column
 * (Avro bytes → string: BACKWARD-readable, so the registry accepts it and capture publishes on).
 * Every sink halts the table (SINK_SCHEMA_UNSUPPORTED: decimal(12,2) cannot become text in place).
 * Then, per sink, `sluice replay --from-beginning --rebuild --execute` makes a new generation in
 * the table's newest shape (amount as text, the older numbers as their text, "1.23"),
 * `sluice halted retry --execute` releases the table, and every sink ends with the source's rows,
 * including changes made after the release.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type pg from "pg";
import { clickhouse, elasticsearch, kafka } from "../services/ports.ts";
import type { CanonicalTable, SluiceDaemon, TableDef } from "./helpers.ts";
import {
  assertTablesEqual,
  clickhouseQuery,
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
  waitCaughtUp,
  waitFor,
  waitSourcesPast,
} from "./helpers.ts";

const schema = randomName("e2e_retype");
const source = randomName("src");
const deployment = randomName("dep");
const chDatabase = randomName("e2e_retype");
const names = { slot: `sluice_${source}`, publication: `sluice_${source}`, schema };
const dir = tempDir("retype");
const duckPath = join(dir, "warehouse.duckdb");
const SINKS = ["warehouse", "search", "local"] as const;
const config = {
  name: deployment,
  sources: [pgSourceConfig(source, [`${schema}.*`])],
  topics: { kind: "kafka", brokers: [...kafka.brokers], partitions: 2, transactions: true, retention: { max_age: 0 } },
  schema_registry: { kind: "builtin", compatibility: "BACKWARD" },
  sinks: [
    { kind: "clickhouse", name: "warehouse", url: clickhouse.url, user: clickhouse.username, password: clickhouse.password, database: chDatabase, batch: { max_wait: "100ms" } },
    { kind: "elasticsearch", name: "search", nodes: [elasticsearch.url], batch: { max_wait: "100ms" } },
    { kind: "duckdb", name: "local", path: duckPath, batch: { max_wait: "100ms" } },
  ],
};
const columns = (amount: "decimal" | "text") => [
  { name: "id", sql: "integer", kind: "int4" as const },
  { name: "amount", sql: amount === "decimal" ? "numeric(12,2)" : "text", kind: amount },
  { name: "note", sql: "text", kind: "text" as const },
];
const numeric: TableDef = { schema, name: "orders", key: ["id"], columns: columns("decimal") };
const text: TableDef = { ...numeric, columns: columns("text") };
const target = `${schema}_orders`;
const table = `${schema}.orders`;
let client: pg.Client;

before(async () => {
  client = await pgClient();
  await client.query(`CREATE SCHEMA "${schema}"`);
  await client.query(createTableSql(numeric));
});

after(async () => {
  await killAllDaemons();
  await dropPostgres(client, names);
  await client.end();
  await deleteKafkaDeployment(deployment).catch((error: unknown) => console.error("Kafka cleanup failed", error));
  await dropClickHouseDatabase(chDatabase);
  await deleteElasticIndices(`${schema}_`);
  await deleteElasticOffsets(["search"]);
  removeDir(dir);
});

async function assertServers(daemon: SluiceDaemon, def: TableDef, label: string): Promise<void> {
  const expected = () => readPostgres(client, def);
  await waitEqual(`ClickHouse (${label})`, expected, () => readClickHouse(chDatabase, target, def), { daemon, timeoutMs: 60_000 });
  await waitEqual(`Elasticsearch (${label})`, async () => expectedEsIds(def, await expected()), () => readElasticsearch(target, def), { daemon, timeoutMs: 60_000 });
}

test("numeric → text: every sink halts the table; replay --rebuild makes it in the new shape with the whole history, halted retry releases it", { timeout: 600_000 }, async (t) => {
  await client.query(`INSERT INTO "${schema}".orders SELECT g, g + 0.23, 'n' || g FROM generate_series(1, 20) g`);
  await client.query(`UPDATE "${schema}".orders SET amount = NULL WHERE id = 4`);
  await client.query(`UPDATE "${schema}".orders SET amount = -0.5 WHERE id = 5`);
  await client.query(`DELETE FROM "${schema}".orders WHERE id = 6`);
  const daemon = await startReady(dir, config, "retype");
  await assertServers(daemon, numeric, "before the change");

  await client.query(`ALTER TABLE "${schema}".orders ALTER COLUMN amount TYPE text`);
  await client.query(`INSERT INTO "${schema}".orders VALUES (100, 'n/a', 'after'), (101, '12.5 EUR', 'after')`);
  await client.query(`UPDATE "${schema}".orders SET amount = 'refunded', note = 'changed' WHERE id = 1`);
  await client.query(`DELETE FROM "${schema}".orders WHERE id = 2`);
  await waitSourcesPast(daemon, client);

  // Every sink halts the table: decimal(12,2) cannot become text in the live target.
  for (const sink of SINKS) {
    const halted = await waitFor(`sink ${sink} to halt ${table}`, async () => (await daemon.status()).sinks.find((s) => s.name === sink)?.halted.find((h) => h.table === table), { daemon, timeoutMs: 60_000 });
    t.diagnostic(`${sink} halted: ${halted.error}`);
    assert.match(halted.error, /column "amount": cannot change type from decimal\(12,2\) to string \(text\)/);
  }

  // The operator's path, sink by sink: rebuild, then release.
  for (const sink of SINKS) {
    const rebuilt = await runSluice(["replay", "-c", daemon.configFile, "--sink", sink, "--from-beginning", "--rebuild", "--execute"]);
    assert.equal(rebuilt.code, 0, `rebuild of ${sink} failed: ${rebuilt.stderr}\n${rebuilt.stdout}`);
    const released = await runSluice(["halted", "-c", daemon.configFile, "retry", "--sink", sink, "--table", table, "--execute"]);
    assert.equal(released.code, 0, `halted retry of ${sink} failed: ${released.stderr}\n${released.stdout}`);
  }
  await client.query(`INSERT INTO "${schema}".orders VALUES (102, 'late', 'after the release')`);
  await client.query(`UPDATE "${schema}".orders SET amount = '7.77' WHERE id = 7`);
  await waitSourcesPast(daemon, client);
  await assertServers(daemon, text, "after the rebuild and the release");
  const status = await daemon.status();
  assert.deepEqual(status.sinks.map((s) => [s.name, s.halted.length]).sort(), SINKS.map((s) => [s, 0]).sort(), "no table halted any more");

  // Older numbers became their text, as PostgreSQL's cast wrote them; the columns are text.
  const pgRows = await readPostgres(client, text);
  assert.deepEqual(["3", "4", "5", "7"].map((id) => pgRows.get(JSON.stringify([id]))?.["amount"]), ["3.23", null, "-0.50", "7.77"]);
  const chType = (await clickhouseQuery(`SELECT type FROM system.columns WHERE database = '${chDatabase}' AND table = '${target}' AND name = 'amount' FORMAT TabSeparated`)).toString().trim();
  assert.match(chType, /^(Nullable\()?String\)?$/);
  const mapping = (await esRequest("GET", `/${target}/_mapping`)).json as Record<string, { mappings: { properties: Record<string, { type: string }> } }>;
  assert.deepEqual(Object.values(mapping).map((index) => index.mappings.properties["amount"]?.type), ["text"]);

  // DuckDB is read once the daemon is stopped (its file is the daemon's): every sink has applied everything captured first.
  await waitCaughtUp(daemon, client);
  await daemon.stop();
  const [duck] = await readDuckDb(duckPath, [{ def: text, target }]);
  assertTablesEqual(await readPostgres(client, text) as CanonicalTable, duck!.rows, "DuckDB (after the rebuild and the release)");
  assert.equal(duck!.types["amount"], "VARCHAR");
});
