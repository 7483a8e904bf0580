/**
 * Commit → visible at a fixed rate, shared by bench/pipeline-throughput.ts and bench/latency.ts:
 * every 100 ms one PostgreSQL transaction of rate/10 changes (new rows of a big table, updates of
 * rows written two ticks before, and one marker row in a small table of its own); the writer notes
 * when COMMIT returned, and one poller per sink asks the sink's target for new markers every
 * 25 ms. Latency = first seen − commit returned (so it includes up to 25 ms of polling).
 * Also: the daemon's own commit → stage histograms (sluice_capture_latency_seconds,
 * sluice_sink_latency_seconds), read from /metrics before and after, as the breakdown.
 */
import type pg from "pg";
import {
  clickhouseQuery,
  deleteElasticIndices,
  deleteElasticOffsets,
  deleteKafkaDeployment,
  dropClickHouseDatabase,
  dropPostgres,
  esRequest,
  killAllDaemons,
  metricValue,
  pgClient,
  pgSourceConfig,
  randomName,
  removeDir,
  sleep,
  tempDir,
} from "../test/e2e/helpers.ts";
import { kafka } from "../test/services/ports.ts";

/**
 * One bench deployment, PostgreSQL → Kafka (3 partitions, transactions) → sinks: its names, its two
 * tables (rows, and markers with one row so topics and targets exist before timing), and cleanup.
 */
export interface PipelineBench {
  readonly client: pg.Client;
  readonly schema: string;
  readonly source: string;
  readonly deployment: string;
  /** The ClickHouse database of the bench's ClickHouse sink. */
  readonly database: string;
  readonly dir: string;
  readonly rowsTable: string;
  readonly markersTable: string;
  /** The daemon's config for these sinks: the bench's source and Kafka topics. */
  config(sinks: readonly Record<string, unknown>[]): Record<string, unknown>;
  /** The rows table's count in PostgreSQL, ClickHouse and Elasticsearch, and whether they agree, as a line. */
  rowCounts(): Promise<string>;
  cleanup(log: (line: string) => void): Promise<void>;
}

export async function openPipelineBench(prefix: string): Promise<PipelineBench> {
  const schema = randomName(prefix);
  const source = randomName("src");
  const deployment = randomName("bench");
  const database = randomName(prefix);
  const dir = tempDir(prefix.replace(/_/g, "-"));
  const rowsTable = `"${schema}".rows`;
  const markersTable = `"${schema}".markers`;
  const client = await pgClient();
  await client.query(`CREATE SCHEMA "${schema}"`);
  await client.query(`CREATE TABLE ${rowsTable} (id bigint PRIMARY KEY, account integer, v text, amount numeric(12,2), at timestamptz)`);
  await client.query(`CREATE TABLE ${markersTable} (id bigint PRIMARY KEY, sent_at timestamptz)`);
  await client.query(`INSERT INTO ${markersTable} VALUES (0, now())`);
  return {
    client,
    schema,
    source,
    deployment,
    database,
    dir,
    rowsTable,
    markersTable,
    config: (sinks) => ({
      name: deployment,
      sources: [pgSourceConfig(source, [`${schema}.*`])],
      topics: { kind: "kafka", brokers: [...kafka.brokers], partitions: 3, transactions: true, retention: { max_age: 0 } },
      sinks,
    }),
    async rowCounts() {
      const pgRows = Number((await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${rowsTable}`)).rows[0]!.n);
      const chRows = Number((await clickhouseQuery(`SELECT count() FROM \`${database}\`.\`${schema}_rows\``)).toString().trim());
      await esRequest("POST", `/${schema}_rows/_refresh`);
      const esRows = Number(((await esRequest("GET", `/${schema}_rows/_count`)).json as { count: number }).count);
      return `rows: PostgreSQL ${fmt(pgRows)}, ClickHouse ${fmt(chRows)}, Elasticsearch ${fmt(esRows)}${pgRows === chRows && pgRows === esRows ? " (equal)" : " (DIFFERENT)"}`;
    },
    async cleanup(log) {
      await killAllDaemons();
      await dropPostgres(client, { slot: `sluice_${source}`, publication: `sluice_${source}`, schema }).catch((e: unknown) => log(`cleanup: ${String(e)}`));
      await client.end();
      await deleteKafkaDeployment(deployment).catch((e: unknown) => log(`cleanup: ${String(e)}`));
      await dropClickHouseDatabase(database).catch(() => undefined);
      await deleteElasticIndices(`${schema}_`).catch(() => undefined);
      await deleteElasticOffsets(["warehouse", "search"]).catch(() => undefined);
      removeDir(dir);
    },
  };
}

