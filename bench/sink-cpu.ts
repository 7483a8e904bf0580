/**
 * One sink's CPU per change, alone: the records capture writes for the pipeline bench's table
 * (bench/pipeline-throughput.ts: id bigint key, account integer, v text, amount numeric(12,2),
 * at timestamptz; half inserts, half updates of those rows), decoded and written in batches
 * (of 5,000 by default) the way a sink's thread does (daemon/components.ts recordDecoder, then the sink's write
 * with the batch's offsets), against the real ClickHouse or Elasticsearch of test/services.
 *
 * It runs in a worker thread with a sink thread's heap limits: by default what the memory plan
 * gives each sink of the pipeline bench's daemon (`memory` unset: 45 MiB old generation for
 * ClickHouse, 55 MiB for Elasticsearch, 6 MiB young), since the collector's share depends on them.
 * Reported: the process's CPU per change while the worker decodes and writes (the collector's
 * helper threads included; the main thread only hands over batches), and the decoding's part.
 *
 *   node bench/sink-cpu.ts [--sink clickhouse|elasticsearch|none] [--changes 100000] [--batch 5000] [--old-mb N] [--young-mb N] [--unbounded] [--server-pid N] [--no-staged]
 *
 * A sink with a staged write (connectors/sinks/contract.ts StagedWrite) gets each change as it is
 * decoded, as the sink runtime hands it over (daemon/sink-runner.ts applyStaged); a batch it cannot
 * stage is decoded again and written with `write`.
 * `--no-staged` writes every batch with `write`.
 *
 * Also reported: the server's CPU per change (ClickHouse's or Elasticsearch's process, from
 * /proc/<pid>/stat: the services' pid file, or `--server-pid` for another server, e.g. a private
 * one reached with SLUICE_ES_PORT), from the first batch until the worker ended (an Elasticsearch
 * index is refreshed before it is deleted, so the indexing work still in memory counts too); other
 * clients of that server count as well.
 *
 * `none` decodes only (the write does nothing). To compare two versions, run the same file from
 * each checkout, alternating.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { PerformanceObserver } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { ClickHouseLogLevel, createClient } from "@clickhouse/client";
import { ClickHouseSink } from "../connectors/clickhouse/clickhouse-sink.ts";
import type { ChangeEvent, SinkChange, StoredRecord, TableSchema } from "../connectors/contracts.ts";
import { ElasticsearchSink } from "../connectors/elasticsearch/elasticsearch-sink.ts";
import type { StagingSink, VersionedSink } from "../connectors/sinks/contract.ts";
import { testLogger, testSinkConfig } from "../connectors/sinks/test-config.ts";
import { recordDecoder } from "../daemon/components.ts";
import { AvroChangeEncoder } from "../schema-registry/change-encoder.ts";
import { LocalRegistry } from "../schema-registry/local-registry.ts";
import { openMemoryStore } from "../schema-registry/log-store.ts";
import { clickhouse, elasticsearch, servicesDir } from "../test/services/ports.ts";

/** Changes per batch (`--batch`, default the sinks' batch.max_rows). */
let BATCH = 5_000;
const TOPIC = "bench.pg.s.rows";

interface Options {
  readonly sink: "clickhouse" | "elasticsearch" | "none";
  readonly changes: number;
  readonly staged: boolean;
  /** Schema id → schema text, for the worker's registry. */
  readonly schemas: readonly (readonly [number, string])[];
}

/** A batch handed to the worker: its records' bytes in one buffer (as a Kafka fetch response holds them). */
interface Packed {
  readonly data: Uint8Array;
  /** Per record: start, key length, value length. */
  readonly index: readonly number[];
  readonly headers: readonly Record<string, Uint8Array>[];
}

const TABLE: TableSchema = {
  source: "pg",
  database: "db",
  schema: "s",
  table: "rows",
  sourceKind: "postgres",
  key: ["id"],
  columns: [
    { name: "id", dbType: "int8", nullable: false, primaryKeyIndex: 1 },
    { name: "account", dbType: "int4", nullable: true },
    { name: "v", dbType: "text", nullable: true },
    { name: "amount", dbType: "numeric(12,2)", nullable: true },
    { name: "at", dbType: "timestamptz", nullable: true },
  ],
};

