/**
 * The memory budget (`memory`, docs/operations.md#memory): how one `sluice run` process splits it
 * between the V8 heaps of its threads (the main thread: capture, HTTP, registry; one thread per
 * sink), the sources' read-ahead, the sinks' batches, DuckDB and SQLite, so its RSS stays under it.
 *
 * The reserves are measured (Node 24 running the TypeScript sources, docs/benchmarks.md): a process
 * with the daemon's modules loaded holds ~120 MiB outside its V8 heap (the node binary's pages, the
 * type-stripping loader, DuckDB's library, native buffers, malloc's arenas), each sink thread ~12 MiB
 * outside its heap, and each thread's heap ~20 MiB of compiled code and module state at rest. What is left
 * after the reserves goes to the heaps by weight; the read-ahead and the batches live inside those
 * heaps and are sized from them. A setting the user wrote wins over its derived value.
 */
import { availableParallelism } from "node:os";
import type { SluiceConfig } from "./schema.ts";
import { formatSize } from "./units.ts";

const MiB = 2 ** 20;

/** Budget when `memory` is not set (raised to what the process needs at least, see planMemory). */
export const DEFAULT_MEMORY_BYTES = 256 * MiB;
/**
 * Without a `memory` setting, the share of a container's memory limit the budget may take: four
 * fifths, the other fifth (a quarter above the budget, as docs/operations.md advises when setting
 * `memory`) for what the kernel counts against the limit besides the RSS the budget keeps: socket
 * buffers and page tables, files in a tmpfs /tmp (Node's compile cache, ~10 MiB), the page cache of
 * the embedded log and DuckDB files, and RSS above the plan at a peak (docs/benchmarks.md).
 */
export const CONTAINER_LIMIT_SHARE = 0.8;
/** Read-ahead of a source and batch bytes of a sink used outside a daemon (tools, tests) where no plan applies. */
export const STANDALONE_READ_AHEAD_BYTES = 16 * MiB;
export const STANDALONE_BATCH_BYTES = 8 * MiB;
const MIN_CAPTURE_BATCH = 1 * MiB;

/**
 * Most bytes of source messages one capture batch takes (besides its count of changes): an eighth
 * of the source's read-ahead, at least 1 MiB. Capture holds up to three batches' worth at once (one
 * read and encoded, two being stored; a third small one is stored beside them only while the three
 * stay within two batches' bytes, daemon/capture.ts), each as decoded changes, encoded records and the
 * request that stores them: about twelve times this, which fits the main heap's share beside the
 * read-ahead (CAPTURE_OLD plus the read-ahead's own size again). A single bigger change goes alone.
 */
export function captureBatchBytes(readAheadBytes: number): number {
  return Math.max(MIN_CAPTURE_BATCH, Math.floor(readAheadBytes / 8));
}

/**
 * About the most bytes of rows one online snapshot chunk reads (besides its count, chunk_rows):
 * the chunks in flight together take about the source's read-ahead, and one chunk, handed on
 * whole in one capture batch at its high watermark, stays within a capture batch's bytes. A
 * resumed initial snapshot reads its tables this way too. Without it, chunk_rows (10,000) rows of
 * 16 KiB were 160 MiB at once.
 */
export function onlineChunkBytes(readAheadBytes: number, chunksInFlight: number): number {
  return Math.max(1, Math.min(captureBatchBytes(readAheadBytes), Math.floor(readAheadBytes / Math.max(1, chunksInFlight))));
}

/**
 * RSS of the process outside every V8 heap: runtime, code, native libraries, socket and encode
 * buffers, malloc's arenas (two with MALLOC_ARENA_MAX=2, which sluice run sets: daemon/memory-exec.ts).
 */
const PROCESS_RESERVE = 120 * MiB;
/** DuckDB's memory outside its memory_limit (its threads, allocations the buffer manager does not count); measured in bench/memory-budget.ts. */
const DUCKDB_OUTSIDE = 24 * MiB;
/** RSS of one sink thread outside its V8 heap: its isolate, stacks, native buffers. */
const THREAD_RESERVE = 12 * MiB;
/** A seal worker (capture of personal columns, daemon/governance/seal-workers.ts): a thread and its heap, limited to 30 MiB there. */
const SEAL_WORKER = THREAD_RESERVE + 30 * MiB;
/**
 * Seal workers of a process capturing personal columns, whatever its cores. One keeps ahead of
 * capture's main thread, which feeds it: it seals a row image in 5-7 µs of CPU where the main thread
 * spends 13-16 µs per governed change (docs/benchmarks.md, a loaded 2-core machine). One per core
 * beside the main thread (at most four), as before, reserved 126 MiB on 4 cores: the default budget
 * rose to 305 MiB and capture's heap fell to its floor (52 + 6 MiB, a 2 MiB read-ahead), which cost
 * governed capture 1.14x the CPU per change of the 2-core plan (measured side by side on 2 cores, the
 * 4-core plan forced, one worker in both).
 */