export interface MarkerReader {
  readonly name: string;
  /** Marker ids above `after` that the target shows now. */
  ids(after: number): Promise<number[]>;
}

export function clickhouseMarkers(name: string, database: string, view: string): MarkerReader {
  return {
    name,
    ids: async (after) =>
      (await clickhouseQuery(`SELECT id FROM \`${database}\`.\`${view}\` WHERE id > ${after} FORMAT TabSeparated`))
        .toString("utf8")
        .split("\n")
        .filter((line) => line !== "")
        .map(Number),
  };
}

export function elasticsearchMarkers(name: string, index: string): MarkerReader {
  return {
    name,
    ids: async (after) => {
      const result = await esRequest("POST", `/${index}/_search`, { size: 10_000, _source: ["id"], query: { range: { id: { gt: after } } } });
      return ((result.json as { hits?: { hits: { _source: { id: number } }[] } }).hits?.hits ?? []).map((hit) => Number(hit._source.id));
    },
  };
}

/** DuckDB lives inside the daemon (it holds the file): read through the daemon's query endpoint, which runs on the sink's own instance. */
export function duckdbMarkers(name: string, daemonUrl: string, sink: string, view: string): MarkerReader {
  return {
    name,
    ids: async (after) => {
      const response = await fetch(`${daemonUrl}/sinks/${sink}/query`, { method: "POST", body: `SELECT id::VARCHAR AS id FROM main."${view}" WHERE id > ${after}`, signal: AbortSignal.timeout(30_000) });
      const body = (await response.json()) as { rows?: { id: string }[]; error?: string };
      if (response.status !== 200) throw new Error(`DuckDB query: ${body.error ?? response.status}`);
      return (body.rows ?? []).map((row) => Number(row.id));
    },
  };
}

export interface ProbeOptions {
  /** The big table (id bigint primary key, account integer, v text, amount numeric, at timestamptz). */
  readonly rowsTable: string;
  /** The markers table (id bigint primary key, sent_at timestamptz). */
  readonly markersTable: string;
  readonly rate: number;
  readonly seconds: number;
  /** Marker ids start above this (distinct per run); big-table ids are derived from it. */
  readonly markerBase: number;
  readonly readers: readonly MarkerReader[];
  readonly label: string;
  readonly log: (text: string) => void;
  /** Ends the run before `seconds` are up once it returns true (asked before each transaction). */
  readonly stop?: () => boolean;
  /**
   * Filled, per reader, with each marker's latency taken at the start of the read that first
   * showed it instead of its end: a lower bound, where the result is an upper bound (the read's
   * own time is in it, and a DuckDB read goes through the daemon).
   */
  readonly atReadStart?: Map<string, number[]>;
}

