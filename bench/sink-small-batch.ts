/**
 * One quiet pipeline's batch, sink alone: what bench/latency.ts's transaction costs each target
 * (250 inserts and 250 updates of a 5-column table, one row of a markers table, the offsets of
 * 4 partitions), written `writes` times; no daemon, no Kafka. For Elasticsearch also how many
 * requests a write makes and in how many serial steps (requests that overlap share a step); for
 * DuckDB also how long a read through the query endpoint's path (`readQuery`) takes, idle and
 * while such batches are written every 100 ms. For ClickHouse also the time of the write's
 * `system.columns` query (its tables read again per batch), against the write's.
 *
 *   node bench/sink-small-batch.ts [duckdb,clickhouse,elasticsearch] [writes, default 40]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ClickHouseLogLevel, createClient } from "@clickhouse/client";
import { Client } from "@elastic/elasticsearch";
import { ClickHouseSink } from "../connectors/clickhouse/clickhouse-sink.ts";
import { ClickHouseConnection } from "../connectors/clickhouse/connection.ts";
import type { SinkChange, TopicPartitionOffset } from "../connectors/contracts.ts";
import { DuckDbSink } from "../connectors/duckdb/duckdb-sink.ts";
import { ElasticsearchSink } from "../connectors/elasticsearch/elasticsearch-sink.ts";
import type { VersionedSink } from "../connectors/sinks/contract.ts";
import { testLogger, testSinkConfig } from "../connectors/sinks/test-config.ts";
import { Events, randomTableName, tableSchema } from "../connectors/sinks/test-events.ts";
import { clickhouse, elasticsearch } from "../test/services/ports.ts";

const ONLY = new Set((process.argv[2] ?? "duckdb,clickhouse,elasticsearch").split(","));
const WRITES = Number(process.argv[3] ?? 40);
const WARM_UP = 3;
const prefix = randomTableName("small");
const database = `sluice_${prefix}`;
const rows = new Events(tableSchema(`${prefix}_rows`, [["id", "bigint"], ["account", "integer"], ["v", "text"], ["amount", "numeric(12,2)"], ["at", "timestamp with time zone"]]));
const markers = new Events(tableSchema(`${prefix}_markers`, [["id", "bigint"], ["sent_at", "timestamp with time zone"]]));

/** Tick `tick`'s transaction, as bench/commit-to-visible.ts writes it; versions go on across sinks (each sink has its own tables). */
let version = 1n;
function transaction(tick: number): SinkChange[] {
  const out: SinkChange[] = [];
  const first = tick * 250;
  const row = (id: number, amount: string) => ({ id: BigInt(id), account: id % 1000, v: `${id.toString(16).padStart(32, "0")}`, amount, at: 1_700_000_000_000_000n + BigInt(id) });
  for (let i = 0; i < 250; i++) out.push(rows.insert(version++, row(first + i, "1.00")));
  if (tick >= 2) for (let i = 0; i < 250; i++) out.push(rows.update(version++, row(first - 500 + i, "2.00")));
  out.push(markers.insert(version++, { id: BigInt(tick), sent_at: 1_700_000_000_000_000n }));
  return out;
}
const offsets = (tick: number): TopicPartitionOffset[] => [
  ...[0, 1, 2].map((partition) => ({ topic: rows.topic, partition, offset: BigInt(tick * 200 + 1) })),
  { topic: markers.topic, partition: 0, offset: BigInt(tick + 1) },
];

const percentile = (values: readonly number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
};
const ms = (n: number) => `${n.toFixed(1)} ms`;
const spread = (values: readonly number[]) => `p50 ${ms(percentile(values, 50))}, p90 ${ms(percentile(values, 90))}, max ${ms(percentile(values, 100))}`;

/** Elasticsearch's requests during each write, [start, end] in ms. */
const requests: [number, number][][] = [];
type Transport = Client["transport"];
// Every client's transport (the sink's own included) shares this prototype: time its requests.
const transport = Object.getPrototypeOf(new Client({ node: elasticsearch.url }).transport) as Transport;
const request = transport.request;
transport.request = async function (this: Transport, ...args: Parameters<Transport["request"]>) {
  const started = performance.now();
  try {
    return await request.apply(this, args);
  } finally {
    requests.at(-1)?.push([started, performance.now()]);
  }
} as Transport["request"];

/** ClickHouse's system.columns queries during each write, in ms. */
const columnReads: number[][] = [];
const select = ClickHouseConnection.prototype.select;
ClickHouseConnection.prototype.select = async function (this: ClickHouseConnection, ...args: Parameters<typeof select>) {
  const started = performance.now();
  try {
    return await select.apply(this, args);
  } finally {
    if (args[0].includes("system.columns")) columnReads.at(-1)?.push(performance.now() - started);
  }
};