if (isMainThread) await main();
else await sinkThread(workerData as Options);

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      sink: { type: "string", default: "clickhouse" },
      changes: { type: "string", default: "100000" },
      "old-mb": { type: "string" },
      "young-mb": { type: "string" },
      unbounded: { type: "boolean", default: false },
      batch: { type: "string", default: "5000" },
      "server-pid": { type: "string" },
      "no-staged": { type: "boolean", default: false },
    },
  });
  BATCH = Number(values.batch);
  const sink = values.sink as Options["sink"];
  if (!["clickhouse", "elasticsearch", "none"].includes(sink)) throw new Error(`--sink: clickhouse, elasticsearch or none, not ${sink}`);
  const changes = Number(values.changes);
  const registry = new LocalRegistry(await openMemoryStore());
  const encoder = new AvroChangeEncoder({ registry, topicPrefix: () => "bench.pg" });
  const records: { key: Buffer; value: Buffer; headers: Record<string, Uint8Array> }[] = [];
  const startMicros = BigInt(Date.now()) * 1000n;
  for (let i = 0; i < changes; i++) {
    const id = BigInt(i % Math.ceil(changes / 2));
    const position = 1_000_000n + BigInt(i) * 10n;
    const event: ChangeEvent = {
      op: i < changes / 2 ? "c" : "u",
      key: { id },
      before: null,
      after: { id, account: i % 1000, v: `d41d8cd98f00b204e9800998ecf8427${i % 10}`, amount: ((i % 100_000) / 100).toFixed(2), at: startMicros + BigInt(i) },
      schema: TABLE,
      source: { connector: "postgres", name: "pg", db: "db", schema: "s", table: "rows", position: { commit: position, change: position }, txId: String(1000 + Math.floor(i / 1000)), commitTimeMs: Date.now(), snapshot: false },
    };
    const [record] = await encoder.encode(event);
    records.push({ key: Buffer.from(record!.key!), value: Buffer.from(record!.value!), headers: record!.headers ?? {} });
  }
  const ids = new Set(records.flatMap((r) => [r.key.readUInt32BE(1), r.value.readUInt32BE(1)]));
  const schemas = await Promise.all([...ids].map(async (id) => [id, await registry.getById(id)] as const));
  const planned = sink === "elasticsearch" ? 55 : 45;
  const resourceLimits = values.unbounded ? {} : { maxOldGenerationSizeMb: Number(values["old-mb"] ?? planned), maxYoungGenerationSizeMb: Number(values["young-mb"] ?? 6) };
  console.log(`${sink}: ${changes.toLocaleString("en-US")} changes in batches of ${BATCH}, heap ${values.unbounded ? "unbounded" : `${resourceLimits.maxOldGenerationSizeMb} MiB old + ${resourceLimits.maxYoungGenerationSizeMb} MiB young`}`);
  const worker = new Worker(new URL(import.meta.url), { workerData: { sink, changes, schemas, staged: !values["no-staged"] } satisfies Options, resourceLimits });
  const serverPid = sink === "none" ? null : Number(values["server-pid"] ?? readFileSync(join(servicesDir, "run", `${sink}.pid`), "utf8").trim());
  let serverStart: number | null = null;
  let sent = 0;
  await new Promise<void>((resolve, reject) => {
    worker.on("error", reject);
    worker.on("exit", () => resolve());
    worker.on("message", (message: string) => {
      if (message !== "next") {
        console.log(message);
        return;
      }
      if (serverPid !== null) serverStart ??= processTicks(serverPid);
      const batch = records.slice(sent, sent + BATCH);
      sent += BATCH;
      worker.postMessage(batch.length === 0 ? null : pack(batch));
    });
  });
  if (serverPid !== null && serverStart !== null) {
    const seconds = (processTicks(serverPid) - serverStart) / 100;
    console.log(`server (${sink}, pid ${serverPid}): ${((seconds * 100_000) / changes).toFixed(2)} CPU-seconds per 100k changes`);
  }
}

/** CPU time (user + system) of a process, in clock ticks (1/100 s). */
function processTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]);
}

function pack(records: readonly { key: Buffer; value: Buffer; headers: Record<string, Uint8Array> }[]): Packed {
  const index: number[] = [];
  let at = 0;
  for (const { key, value } of records) {
    index.push(at, key.length, value.length);
    at += key.length + value.length;
  }
  return { data: Buffer.concat(records.flatMap((r) => [r.key, r.value])), index, headers: records.map((r) => r.headers) };
}