/** Per reader: the latencies (ms) of the markers it saw, sorted. */
export async function commitToVisible(options: ProbeOptions): Promise<Map<string, number[]>> {
  const { rowsTable, markersTable, rate, seconds, markerBase, readers } = options;
  const client: pg.Client = await pgClient();
  const committed = new Map<number, number>();
  const seen = new Map(readers.map((r) => [r.name, new Map<number, number>()]));
  const seenFrom = new Map(readers.map((r) => [r.name, new Map<number, number>()]));
  const perTx = Math.max(2, Math.round(rate / 10));
  let running = true;
  let stopAt = Number.POSITIVE_INFINITY;
  const pollers = readers.map(async (reader) => {
    const mine = seen.get(reader.name)!;
    const mineFrom = seenFrom.get(reader.name)!;
    // Markers of different partitions become visible out of order: ask from the last one of the
    // run seen with every one before it, or a late marker below a newer one would never be seen.
    let last = markerBase;
    while (running || mine.size < committed.size) {
      const started = performance.now();
      const ids = await reader.ids(last).catch((error: unknown) => {
        options.log(`${reader.name}: ${String(error)}`);
        return [];
      });
      const now = performance.now();
      for (const id of ids) {
        if (mine.has(id)) continue;
        mine.set(id, now);
        mineFrom.set(id, started);
      }
      while (mine.has(last + 1)) last++;
      if (!running && performance.now() > stopAt + 30_000) break;
      await sleep(25);
    }
  });
  const start = performance.now();
  let id = markerBase;
  let rowId = 2_000_000_000 + markerBase * perTx;
  let behind = 0;
  for (let tick = 0; tick < seconds * 10; tick++) {
    const wait = start + tick * 100 - performance.now();
    if (wait > 0) await sleep(wait);
    else behind++;
    if (options.stop?.() === true) break;
    id++;
    await client.query("BEGIN");
    // perTx − 1 changes in the big table (new rows, and updates of the ones two ticks back), then the marker.
    const inserts = Math.ceil((perTx - 1) / 2);
    await client.query(`INSERT INTO ${rowsTable} SELECT g, g % 1000, md5(g::text), 1, now() FROM generate_series($1::bigint, $2::bigint) g`, [rowId, rowId + inserts - 1]);
    if (perTx - 1 - inserts > 0 && tick >= 2) await client.query(`UPDATE ${rowsTable} SET amount = amount + 1 WHERE id BETWEEN $1 AND $2`, [rowId - 2 * inserts, rowId - 2 * inserts + (perTx - 1 - inserts) - 1]);
    rowId += inserts;
    await client.query(`INSERT INTO ${markersTable} VALUES ($1, now())`, [id]);
    await client.query("COMMIT");
    committed.set(id, performance.now());
  }
  const actualRate = (committed.size * perTx) / ((performance.now() - start) / 1000);
  running = false;
  stopAt = performance.now();
  await Promise.all(pollers);
  await client.end();
  const out = new Map<string, number[]>();
  for (const [name, at] of seen) out.set(name, [...committed].filter(([k]) => at.has(k)).map(([k, t]) => at.get(k)! - t).sort((a, b) => a - b));
  for (const [name, at] of seenFrom) options.atReadStart?.set(name, [...committed].filter(([k]) => at.has(k)).map(([k, t]) => Math.max(0, at.get(k)! - t)).sort((a, b) => a - b));
  options.log(`latency (${options.label}): ${committed.size} transactions at ${Math.round(actualRate)} changes/s (${behind} ticks late); markers seen: ${[...out].map(([name, values]) => `${name} ${values.length}`).join(", ")}`);
  return out;
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

export const fmt = (n: number): string => (Number.isNaN(n) ? "n/a" : Math.round(n).toLocaleString("en-US"));

export function latencyRow(label: string, values: readonly number[], expected: number): string {
  return `| ${label} | ${fmt(percentile(values, 50))} ms | ${fmt(percentile(values, 99))} ms | ${fmt(values.at(-1) ?? Number.NaN)} ms | ${values.length}/${expected} |`;
}

/** One histogram series between two /metrics texts: bucket counts (cumulative, by upper bound), count and sum. */
export interface HistogramDelta {
  readonly bounds: readonly number[];
  readonly cumulative: readonly number[];
  readonly count: number;
  readonly sum: number;
}

export function histogramDelta(before: string, after: string, name: string, labels: Record<string, string>): HistogramDelta {
  const bounds = [...new Set([...after.matchAll(new RegExp(`^${name}_bucket\\{[^}]*le="([^"]+)"`, "gm"))].map((m) => m[1]!))].filter((le) => le !== "+Inf").map(Number).sort((a, b) => a - b);
  const delta = (metric: string, extra: Record<string, string> = {}) => metricValue(after, metric, { ...labels, ...extra }) - metricValue(before, metric, { ...labels, ...extra });
  return {
    bounds,
    cumulative: bounds.map((le) => delta(`${name}_bucket`, { le: String(le) })),
    count: delta(`${name}_count`),
    sum: delta(`${name}_sum`),
  };
}

/** The p-th percentile (ms) by linear interpolation within its bucket, as Prometheus's histogram_quantile does. */
export function histogramPercentile(h: HistogramDelta, p: number): number {
  if (h.count === 0) return Number.NaN;
  const rank = (p / 100) * h.count;
  let lower = 0;
  let below = 0;
  for (let i = 0; i < h.bounds.length; i++) {
    if (h.cumulative[i]! >= rank) {
      const inBucket = h.cumulative[i]! - below;
      return 1000 * (lower + (h.bounds[i]! - lower) * (inBucket === 0 ? 1 : (rank - below) / inBucket));
    }
    lower = h.bounds[i]!;
    below = h.cumulative[i]!;
  }
  return 1000 * lower;
}

export const histogramMean = (h: HistogramDelta): number => (h.count === 0 ? Number.NaN : (1000 * h.sum) / h.count);