export const SEAL_WORKERS = 1;
/** Old generation a thread needs besides its buffers: the code and state of its modules, its working set. */
const MAIN_BASE_OLD = 32 * MiB;
/** Capture's working set on top of that: batches in flight, Avro encoding, the producer (a 200,000-row snapshot peaked at 35 MiB in use with a 3 MiB read-ahead). */
const CAPTURE_OLD = 16 * MiB;
/**
 * A sink thread's: its modules hold 19-21 MiB of heap at rest (a DuckDB sink idle after start,
 * docs/benchmarks.md "The process's fixed footprint"), ~5 MiB less since it no longer loads the
 * config schema (zod), so 4 MiB less than the 36 MiB it was, with the same room to work.
 */
const SINK_BASE_OLD = 32 * MiB;
/**
 * A DuckDB sink's thread holds more: ~22 MiB in use at rest, 31-35 MiB writing 1 MiB batches (the
 * appender's values). At the base above plus its batches (39 MiB) its heap sat at the limit and V8
 * collected all the time (GC threads at 2.2x the CPU of an unbounded run's); 12 MiB more lets it collect less often.
 */
const DUCKDB_SINK_OLD = 12 * MiB;
/** Least read-ahead of a derived source and batch of a derived sink. */
const MIN_READ_AHEAD = 2 * MiB;
const MIN_BATCH = 1 * MiB;
const MAX_DERIVED_READ_AHEAD = 64 * MiB;
const MAX_DERIVED_BATCH = 64 * MiB;
/** A batch costs about this many times its record bytes in the sink thread's heap (decoded rows, the target's request). */
const BATCH_HEAP_FACTOR = 3;

/**
 * What a sink's batches cost in its heap, per byte of batch.max_bytes. A sink with a staged write
 * (ClickHouse, Elasticsearch) reads and stages the next batch while one is written
 * (daemon/sink-runner.ts writeBehind) and keeps the records of the one written, to write them
 * again through its plain write should the staged write fail: one batch's records more.
 */
function batchHeapFactor(sink: Sink): number {
  return sink.kind === "clickhouse" || sink.kind === "elasticsearch" ? BATCH_HEAP_FACTOR + 1 : BATCH_HEAP_FACTOR;
}
/**
 * A sink's Kafka reader (connectors/kafka/kafka-consumer.ts) holds its read-ahead (counted with
 * each record's objects) and the fetch response being decoded: kafkajs turns a response into message
 * objects at once, ~4 times its bytes in the heap for records of ~100 bytes (measured: a sink thread
 * at its least heap ran out of memory on 16 MiB fetches and read-ahead of such records). It gets a
 * quarter of the sink heap's room beyond its base (the batches the rest), within these bounds. A
 * fetch response bigger than fetchBytes still comes when it is one record batch (the broker returns
 * the first batch even when it exceeds the limits), so a record up to topics.max_record_bytes stays readable.
 */
const READER_SHARE = 4;
const FETCH_HEAP_FACTOR = 4;
/**
 * The room kept for a read-ahead, per byte of it. A queued record counts 96 bytes besides its key
 * and value (kafka-consumer.ts RECORD_HEAP_OVERHEAD), where it counted 384 while each record held
 * two Buffer views and its offset and time as objects: half the bytes now hold about as many records
 * (~2,900 of ~270 bytes in 1 MiB, ~3,200 in 2 MiB before), and the other half of the room stays in
 * the sink's old generation, where its collector works (docs/benchmarks.md, issue 16).
 */
