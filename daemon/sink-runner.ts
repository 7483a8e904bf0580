/**
 * The sink runtime shared by every sink: one consumer group per sink, batches by count, bytes and
 * time, offsets stored only after the batch is applied (inside the target where it can), retries
 * with backoff, and the per-sink policy for rows that cannot be applied (halt or dead-letter).
 */
import type { ChangeEvent, Sink, SinkChange, SinkItemFailure, StoredRecord, TopicLog, TopicPartitionOffset } from "../connectors/contracts.ts";
import { tableName } from "../connectors/contracts.ts";
import { SluiceError } from "../connectors/errors.ts";
import type { TransactionalSink } from "../connectors/sinks/contract.ts";
import { SCHEMA_UNSUPPORTED } from "../connectors/sinks/errors.ts";
import type { TopicConsumer } from "../connectors/topics/contract.ts";
import { retry, sleep } from "./backoff.ts";
import type { BackoffPolicy } from "./backoff.ts";
import type { Logger } from "./logger.ts";
import { countPerTableAndOp } from "./metrics.ts";
import type { SluiceMetrics } from "./metrics.ts";
import { replayMarkerGroup } from "./replay.ts";

/** Turns a stored record back into its change; null for records that carry none (tombstones). */
export interface RecordDecoder {
  decode(record: StoredRecord): Promise<ChangeEvent | null>;
}

export interface SinkRunnerOptions {
  readonly sink: Sink;
  readonly log: TopicLog;
  readonly group: string;
  /** The topics this sink reads now; called again periodically to pick up new tables. */
  readonly topics: () => Promise<string[]>;
  readonly decoder: RecordDecoder;
  readonly batch: { readonly maxRows: number; readonly maxBytes: number; readonly maxWaitMs: number };
  readonly onError: "halt" | "dead-letter";
  readonly deadLetterTopic: string;
  readonly retry: BackoffPolicy;
  readonly logger: Logger;
  readonly metrics?: SluiceMetrics;
  /** How often the topic list is refreshed. */
  readonly topicRefreshMs?: number;
  /** Lease owner id (embedded log: only one runner per group). */
  readonly owner: string;
}

export interface HaltedSinkTable {
  readonly topic: string;
  readonly table: string;
  readonly error: string;
  readonly offset: string;
}

const LEASE_TTL_MS = 15_000;

function isTransactional(sink: Sink): sink is TransactionalSink {
  return typeof (sink as Partial<TransactionalSink>).committedOffsets === "function";
}

/** A failure of a whole table (its schema), not of one row or of the target. */
function isTableLevel(error: unknown): error is SluiceError {
  return error instanceof SluiceError && error.code === SCHEMA_UNSUPPORTED;
}

function partitionKey(topic: string, partition: number): string {
  return `${topic}\u0000${partition}`;
}

export class SinkRunner {
  private readonly options: SinkRunnerOptions;
  private readonly logger: Logger;
  /** Halted topics, and the offset of the record that halted each partition. */
  private readonly halted = new Map<string, HaltedSinkTable>();
  private running = false;
  /** False while writes to the target fail and are being retried. */
  private targetReachable = true;
  private lastAppliedCommitMs: number | null = null;

  constructor(options: SinkRunnerOptions) {
    this.options = options;
    this.logger = options.logger.child({ component: "sink", sink: options.sink.name });
  }

  /** Consuming, and the target accepts writes. */
  ready(): boolean {
    return this.running && this.targetReachable;
  }

  get sink(): Sink {
    return this.options.sink;
  }

  haltedTables(): HaltedSinkTable[] {
    return [...this.halted.values()];
  }

  /** Commit time of the last change applied, milliseconds since the epoch. */
  lastAppliedCommitTime(): number | null {
    return this.lastAppliedCommitMs;
  }