async function sinkThread(options: Options): Promise<void> {
  const port = parentPort!;
  const schemas = new Map(options.schemas);
  const decoder = recordDecoder({ getById: (id: number) => Promise.resolve(schemas.get(id)!) });
  const suffix = `${process.pid}_${Date.now() % 100_000}`;
  const sink = createSink(options.sink, suffix);
  await sink.open(AbortSignal.timeout(30_000));
  let gcMs = 0;
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) gcMs += entry.duration;
  });
  observer.observe({ entryTypes: ["gc"] });
  const inbox: (Packed | null)[] = [];
  let wake: (() => void) | null = null;
  port.on("message", (message: Packed | null) => {
    inbox.push(message);
    wake?.();
  });
  let offset = 0n;
  let done = 0;
  let decodeMicros = 0;
  let stagedBatches = 0;
  let started: { cpu: NodeJS.CpuUsage; wall: number } | null = null;
  try {
    for (;;) {
      port.postMessage("next");
      while (inbox.length === 0) await new Promise<void>((resolve) => (wake = resolve));
      const packed = inbox.shift()!;
      if (packed === null) break;
      const data = Buffer.from(packed.data.buffer, packed.data.byteOffset, packed.data.byteLength);
      started ??= { cpu: process.cpuUsage(), wall: performance.now() };
      const first = offset;
      const records = (): StoredRecord[] =>
        packed.headers.map((headers, i) => {
          const [at, keyLength, valueLength] = [packed.index[3 * i]!, packed.index[3 * i + 1]!, packed.index[3 * i + 2]!];
          return { topic: TOPIC, partition: 0, offset: first + BigInt(i), key: data.subarray(at, at + keyLength), value: data.subarray(at + keyLength, at + keyLength + valueLength), headers, timestamp: 0 };
        });
      offset += BigInt(packed.headers.length);
      const staged = options.staged ? (sink.stagedWrite?.(AbortSignal.timeout(600_000)) ?? null) : null;
      if (staged !== null) {
        // As the runtime does: each change staged as it is decoded, nothing of it kept here.
        let count = 0;
        const decodeStart = process.cpuUsage();
        for (const record of records()) {
          const event = await decoder.decode(record);
          if (!event) continue;
          const taken = staged.stage(event);
          if (!(taken instanceof Promise ? await taken : taken)) {
            count = -1;
            break;
          }
          count++;
        }
        const decoded = process.cpuUsage(decodeStart);
        decodeMicros += decoded.user + decoded.system;
        if (count >= 0) {
          await staged.write(AbortSignal.timeout(600_000), [{ topic: TOPIC, partition: 0, offset }]);
          done += count;
          stagedBatches++;
          continue;
        }
      }
      const decodeStart = process.cpuUsage();
      const changes: SinkChange[] = [];
      for (const record of records()) {
        const event = await decoder.decode(record);
        if (event) changes.push({ event, origin: { topic: TOPIC, partition: 0, offset: record.offset } });
      }
      const decoded = process.cpuUsage(decodeStart);
      decodeMicros += decoded.user + decoded.system;
      const result = await sink.write(changes, AbortSignal.timeout(600_000), [{ topic: TOPIC, partition: 0, offset }]);
      if (result.failures.length > 0) throw new Error(`${result.failures.length} changes failed, first: ${result.failures[0]!.error.message}`);
      done += changes.length;
    }
    const cpu = process.cpuUsage(started!.cpu);
    const seconds = (performance.now() - started!.wall) / 1000;
    port.postMessage(
      `CPU ${((cpu.user + cpu.system) / done).toFixed(1)} µs per change (decoding ${(decodeMicros / done).toFixed(1)}), ` +
        `collector pauses ${((gcMs * 1000) / done).toFixed(1)} µs per change, ${Math.round(done / seconds).toLocaleString("en-US")} changes/s` +
        (stagedBatches > 0 ? `, ${stagedBatches} batches staged` : ""),
    );
  } finally {
    observer.disconnect();
    await sink.close();
    await cleanup(options.sink, suffix);
    // The imported modules may leave handles open: this thread is done.
    process.exit(0);
  }
}

function createSink(kind: Options["sink"], suffix: string): Pick<VersionedSink, "open" | "close" | "write"> & Partial<Pick<StagingSink, "stagedWrite">> {
  const logger = testLogger();
  switch (kind) {
    case "clickhouse":
      return new ClickHouseSink(
        testSinkConfig("clickhouse", { name: `bench_${suffix}`, url: clickhouse.url, user: clickhouse.username, password: clickhouse.password, database: `sluice_sink_cpu_${suffix}`, native_deletes: false }),
        { logger },
      );
    case "elasticsearch":
      return new ElasticsearchSink(testSinkConfig("elasticsearch", { name: `bench_${suffix}`, nodes: [elasticsearch.url], bulk_bytes: 5 * 2 ** 20, target: `sluice_sink_cpu_${suffix}_{table}` }), { logger });
    case "none":
      return { open: () => Promise.resolve(), close: () => Promise.resolve(), write: () => Promise.resolve({ failures: [], offsetsStored: true }) };
  }
}

/** Drops what the run created on the server. */
async function cleanup(kind: Options["sink"], suffix: string): Promise<void> {
  if (kind === "clickhouse") {
    const client = createClient({ url: clickhouse.url, username: clickhouse.username, password: clickhouse.password, log: { level: ClickHouseLogLevel.OFF } });
    await client.command({ query: `DROP DATABASE IF EXISTS sluice_sink_cpu_${suffix}` }).catch(() => undefined);
    await client.close();
  } else if (kind === "elasticsearch") {
    // What the index still holds in memory is written at its next refresh: part of the server's cost per change.
    await fetch(`${elasticsearch.url}/sluice_sink_cpu_${suffix}_*/_refresh`, { method: "POST" }).catch(() => undefined);
    await fetch(`${elasticsearch.url}/sluice_sink_cpu_${suffix}_*`, { method: "DELETE" }).catch(() => undefined);
    // The sink's one stored offset (delete by query is not in every distribution).
    await fetch(`${elasticsearch.url}/sluice-offsets/_doc/${encodeURIComponent(`bench_${suffix}/${TOPIC}/0`)}`, { method: "DELETE" }).catch(() => undefined);
  }
}
