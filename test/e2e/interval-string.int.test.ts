/**
 * Issue 15: PostgreSQL intervals under `interval_handling_mode: string` reach the topic as
 * Debezium's `io.debezium.time.Interval` (every part written, `P0Y0M-1DT0H0M-1S`), read with plain
 * avsc from the registered schema, and still arrive in DuckDB, ClickHouse and Elasticsearch as
 * PostgreSQL's exact ISO 8601 text, from the snapshot and from the stream.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import avro from "avsc";
import type pg from "pg";
import { parseTsv, unescapeField } from "../../connectors/clickhouse/tsv.ts";
import { clickhouse, elasticsearch } from "../services/ports.ts";
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
} from "./helpers.ts";

const schema = randomName("ivs");
const pgName = randomName("pg");
const deployment = randomName("dep");
const chDatabase = randomName("ivs");
const dir = tempDir("ivs");
const logPath = join(dir, "log.db");
const SINKS = ["duck", "house", "search"] as const;
const table = `${schema}_spans`;

/** Edge values: every part, signs per part, zero, beyond a day's hours, below a second, months only. */
const VALUES = ["1 year 2 mons 3 days 04:05:06.789", "-1 days -00:00:01", "0", "178000000 years", "-0.5 seconds", "100 hours", "-14 mons", "1 microsecond"];
const STREAM = 100;
const SENTINEL = 999;

const config = {
  name: deployment,
  sources: [pgSourceConfig(pgName, [`${schema}.*`], { interval_handling_mode: "string" })],
  topics: { kind: "embedded", path: logPath },
  sinks: [
    { kind: "duckdb", name: "duck", path: join(dir, "warehouse.duckdb"), batch: { max_wait: "100ms" } },
    { kind: "clickhouse", name: "house", url: clickhouse.url, user: clickhouse.username, password: clickhouse.password, database: chDatabase, batch: { max_wait: "100ms" } },
    { kind: "elasticsearch", name: "search", nodes: [elasticsearch.url], batch: { max_wait: "100ms" } },
  ],
};

let client: pg.Client;

/** Avro longs as bigint (the envelope's ts_ns is beyond 2^53), as a JavaScript Debezium consumer reads them. */
const exactLong = avro.types.LongType.__with({
  fromBuffer: (buffer: Buffer) => buffer.readBigInt64LE(),
  toBuffer: (value: bigint) => {
    const buffer = Buffer.alloc(8);
    buffer.writeBigInt64LE(BigInt(value));
    return buffer;
  },
  fromJSON: (value: number) => BigInt(value),
  toJSON: (value: bigint) => Number(value),
  isValid: (value: unknown) => typeof value === "bigint",
  compare: (a: bigint, b: bigint) => (a < b ? -1 : a > b ? 1 : 0),
});
const typeHook = (schema: unknown) => (schema === "long" || (typeof schema === "object" && schema !== null && (schema as { type?: unknown }).type === "long") ? exactLong : undefined);

async function insert(offset: number): Promise<void> {
  for (const [i, value] of VALUES.entries()) await client.query(`INSERT INTO "${schema}".spans VALUES ($1, $2::interval, ARRAY[$2::interval, NULL])`, [offset + i, value]);
}

before(async () => {
  client = await pgClient();
  await client.query(`CREATE SCHEMA "${schema}"`);
  await client.query(`CREATE TABLE "${schema}".spans (id int PRIMARY KEY, took interval, spans interval[])`);
  await insert(0);
});

after(async () => {
  await killAllDaemons();
  await dropPostgres(client, { slot: `sluice_${pgName}`, publication: `sluice_${pgName}`, schema }).catch(() => undefined);
  await client.end();
  await dropClickHouseDatabase(chDatabase);
  await deleteElasticIndices(schema);
  await deleteElasticOffsets(["search"]);
  removeDir(dir);
});

type Stored = Map<number, { took: string | null; first: string | null }>;

async function readSink(daemon: SluiceDaemon, sink: (typeof SINKS)[number]): Promise<Stored> {
  const stored: Stored = new Map();
  if (sink === "duck") {
    const response = await fetch(`${daemon.url}/sinks/duck/query`, { method: "POST", body: `SELECT id, CAST(took AS VARCHAR) AS took, CAST(spans[1] AS VARCHAR) AS first FROM "${table}"`, signal: AbortSignal.timeout(10_000) });
    if (response.status !== 200) throw new Error(`DuckDB query answered ${response.status}: ${(await response.text()).slice(0, 300)}`);
    for (const row of ((await response.json()) as { rows: { id: unknown; took: string | null; first: string | null }[] }).rows) stored.set(Number(row.id), { took: row.took, first: row.first });
  } else if (sink === "house") {
    const body = await clickhouseQuery(`SELECT id, took, spans[1] FROM \`${chDatabase}\`.\`${table}\` FORMAT TabSeparated`);
    const text = (field: Buffer): string | null => (field.toString("latin1") === "\\N" ? null : unescapeField(field).toString("utf8"));
    for (const fields of parseTsv(body)) stored.set(Number(text(fields[0]!)), { took: text(fields[1]!), first: text(fields[2]!) });
  } else {
    await esRequest("POST", `/${table.toLowerCase()}/_refresh`);
    const answer = await esRequest("POST", `/${table.toLowerCase()}/_search`, { size: 1000, query: { match_all: {} } });
    if (answer.status !== 200) throw new Error(answer.text.slice(0, 300));
    for (const hit of (answer.json as { hits: { hits: { _source: { id: number; took: string | null; spans: (string | null)[] | null } }[] } }).hits.hits) {
      stored.set(hit._source.id, { took: hit._source.took, first: hit._source.spans?.[0] ?? null });
    }
  }
  return stored;
}