  async run(stop: AbortSignal): Promise<void> {
    const { log, group, owner } = this.options;
    // A lease left by a process that died (kill -9) expires after its TTL: wait that long before giving up.
    const giveUpAt = Date.now() + LEASE_TTL_MS + 5_000;
    while (!(await log.acquireLease(group, owner, LEASE_TTL_MS))) {
      if (Date.now() >= giveUpAt || stop.aborted) {
        throw new SluiceError(`sink ${this.options.sink.name}: consumer group ${group} is running in another process`, {
          code: "SINK_ALREADY_RUNNING",
          context: { component: "sink", sink: this.options.sink.name },
        });
      }
      this.logger.warn({ group }, "sink lease held by another owner; waiting for it to expire");
      await sleep(1_000, stop).catch(() => undefined);
    }
    const renew = setInterval(() => {
      void log.renewLease(group, owner, LEASE_TTL_MS).then((held) => {
        if (!held) this.logger.error({ group }, "sink lease lost to another process");
      });
    }, LEASE_TTL_MS / 3);
    try {
      await retry(() => this.options.sink.open(stop), { ...this.options.retry, signal: stop, onRetry: (err) => this.logger.warn({ err }, "sink open failed; retrying") });
      while (!stop.aborted) await this.consume(stop);
    } catch (error) {
      if (!stop.aborted) throw error;
    } finally {
      clearInterval(renew);
      this.running = false;
      await this.options.sink.close().catch(() => undefined);
      await log.releaseLease(group, owner).catch(() => undefined);
    }
  }

  /** Reads the current topic set until it changes or `stop` aborts. */
  private async consume(stop: AbortSignal): Promise<void> {
    const topics = await this.options.topics();
    if (topics.length === 0) {
      await sleep(this.options.topicRefreshMs ?? 2_000, stop).catch(() => undefined);
      return;
    }
    const consumer = await this.options.log.consumer(this.options.group, topics);
    try {
      await this.seekToTargetOffsets(consumer, topics);
      this.running = true;
      const refreshAt = Date.now() + (this.options.topicRefreshMs ?? 5_000);
      while (!stop.aborted) {
        const records = await consumer.poll({ ...this.pollLimits(), signal: stop });
        if (records.length > 0) await this.applyBatch(consumer, records, stop);
        if (Date.now() >= refreshAt) {
          const now = await this.options.topics();
          if (now.some((t) => !topics.includes(t))) return;
        }
      }
    } finally {
      await consumer.close().catch(() => undefined);
    }
  }

  private pollLimits() {
    const { maxRows, maxBytes, maxWaitMs } = this.options.batch;
    return { maxRecords: maxRows, maxBytes, maxWaitMs };
  }

  /**
   * A target that keeps its own offsets is the authority on where to resume — unless a replay set
   * the group's offsets since: then the group's offset equals the replay's marker and wins.
   */
  private async seekToTargetOffsets(consumer: TopicConsumer, topics: string[]): Promise<void> {
    const { sink, log, group } = this.options;
    if (!isTransactional(sink)) return;
    const key = (o: TopicPartitionOffset) => partitionKey(o.topic, o.partition);
    const groupOffsets = new Map((await log.committedOffsets(group)).map((o) => [key(o), o.offset]));
    const replayed = new Map((await log.committedOffsets(replayMarkerGroup(group))).map((o) => [key(o), o.offset]));
    for (const offset of await sink.committedOffsets()) {
      if (!topics.includes(offset.topic)) continue;
      const marker = replayed.get(key(offset));
      if (marker !== undefined && marker === groupOffsets.get(key(offset))) continue;
      await consumer.seek(offset.topic, offset.partition, { kind: "offset", offset: offset.offset });
    }
  }

