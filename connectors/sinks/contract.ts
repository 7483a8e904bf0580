/**
 * What the Sluice sinks offer beyond the base `Sink` contract (../contracts.ts): consumer offsets
 * kept inside the target with the data they cover, and zero-downtime rebuilds. Every sink in
 * ../duckdb, ../clickhouse and ../elasticsearch implements `VersionedSink` and passes the shared
 * suite in conformance.ts. docs/sinks.md explains the guarantees to users.
 */
import type { ChangeEvent, Sink, SinkChange, SinkWriteResult, TableId, TableSchema, TopicPartitionOffset } from "../contracts.ts";

export interface OffsetWriteResult extends SinkWriteResult {
  /**
   * Whether the offsets passed to `write` were stored. They are stored only when the write has no
   * failures: on a failure the runtime decides (halt: keep the old offsets; dead-letter: send the
   * failed items on, then call `storeOffsets`).
   */
  readonly offsetsStored: boolean;
}

/**
 * An offset as a sink stored it, with the identity of the topic incarnation it was read from
 * (`TopicLog.topicIds`); null for offsets stored before Sluice recorded identities, or while the
 * topic had none.
 */
export interface StoredSinkOffset extends TopicPartitionOffset {
  readonly topicId: string | null;
}

/**
 * A sink that stores the consumer offsets of what it applied inside its target, so that after a
 * restart the runtime resumes from what the target holds rather than from the topic log's group
 * offsets (exactly-once where it shows).
 *
 * - `offsetsAtomic: true` (DuckDB): offsets commit in the same transaction as the data; both or
 *   neither are visible.
 * - `offsetsAtomic: false` (ClickHouse, Elasticsearch): offsets are written after the data is
 *   durable. A crash in between re-applies the batch on restart, which does not show because
 *   every change is applied by version.
 */
export interface TransactionalSink extends Sink {
  readonly offsetsAtomic: boolean;
  /** Where the target keeps the rows and offsets, for messages: "DuckDB file /data/warehouse.duckdb". */
  readonly targetLabel?: string;
  /**
   * Applies `changes` as `Sink.write` does and, when the result has no failures, stores `offsets`
   * (the next offset to read per partition) with them.
   */
  write(changes: readonly SinkChange[], signal: AbortSignal, offsets?: readonly TopicPartitionOffset[]): Promise<OffsetWriteResult>;
  /** Stores offsets alone, e.g. after the runtime dead-lettered a write's failed items. */
  storeOffsets(offsets: readonly TopicPartitionOffset[], signal: AbortSignal): Promise<void>;
  /**
   * The identities of the topics read now (`TopicLog.topicIds`): every offset stored from then on
   * (by `write` or `storeOffsets`) is stored with its topic's identity, or null when it has none.
   */
  useTopicIds(ids: ReadonlyMap<string, string>): void;
  /** The offsets last stored by this sink (by its name, which is also its consumer group), any order. */
  committedOffsets(signal?: AbortSignal): Promise<StoredSinkOffset[]>;
}

/**
 * Zero-downtime rebuild of one table's target from a replay of its topic:
 *
 * 1. `prepareRebuild(table, signal, shape)` creates a shadow target (new table/index generation)
 *    next to the live one, which keeps serving, with the columns of `shape` (the table's newest
 *    schema; without it, the live target's). From then on every `write` touching the table also
 *    lands in the shadow, with rows as the live target holds them after the write (so
 *    unchanged-TOAST columns are complete).
 * 2. The runtime replays the table's topic from the earliest record up to the end offsets taken
 *    *after* step 1 through `writeRebuild`, which writes to the shadow only. Order and overlap
 *    with the live writes do not matter: the shadow applies by version too.
 * 3. `swap(table)` atomically makes the shadow what users query (view / alias switch) and drops
 *    the old generation. `abortRebuild(table)` drops the shadow instead.
 *
 * The shadow survives restarts (it is recorded in the target) and keeps receiving the live writes
 * (a rebuild may be running in another process of the sink, which needs them); a rebuild never
 * resumes: calling `prepareRebuild` again discards it and starts over. `rebuildShadows` lists the
 * shadows the target holds, so a process that finds one at start can say a rebuild was
 * interrupted (daemon/interrupted-rebuilds.ts).
 */