const READ_AHEAD_ROOM_FACTOR = 2;
const MIN_READER_READ_AHEAD = 1 * MiB;
const MAX_READER_READ_AHEAD = 8 * MiB;
const MIN_FETCH = 1 * MiB;
const MAX_FETCH = 8 * MiB;
const MAX_PARTITION_FETCH = 4 * MiB;
const MIN_READER = READ_AHEAD_ROOM_FACTOR * MIN_READER_READ_AHEAD + FETCH_HEAP_FACTOR * MIN_FETCH;
/**
 * The main thread's Kafka readers (the instances topic, governance's key and erasure topics): few,
 * small records, so the least fetches and a 1 MiB read-ahead; counted once in the main heap's least.
 */
const MAIN_READER: KafkaReaderMemory = { readAheadBytes: 1 * MiB, fetchBytes: MIN_FETCH, partitionFetchBytes: MIN_FETCH };
const MAIN_READERS = MAIN_READER.readAheadBytes + FETCH_HEAP_FACTOR * MAIN_READER.fetchBytes;
const MIN_YOUNG = 6 * MiB;
const MAX_YOUNG = 48 * MiB;
/**
 * DuckDB's least memory_limit: a batch's staging table, the primary-key index it probes and the
 * widest record the topic log accepts (topics.max_record_bytes) must fit, or the write fails
 * (SINK_OUT_OF_MEMORY) and, when one change alone does not fit, halts its table after a few tries
 * (connectors/duckdb/duckdb-sink.ts). Measured with one thread (bench notes in
 * docs/benchmarks.md): a 16 MiB record commits at 96 MiB and not at 80, 8 MiB at 64, 4 MiB at 32,
 * 2 MiB at 24; so 16 MiB plus five times the widest record, at least 24 MiB.
 */
const DUCKDB_BASE = 16 * MiB;
const DUCKDB_PER_RECORD = 5;
const MIN_DUCKDB = 24 * MiB;
/** Below this memory_limit DuckDB runs one thread (each thread keeps buffers and allocator caches of its own); above, one per 16 MiB. */
const DUCKDB_ONE_THREAD_BELOW = 128 * MiB;

/** The least memory_limit of a DuckDB sink whose topics carry records of up to `maxRecordBytes`. */
export function duckdbFloor(maxRecordBytes: number): number {
  return Math.max(MIN_DUCKDB, Math.ceil((DUCKDB_BASE + DUCKDB_PER_RECORD * maxRecordBytes) / MiB) * MiB);
}

function duckdbThreads(memoryLimitBytes: number, cores: number): number {
  return memoryLimitBytes < DUCKDB_ONE_THREAD_BELOW ? 1 : clamp(Math.floor(memoryLimitBytes / (16 * MiB)), 1, cores);
}
const MIN_SQLITE_CACHE = 1 * MiB;
const MAX_SQLITE_CACHE = 64 * MiB;
/** Heap weights: capture decodes, encodes and publishes on the main thread; without it, the main thread serves HTTP only. */
const WEIGHT_CAPTURE = 3;
const WEIGHT_IDLE_MAIN = 1;
const WEIGHT_SINK = 2;

export interface HeapLimits {
  /** V8 old generation (`--max-old-space-size`, a worker's maxOldGenerationSizeMb), whole MiB. */
  readonly oldMb: number;
  /** V8 young generation: 3 semi-spaces (a worker's maxYoungGenerationSizeMb; `--max-semi-space-size` is a third), whole MiB. */
  readonly youngMb: number;
}

/** A sink's Kafka consumer: how far it reads ahead of the sink and how much one fetch asks for. */
export interface KafkaReaderMemory {
  /** Records fetched ahead of the sink's poll before fetching pauses. */
  readonly readAheadBytes: number;
  /** Most bytes of one fetch response (kafkajs maxBytes). */
  readonly fetchBytes: number;
  /** Most bytes of one partition in a fetch response (kafkajs maxBytesPerPartition). */
  readonly partitionFetchBytes: number;
}

export interface SinkMemory {
  readonly heap: HeapLimits;
  readonly batchBytes: number;
  /** Kafka topics: the sink's consumer, sized from its heap. */
  readonly reader?: KafkaReaderMemory;
  /** DuckDB sinks: `SET memory_limit` and `threads`. */
  readonly duckdb?: { readonly memoryLimitBytes: number; readonly threads: number };
}