  private async applyBatch(consumer: TopicConsumer, records: StoredRecord[], stop: AbortSignal): Promise<void> {
    const changes: SinkChange[] = [];
    const changeRecords: StoredRecord[] = [];
    const nextOffsets = new Map<string, TopicPartitionOffset>();
    const poison: { record: StoredRecord; error: Error }[] = [];
    for (const record of records) {
      if (this.halted.has(record.topic)) continue;
      // The consumer's position, not offset + 1: with Kafka transactions it steps past commit markers.
      const position = consumer.position(record.topic, record.partition);
      const next = position !== null && position > record.offset ? position : record.offset + 1n;
      nextOffsets.set(partitionKey(record.topic, record.partition), { topic: record.topic, partition: record.partition, offset: next });
      let event: ChangeEvent | null;
      try {
        event = await this.options.decoder.decode(record);
      } catch (error) {
        poison.push({ record, error: error as Error });
        continue;
      }
      if (!event) continue;
      changes.push({ event, origin: { topic: record.topic, partition: record.partition, offset: record.offset } });
      changeRecords.push(record);
    }
    const started = performance.now();
    // Where the target keeps offsets, they go in with the data (one transaction in DuckDB).
    const offsetsWithData = poison.length === 0 ? [...nextOffsets.values()] : undefined;
    const { failures, offsetsStored } = await this.writeWithRetries(changes, stop, offsetsWithData);
    for (const failure of failures) poison.push({ record: changeRecords[failure.index]!, error: failure.error });
    poison.sort((a, b) => (a.record.offset < b.record.offset ? -1 : 1));
    for (const { record, error } of poison) {
      const event = changes.find((c) => c.origin.topic === record.topic && c.origin.offset === record.offset)?.event;
      await this.handlePoison(record, event, error, nextOffsets);
    }
    const offsets = [...nextOffsets.values()];
    await this.storeOffsets(consumer, offsets, offsetsStored, stop);
    this.recordProgress(changes, failures, (performance.now() - started) / 1000);
  }

  /** Writes the batch; retriable item failures are written again with backoff until they apply or turn permanent. */
  private async writeWithRetries(
    changes: SinkChange[],
    stop: AbortSignal,
    offsets: TopicPartitionOffset[] | undefined,
  ): Promise<{ failures: SinkItemFailure[]; offsetsStored: boolean }> {
    if (changes.length === 0) return { failures: [], offsetsStored: false };
    const { sink } = this.options;
    const permanent: SinkItemFailure[] = [];
    let offsetsStored = false;
    let pending = changes.map((change, index) => ({ change, index }));
    for (let attempt = 0; pending.length > 0; attempt++) {
      const batch = pending.map((p) => p.change);
      const withOffsets = attempt === 0 && offsets !== undefined && isTransactional(sink) ? offsets : undefined;
      let result: { failures: readonly SinkItemFailure[]; offsetsStored?: boolean };
      try {
        result = await this.write(batch, stop, withOffsets);
      } catch (error) {
        // A schema change the target cannot take fails the whole write: find its table, halt only that one.
        if (!isTableLevel(error)) throw error;
        result = await this.writeTableByTable(batch, stop);
      }
      if (withOffsets && result.offsetsStored) offsetsStored = true;
      const retriable: typeof pending = [];
      for (const failure of result.failures) {
        const item = pending[failure.index]!;
        if (failure.retriable) retriable.push(item);
        else permanent.push({ ...failure, index: item.index });
      }
      pending = retriable;
      if (pending.length > 0) {
        this.options.metrics?.sinkRetries.inc({ sink: sink.name });
        await sleep(Math.min(this.options.retry.maxMs, this.options.retry.initialMs * 2 ** attempt), stop);
      }
    }
    return { failures: permanent, offsetsStored };
  }

  private async write(changes: SinkChange[], stop: AbortSignal, offsets?: TopicPartitionOffset[]): Promise<{ failures: readonly SinkItemFailure[]; offsetsStored?: boolean }> {
    const { sink } = this.options;
    const result = await retry(() => (offsets ? (sink as TransactionalSink).write(changes, stop, offsets) : sink.write(changes, stop)), {
      ...this.options.retry,
      signal: stop,
      onRetry: (err, n, delayMs) => {
        this.targetReachable = false;
        this.options.metrics?.sinkRetries.inc({ sink: sink.name });
        this.logger.warn({ err, attempt: n, delayMs }, "sink write failed; retrying");
      },
    });
    this.targetReachable = true;
    return result;
  }

