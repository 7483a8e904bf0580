/**
 * Sink throughput against the real targets: a 10-column table, batches of 5,000 changes.
 * Phases: insert N rows; update every row (one column left unchanged-TOAST in a tenth of them,
 * which makes the sink read stored values); replay the inserts (all stale: the version guard);
 * delete every row. Rows per second per phase, per sink. A sink whose service is down is skipped.
 *
 *   node bench/sinks-throughput.ts [rows, default 50000] [duckdb,clickhouse,elasticsearch]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ClickHouseLogLevel, createClient } from "@clickhouse/client";
import { Client } from "@elastic/elasticsearch";
import { ClickHouseSink } from "../connectors/clickhouse/clickhouse-sink.ts";
import type { SinkChange } from "../connectors/contracts.ts";
import { UNCHANGED } from "../connectors/contracts.ts";
import { DuckDbSink } from "../connectors/duckdb/duckdb-sink.ts";
import { ElasticsearchSink } from "../connectors/elasticsearch/elasticsearch-sink.ts";
import type { VersionedSink } from "../connectors/sinks/contract.ts";
import { testLogger, testSinkConfig } from "../connectors/sinks/test-config.ts";
import { Events, randomTableName, tableSchema } from "../connectors/sinks/test-events.ts";
import { clickhouse, elasticsearch } from "../test/services/ports.ts";

const ROWS = Number(process.argv[2] ?? 50_000);
const ONLY = new Set((process.argv[3] ?? "duckdb,clickhouse,elasticsearch").split(","));
const BATCH = 5_000;

const schema = tableSchema(randomTableName("bench"), [
  ["id", "bigint"],
  ["customer_id", "integer"],
  ["name", "text"],
  ["email", "character varying(255)"],
  ["status", "text"],
  ["price", "numeric(10,2)"],
  ["created_at", "timestamp with time zone"],
  ["flag", "boolean"],
  ["attributes", "jsonb"],
  ["note", "text"],
]);

function row(i: number, revision: number) {
  return {
    id: BigInt(i),
    customer_id: i % 9_973,
    name: `customer ${i} rev ${revision}`,
    email: `c${i}@example.com`,
    status: revision % 2 === 0 ? "open" : "shipped",
    price: ((i % 100_000) / 100 + revision).toFixed(2),
    created_at: 1_700_000_000_000_000n + BigInt(i) * 1_000n,
    flag: i % 3 === 0,
    attributes: `{"tier": ${i % 5}, "tags": ["a", "b"]}`,
    note: `a longer note for row ${i} that a source might keep in TOAST`.repeat(2),
  };
}

async function phase(sink: VersionedSink, name: string, changes: SinkChange[]): Promise<string> {
  const started = performance.now();
  for (let i = 0; i < changes.length; i += BATCH) {
    const result = await sink.write(changes.slice(i, i + BATCH), AbortSignal.timeout(600_000));
    if (result.failures.length > 0) throw new Error(`${name}: ${result.failures.length} failures, first: ${result.failures[0]?.error.message}`);
  }
  const seconds = (performance.now() - started) / 1000;
  return `${name} ${Math.round(changes.length / seconds).toLocaleString("en-US")} rows/s`;
}

async function run(kind: string, sink: VersionedSink): Promise<void> {
  try {
    await sink.open(AbortSignal.timeout(30_000));
  } catch (error) {
    console.log(`${kind.padEnd(14)} skipped: ${(error as Error).message}`);
    return;
  }
  try {
    const events = new Events(schema);
    const inserts = Array.from({ length: ROWS }, (_, i) => events.insert(BigInt(i + 1), row(i, 0)));
    const updates = Array.from({ length: ROWS }, (_, i) => events.update(BigInt(ROWS + i + 1), i % 10 === 0 ? { ...row(i, 1), note: UNCHANGED } : row(i, 1)));
    const deletes = Array.from({ length: ROWS }, (_, i) => events.delete(BigInt(3 * ROWS + i + 1), { id: BigInt(i) }));
    const figures = [
      await phase(sink, "insert", inserts),
      await phase(sink, "update", updates),
      await phase(sink, "replay (stale)", inserts),
      await phase(sink, "delete", deletes),
    ];
    console.log(`${kind.padEnd(14)} ${figures.join(" | ")}`);
  } finally {
    await sink.close();
  }
}

const logger = testLogger();
console.log(`${ROWS.toLocaleString("en-US")} rows, batches of ${BATCH}, table of ${schema.columns.length} columns`);
const dir = mkdtempSync(join(tmpdir(), "sluice-bench-"));
try {
  if (ONLY.has("duckdb")) {
    await run("duckdb", new DuckDbSink(testSinkConfig("duckdb", { name: "bench", path: join(dir, "bench.duckdb") }), { logger }));
  }
  if (ONLY.has("clickhouse")) {
    const config = testSinkConfig("clickhouse", { name: "bench", url: clickhouse.url, user: clickhouse.username, password: clickhouse.password, database: "sluice_bench", native_deletes: false });
    await run("clickhouse", new ClickHouseSink(config, { logger }));
  }
  if (ONLY.has("elasticsearch")) {
    const config = testSinkConfig("elasticsearch", { name: "bench", nodes: [elasticsearch.url], bulk_bytes: 5 * 2 ** 20, target: "sluice_bench_{table}" });
    await run("elasticsearch", new ElasticsearchSink(config, { logger }));
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
  await cleanup();
}

/** Drops what the benchmark created on the servers. */
async function cleanup(): Promise<void> {
  if (ONLY.has("clickhouse")) {
    const client = createClient({ url: clickhouse.url, username: clickhouse.username, password: clickhouse.password, log: { level: ClickHouseLogLevel.OFF } });
    await client.command({ query: "DROP DATABASE IF EXISTS sluice_bench" }).catch(() => undefined);
    await client.close();
  }
  if (ONLY.has("elasticsearch")) {
    const client = new Client({ node: elasticsearch.url });
    await client.indices.delete({ index: "sluice_bench_*", ignore_unavailable: true }).catch(() => undefined);
    await client.close();
  }
}