export interface MemoryPlan {
  readonly budgetBytes: number;
  /**
   * How the budget was chosen: set in the config, the default, the default raised to what the
   * process needs, or sized from the container's memory limit (below what the default would take).
   */
  readonly budgetFrom: "config" | "default" | "raised" | "container";
  /** The container's memory limit the plan was made under (the budget is sized from it only without a `memory` setting). */
  readonly containerLimitBytes: number | null;
  /** When the default was raised: what the process needs, part by part (for the warning at start). */
  readonly raisedBecause?: string;
  /** Kept outside the V8 heaps (runtime, thread stacks and isolates, native buffers). */
  readonly reservedBytes: number;
  readonly main: HeapLimits;
  /**
   * Kafka topics: the limits of the main thread's readers (the instances topic, governance's key
   * and erasure topics), fixed at the least a reader takes and counted in the main heap's least.
   */
  readonly mainReader: KafkaReaderMemory | null;
  readonly sources: Readonly<Record<string, { readonly readAheadBytes: number }>>;
  readonly sinks: Readonly<Record<string, SinkMemory>>;
  /** Embedded topic log: SQLite page cache per connection (the main thread and each sink thread hold one). */
  readonly sqliteCacheBytes: number | null;
}

/** The parts of a config one process runs (daemon/roles.ts). */
export interface ProcessParts {
  readonly sources: readonly string[];
  readonly sinks: readonly string[];
}

export class MemoryBudgetError extends Error {
  readonly neededBytes: number;
  constructor(message: string, neededBytes: number) {
    super(message);
    this.neededBytes = neededBytes;
  }
}

const mib = (bytes: number) => Math.floor(bytes / MiB);
const wholeMiB = (bytes: number) => Math.floor(bytes / MiB) * MiB;
const clamp = (value: number, min: number, max: number) => Math.min(max, Math.max(min, value));
const show = (bytes: number) => (bytes % MiB === 0 ? `${bytes / MiB}MiB` : formatSize(bytes));

type Sink = SluiceConfig["sinks"][number];

interface Part {
  readonly label: string;
  readonly weight: number;
  /** Least old generation this heap works with (its base plus buffers the user set). */
  readonly minOld: number;
}

/**
 * The split of `config.memory` (or the default) for a process running `parts`. A budget set in the
 * config that cannot hold them throws MemoryBudgetError naming what needs what; without a
 * `memory` setting the default is raised to the least the process needs, and lowered to four
 * fifths of `containerLimitBytes` (the cgroup's limit, runtime/cgroup-memory.ts) when that is
 * less, though never below that least.
 */
