/**
 * `sluice forget` erases the same rows in every sink: the rows whose subject column reads as exactly the subject's text
 * (subject-column.ts), for each type a subject column can have, on the real DuckDB (embedded), ClickHouse and
 * Elasticsearch. A subject column of a type that cannot be matched exactly is refused by each sink's erasure.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { ClickHouseLogLevel, createClient } from "@clickhouse/client";
import { Client } from "@elastic/elasticsearch";
import { clickhouse, elasticsearch } from "../../test/services/ports.ts";
import { ClickHouseSink } from "../clickhouse/clickhouse-sink.ts";
import { ident } from "../clickhouse/ddl.ts";
import { DuckDbSink } from "../duckdb/duckdb-sink.ts";
import { OFFSETS_INDEX } from "../elasticsearch/config.ts";
import { ElasticsearchSink } from "../elasticsearch/elasticsearch-sink.ts";
import { ExactSerializer } from "../elasticsearch/json.ts";
import type { Row } from "../contracts.ts";
import { SluiceError } from "../errors.ts";
import type { ErasableSink } from "./contract.ts";
import { renderTarget } from "./naming.ts";
import { testLogger, testSinkConfig } from "./test-config.ts";
import { Events, randomTableName, tableSchema } from "./test-events.ts";

const suffix = randomBytes(3).toString("hex");
const dir = mkdtempSync(join(tmpdir(), "sluice-erase-subject-"));
const database = `sluice_test_erase_${suffix}`;
const prefix = `sluice_test_erase_${suffix}`;
const esName = `es_erase_${suffix}`;
const chAdmin = createClient({ url: clickhouse.url, username: clickhouse.username, password: clickhouse.password, log: { level: ClickHouseLogLevel.OFF } });
const esAdmin = new Client({ node: elasticsearch.url, Serializer: ExactSerializer });

interface Target {
  readonly sink: ErasableSink & { open(signal: AbortSignal): Promise<void>; close(): Promise<void> };
  /** [id, email] of every row. */
  rows(target: string): Promise<[number, string | null][]>;
}

const targets: Record<string, () => Target> = {
  duckdb: () => {
    const sink = new DuckDbSink(testSinkConfig("duckdb", { name: `d_erase_${suffix}`, path: join(dir, "erase.duckdb"), target: "{table}" }), { logger: testLogger() });
    return { sink, rows: async (target) => (await sink.query(`SELECT id, email FROM main.${JSON.stringify(target)}`)).map((r) => [Number(r["id"]), r["email"] as string | null]) };
  },
  clickhouse: () => ({
    sink: new ClickHouseSink(testSinkConfig("clickhouse", { name: `c_erase_${suffix}`, url: clickhouse.url, user: clickhouse.username, password: clickhouse.password, database, native_deletes: false, target: "{table}" }), {
      logger: testLogger(),
    }),
    rows: async (target) => {
      const result = await chAdmin.query({ query: `SELECT id, email FROM ${ident(database)}.${ident(target)}`, format: "JSONEachRow" });
      return (await result.json<{ id: number; email: string | null }>()).map((r) => [Number(r.id), r.email]);
    },
  }),
  elasticsearch: () => ({
    sink: new ElasticsearchSink(testSinkConfig("elasticsearch", { name: esName, nodes: [elasticsearch.url], bulk_bytes: 5 * 2 ** 20, target: `${prefix}_{table}` }), { logger: testLogger(), refresh: true }),
    rows: async (target) =>
      (await esAdmin.search<{ id: number; email: string | null }>({ index: `${prefix}_${target}`, size: 100, query: { match_all: {} } })).hits.hits.map((h) => [Number(h._source?.id), h._source?.email ?? null]),
  }),
};

const LONG = `${"Ünïcödé subject ✓ ".repeat(16)}end`; // 307 UTF-16 units: above Elasticsearch's keyword limit (256)
const EMOJI = "😀".repeat(200); // 200 characters, 400 UTF-16 units
const DASHES = "-".repeat(300); // no word for Elasticsearch's analyzer
const UUID = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";

/** Per row, its subject (one subject column set, the others null); the rows `erased` are the ones the exact subjects below name. */
const ROWS: [id: number, column: string, value: Row[string]][] = [
  [1, "s_int", 12],
  [2, "s_u64", 18_446_744_073_709_551_615n],
  [3, "s_u64", 18_446_744_073_709_551_614n],
  [4, "s_dec", "5.0"],
  [5, "s_dec", "50.0"],
  [6, "s_str", LONG],
  [7, "s_str", `${LONG} tail`],
  [8, "s_str", LONG.toUpperCase()],
  [9, "s_str", "Jos\u00e9"],
  [10, "s_str", "Jose\u0301"],
  [11, "s_str", DASHES],
  [12, "s_str", `${DASHES}-`],
  [13, "s_str", EMOJI],
  [14, "s_uuid", UUID],
  [15, "s_uuid", "b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"],
  [16, "s_str", "ann"],
  [17, "s_str", "\u00e9".repeat(256)],
  [18, "s_str", "\u00e9".repeat(257)],
  // A NUL character (a MySQL text may hold one): DuckDB's parser ended the erasure's literal there and refused it.
  [20, "s_str", "a\u0000b"],
];
/** Spellings no row holds exactly (each near a row's value): they erase nothing anywhere. */
const NEAR: [column: string, subject: string][] = [
  ["s_int", "012"],
  ["s_int", "77"],
  ["s_dec", "5"],
  ["s_dec", "5.00"],
  ["s_str", LONG.slice(0, -1)],
  ["s_str", LONG.toLowerCase()],
  ["s_str", "Ann"],
  ["s_str", EMOJI.slice(2)],
  ["s_uuid", UUID.toUpperCase()],
  ["s_str", "\u00e9".repeat(255)],
  ["s_str", "\u00e9".repeat(258)],
  ["s_str", "a"],
];
const EXACT: [column: string, subject: string, id: number][] = [
  ["s_int", "12", 1],
  ["s_u64", "18446744073709551614", 3],
  ["s_dec", "5.0", 4],
  ["s_str", LONG, 6],
  ["s_str", "Jos\u00e9", 9],
  ["s_str", DASHES, 11],
  ["s_str", EMOJI, 13],
  ["s_uuid", UUID, 14],
  ["s_str", "ann", 16],
  // At Elasticsearch's keyword limit (256) and just over it.
  ["s_str", "\u00e9".repeat(256), 17],
  ["s_str", "\u00e9".repeat(257), 18],
  ["s_str", "a\u0000b", 20],
];