export interface RebuildableSink extends Sink {
  /**
   * `shape`: the schema the shadow's columns and key are planned from, so the rebuilt target
   * follows type and key changes the live one could not; changes written under older schemas then
   * evolve it as usual (columns.ts: added columns, widened types, numbers into text).
   */
  prepareRebuild(table: TableId, signal: AbortSignal, shape?: TableSchema): Promise<void>;
  /** Applies replayed changes to the shadows of their tables; changes of tables without a shadow are failures. */
  writeRebuild(changes: readonly SinkChange[], signal: AbortSignal): Promise<SinkWriteResult>;
  swap(table: TableId, signal: AbortSignal): Promise<void>;
  abortRebuild(table: TableId, signal: AbortSignal): Promise<void>;
  /**
   * Current rows (deleted and truncated ones excluded) of the table's live target and of its
   * shadow, for the rebuild's row-count check before `swap`; live is null when there is none.
   */
  rebuildRowCounts?(table: TableId, signal: AbortSignal): Promise<RebuildRowCounts>;
  /** The shadows the target holds now (after `open`): rebuilds prepared and neither swapped in nor aborted. */
  rebuildShadows?(signal: AbortSignal): Promise<RebuildShadow[]>;
}

/** A rebuild's shadow found in the target (`RebuildableSink.rebuildShadows`). */
export interface RebuildShadow {
  /** The table it rebuilds; null when the target does not record it (its owner was never written). */
  readonly table: TableId | null;
  readonly target: string;
  /** The shadow's table or index, `<target>__v<N>`. */
  readonly physical: string;
  /** When it was prepared (ms since the epoch), where the target records it; else null. */
  readonly preparedAtMs: number | null;
}

export interface RebuildRowCounts {
  readonly live: number | null;
  readonly shadow: number;
}

export interface VersionedSink extends TransactionalSink, RebuildableSink {
  write(changes: readonly SinkChange[], signal: AbortSignal, offsets?: readonly TopicPartitionOffset[]): Promise<OffsetWriteResult>;
}

export function isVersionedSink(sink: Sink): sink is VersionedSink {
  const candidate = sink as Partial<VersionedSink>;
  return typeof candidate.committedOffsets === "function" && typeof candidate.prepareRebuild === "function";
}

/**
 * A write that takes a batch's changes one at a time while the runtime decodes them, for the
 * plain case (rows of tables the target has as they are): the sink keeps what it will send
 * (ClickHouse: the RowBinary rows, and each key's newest one), so the batch's decoded events die
 * young instead of being kept, copied and promoted until the write. Anything else (a change it
 * cannot take, a failure) falls back to `write`, which applies by version: writing the batch
 * again there after a partial staged write shows nothing twice.
 */
export interface StagedWrite {
  /**
   * Takes one change of the batch, in the batch's order; false when it cannot: the runtime drops
   * this object and writes the batch with `write`. A promise when the sink prepares the target
   * first (creates or evolves a table).
   */
  stage(event: ChangeEvent): boolean | Promise<boolean>;
  /**
   * Applies the staged changes and, after them, stores `offsets` (as `write` does without
   * failures); resolves with whether it stored them. Throws when anything may not be applied:
   * the runtime then writes the whole batch with `write`.
   */
  write(signal: AbortSignal, offsets?: readonly TopicPartitionOffset[]): Promise<boolean>;
}

/** A sink with the optional staged write; the runtime asks for one per batch (null: write the batch with `write`). */
export interface StagingSink extends TransactionalSink {
  /** `signal`: for the target's preparation while changes are staged. */
  stagedWrite(signal: AbortSignal): StagedWrite | null;
}

export function isStaging(sink: Sink): sink is StagingSink {
  return typeof (sink as Partial<StagingSink>).stagedWrite === "function" && typeof (sink as Partial<StagingSink>).storeOffsets === "function";
}

/** `sluice forget`: null the personal columns of one data subject's rows of one table. */
export interface ErasureRequest {
  readonly table: TableId;
  /** The column naming the subject, and the subject as text (compared with the column's value as text). */
  readonly subjectColumn: string;
  readonly subject: string;
  readonly columns: readonly string[];
}

/** A sink that can erase a subject's personal columns in rows already applied (every generation of the table). */
export interface ErasableSink extends Sink {
  /** Nulls `columns` of the subject's rows; resolves once the target holds the result (and will not show the old values again). Idempotent; returns the rows users see that changed (not a rebuild's), else null when the target cannot say. */
  erase(request: ErasureRequest, signal: AbortSignal): Promise<number | null>;
}

export function isErasable(sink: Sink): sink is ErasableSink {
  return typeof (sink as Partial<ErasableSink>).erase === "function";
}