export function planMemory(config: SluiceConfig, parts: ProcessParts, cores = availableParallelism(), containerLimitBytes: number | null = null): MemoryPlan {
  const sources = config.sources.filter((s) => parts.sources.includes(s.name));
  const sinks = config.sinks.filter((s) => parts.sinks.includes(s.name));
  const embedded = config.topics.kind === "embedded";
  const given = config.memory;
  const personal = sources.some((s) => Object.values(s.governance?.tables ?? {}).some((t) => t.personal !== undefined));
  const sealWorkers = personal ? SEAL_WORKERS : 0;

  const duckdbLeast = duckdbFloor(config.topics.max_record_bytes);
  const sizeAt = (budget: number) => {
    const sqliteCache = embedded ? (config.topics.kind === "embedded" ? (config.topics.cache_size ?? clamp(Math.round(budget / 128), MIN_SQLITE_CACHE, MAX_SQLITE_CACHE)) : 0) : 0;
    const duckdbSinks = sinks.filter((s): s is Extract<Sink, { kind: "duckdb" }> => s.kind === "duckdb");
    const duckdb = new Map(duckdbSinks.map((s) => [s.name, s.memory_limit ?? Math.max(duckdbLeast, Math.floor(budget / 5 / duckdbSinks.length / MiB) * MiB)]));
    const reserved = PROCESS_RESERVE + sinks.length * THREAD_RESERVE + sealWorkers * SEAL_WORKER + (embedded ? (1 + sinks.length) * sqliteCache : 0) + [...duckdb.values()].reduce((a, b) => a + b + DUCKDB_OUTSIDE, 0);
    return { sqliteCache, duckdb, reserved };
  };

  const explicitReadAhead = sources.reduce((sum, s) => sum + (s.max_buffer_bytes ?? 0), 0);
  const derivedSources = sources.filter((s) => s.max_buffer_bytes === undefined).length;
  const reader = config.topics.kind === "kafka" ? MIN_READER : 0;
  const mainReaders = config.topics.kind === "kafka" ? MAIN_READERS : 0;
  const readers = mainReaders > 0 ? `with its Kafka readers' ${show(mainReaders)}` : "";
  const main: Part = sources.length > 0
    ? { label: `the main thread (capture${readers ? `, ${readers}` : ""})`, weight: WEIGHT_CAPTURE, minOld: MAIN_BASE_OLD + mainReaders + CAPTURE_OLD + explicitReadAhead + derivedSources * MIN_READ_AHEAD * 2 }
    : { label: `the main thread${readers ? ` (${readers})` : ""}`, weight: WEIGHT_IDLE_MAIN, minOld: MAIN_BASE_OLD + mainReaders };
  const sinkParts = sinks.map((s): Part => ({
    label: reader > 0 ? `sink ${s.name} (with its Kafka reader's ${show(reader)})` : `sink ${s.name}`,
    weight: WEIGHT_SINK,
    minOld: sinkBaseOld(s) + reader + batchHeapFactor(s) * (s.batch.max_bytes ?? MIN_BATCH),
  }));
  const heapParts = [main, ...sinkParts];
  const minHeaps = heapParts.reduce((sum, p) => sum + p.minOld + MIN_YOUNG, 0);
  // What the process needs at least: its reserves at their floors plus every heap at its least.
  const floor = sizeAt(0);
  const needed = Math.ceil((floor.reserved + minHeaps) / MiB) * MiB;

  let budget = given ?? DEFAULT_MEMORY_BYTES;
  let budgetFrom: MemoryPlan["budgetFrom"] = given === undefined ? "default" : "config";
  let raisedBecause: string | undefined;
  const withinLimit = given === undefined ? budgetWithinLimit(containerLimitBytes) : null;
  if (withinLimit !== null && withinLimit < Math.max(budget, needed)) {
    budget = withinLimit;
    budgetFrom = "container";
  }
  if (budget < needed) {
    if (given !== undefined) throw new MemoryBudgetError(tooSmall(given, needed, floor.reserved, heapParts, sources.length, sinks.length), needed);
    budget = needed;
    budgetFrom = "raised";
    raisedBecause = needs(needed, floor.reserved, heapParts, sources.length, sinks.length);
  }

  let { sqliteCache, duckdb, reserved } = sizeAt(budget);
  if (budget - reserved < minHeaps) ({ sqliteCache, duckdb, reserved } = floor);
  // Each heap gets its least plus a share of the rest by weight.
  const spare = budget - reserved - minHeaps;
  const weights = heapParts.reduce((sum, p) => sum + p.weight, 0);
  const heaps = heapParts.map((p) => heapLimits(p.minOld + MIN_YOUNG + (spare * p.weight) / weights, p.minOld));

  const mainHeap = heaps[0]!;
  const readAheadPool = Math.max(0, (mainHeap.oldMb * MiB - MAIN_BASE_OLD - mainReaders - CAPTURE_OLD - explicitReadAhead) / 2);
  const sourcePlans = Object.fromEntries(
    sources.map((s) => [s.name, { readAheadBytes: s.max_buffer_bytes ?? clamp(Math.floor(readAheadPool / Math.max(1, derivedSources) / MiB) * MiB, MIN_READ_AHEAD, MAX_DERIVED_READ_AHEAD) }]),
  );
  const sinkPlans = Object.fromEntries(
    sinks.map((s, i) => {
      const heap = heaps[i + 1]!;
      const working = heap.oldMb * MiB - sinkBaseOld(s);
      const readerPlan = reader > 0 ? kafkaReader(s.batch.max_bytes === undefined ? working / READER_SHARE : working - batchHeapFactor(s) * s.batch.max_bytes) : undefined;
      const readerBytes = readerPlan ? READ_AHEAD_ROOM_FACTOR * readerPlan.readAheadBytes + FETCH_HEAP_FACTOR * readerPlan.fetchBytes : 0;
      const batchBytes = s.batch.max_bytes ?? clamp(wholeMiB((working - readerBytes) / batchHeapFactor(s)), MIN_BATCH, MAX_DERIVED_BATCH);
      const limit = duckdb.get(s.name);
      const plan: SinkMemory = {
        heap,
        batchBytes,
        ...(readerPlan ? { reader: readerPlan } : {}),
        ...(limit === undefined ? {} : { duckdb: { memoryLimitBytes: limit, threads: s.kind === "duckdb" && s.threads !== undefined ? s.threads : duckdbThreads(limit, cores) } }),
      };
      return [s.name, plan];
    }),
  );
  const mainReader = mainReaders > 0 ? MAIN_READER : null;
  return { budgetBytes: budget, budgetFrom, ...(raisedBecause === undefined ? {} : { raisedBecause }), containerLimitBytes, reservedBytes: reserved, main: mainHeap, mainReader, sources: sourcePlans, sinks: sinkPlans, sqliteCacheBytes: embedded ? sqliteCache : null };
}

