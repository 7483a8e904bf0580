/**
 * Every Prometheus metric Sluice exports, in one place: names `sluice_<noun>_<unit>` in base
 * units; labels only from bounded sets (source, table, sink, op), never row values.
 */
import { createRequire } from "node:module";
import type * as PromClient from "prom-client";
import type { ChangeEvent } from "../connectors/contracts.ts";
import { commitTimesOf } from "./batch-counts.ts";
import type { RebuildProgress } from "./rebuild-progress.ts";

export { commitTimesOf, countPerTableAndOp } from "./batch-counts.ts";

/*
 * prom-client's metric classes without the rest of it. Its index loads the default process metrics (with
 * OpenTelemetry's API), the Pushgateway and the cluster aggregator too: 1.7 MiB of a heap at rest, kept for good,
 * against 0.2 MiB for these four. Every sink thread has a SluiceMetrics, and what its modules hold is old generation
 * taken from the room its batches get (config/memory.ts); the default metrics load only where they are collected.
 */
const requirePromClient = createRequire(import.meta.url);
const Counter = requirePromClient("prom-client/lib/counter") as typeof PromClient.Counter;
const Gauge = requirePromClient("prom-client/lib/gauge") as typeof PromClient.Gauge;
const Histogram = requirePromClient("prom-client/lib/histogram") as typeof PromClient.Histogram;
type Histogram<L extends string> = PromClient.Histogram<L>;
const Registry = requirePromClient("prom-client/lib/registry") as typeof PromClient.Registry;
const collectDefaultMetrics = (config: PromClient.DefaultMetricsCollectorConfiguration<PromClient.RegistryContentType>): void =>
  (requirePromClient("prom-client/lib/defaultMetrics") as typeof PromClient.collectDefaultMetrics)(config);

/** For each transaction of `events` (commitTimesOf) and each stage: the time from its commit to the stage's wall-clock time (ms). */
export function observeStages<L extends string>(histogram: Histogram<L>, labels: Partial<Record<L, string>>, events: readonly ChangeEvent[], stages: Readonly<Record<string, number>>): void {
  observeCommitStages(histogram, labels, commitTimesOf(events), stages);
}

/** observeStages of commit times already taken from the events (commitTimesOf). */
export function observeCommitStages<L extends string>(histogram: Histogram<L>, labels: Partial<Record<L, string>>, commits: readonly number[], stages: Readonly<Record<string, number>>): void {
  if (commits.length === 0) return;
  for (const [stage, atMs] of Object.entries(stages)) {
    const stageLabels = { ...labels, stage } as Partial<Record<L, string>>;
    for (const commitMs of commits) histogram.observe(stageLabels, Math.max(0, atMs - commitMs) / 1000);
  }
}

/** A gauge per sink whose value is read at each collection: seconds since the time `sources` gives (0 for null). */
function gaugeOfSinks(sources: ReadonlyMap<string, () => number | null>, options: { name: string; help: string; registers: PromClient.Registry[] }): PromClient.Gauge<"sink"> {
  return new Gauge({
    ...options,
    labelNames: ["sink"] as const,
    collect() {
      const now = performance.now();
      for (const [sink, since] of sources) {
        const at = since();
        this.set({ sink }, at === null ? 0 : Math.max(0, (now - at) / 1000));
      }
    },
  });
}

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2.5, 5, 10, 30, 60];

export class SluiceMetrics {
  readonly registry = new Registry();

