/**
 * End to end: a sink's server that refuses a row quotes its values in the error, and a personal
 * column's value is in clear in a sink. Such errors must not carry it into the places `sluice
 * forget` cannot reach: the log, /status, the metrics, `sluice halted` and the sink's dead-letter
 * topic (its `sluice.error` header, listed by `sluice dead-letters`). PostgreSQL, embedded log,
 * and three sinks each made to refuse rows by hand the way an operator's change would: DuckDB (a
 * unique index on the personal column: "Duplicate key "email: …""), ClickHouse (a materialized
 * column that parses it: "Cannot parse string '…' as Int64") and Elasticsearch (a numeric
 * sub-field of it: "Preview of field's value: '…'"), the first two dead-lettering and the third
 * halting. The errors still say what failed, with the value replaced by "[personal value]".
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type pg from "pg";
import { clickhouse, elasticsearch } from "../services/ports.ts";
import { clickhouseQuery, deleteElasticIndices, dropClickHouseDatabase, dropPostgres, esRequest, killAllDaemons, pgClient, pgSourceConfig, randomName, removeDir, runSluice, startReady, tempDir, waitFor } from "./helpers.ts";

const schema = randomName("pverr");
const source = randomName("src");
const deployment = randomName("dep");
const chDatabase = randomName("pverr_ch");
const names = { slot: `sluice_${source}`, publication: `sluice_${source}`, schema };
const dir = tempDir("personal-errors");
const masterKeyFile = join(dir, "master.key");
const index = `${schema}_customers`;
const SHARED = "ann.secret@example.com";
const EVIL = "cid.secret@EVIL.org";
let client: pg.Client;

const config = {
  name: deployment,
  personal_data: { master_key_file: masterKeyFile },
  sources: [pgSourceConfig(source, [`${schema}.*`], { governance: { tables: { [`${schema}.customers`]: { personal: { subject: "customer_id", columns: ["email"] } } } } })],
  topics: { kind: "embedded", path: join(dir, "log.db") },
  sinks: [
    { kind: "duckdb", name: "local", path: join(dir, "warehouse.duckdb"), on_error: "dead-letter", batch: { max_wait: "50ms" } },
    { kind: "clickhouse", name: "warehouse", url: clickhouse.url, user: clickhouse.username, password: clickhouse.password, database: chDatabase, on_error: "dead-letter", batch: { max_wait: "50ms" } },
    { kind: "elasticsearch", name: "search", nodes: [elasticsearch.url], on_error: "halt", batch: { max_wait: "50ms" } },
  ],
};

before(async () => {
  writeFileSync(masterKeyFile, randomBytes(32).toString("hex"));
  client = await pgClient();
  await client.query(`CREATE SCHEMA "${schema}"`);
  await client.query(`CREATE TABLE "${schema}".customers (id int PRIMARY KEY, customer_id int NOT NULL, email text)`);
  await client.query(`INSERT INTO "${schema}".customers VALUES (1, 101, $1)`, [SHARED]);
});

after(async () => {
  await killAllDaemons();
  await dropPostgres(client, names).catch(() => undefined);
  await client.end();
  await dropClickHouseDatabase(chDatabase).catch(() => undefined);
  await deleteElasticIndices(`${schema}_`).catch(() => undefined);
  removeDir(dir);
});

/** Makes each sink's target refuse the rows the test inserts next, as an operator's change to it would. */
async function makeTargetsRefuse(): Promise<void> {
  const { DuckDBInstance } = await import("@duckdb/node-api");
  const duck = await DuckDBInstance.create(join(dir, "warehouse.duckdb"));
  const connection = await duck.connect();
  const tables = (await (await connection.runAndReadAll(`SELECT schema_name, table_name FROM duckdb_tables() WHERE table_name LIKE '${index}%'`)).getRowObjects());
  assert.ok(tables.length > 0, "the DuckDB table was made");
  for (const t of tables) await connection.run(`CREATE UNIQUE INDEX unique_email ON "${String(t["schema_name"])}"."${String(t["table_name"])}" (email)`);
  connection.closeSync();
  duck.closeSync();
  const mapping = await esRequest("PUT", `/${index}/_mapping`, { properties: { email: { type: "text", fields: { n: { type: "long" } } } } });
  assert.equal(mapping.status, 200, mapping.text);
  const physical = (await clickhouseQuery(`SHOW TABLES FROM ${chDatabase}`)).toString().split("\n").filter((t) => t.startsWith(`${index}__v`));
  assert.ok(physical.length > 0, "the ClickHouse table was made");
  for (const t of physical) await clickhouseQuery(`ALTER TABLE ${chDatabase}.\`${t}\` ADD COLUMN parsed Int64 MATERIALIZED toInt64(if(ifNull(email, '') LIKE '%EVIL%', email, '0'))`);
}

test("a sink's refusal quoting a personal value reaches no log, status, metric, halted message or dead letter in clear", async () => {
  const first = await startReady(dir, config, "first");
  await waitFor("row 1 in Elasticsearch and ClickHouse", async () => {
    const es = await esRequest("GET", `/${index}/_count`);
    if (es.status !== 200 || (es.json as { count: number }).count !== 1) return undefined;
    return (await clickhouseQuery(`SELECT count() FROM ${chDatabase}.\`${index}\``).catch(() => Buffer.from("0"))).toString().trim() === "1" || undefined;
  }, { daemon: first, timeoutMs: 60_000 });
  // Not stopped gracefully: the DuckDB file is read from its write-ahead log like any file after a crash.
  await first.kill();
  await makeTargetsRefuse();

  const daemon = await startReady(dir, config, "second");
  await client.query(`INSERT INTO "${schema}".customers VALUES (2, 102, $1), (3, 103, $2)`, [SHARED, EVIL]);
  const deadLetters = async (sink: string) => runSluice(["dead-letters", "-c", daemon.configFile, "--sink", sink, "--values"]);
  await waitFor("DuckDB and ClickHouse to dead-letter a row each, Elasticsearch to halt the table", async () => {
    const deadLettered = async (sink: string) => daemon.metric("sluice_sink_dead_lettered_total", { sink });
    const halted = (await daemon.status()).sinks.find((s) => s.name === "search")?.halted ?? [];
    return ((await deadLettered("local")) === 1 && (await deadLettered("warehouse")) === 1 && halted.length > 0) || undefined;
  }, { daemon, timeoutMs: 60_000 });

  const outputs: Record<string, string> = {
    status: JSON.stringify(await daemon.status()),
    metrics: await daemon.metrics(),
    "dead-letters local": (await deadLetters("local")).stdout,
    "dead-letters warehouse": (await deadLetters("warehouse")).stdout,
    "halted list": (await runSluice(["halted", "list", "-c", daemon.configFile])).stdout,
  };
  await daemon.stop();
  outputs["log"] = readFileSync(first.logFile, "utf8") + readFileSync(daemon.logFile, "utf8");
  for (const [where, text] of Object.entries(outputs)) {
    for (const value of [SHARED, EVIL]) assert.ok(!text.includes(value), `${where} holds the personal value ${value}:\n${text.split("\n").filter((l) => l.includes(value)).join("\n").slice(0, 2000)}`);
  }
  // Still useful: what failed, where, with the value's place marked.
  assert.match(outputs["dead-letters local"]!, /Duplicate key "email: \[personal value\]" violates unique constraint/);
  assert.match(outputs["dead-letters warehouse"]!, /Cannot parse string '\[personal value\]' as Int64/);
  assert.match(outputs["halted list"]!, /failed to parse field \[email\.n\] of type \[long\][^\n]*Preview of field's value: '\[personal value\]'/);
});