/** The budget a container's memory limit leaves room for (CONTAINER_LIMIT_SHARE of it, whole MiB); null without a limit. */
export function budgetWithinLimit(containerLimitBytes: number | null): number | null {
  return containerLimitBytes === null ? null : wholeMiB(containerLimitBytes * CONTAINER_LIMIT_SHARE);
}

/**
 * Old generation a sink's thread needs besides its batches and Kafka reader. An Elasticsearch
 * sink's bulk bodies are Buffers outside the heap (one in flight at a time, within `bulk_bytes`),
 * but 2 × `bulk_bytes` stays in its old generation: counted outside the heap instead, the
 * same budget leaves the thread 10 MiB less old generation at the default `bulk_bytes` (41 MiB
 * instead of 51 in the pipeline's least budget), and it spent ~1.2× the CPU per change, most of it
 * collecting (bench/sink-cpu.ts and bench/pipeline-throughput.ts, 2026-12-06, docs/benchmarks.md). The bodies' bytes are within the
 * room the plan leaves between RSS and the budget (peak RSS ~250 MiB of 311).
 */
function sinkBaseOld(sink: Sink): number {
  return SINK_BASE_OLD + (sink.kind === "elasticsearch" ? 2 * sink.bulk_bytes : 0) + (sink.kind === "duckdb" ? DUCKDB_SINK_OLD : 0);
}

/**
 * A sink's Kafka reader within `room` bytes of its heap: half for decoding a fetch response, the
 * rest for the read-ahead (half of it read ahead, see READ_AHEAD_ROOM_FACTOR); at least MIN_READER
 * (the sink's least heap counts it).
 */
function kafkaReader(room: number): KafkaReaderMemory {
  const fetchBytes = clamp(wholeMiB(room / 2 / FETCH_HEAP_FACTOR), MIN_FETCH, MAX_FETCH);
  const readAheadBytes = clamp(wholeMiB((room - FETCH_HEAP_FACTOR * fetchBytes) / READ_AHEAD_ROOM_FACTOR), MIN_READER_READ_AHEAD, MAX_READER_READ_AHEAD);
  return { readAheadBytes, fetchBytes, partitionFetchBytes: clamp(wholeMiB(fetchBytes / 2), MIN_FETCH, MAX_PARTITION_FETCH) };
}

/**
 * A heap of `bytes` in whole MiB: a young generation of at most a quarter (short-lived garbage of
 * a busy thread is cheapest collected there) and at most half the room above the old
 * generation's least `minOld`, the rest old generation. A heap just above its least gives its room
 * to the old generation, which holds the batches and the read-ahead: measured on a sink thread
 * (docs/benchmarks.md), a larger young generation cost CPU unless the old one was well above its
 * least, and the old generation's room is what lets the plan give a sink larger batches. V8 runs a
 * mark-compact instead of a scavenge when the old generation has no room for the young one: the
 * sink threads of the default two-sink plan with 12, 24 and 48 MiB young generations and the same old
 * ones took 1.0, 1.4 and 4.1 times the daemon's CPU per change draining a backlog. V8 rounds
 * a semi-space up to a power of two and the young generation is 3 of them, so it is 3 × 2^n MiB.
 */
function heapLimits(bytes: number, minOld: number): HeapLimits {
  const total = mib(bytes);
  const leastOld = Math.ceil(minOld / MiB);
  const youngFor = (mb: number) => 3 * 2 ** Math.floor(Math.log2(Math.max(1, mb / 3)));
  const young = Math.max(mib(MIN_YOUNG), Math.min(youngFor(clamp(total / 4, mib(MIN_YOUNG), mib(MAX_YOUNG))), youngFor(Math.max(1, (total - leastOld) / 2))));
  return { oldMb: Math.max(leastOld, total - young), youngMb: young };
}