/** Requests of one write and its serial steps: a request that starts after every earlier one ended begins a step. */
function steps(calls: readonly [number, number][]): string {
  let count = 0;
  let lastEnd = Number.NEGATIVE_INFINITY;
  for (const [start, end] of calls) {
    if (start >= lastEnd) count++;
    lastEnd = Math.max(lastEnd, end);
  }
  return `${calls.length} in ${count}`;
}

async function writes(sink: VersionedSink, tickFrom: number, count: number, pace = 0): Promise<number[]> {
  const times: number[] = [];
  for (let tick = tickFrom; tick < tickFrom + count; tick++) {
    requests.push([]);
    columnReads.push([]);
    const started = performance.now();
    await sink.write(transaction(tick), AbortSignal.timeout(60_000), offsets(tick));
    const took = performance.now() - started;
    times.push(took);
    if (pace > took) await new Promise((resolve) => setTimeout(resolve, pace - took));
  }
  return times;
}

async function run(kind: string, sink: VersionedSink): Promise<void> {
  await sink.open(AbortSignal.timeout(30_000));
  try {
    requests.length = 0;
    columnReads.length = 0;
    const times = (await writes(sink, 0, WRITES)).slice(WARM_UP);
    console.log(`${kind.padEnd(13)} a write: ${spread(times)}`);
    if (kind === "clickhouse") {
      const reads = columnReads.slice(WARM_UP).map((each) => each.reduce((a, b) => a + b, 0));
      const share = (p: number) => (percentile(reads, p) / percentile(times, p)).toFixed(3);
      console.log(`${"".padEnd(13)} its system.columns queries: ${spread(reads)}; p50 ${share(50)}x, p90 ${share(90)}x the write's`);
    }
    if (kind === "elasticsearch") console.log(`${"".padEnd(13)} requests per write, in serial steps: ${[...new Set(requests.slice(WARM_UP).map(steps))].join(", ")}`);
    if (sink instanceof DuckDbSink) {
      const read = async () => {
        const started = performance.now();
        await sink.readQuery(`SELECT id::VARCHAR AS id FROM main."public_${markers.schema.table}" WHERE id > 2`);
        return performance.now() - started;
      };
      const idle: number[] = [];
      for (let i = 0; i < 40; i++) idle.push(await read());
      const during: number[] = [];
      let writing = true;
      const writer = writes(sink, WRITES, 30, 100).finally(() => (writing = false));
      while (writing) {
        during.push(await read());
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      await writer;
      console.log(`${"".padEnd(13)} a read (readQuery): idle ${spread(idle)}; while writing every 100 ms ${spread(during)}`);
    }
  } finally {
    await sink.close();
  }
}

const logger = testLogger();
const dir = mkdtempSync(join(tmpdir(), "sluice-small-batch-"));
console.log(`a batch of ${transaction(2).length} changes in 2 tables and 4 offsets, ${WRITES} writes (the first ${WARM_UP} left out); load ${(await import("node:os")).loadavg()[0]!.toFixed(2)}`);
version = 1n;
try {
  if (ONLY.has("duckdb")) await run("duckdb", new DuckDbSink(testSinkConfig("duckdb", { name: "small", path: join(dir, "small.duckdb") }), { logger }));
  if (ONLY.has("clickhouse")) {
    const config = testSinkConfig("clickhouse", { name: "small", url: clickhouse.url, user: clickhouse.username, password: clickhouse.password, database, native_deletes: false });
    await run("clickhouse", new ClickHouseSink(config, { logger }));
  }
  if (ONLY.has("elasticsearch")) {
    const config = testSinkConfig("elasticsearch", { name: `small_${prefix}`, nodes: [elasticsearch.url], bulk_bytes: 5 * 2 ** 20, target: `${prefix}_{table}`, refresh_interval: "100ms" });
    await run("elasticsearch", new ElasticsearchSink(config, { logger }));
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
  await cleanup();
}

/** Drops what the benchmark created on the servers (its ClickHouse database, its indices and offsets). */
async function cleanup(): Promise<void> {
  if (ONLY.has("clickhouse")) {
    const client = createClient({ url: clickhouse.url, username: clickhouse.username, password: clickhouse.password, log: { level: ClickHouseLogLevel.OFF } });
    await client.command({ query: `DROP DATABASE IF EXISTS ${database}` }).catch(() => undefined);
    await client.close();
  }
  if (ONLY.has("elasticsearch")) {
    const client = new Client({ node: elasticsearch.url });
    await client.indices.delete({ index: `${prefix}_*`, ignore_unavailable: true }).catch(() => undefined);
    await client.deleteByQuery({ index: "sluice-offsets", query: { term: { sink: `small_${prefix}` } }, refresh: true, conflicts: "proceed" }).catch(() => undefined);
    await client.close();
  }
}