  readonly changesCaptured = new Counter({
    name: "sluice_changes_captured_total",
    help: "Row changes captured and durably stored in the topic log",
    labelNames: ["source", "table", "op"] as const,
    registers: [this.registry],
  });
  readonly sourceLag = new Gauge({
    name: "sluice_source_lag_seconds",
    help: "Now minus the commit time of the last acknowledged change",
    labelNames: ["source"] as const,
    registers: [this.registry],
  });
  readonly lastAckedCommitTime = new Gauge({
    name: "sluice_source_last_acked_commit_timestamp_seconds",
    help: "Commit time of the last acknowledged change",
    labelNames: ["source"] as const,
    registers: [this.registry],
  });
  readonly slotLagBytes = new Gauge({
    name: "sluice_postgres_slot_lag_bytes",
    help: "Current WAL position minus the slot's confirmed flush position",
    labelNames: ["source"] as const,
    registers: [this.registry],
  });
  readonly slotRetainedBytes = new Gauge({
    name: "sluice_postgres_slot_retained_wal_bytes",
    help: "WAL the slot keeps on the server (current WAL position minus restart position)",
    labelNames: ["source"] as const,
    registers: [this.registry],
  });
  readonly threadHeapUsed = new Gauge({
    name: "sluice_thread_heap_used_bytes",
    help: "V8 heap in use per thread (main: capture, HTTP, registry; sink <name>: each sink's thread); the process's RSS is sluice_process_resident_memory_bytes",
    labelNames: ["thread"] as const,
    registers: [this.registry],
  });
  readonly threadHeapLimit = new Gauge({
    name: "sluice_thread_heap_limit_bytes",
    help: "V8 heap limit per thread",
    labelNames: ["thread"] as const,
    registers: [this.registry],
  });
  readonly memoryBudget = new Gauge({
    name: "sluice_memory_budget_bytes",
    help: "The memory budget this process keeps its RSS (sluice_process_resident_memory_bytes) under: the config's memory, or the default",
    registers: [this.registry],
  });
  readonly publishLatency = new Histogram({
    name: "sluice_topic_publish_duration_seconds",
    help: "Time to durably store one batch in the topic log",
    labelNames: ["source"] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  readonly captureLatency = new Histogram({
    name: "sluice_capture_latency_seconds",
    help: "Source commit \u2192 captured (read from the source into a batch) and \u2192 durable (stored in the topic log), per transaction (up to 64 a batch); the commit time is the database's clock; snapshot reads are left out",
    labelNames: ["source", "stage"] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly sinkApplied = new Counter({
    name: "sluice_sink_changes_applied_total",
    help: "Changes applied by a sink",
    labelNames: ["sink", "table", "op"] as const,
    registers: [this.registry],
  });
  readonly sinkLagRecords = new Gauge({
    name: "sluice_sink_lag_records",
    help: "Records in the topic log not yet applied by the sink",
    labelNames: ["sink"] as const,
    registers: [this.registry],
  });
  readonly sinkFreshness = new Gauge({
    name: "sluice_sink_freshness_seconds",
    help: "Now minus the commit time of the last change the sink applied",
    labelNames: ["sink"] as const,
    registers: [this.registry],
  });
  readonly sinkApplyLatency = new Histogram({
    name: "sluice_sink_batch_apply_duration_seconds",
    help: "Time to apply one batch to the sink's target",
    labelNames: ["sink"] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly sinkLatency = new Histogram({
    name: "sluice_sink_latency_seconds",
    help: "Source commit \u2192 polled (the sink took the change from the topic log into a batch) and \u2192 applied (committed to the target; Elasticsearch: indexed, searchable after the index's next refresh), per transaction (up to 64 a batch); the commit time is the database's clock; snapshot reads are left out",
    labelNames: ["sink", "stage"] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly sinkRetries = new Counter({
    name: "sluice_sink_retries_total",
    help: "Batches written again, and opens of the sink's target tried again, after a transient error (an unreachable target counts from its first failed open)",
    labelNames: ["sink"] as const,
    registers: [this.registry],
  });
  /** Per sink, since when (performance.now()) its target has failed, or null while it works (SinkRunner.failingSince). */
  private readonly sinkFailingSince = new Map<string, () => number | null>();
  readonly sinkFailing = gaugeOfSinks(this.sinkFailingSince, {
    name: "sluice_sink_failing_seconds",
    help: "How long the sink's writes, or opens of its target, have failed without one succeeding (this process's clock, read at the scrape); 0 while they succeed. It grows between retries at the backoff's ceiling (retry.max), so a target down for good pages however rare the attempts get",
    registers: [this.registry],
  });
  readonly sinkAuthRefused = new Gauge({
    name: "sluice_sink_auth_refused",
    help: "1 while a sink's server refuses its credentials (login or privileges) after the sink ran, the sink waiting and opening again with backoff; 0 otherwise",
    labelNames: ["sink"] as const,
    registers: [this.registry],
  });
  readonly sinkSecretFileUnreadable = new Counter({
    name: "sluice_sink_secret_file_unreadable_total",
    help: "Reads of a sink's password_file or api_key_file at a (re)connection that failed: the value read before was used",
    labelNames: ["sink"] as const,
    registers: [this.registry],
  });
  readonly sourceSecretFileUnreadable = new Counter({
    name: "sluice_source_secret_file_unreadable_total",
    help: "Reads of a source's password_file at a (re)connection that failed: the value read before was used",
    labelNames: ["source"] as const,
    registers: [this.registry],
  });
  readonly kafkaAuthRefused = new Gauge({
    name: "sluice_kafka_auth_refused",
    help: "Threads of the process (main: capture, capture lease, admin; each sink's) whose last SASL authentication to a Kafka broker was refused after the brokers accepted the credentials once: they wait and connect again with backoff. 0 while accepted",
    registers: [this.registry],
  });
  readonly kafkaAuthRefusals = new Counter({
    name: "sluice_kafka_auth_refusals_total",
    help: "SASL authentications to a Kafka broker refused (topics.sasl): each connection attempt counts",
    registers: [this.registry],
  });
  readonly kafkaSecretFileUnreadable = new Counter({
    name: "sluice_kafka_secret_file_unreadable_total",
    help: "Reads of topics.sasl.password_file at a Kafka authentication that failed: the value read before was used",
    registers: [this.registry],
  });
  readonly deadLettered = new Counter({
    name: "sluice_sink_dead_lettered_total",
    help: "Rows a sink could not apply and sent to its dead-letter topic",
    labelNames: ["sink", "table"] as const,
    registers: [this.registry],
  });
  readonly outboxDeadLettered = new Counter({
    name: "sluice_outbox_dead_lettered_total",
    help: "Outbox rows and logical messages that are no event (reason invalid), too large (reason too-large) or whose aggregate type's topic the outbox may not make (reason topic-refused: outbox.aggregate_types, outbox.max_topics), counted once their dead letter is durable, sent to the source's dead-letter topic <deployment>.dlq.<source> (outbox.on_invalid dead-letter)",
    labelNames: ["source", "table", "reason"] as const,
    registers: [this.registry],
  });
  readonly schemaVersionsRegistered = new Counter({
    name: "sluice_schema_versions_registered_total",
    help: "New schema versions registered",
    labelNames: ["source", "table"] as const,
    registers: [this.registry],
  });
  readonly schemaChangesRejected = new Counter({
    name: "sluice_schema_changes_rejected_total",
    help: "Schema changes rejected as incompatible",
    labelNames: ["source", "table"] as const,
    registers: [this.registry],
  });
  readonly dataCheckFailures = new Counter({
    name: "sluice_data_check_failures_total",
    help: "Rows that failed a data check (governance checks; check freshness: a source quiet for longer than max_quiet, table *)",
    labelNames: ["source", "table", "check"] as const,
    registers: [this.registry],
  });
  readonly dataCheckRows = new Counter({
    name: "sluice_data_check_rows_total",
    help: "Rows checked by the data checks of their table",
    labelNames: ["source", "table"] as const,
    registers: [this.registry],
  });
  readonly captureHalts = new Counter({
    name: "sluice_capture_table_halts_total",
    help: "Tables halted at capture, by error code: SCHEMA_INCOMPATIBLE, AVRO_VALUE_INVALID (a value the Avro type cannot carry), RECORD_TOO_LARGE",
    labelNames: ["source", "table", "code"] as const,
    registers: [this.registry],
  });
  readonly snapshotRowsDone = new Gauge({
    name: "sluice_snapshot_rows_done",
    help: "Rows read by the snapshot of a table (the initial snapshot, or an online one: sluice snapshot, signal table, table added)",
    labelNames: ["source", "table"] as const,
    registers: [this.registry],
  });
  readonly snapshotRowsTotal = new Gauge({
    name: "sluice_snapshot_rows_total",
    help: "Estimated rows the snapshot of a table will read (what was read, once it is done)",
    labelNames: ["source", "table"] as const,
    registers: [this.registry],
  });
  readonly snapshotRowsPerSecond = new Gauge({
    name: "sluice_snapshot_rows_per_second",
    help: "Rows per second the running snapshot of a table reads (0 when not running)",
    labelNames: ["source", "table"] as const,
    registers: [this.registry],
  });
  readonly snapshotEtaSeconds = new Gauge({
    name: "sluice_snapshot_eta_seconds",
    help: "Seconds the running snapshot of a table needs at its current rate (0 when done)",
    labelNames: ["source", "table"] as const,
    registers: [this.registry],
  });
  readonly rebuildRecordsDone = new Gauge({
    name: "sluice_rebuild_records_done",
    help: "Records a sink's rebuild (sluice replay --rebuild) has read from its topics",
    labelNames: ["sink"] as const,
    registers: [this.registry],
  });
  readonly rebuildRecordsTotal = new Gauge({
    name: "sluice_rebuild_records_total",
    help: "Records a sink's rebuild reads: from each partition's first offset to its end when the rebuild began",
    labelNames: ["sink"] as const,
    registers: [this.registry],
  });
  readonly rebuildRecordsPerSecond = new Gauge({
    name: "sluice_rebuild_records_per_second",
    help: "Records per second a sink's rebuild reads (0 when not reading)",
    labelNames: ["sink"] as const,
    registers: [this.registry],
  });
  readonly rebuildEtaSeconds = new Gauge({
    name: "sluice_rebuild_eta_seconds",
    help: "Seconds a sink's rebuild needs to read the rest at its current rate (0 once done)",
    labelNames: ["sink"] as const,
    registers: [this.registry],
  });
  readonly rebuildRunning = new Gauge({
    name: "sluice_rebuild_running",
    help: "1 while a sink's rebuild runs (reading, checking row counts or swapping), 0 otherwise",
    labelNames: ["sink"] as const,
    registers: [this.registry],
  });
  readonly rebuildInterruptedTables = new Gauge({
    name: "sluice_rebuild_interrupted_tables",
    help: "Half-built tables (shadows) a sink's rebuild left when it stopped before its swap; 0 once rebuilt again or abandoned",
    labelNames: ["sink"] as const,
    registers: [this.registry],
  });
  readonly publicationIncomplete = new Gauge({
    name: "sluice_source_publication_incomplete",
    help: "1 while a PostgreSQL source's publication leaves out operations (publish) or does not publish via the partition root for captured partitioned tables: those changes are not captured (/status sources[].warnings says which and what to run), 0 otherwise",
    labelNames: ["source"] as const,
    registers: [this.registry],
  });
  readonly tablesHalted = new Gauge({
    name: "sluice_tables_halted",
    help: "Tables whose stream is halted (1) by an error an operator must resolve, or by a target's block until it is lifted (retried by itself)",
    labelNames: ["source", "sink", "table"] as const,
    registers: [this.registry],
  });

  /** `processMetrics`: CPU, memory, event loop and the like; once per process (sink threads leave them out). */
  constructor(options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: "sluice_", eventLoopMonitoringPrecision: 20 });
  }

  /** Reports `since` as the sink's sluice_sink_failing_seconds until the returned function is called. */
  watchSinkFailing(sink: string, since: () => number | null): () => void {
    this.sinkFailingSince.set(sink, since);
    this.sinkFailing.set({ sink }, 0);
    return () => {
      if (this.sinkFailingSince.get(sink) !== since) return;
      this.sinkFailingSince.delete(sink);
      this.sinkFailing.set({ sink }, 0);
    };
  }

  /** The rebuild gauges of `progress.sink`. */
  recordRebuild(progress: RebuildProgress): void {
    const labels = { sink: progress.sink };
    this.rebuildRecordsDone.set(labels, progress.recordsDone);
    if (progress.recordsTotal !== null) this.rebuildRecordsTotal.set(labels, progress.recordsTotal);
    this.rebuildRecordsPerSecond.set(labels, progress.state === "reading" ? progress.recordsPerSecond : 0);
    if (progress.etaSeconds !== null || progress.state === "done") this.rebuildEtaSeconds.set(labels, progress.etaSeconds ?? 0);
    this.rebuildRunning.set(labels, progress.state === "done" || progress.state === "failed" ? 0 : 1);
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