before(async () => {
  await chAdmin.command({ query: `CREATE DATABASE IF NOT EXISTS ${ident(database)}` });
});
after(async () => {
  await chAdmin.command({ query: `DROP DATABASE IF EXISTS ${ident(database)}` });
  await chAdmin.close();
  await esAdmin.indices.delete({ index: `${prefix}_*`, ignore_unavailable: true, expand_wildcards: "all" });
  await esAdmin.indices.refresh({ index: OFFSETS_INDEX });
  const stale = await esAdmin.search({ index: OFFSETS_INDEX, size: 100, query: { term: { sink: esName } } });
  if (stale.hits.hits.length > 0) await esAdmin.bulk({ operations: stale.hits.hits.map((hit) => ({ delete: { _index: OFFSETS_INDEX, _id: hit._id } })) });
  await esAdmin.close();
  rmSync(dir, { recursive: true, force: true });
});

for (const [kind, make] of Object.entries(targets)) {
  describe(`sluice forget in ${kind}`, () => {
    test("erases exactly the rows whose subject column reads as the subject's text: integers, unsigned 64-bit, decimals, strings of any length and script, uuids", async () => {
      // Before: a subject longer than Elasticsearch's keyword limit (256) was never matched there, so never erased, while
      // forget reported the sink done; DuckDB and ClickHouse nulled the row. And ClickHouse (18.16) nulled every row whose
      // subject column is NULL (here: each row for the four other subject columns) at each forget.
      const { sink, rows } = make();
      const signal = AbortSignal.timeout(60_000);
      await sink.open(signal);
      try {
        const columns = ["s_int", "s_u64", "s_dec", "s_str", "s_uuid"];
        const events = new Events(tableSchema(randomTableName("subjects"), [["id", "integer"], ["s_int", "bigint"], ["s_u64", "xid8"], ["s_dec", "numeric(10,1)"], ["s_str", "text"], ["s_uuid", "uuid"], ["email", "text"]]));
        const inserts = ROWS.map(([id, column, value], i) => events.insert(BigInt(i + 1), { id, ...Object.fromEntries(columns.map((c) => [c, c === column ? value : null])), email: `${id}@x.io` }));
        assert.deepEqual((await sink.write(inserts, signal)).failures, []);
        // A row whose subject changed: the subject it had is not its subject any more (ClickHouse keeps the older version).
        const moved = (subject: number, version: bigint) => events.update(version, { id: 19, s_int: subject, s_u64: null, s_dec: null, s_str: null, s_uuid: null, email: "19@x.io" });
        assert.deepEqual((await sink.write([moved(77, 100n)], signal)).failures, []);
        assert.deepEqual((await sink.write([moved(78, 101n)], signal)).failures, []);
        const erase = (subjectColumn: string, subject: string) => sink.erase({ table: events.schema, subjectColumn, subject, columns: ["email"] }, signal);
        for (const [column, subject] of NEAR) assert.equal(await erase(column, subject), 0, `${column} ${JSON.stringify(subject)} erases nothing`);
        for (const [column, subject] of EXACT) assert.equal(await erase(column, subject), 1, `${column} ${JSON.stringify(subject).slice(0, 40)} erases one row`);
        assert.equal(await erase("s_str", "ann"), 0, "a subject erased already: no row changes");
        const erased = (await rows(renderTarget("{table}", events.schema))).filter(([, email]) => email === null).map(([id]) => id);
        assert.deepEqual(erased.sort((a, b) => a - b), EXACT.map(([, , id]) => id).sort((a, b) => a - b));
      } finally {
        await sink.close();
      }
    });

    test("a subject column of a type that cannot be matched exactly (float, date) is refused (SINK_ERASE_UNSUPPORTED), not matched loosely or reported erased", async () => {
      const { sink } = make();
      const signal = AbortSignal.timeout(60_000);
      await sink.open(signal);
      try {
        const events = new Events(tableSchema(randomTableName("refused"), [["id", "integer"], ["s_float", "double precision"], ["s_date", "date"], ["email", "text"]]));
        assert.deepEqual((await sink.write([events.insert(1n, { id: 1, s_float: 5, s_date: 19_000, email: "a@x.io" })], signal)).failures, []);
        for (const [column, subject] of [["s_float", "5"], ["s_date", "19000"], ["s_date", "2022-01-08"]] as const) {
          await assert.rejects(
            sink.erase({ table: events.schema, subjectColumn: column, subject, columns: ["email"] }, signal),
            (e: unknown) => e instanceof SluiceError && e.code === "SINK_ERASE_UNSUPPORTED" && e.message.includes(`subject column ${column}`),
            `${column} ${subject}`,
          );
        }
      } finally {
        await sink.close();
      }
    });
  });
}