/** What a process needs at least, part by part: "(1 source captured, 2 sinks): it needs at least ...". */
function needs(needed: number, reserved: number, heaps: readonly Part[], sources: number, sinks: number): string {
  const heapText = heaps.map((p) => `${p.label} ${show(Math.ceil((p.minOld + MIN_YOUNG) / MiB) * MiB)}`).join(", ");
  return (
    `(${sources} source${sources === 1 ? "" : "s"} captured, ${sinks} sink${sinks === 1 ? "" : "s"}): ` +
    `it needs at least ${show(needed)}: ${show(Math.ceil(reserved / MiB) * MiB)} outside the heaps (runtime, sink threads, DuckDB, SQLite) and heaps of ${heapText}`
  );
}

function tooSmall(given: number, needed: number, reserved: number, heaps: readonly Part[], sources: number, sinks: number): string {
  return (
    `memory ${show(given)} is too small for this process ${needs(needed, reserved, heaps, sources, sinks)}. ` +
    `Raise memory to ${show(needed)} or more, lower the max_buffer_bytes / batch.max_bytes / memory_limit settings, or run sinks in another process (--role)`
  );
}

/**
 * The config with the plan's derived values written in where the user set none: each source's
 * max_buffer_bytes, each sink's batch.max_bytes, DuckDB's memory_limit and threads, the embedded
 * log's cache_size. Parts the process does not run keep their settings.
 */
export function applyMemoryPlan(config: SluiceConfig, plan: MemoryPlan): SluiceConfig {
  return {
    ...config,
    memory: plan.budgetBytes,
    sources: config.sources.map((s) => (plan.sources[s.name] ? { ...s, max_buffer_bytes: plan.sources[s.name]!.readAheadBytes } : s)),
    sinks: config.sinks.map((s) => {
      const sink = plan.sinks[s.name];
      if (!sink) return s;
      const batch = { ...s.batch, max_bytes: sink.batchBytes };
      if (s.kind === "duckdb" && sink.duckdb) return { ...s, batch, memory_limit: sink.duckdb.memoryLimitBytes, threads: sink.duckdb.threads };
      return { ...s, batch };
    }),
    topics: config.topics.kind === "embedded" && plan.sqliteCacheBytes !== null ? { ...config.topics, cache_size: plan.sqliteCacheBytes } : config.topics,
  };
}

/**
 * How far V8 lets an old generation grow past what its last full collection kept, in per cent
 * (`--heap-growing-percent`, process-wide: the sink threads' heaps too). V8 picks the factor from
 * the heap's maximum, and for heaps under 256 MiB (every share of the default budget) that is
 * 1.3: the main thread of a capture keeping ~45 MiB alive ran a mark-compact every ~15 MiB
 * promoted, and the collector took about half of capture's CPU. At 2 (100 %) a capture drain took
 * 0.79-0.96× the CPU per change (docs/benchmarks.md, CPU per change, step 13); each heap still
 * stops at its maximum, so the plan's bound holds.
 */
export const HEAP_GROWING_PERCENT = 100;

/**
 * V8's allocation-site pretenuring, off (process-wide). In the daemon's sink threads V8 pretenured
 * the decoder's allocation sites, so every change's decoded event (~0.4 KB), which the staged write
 * lets go of at once, was allocated in the old generation and freed only by mark-compacts: in a
 * heap of the default budget's size, ~30 % of what survived a scavenge in the ClickHouse thread.
 * Without it the sinks and their collector took 0.84-0.90× the CPU per change in one set of runs
 * and 0.96× (0.85-1.03 per pair) in another, at 5-10 MiB less peak RSS; capture the same CPU as
 * with it (docs/benchmarks.md, "The sink threads' allocation per change").
 */
export const PRETENURING_FLAG = "--no-allocation-site-pretenuring";

/** V8 flags that give the main thread its share: `--max-old-space-size` and `--max-semi-space-size` (a third of the young generation), how far the old generation grows between full collections, and no pretenuring. */
export function mainHeapFlags(plan: MemoryPlan): string[] {
  return [`--max-old-space-size=${plan.main.oldMb}`, `--max-semi-space-size=${plan.main.youngMb / 3}`, `--heap-growing-percent=${HEAP_GROWING_PERCENT}`, PRETENURING_FLAG];
}
