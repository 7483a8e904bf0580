/**
 * The type matrix (issue 15, item 5): every case of cases.ts, from PostgreSQL and MariaDB, through
 * the daemon and its embedded topic log into DuckDB, ClickHouse and Elasticsearch (on_error:
 * dead-letter), once from the snapshot and once from the stream; each stored value is compared with
 * the matrix (which docs/sinks.md is generated from). Tables without a primary key, one per source,
 * are refused by every sink with a message saying why, and the other tables flow on.
 *
 * SLUICE_TYPE_MATRIX_PRINT=1 prints what each sink stored, in the matrix's form.
 */
import assert from "node:assert/strict";
import { randomInt } from "node:crypto";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { DuckDBInstance } from "@duckdb/node-api";
import mysql from "mysql2/promise";
import type { Connection } from "mysql2/promise";
import type pg from "pg";
import { parseTsv, unescapeField } from "../../connectors/clickhouse/tsv.ts";
import { encodeJson } from "../../connectors/elasticsearch/json.ts";
import { clickhouse, elasticsearch, mariadb } from "../services/ports.ts";
import {
  clickhouseQuery,
  deleteElasticIndices,
  deleteElasticOffsets,
  dropClickHouseDatabase,
  dropPostgres,
  esRequest,
  killAllDaemons,
  pgClient,
  pgSourceConfig,
  randomName,
  readEmbeddedTopics,
  removeDir,
  SluiceDaemon,
  tempDir,
  waitFor,
} from "../e2e/helpers.ts";
import { CASES, REJECTED, SAME, SINKS } from "./cases.ts";
import type { MatrixCase, Sink } from "./cases.ts";

const schema = randomName("matrix");
const database = randomName("matrix");
const pgSource = randomName("pg");
const myName = randomName("my");
const deployment = randomName("dep");
const chDatabase = randomName("matrix");
const dir = tempDir("matrix");
const duckPath = join(dir, "warehouse.duckdb");
const STREAM_OFFSET = 1000;
const SENTINEL = 999_999;
const SENTINEL_TIMESTAMP = "294247-01-10 04:00:54.775807";
// The Elasticsearch sink's offsets live in the shared sluice-offsets index under its name, which other tests' cleanups
// delete by name ("search"): a name of its own keeps a run beside them from reading everything again (dead letters twice).
const sinkNames: Record<Sink, string> = { duckdb: "duck", clickhouse: "house", elasticsearch: randomName("search") };

interface Numbered extends MatrixCase {
  readonly id: number;
  readonly column: string;
}
const inSchema = (text: string) => text.replaceAll("{schema}", `"${schema}"`);
const numbered: Numbered[] = CASES.map((c, id) => ({ ...c, type: inSchema(c.type), literal: inSchema(c.literal), id, column: `c${id}` }));
const pgCases = numbered.filter((c) => c.source === "postgres");
const myCases = numbered.filter((c) => c.source === "mariadb");
/** Columns whose values are bytes: compared as upper-case hex everywhere. */
const isBytes = (c: MatrixCase) =>
  c.source === "postgres"
    ? c.type === "bytea"
    : /^(binary|varbinary|tinyblob|blob|mediumblob|longblob|point|geometry|linestring|polygon|multi\w+|geometrycollection)\b/.test(c.type) || /^bit\((?:[2-9]|\d\d)\)/.test(c.type);

const config = {
  name: deployment,
  sources: [
    pgSourceConfig(pgSource, [`${schema}.*`]),
    {
      kind: "mysql",
      name: myName,
      host: mariadb.host,
      port: mariadb.port,
      user: mariadb.user,
      password: mariadb.password,
      server_id: randomInt(10_000, 2 ** 31),
      tables: [`${database}.*`],
      heartbeat_interval: "1s",
    },
  ],
  topics: { kind: "embedded", path: join(dir, "log.db") },
  sinks: [
    // The matrix tables are 120 and 70 columns wide: DuckDB keeps a block (256 KiB) per column of a table's rows not yet
    // checkpointed, more than the default memory_limit (96 MiB) has room for beside 640 kB values (a commit then failed to pin a block).
    { kind: "duckdb", name: sinkNames.duckdb, path: duckPath, on_error: "dead-letter", memory_limit: "256MiB", batch: { max_wait: "100ms" } },
    { kind: "clickhouse", name: sinkNames.clickhouse, url: clickhouse.url, user: clickhouse.username, password: clickhouse.password, database: chDatabase, on_error: "dead-letter", batch: { max_wait: "100ms" } },
    { kind: "elasticsearch", name: sinkNames.elasticsearch, nodes: [elasticsearch.url], on_error: "dead-letter", batch: { max_wait: "100ms" } },
  ],
};