test("intervals as io.debezium.time.Interval in the topic, PostgreSQL's exact text in DuckDB, ClickHouse and Elasticsearch", { timeout: 240_000 }, async () => {
  const daemon = await SluiceDaemon.start(dir, config, "ivs");
  await waitFor("the source to finish its snapshot", async () => (await daemon.status()).sources.every((s) => s.ready), { daemon, timeoutMs: 120_000 });
  await insert(STREAM);
  await client.query(`INSERT INTO "${schema}".spans (id) VALUES (${SENTINEL})`);
  for (const sink of SINKS) await waitFor(`the last row in ${sink}`, async () => (await readSink(daemon, sink)).has(SENTINEL), { daemon, timeoutMs: 120_000, intervalMs: 500 });

  await client.query("SET intervalstyle = iso_8601");
  const source = new Map((await client.query<{ id: number; took: string }>(`SELECT id, took::text AS took FROM "${schema}".spans WHERE id < ${STREAM}`)).rows.map((r) => [Number(r.id), r.took]));
  const problems: string[] = [];
  for (const sink of SINKS) {
    const stored = await readSink(daemon, sink);
    for (const i of VALUES.keys()) {
      for (const id of [i, STREAM + i]) {
        const row = stored.get(id);
        if (row?.took !== source.get(i)) problems.push(`${sink} id ${id}: took ${JSON.stringify(row?.took)}, PostgreSQL ${JSON.stringify(source.get(i))}`);
        if (row?.first !== source.get(i)) problems.push(`${sink} id ${id}: spans[1] ${JSON.stringify(row?.first)}, PostgreSQL ${JSON.stringify(source.get(i))}`);
      }
    }
  }
  await daemon.stop();
  assert.deepEqual(problems, []);

  // A consumer with plain avsc and the registered schema reads Debezium's text.
  const records = await readEmbeddedTopics(logPath, [`${deployment}.${pgName}.${schema}.spans`]);
  const valueRecord = records.find((r) => r.value !== null);
  assert.ok(valueRecord?.value, "the data topic has records");
  const { openTopicLog } = await import("../../connectors/topics/open.ts");
  const { openRegistry } = await import("../../daemon/components.ts");
  const { createLogger } = await import("../../runtime/logger.ts");
  const topicsConfig = { kind: "embedded" as const, path: logPath, partitions: 1, retention: { cleanup_policy: "compact" as const, max_age: 0, tombstones: 86_400_000, min_compaction_lag: 0 }, max_record_bytes: 16 * 2 ** 20 };
  const log = await openTopicLog(topicsConfig, "ivs-reader", createLogger("silent"));
  try {
    const { registry } = await openRegistry({ schema_registry: { kind: "builtin", compatibility: "BACKWARD", path: "/registry" } } as Parameters<typeof openRegistry>[0], log);
    const writer = JSON.parse(await registry.getById(valueRecord.value.readUInt32BE(1))) as { fields: { name: string; type: unknown }[] };
    const row = (writer.fields.find((f) => f.name === "before")!.type as { fields?: { name: string; type: unknown }[] }[]).find((b) => typeof b === "object")!;
    assert.deepEqual(row.fields!.find((f) => f.name === "took")!.type, ["null", { type: "string", "connect.version": 1, "connect.name": "io.debezium.time.Interval" }]);
    const type = avro.Type.forSchema(writer as avro.Schema, { wrapUnions: "auto", typeHook: typeHook as never });
    const seen = new Set<string>();
    for (const record of records) {
      if (record.value === null) continue;
      const envelope = type.fromBuffer(record.value.subarray(5)) as { after: { took: string | null } | null };
      if (envelope.after?.took) seen.add(envelope.after.took);
    }
    for (const expected of ["P1Y2M3DT4H5M6.789S", "P0Y0M-1DT0H0M-1S", "P0Y0M0DT0H0M0S", "P178000000Y0M0DT0H0M0S", "P0Y0M0DT0H0M-0.5S", "P0Y0M0DT100H0M0S", "P-1Y-2M0DT0H0M0S", "P0Y0M0DT0H0M0.000001S"]) {
      assert.ok(seen.has(expected), `Debezium's text ${expected} in the topic (seen: ${[...seen].join(", ")})`);
    }
  } finally {
    await log.close();
  }
});