  /** Writes each topic's (table's) changes on their own; a table whose write fails as a whole fails all its items. */
  private async writeTableByTable(changes: SinkChange[], stop: AbortSignal): Promise<{ failures: SinkItemFailure[] }> {
    const byTopic = new Map<string, number[]>();
    changes.forEach((change, index) => {
      const indices = byTopic.get(change.origin.topic);
      if (indices) indices.push(index);
      else byTopic.set(change.origin.topic, [index]);
    });
    const failures: SinkItemFailure[] = [];
    for (const indices of byTopic.values()) {
      try {
        const { failures: own } = await this.write(indices.map((i) => changes[i]!), stop);
        for (const failure of own) failures.push({ ...failure, index: indices[failure.index]! });
      } catch (error) {
        if (!isTableLevel(error)) throw error;
        for (const index of indices) failures.push({ index, error, retriable: false });
      }
    }
    return { failures };
  }

  private async handlePoison(record: StoredRecord, event: ChangeEvent | undefined, error: Error, nextOffsets: Map<string, TopicPartitionOffset>): Promise<void> {
    const table = event ? tableName(event.schema) : record.topic;
    const sink = this.options.sink.name;
    // A table the target cannot take halts under either policy: dead-lettering every later row of it would empty the table's stream.
    if (this.options.onError === "dead-letter" && !isTableLevel(error)) {
      await this.options.log.produce([
        {
          topic: this.options.deadLetterTopic,
          key: record.key,
          value: record.value,
          headers: {
            ...record.headers,
            "sluice.error": Buffer.from(error.message),
            "sluice.sink": Buffer.from(sink),
            "sluice.origin": Buffer.from(`${record.topic}:${record.partition}:${record.offset}`),
          },
          timestamp: record.timestamp,
        },
      ]);
      this.options.metrics?.deadLettered.inc({ sink, table });
      this.logger.warn({ table, topic: record.topic, offset: String(record.offset), err: error.message }, "row dead-lettered");
      return;
    }
    // Halt: the partition's offset stays at its first poison record, so a restart meets it again.
    const key = partitionKey(record.topic, record.partition);
    const earlier = this.halted.has(record.topic) ? nextOffsets.get(key) : undefined;
    if (earlier === undefined || earlier.offset > record.offset) nextOffsets.set(key, { topic: record.topic, partition: record.partition, offset: record.offset });
    if (!this.halted.has(record.topic)) {
      this.halted.set(record.topic, { topic: record.topic, table, error: error.message, offset: `${record.partition}:${record.offset}` });
      this.options.metrics?.tablesHalted.set({ source: event?.source.name ?? "", sink, table }, 1);
      this.logger.error({ table, topic: record.topic, partition: record.partition, offset: String(record.offset), err: error.message }, `sink ${sink}: table ${table} halted`);
    }
  }

  private async storeOffsets(consumer: TopicConsumer, offsets: TopicPartitionOffset[], storedInTarget: boolean, stop: AbortSignal): Promise<void> {
    if (offsets.length === 0) return;
    const { sink } = this.options;
    if (isTransactional(sink) && !storedInTarget) await retry(() => sink.storeOffsets(offsets, stop), { ...this.options.retry, signal: stop });
    // The group's offsets in the topic log serve lag reporting and replay planning.
    await retry(() => consumer.commit(offsets), { ...this.options.retry, signal: stop });
  }

  private recordProgress(changes: SinkChange[], failures: SinkItemFailure[], seconds: number): void {
    const metrics = this.options.metrics;
    const failed = new Set(failures.map((f) => f.index));
    const applied = changes.filter((_, index) => !failed.has(index)).map((change) => change.event);
    for (const event of applied) {
      const commitMs = event.source.commitTimeMs;
      if (this.lastAppliedCommitMs === null || commitMs > this.lastAppliedCommitMs) this.lastAppliedCommitMs = commitMs;
    }
    for (const { table, op, count } of countPerTableAndOp(applied)) metrics?.sinkApplied.inc({ sink: this.options.sink.name, table, op }, count);
    metrics?.sinkApplyLatency.observe({ sink: this.options.sink.name }, seconds);
  }
}