let client: pg.Client;
let my: Connection;

async function insertAll(offset: number): Promise<void> {
  for (const c of pgCases) await client.query(`INSERT INTO "${schema}".matrix (id, ${c.column}) VALUES (${offset + c.id}, ${c.literal})`);
  for (const c of myCases) await my.query(`INSERT INTO \`${database}\`.matrix (id, ${c.column}) VALUES (${offset + c.id}, ${c.literal})`);
}

before(async () => {
  client = await pgClient();
  await client.query("CREATE EXTENSION IF NOT EXISTS hstore");
  await client.query("CREATE EXTENSION IF NOT EXISTS citext");
  await client.query(`CREATE SCHEMA "${schema}"`);
  await client.query(`CREATE TYPE "${schema}".mood AS ENUM ('sad', 'ok', 'very happy')`);
  await client.query(`CREATE DOMAIN "${schema}".price AS numeric(5,2)`);
  await client.query(`CREATE TYPE "${schema}".pair AS (a int, b text)`);
  await client.query(`CREATE TABLE "${schema}".matrix (id int PRIMARY KEY, ${pgCases.map((c) => `${c.column} ${c.type}`).join(", ")})`);
  await client.query(`CREATE TABLE "${schema}".nokey (a int, b text)`);
  await client.query(`INSERT INTO "${schema}".nokey VALUES (1, 'same'), (1, 'same')`);
  // The one finite timestamp on the count PostgreSQL's infinity is carried as (2^63 - 1 µs after 1970): its table halts at capture.
  await client.query(`CREATE TABLE "${schema}".sentinel (id int PRIMARY KEY, t timestamp)`);
  await client.query(`INSERT INTO "${schema}".sentinel VALUES (1, '${SENTINEL_TIMESTAMP}')`);
  await client.query(`CREATE TABLE "${schema}".sentinel_tz (id int PRIMARY KEY, t timestamptz)`);
  my = await mysql.createConnection({ host: mariadb.host, port: mariadb.port, user: mariadb.user, password: mariadb.password, charset: "utf8mb4" });
  await my.query("SET SESSION sql_mode = CONCAT(@@SESSION.sql_mode, ',ALLOW_INVALID_DATES')");
  await my.query(`CREATE DATABASE \`${database}\` CHARACTER SET utf8mb4`);
  await my.query(`CREATE TABLE \`${database}\`.matrix (id INT PRIMARY KEY, ${myCases.map((c) => `${c.column} ${c.type}`).join(", ")})`);
  await my.query(`CREATE TABLE \`${database}\`.nokey (a INT, b TEXT)`);
  await my.query(`INSERT INTO \`${database}\`.nokey VALUES (1, 'same'), (1, 'same')`);
  await insertAll(0);
});

after(async () => {
  await killAllDaemons();
  await dropPostgres(client, { slot: `sluice_${pgSource}`, publication: `sluice_${pgSource}`, schema }).catch(() => undefined);
  await client.end();
  await my?.query(`DROP DATABASE IF EXISTS \`${database}\``);
  await my?.end();
  await dropClickHouseDatabase(chDatabase);
  await deleteElasticIndices(schema);
  await deleteElasticIndices(database);
  await deleteElasticOffsets([sinkNames.elasticsearch]);
  removeDir(dir);
});

// ---- what each side holds, as text

type Stored = Map<number, Record<string, string | null>>;

async function sourceTexts(): Promise<Map<number, string | null>> {
  const texts = new Map<number, string | null>();
  const pgRow = (await client.query<Record<string, string | null>>(`SELECT ${pgCases.map((c) => `${isBytes(c) ? `upper(encode(${c.column}, 'hex'))` : `${c.column}::text`} AS ${c.column}`).join(", ")} FROM "${schema}".matrix WHERE id BETWEEN 0 AND ${STREAM_OFFSET - 1}`)).rows;
  for (const row of pgRow) for (const c of pgCases) if (row[c.column] !== null) texts.set(c.id, row[c.column]!);
  const [myRows] = await my.query(`SELECT ${myCases.map((c) => `${isBytes(c) ? `HEX(${c.column})` : `CAST(${c.column} AS CHAR)`} AS ${c.column}`).join(", ")} FROM \`${database}\`.matrix WHERE id < ${STREAM_OFFSET}`);
  for (const row of myRows as Record<string, string | null>[]) for (const c of myCases) if (row[c.column] !== null) texts.set(c.id, row[c.column]!);
  return texts;
}

