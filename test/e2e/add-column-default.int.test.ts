/**
 * End to end: a column added with a literal default (found on a live deployment). PostgreSQL fills
 * the rows already there with the default; every sink must show them with it too, not NULL:
 * PostgreSQL → Kafka (3 partitions, transactions) → ClickHouse, Elasticsearch and DuckDB.
 *
 *   1. `orders` with 500 rows (SLUICE_E2E_ROWS=2000 for the former size) reaches every sink;
 *   2. ALTER TABLE orders ADD COLUMN note text DEFAULT 'hi' (and a NOT NULL DEFAULT column), then
 *      one insert with note = 'added' and one update setting note to NULL: every sink equals
 *      PostgreSQL, value by value (every row but two 'hi', Elasticsearch's documents paged through);
 *   3. `sluice replay --from-beginning --rebuild --execute` for every sink, the three side by side
 *      (daemon stopped), restart:
 *      the records written before the column existed are applied again to a new generation, and
 *      every sink still equals PostgreSQL.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
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
  expectedEsIds,
  expectedFor,
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
  waitCaughtUp,
  waitEqual,
} from "./helpers.ts";

const schema = randomName("e2e_default");
const source = randomName("src");
const deployment = randomName("dep");
const chDatabase = randomName("e2e_ch");
const names = { slot: `sluice_${source}`, publication: `sluice_${source}`, schema };
const dir = tempDir("add-default");
const duckPath = join(dir, "warehouse.duckdb");
const SINKS = ["warehouse", "search", "local"] as const;
const ROWS = Number(process.env["SLUICE_E2E_ROWS"] ?? 500);
const config = {
  name: deployment,
  sources: [pgSourceConfig(source, [`${schema}.*`])],
  topics: { kind: "kafka", brokers: [...kafka.brokers], partitions: 3, transactions: true, retention: { max_age: 0 } },
  sinks: [
    { kind: "clickhouse", name: "warehouse", url: clickhouse.url, user: clickhouse.username, password: clickhouse.password, database: chDatabase, batch: { max_wait: "100ms" } },
    { kind: "elasticsearch", name: "search", nodes: [elasticsearch.url], batch: { max_wait: "100ms" } },
    { kind: "duckdb", name: "local", path: duckPath, batch: { max_wait: "100ms" } },
  ],
};

let client: pg.Client;
let daemon: SluiceDaemon | null = null;
let orders: TableDef = {
  schema,
  name: "orders",
  columns: [
    { name: "id", sql: "integer", kind: "int4" },
    { name: "amount", sql: "numeric(10,2)", kind: "decimal" },
  ],
  key: ["id"],
};
const target = `${schema}_orders`;

async function expected(sink: "duckdb" | "clickhouse" | "elasticsearch"): Promise<CanonicalTable> {
  const rows = expectedFor(sink, orders, await readPostgres(client, orders));
  return sink === "elasticsearch" ? expectedEsIds(orders, rows) : rows;
}

/** ClickHouse and Elasticsearch equal PostgreSQL once caught up; then DuckDB, read with the daemon stopped. */
async function assertEverySink(label: string): Promise<void> {
  await waitCaughtUp(daemon!, client);
  await waitEqual(`ClickHouse ${target} (${label})`, () => expected("clickhouse"), () => readClickHouse(chDatabase, target, orders), { daemon: daemon!, timeoutMs: 60_000 });
  await waitEqual(`Elasticsearch ${target} (${label})`, () => expected("elasticsearch"), () => readElasticsearch(target, orders), { daemon: daemon!, timeoutMs: 60_000 });
  await daemon!.stop();
  daemon = null;
  const [read] = await readDuckDb(duckPath, [{ def: orders, target }]);
  assertTablesEqual(await expected("duckdb"), read!.rows, `DuckDB ${target} (${label})`);
}

before(async () => {
  client = await pgClient();
  await client.query(`CREATE SCHEMA "${schema}"`);
  await client.query(createTableSql(orders));
  await client.query(`INSERT INTO "${schema}".orders SELECT i, i * 1.25 FROM generate_series(1, ${ROWS}) i`);
});

after(async () => {
  await killAllDaemons();
  await dropPostgres(client, names);
  await client.end();
  await deleteKafkaDeployment(deployment).catch((error: unknown) => console.error("Kafka cleanup failed", error));
  await dropClickHouseDatabase(chDatabase);
  await deleteElasticIndices(`${schema}_`);
  await deleteElasticOffsets([...SINKS], { deployment, targetPrefix: `${schema}_` });
  removeDir(dir);
});

describe("ADD COLUMN ... DEFAULT: PostgreSQL → Kafka → ClickHouse + Elasticsearch + DuckDB", { timeout: 300_000 }, () => {
  test("the rows already there get the default in every sink, as in PostgreSQL", async () => {
    daemon = await startReady(dir, config, "run1");
    await assertEverySink("before the column");

    daemon = await startReady(dir, config, "run2");
    await client.query(`ALTER TABLE "${schema}".orders ADD COLUMN note text DEFAULT 'hi', ADD COLUMN qty integer NOT NULL DEFAULT 7`);
    orders = { ...orders, columns: [...orders.columns, { name: "note", sql: "text", kind: "text" }, { name: "qty", sql: "integer", kind: "int4" }] };
    await client.query(`INSERT INTO "${schema}".orders (id, amount, note, qty) VALUES (${ROWS + 1}, 1, 'added', 1)`);
    await client.query(`UPDATE "${schema}".orders SET note = NULL WHERE id = 17`);
    const counts = await client.query<{ note: string | null; n: string }>(`SELECT note, count(*)::text AS n FROM "${schema}".orders GROUP BY note ORDER BY note`);
    assert.deepEqual(counts.rows, [{ note: "added", n: "1" }, { note: "hi", n: String(ROWS - 1) }, { note: null, n: "1" }]);
    await assertEverySink("after ADD COLUMN ... DEFAULT");
  });

  test("records written before the column, applied again by a rebuild after it was added, read the default", async () => {
    await killAllDaemons(); // left over if the test before failed
    daemon = null;
    const configFile = join(dir, "run2.yaml");
    // Each sink's rebuild is its own: they run side by side.
    await Promise.all(
      SINKS.map(async (sink) => {
        const rebuild = await runSluice(["replay", "-c", configFile, "--sink", sink, "--from-beginning", "--rebuild", "--execute"]);
        assert.equal(rebuild.code, 0, `sluice replay --rebuild --sink ${sink} failed:\n${rebuild.stdout}\n${rebuild.stderr}`);
      }),
    );
    daemon = await startReady(dir, config, "run3");
    await assertEverySink("after a rebuild from the beginning");
  });
});