const target = (c: { source: string }) => (c.source === "postgres" ? `${schema}_matrix` : `${database}_matrix`);

async function readDuckDb(): Promise<Stored> {
  const instance = await DuckDBInstance.create(duckPath, { access_mode: "READ_ONLY" });
  const connection = await instance.connect();
  const stored: Stored = new Map();
  try {
    for (const cases of [pgCases, myCases]) {
      const columns = cases.map((c) => (isBytes(c) ? `hex(${c.column}) AS ${c.column}` : `CAST(${c.column} AS VARCHAR) AS ${c.column}`));
      const rows = (await connection.runAndReadAll(`SELECT id, ${columns.join(", ")} FROM main."${target(cases[0]!)}"`)).getRowObjectsJson();
      for (const row of rows) stored.set(Number(row["id"]), row as Record<string, string | null>);
    }
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
  return stored;
}

async function readClickHouse(): Promise<Stored> {
  const stored: Stored = new Map();
  for (const cases of [pgCases, myCases]) {
    const columns = cases.map((c) => (isBytes(c) ? `hex(${c.column})` : c.column));
    const body = await clickhouseQuery(`SELECT id, ${columns.join(", ")} FROM \`${chDatabase}\`.\`${target(cases[0]!)}\` FORMAT TabSeparated`);
    for (const fields of parseTsv(body)) {
      const row: Record<string, string | null> = {};
      cases.forEach((c, i) => {
        const field = fields[i + 1]!;
        row[c.column] = field.toString("latin1") === "\\N" ? null : unescapeField(field).toString("utf8");
      });
      stored.set(Number(unescapeField(fields[0]!).toString("utf8")), row);
    }
  }
  return stored;
}

async function readElasticsearch(): Promise<Stored> {
  const stored: Stored = new Map();
  for (const cases of [pgCases, myCases]) {
    const alias = target(cases[0]!).toLowerCase();
    await esRequest("POST", `/${alias}/_refresh`);
    const answer = await esRequest("POST", `/${alias}/_search`, { size: 5000, query: { match_all: {} } });
    assert.equal(answer.status, 200, answer.text.slice(0, 500));
    for (const hit of (answer.json as { hits: { hits: { _source: Record<string, unknown> }[] } }).hits.hits) {
      const source = hit._source;
      const row: Record<string, string | null> = {};
      for (const c of cases) {
        const value = source[c.column];
        if (value === null || value === undefined) row[c.column] = null;
        else if (isBytes(c) && typeof value === "string") row[c.column] = Buffer.from(value, "base64").toString("hex").toUpperCase();
        else row[c.column] = typeof value === "string" ? value : encodeJson(value);
      }
      stored.set(Number(source["id"]), row);
    }
  }
  return stored;
}

const readers: Record<Sink, () => Promise<Stored>> = { duckdb: readDuckDb, clickhouse: readClickHouse, elasticsearch: readElasticsearch };

async function sentinelsIn(daemon: SluiceDaemon, sink: Sink): Promise<boolean> {
  if (sink === "duckdb") {
    const response = await fetch(`${daemon.url}/sinks/${sinkNames.duckdb}/query`, {
      method: "POST",
      body: `SELECT (SELECT count(*) FROM "${target(pgCases[0]!)}" WHERE id = ${SENTINEL}) + (SELECT count(*) FROM "${target(myCases[0]!)}" WHERE id = ${SENTINEL}) AS n`,
      signal: AbortSignal.timeout(10_000),
    });
    if (response.status !== 200) throw new Error(`DuckDB query answered ${response.status}: ${(await response.text()).slice(0, 300)}`);
    return Number(((await response.json()) as { rows: { n: unknown }[] }).rows[0]?.n) === 2;
  }
  if (sink === "clickhouse") {
    const counts = await Promise.all([pgCases, myCases].map(async (cases) => Number((await clickhouseQuery(`SELECT count() FROM \`${chDatabase}\`.\`${target(cases[0]!)}\` WHERE id = ${SENTINEL}`)).toString().trim())));
    return counts.every((n) => n === 1);
  }
  const counts = await Promise.all(
    [pgCases, myCases].map(async (cases) => {
      const alias = target(cases[0]!).toLowerCase();
      await esRequest("POST", `/${alias}/_refresh`);
      const answer = await esRequest("POST", `/${alias}/_count`, { query: { term: { id: SENTINEL } } });
      return answer.status === 200 ? Number((answer.json as { count: unknown }).count) : 0;
    }),
  );
  return counts.every((n) => n === 1);
}

/** Where a case says what the column is in the topic: the registered value schema of its table must carry it (Debezium's forms). */
async function topicTypeProblems(): Promise<string[]> {
  const { openTopicLog } = await import("../../connectors/topics/open.ts");
  const { openRegistry } = await import("../../daemon/components.ts");
  const { createLogger } = await import("../../runtime/logger.ts");
  const topicsConfig = { kind: "embedded" as const, path: join(dir, "log.db"), partitions: 1, retention: { cleanup_policy: "compact" as const, max_age: 0, tombstones: 86_400_000, min_compaction_lag: 0 }, max_record_bytes: 16 * 2 ** 20 };
  const log = await openTopicLog(topicsConfig, "matrix-schemas", createLogger("silent"));
  try {
    const { registry } = await openRegistry({ schema_registry: { kind: "builtin", compatibility: "BACKWARD", path: "/registry" } } as Parameters<typeof openRegistry>[0], log);
    const subjects = await registry.listSubjects();
    const problems: string[] = [];
    for (const [source, container] of [["postgres", schema], ["mariadb", database]] as const) {
      const subject = subjects.find((s) => s.endsWith(`.${container}.matrix-value`));
      const latest = subject === undefined ? null : await registry.getLatest(subject);
      if (latest === null) {
        problems.push(`${source}: no value subject for the matrix table among ${subjects.join(", ")}`);
        continue;
      }
      const envelope = JSON.parse(latest.schema) as { fields: { name: string; type: unknown }[] };
      const row = (envelope.fields.find((f) => f.name === "before")?.type as unknown[]).find((branch) => typeof branch === "object") as { fields: { name: string; type: unknown }[] };
      for (const c of numbered.filter((n) => n.source === source && n.topic !== undefined)) {
        const type = row.fields.find((f) => f.name === c.column)?.type;
        const present = Array.isArray(type) ? type.find((branch) => branch !== "null") : type;
        const shown = typeof present === "string" ? present : typeof present === "object" && present !== null ? String((present as Record<string, unknown>)["connect.name"] ?? (present as Record<string, unknown>).type) : String(present);
        if (shown !== c.topic) problems.push(`${c.source} ${c.type} ${c.label ?? c.literal} in the topic: ${shown}, the matrix says ${c.topic}`);
      }
    }
    return problems;
  } finally {
    await log.close();
  }
}

function show(value: string | null | undefined): string {
  if (value === undefined) return "(row absent)";
  if (value === null) return "NULL";
  return value.length > 120 ? `${JSON.stringify(value.slice(0, 60))}… (${value.length} chars)` : JSON.stringify(value);
}

test("every edge value of the matrix arrives in DuckDB, ClickHouse and Elasticsearch as the matrix says, from the snapshot and the stream; keyless tables are refused", { timeout: 300_000 }, async () => {
  const daemon = await SluiceDaemon.start(dir, config, "matrix");
  // Both listed: before capture has started, no source is listed (and every() of none holds), and the "stream" rows would be read by the snapshot.
  await waitFor("both sources to finish their snapshots", async () => {
    const { sources } = await daemon.status();
    return sources.length === 2 && sources.every((s) => s.ready);
  }, { daemon, timeoutMs: 120_000 });
  await insertAll(STREAM_OFFSET);
  await client.query(`INSERT INTO "${schema}".sentinel_tz VALUES (1, '${SENTINEL_TIMESTAMP}+00')`);
  // Unchanged TOAST: an update of another column does not send the large value; every sink keeps what it stored.
  for (const c of pgCases.filter((t) => t.toast === true)) {
    await client.query(`UPDATE "${schema}".matrix SET ${pgCases[0]!.column} = 1 WHERE id IN (${c.id}, ${STREAM_OFFSET + c.id})`);
  }
  await client.query(`INSERT INTO "${schema}".matrix (id) VALUES (${SENTINEL})`);
  await my.query(`INSERT INTO \`${database}\`.matrix (id) VALUES (${SENTINEL})`);
  for (const sink of SINKS) await waitFor(`the last row in ${sink}`, async () => sentinelsIn(daemon, sink), { daemon, timeoutMs: 180_000, intervalMs: 500 });

  // Keyless tables: refused by every sink with the reason, both sources; the matrix tables flowed meanwhile.
  const keyless = [`${schema}.nokey`, `${database}.nokey`];
  const status = await waitFor(
    "every sink to refuse both keyless tables",
    async () => {
      const current = await daemon.status();
      return SINKS.every((sink) => keyless.every((table) => current.sinks.find((s) => s.name === sinkNames[sink])?.halted.some((h) => h.table.endsWith(table)))) && current;
    },
    { daemon, timeoutMs: 60_000 },
  );
  for (const sink of SINKS) {
    const halted = status.sinks.find((s) => s.name === sinkNames[sink])?.halted ?? [];
    for (const table of keyless) {
      const entry = halted.find((h) => h.table.endsWith(table));
      assert.ok(entry, `${sink}: ${table} is not refused (halted: ${JSON.stringify(halted)})`);
      assert.match(entry.error, /no primary key.*identical rows.*add a primary key/, `${sink}: ${table}`);
    }
  }
  // The timestamps on infinity's count halt their tables at capture (snapshot and stream), never arrive as infinity.
  const capture = await waitFor(
    "both sentinel tables to halt at capture",
    async () => {
      const halted = (await daemon.status()).sources.find((s) => s.name === pgSource)?.halted ?? [];
      return ["sentinel", "sentinel_tz"].every((table) => halted.some((h) => h.table.endsWith(`${schema}.${table}`))) && halted;
    },
    { daemon, timeoutMs: 60_000 },
  );
  for (const table of ["sentinel", "sentinel_tz"]) {
    const entry = capture.find((h) => h.table.endsWith(`${schema}.${table}`)) as { code: string; error: string; column?: string } | undefined;
    assert.equal(entry?.code, "AVRO_VALUE_INVALID", table);
    assert.equal(entry?.column, "t", table);
    assert.match(entry?.error ?? "", /294247-01-10 04:00:54\.775807.*2\^63-1 microseconds after 1970.*infinity/, table);
  }
  await daemon.stop();

  const texts = await sourceTexts();
  const stored = Object.fromEntries(await Promise.all(SINKS.map(async (sink) => [sink, await readers[sink]()] as const))) as Record<Sink, Stored>;
  const problems: string[] = [];
  const observed: string[] = [];
  for (const c of numbered) {
    const seen: Partial<Record<Sink, string>> = {};
    for (const sink of SINKS) {
      const expected = c.expect[sink] === SAME ? texts.get(c.id) : c.expect[sink];
      const results = [c.id, STREAM_OFFSET + c.id].map((id) => {
        const row = stored[sink].get(id);
        return row === undefined ? REJECTED : (row[c.column] ?? "NULL");
      });
      const [fromSnapshot, fromStream] = results as [string, string];
      seen[sink] = fromSnapshot === texts.get(c.id) && c.expect[sink] === SAME ? SAME : fromSnapshot;
      if (fromSnapshot !== fromStream) problems.push(`${c.source} ${c.type} ${c.label ?? c.literal} in ${sink}: snapshot stored ${show(fromSnapshot)}, stream ${show(fromStream)}`);
      if (fromSnapshot !== expected) problems.push(`${c.source} ${c.type} ${c.label ?? c.literal} in ${sink}: stored ${show(fromSnapshot)}, the matrix says ${show(expected)}`);
    }
    observed.push(`  ${c.source} ${c.type} ${c.literal.slice(0, 60)} → ${JSON.stringify(Object.fromEntries(Object.entries(seen).map(([k, v]) => [k, show(v)])))}`);
  }
  if (process.env["SLUICE_TYPE_MATRIX_PRINT"]) console.log(observed.join("\n"));

  problems.push(...(await topicTypeProblems()));

  // Every rejected row went to its sink's dead-letter topic (snapshot and stream), nothing else did.
  const dlq = await readEmbeddedTopics(join(dir, "log.db"), SINKS.map((sink) => `${deployment}.dlq.${sinkNames[sink]}`));
  for (const sink of SINKS) {
    const rejected = numbered.filter((c) => c.expect[sink] === REJECTED).length * 2;
    const parked = dlq.filter((r) => r.topic === `${deployment}.dlq.${sinkNames[sink]}` && r.value !== null).length;
    if (parked !== rejected) problems.push(`${sink}: ${parked} records in the dead-letter topic, the matrix rejects ${rejected} rows`);
  }
  assert.deepEqual(problems, [], `values that differ from the type matrix:\n${problems.join("\n")}`);
});
