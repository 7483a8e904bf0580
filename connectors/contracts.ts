/**
 * The contracts every source, topic log and sink implements, and the data that flows between
 * them. See ../shared/DESIGN.md ("Core contracts"). Later capabilities refine these; they do not
 * bypass them.
 */

import type { TopicPartitionOffset } from "./topics/contract.ts";

export type SourceKind = "postgres" | "mysql";

/**
 * Where a change sits in its source's history. Totally ordered per source: compare `commit`, then
 * `change`. For one row, a later change always has a greater `change`, so `change` is the
 * version sinks apply by (Elasticsearch external version, ClickHouse `_version`, DuckDB guard).
 * Never a topic offset or a wall-clock time: both break on replay.
 */
export interface Position {
  /**
   * Orders transactions: PostgreSQL the commit LSN; MySQL the binlog position of the transaction's
   * first event (its GTID or BEGIN: the binlog holds transactions whole, in commit order, so this
   * orders them without buffering whole transactions).
   */
  readonly commit: bigint;
  /**
   * Position of the change itself (PostgreSQL change LSN; MySQL binlog file index × 2^32 + offset
   * of the row image). Within one replication slot or binlog history it alone is a safe version.
   */
  readonly change: bigint;
  /** Source-specific token to resume from this position (e.g. a GTID set), when the numbers alone are not enough. */
  readonly resume?: string;
}

export function comparePositions(a: Position, b: Position): number {
  if (a.commit !== b.commit) return a.commit < b.commit ? -1 : 1;
  if (a.change !== b.change) return a.change < b.change ? -1 : 1;
  return 0;
}

/** Marks a column whose value the source did not send because it did not change (PostgreSQL unchanged TOAST). Sinks keep the stored value. */
export const UNCHANGED: unique symbol = Symbol.for("sluice.unchanged");
export type Unchanged = typeof UNCHANGED;

/**
 * A column value as decoded from the source, exact:
 * integers that may exceed 2^53 are bigint; decimals are strings of their exact digits
 * ("-12.3400", "NaN", "Infinity"); bytes are Uint8Array; dates, times and timestamps are the
 * integers their Avro logical type uses (days, microseconds); JSON is its text; arrays are arrays.
 */
export type ColumnValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | Unchanged
  | readonly ColumnValue[];

export type Row = Readonly<Record<string, ColumnValue>>;

export interface ColumnSchema {
  /** Column name as the database spells it. */
  readonly name: string;
  /**
   * Type as the database reports it, lower case, with modifiers: PostgreSQL `format_type()` output
   * ("numeric(10,2)", "character varying(255)", "integer[]"; domains as their base type, enums as
   * "enum"); MySQL COLUMN_TYPE ("int unsigned", "varchar(255)", "enum('a','b')").
   */
  readonly dbType: string;
  readonly nullable: boolean;
  /** Default expression as the database reports it, if any. */
  readonly default?: string | null;
  /**
   * The value a record written before this column existed reads as: the literal default of the
   * column's Avro field, decoded as row values are (set on schemas read back from the registry,
   * table-from-avro.ts). Absent when the field has none (no default, an expression such as now()).
   */
  readonly defaultValue?: ColumnValue;
  /** 1-based position in the primary key, absent when not part of it. */
  readonly primaryKeyIndex?: number;
}

export interface TableId {
  /** Logical source name from the config. */
  readonly source: string;
  /** Database (PostgreSQL database, MySQL schema). */
  readonly database: string;
  /** Schema (PostgreSQL schema; for MySQL the database name again). */
  readonly schema: string;
  readonly table: string;
}

export interface TableSchema extends TableId {
  readonly sourceKind: SourceKind;
  readonly columns: readonly ColumnSchema[];
  /** Key columns in key order: the primary key, else the replica identity or configured key. */
  readonly key: readonly string[];
  /**
   * True when the table has no key and `key` lists every column instead (PostgreSQL without a
   * primary key, replica identity index or key_columns entry): identical rows share that "key".
   */
  readonly keyIsWholeRow?: boolean;
}

export function tableName(id: TableId): string {
  return `${id.schema}.${id.table}`;
}

export type Op = "c" | "u" | "d" | "r" | "t";

export interface SourceInfo {
  readonly connector: SourceKind;
  /** Logical source name from the config. */
  readonly name: string;
  readonly db: string;
  readonly schema: string;
  readonly table: string;
  readonly position: Position;
  readonly txId: string | null;
  /** Commit time, milliseconds since the epoch (UTC). */
  readonly commitTimeMs: number;
  readonly snapshot: boolean;
  /**
   * Where a snapshot record sits, as Debezium's `source.snapshot` says it: the first record of the
   * snapshot, the first or last of its table, the last of the snapshot. Absent: "true" (or "false").
   */
  readonly snapshotMarker?: SnapshotMarker;
  /** MySQL: where the row is in the binlog (Debezium's source fields server_id, file, pos, row, thread). */
  readonly binlog?: BinlogCoordinates;
  /**
   * The change's place in its transaction among the changes the data topics get, from 1: overall
   * and among its table's (Debezium's total_order and data_collection_order). Set by sources with
   * transaction_metadata; it counts the changes stored before a resume, so a transaction resumed in
   * its middle numbers on, and a parked change keeps its number.
   */
  readonly transactionOrder?: { readonly total: number; readonly inTable: number };
}

/** Debezium's values; "incremental" marks the reads of an online (incremental) snapshot. */
export type SnapshotMarker = "first" | "first_in_data_collection" | "last_in_data_collection" | "last" | "incremental";

export interface BinlogCoordinates {
  /** Id of the server that wrote the event (the binlog event header's server id). */
  readonly serverId: number;
  readonly file: string;
  /** Offset of the rows event in the file. */
  readonly pos: number;
  /** 0-based index of the row within its rows event. */
  readonly row: number;
  /** The thread (connection) id of the transaction, when its BEGIN said it. */
  readonly thread?: number;
}

/** One committed row change (or snapshot read, or truncate). */
export interface ChangeEvent {
  readonly op: Op;
  /** Key columns of the row; for a truncate, empty. */
  readonly key: Row;
  /** Row before the change when the source provides it (updates, deletes). */
  readonly before: Row | null;
  /** Row after the change (creates, updates, snapshot reads). */
  readonly after: Row | null;
  readonly source: SourceInfo;
  /** The table schema the row was read under. */
  readonly schema: TableSchema;
  /**
   * An update that changed the key arrives as a delete of the old key then a create of the new
   * one: the delete carries `newKey`, the create `oldKey` (Debezium's `__debezium.newkey` /
   * `__debezium.oldkey` headers).
   */
  readonly keyChange?: { readonly newKey: Row } | { readonly oldKey: Row };
  /**
   * The source could not read this change whole (a MariaDB value or rows event too large to decompress within the
   * memory budget): capture halts the change's table with this error and parks the change as it is, as for a change
   * it cannot encode, and the other tables flow on. Such a change is never published; it halts its table again when
   * re-published, so it is released with `sluice halted skip`.
   */
  readonly refusal?: SourceRefusal;
}

/** Why a source hands on a change it could not read whole (ChangeEvent.refusal): a SluiceError's code, message and context. */
export interface SourceRefusal {
  readonly code: string;
  readonly message: string;
  readonly context: Readonly<Record<string, string | number>>;
}

/** How far a source's initial snapshot has read one table: for metrics and a terminal display. */
export interface TableSnapshotProgress {
  /** "schema.table" (MySQL: "database.table") */
  readonly table: string;
  readonly state: "pending" | "running" | "done";
  readonly rowsDone: number;
  /** The server's estimate (PostgreSQL reltuples, MySQL TABLE_ROWS); null when unknown. */
  readonly rowsEstimated: number | null;
  readonly rowsPerSecond: number;
  readonly startedAtMs: number | null;
  readonly finishedAtMs: number | null;
}

/** A source's durable resume point, stored through the topic log with the records it covers. */
export interface Checkpoint {
  readonly source: string;
  readonly position: Position;
  /**
   * The source's own named entries kept beside its checkpoints (PostgreSQL: the relations' layouts, too large to
   * repeat in every checkpoint). Written: the entries to store (null deletes one) in the same atomic step as this
   * checkpoint (at-least-once: before it); entries not named are kept as they are. Read (readCheckpoint): every
   * entry kept for the source. Absent: none. Names: letters, digits and `-_./`; values are text.
   */
  readonly entries?: Readonly<Record<string, string | null>>;
}

/**
 * One checkpoint storing what storing `earlier` and then `later` would: `later`'s position, and the entries of both
 * (`later`'s over `earlier`'s, a deletion included). For a consumer that stores only the last of several checkpoints
 * it acknowledges (capture's runs of SourceBatch.more): each one's entries must still be stored with it.
 */
export function joinCheckpoints(earlier: Checkpoint, later: Checkpoint): Checkpoint {
  if (earlier.entries === undefined) return later;
  return { ...later, entries: { ...earlier.entries, ...later.entries } };
}

/** What a source hands on: events in source order, and how to tell the source they are durable. */
export interface SourceBatch {
  readonly events: readonly ChangeEvent[];
  /** The position the source may acknowledge once every event of this batch is durable. */
  readonly checkpoint: Checkpoint;
  /**
   * For a batch without changes: the time (ms since the epoch) through which the source has sent
   * everything -- the commit time of the last transaction it read past, or when the server last
   * said it had nothing more. Absent: now (the source is caught up).
   */
  readonly throughTimeMs?: number;
  /** BEGIN/END boundaries of the transactions in this batch, for the transaction topic (config transaction_metadata). */
  readonly transactions?: readonly TransactionMarker[];
  /**
   * The source has already read more (the next batch is at hand) and this batch, with those before
   * it since the last one without `more`, is within the source's batch bounds (changes and bytes):
   * capture may encode these small batches as they come and store them in one write, with the last one's checkpoint
   * carrying the entries of every checkpoint of the run (joinCheckpoints), then acknowledge each. A source that never
   * sets it has each batch stored on its own.
   */
  readonly more?: boolean;
  /**
   * Acknowledge to the database (e.g. PostgreSQL flush LSN). Call only after the topic log confirmed durability.
   * A function of its own, called without the batch: capture keeps it, not the batch and its events, until then.
   */
  readonly ack: () => Promise<void>;
}

/**
 * A transaction boundary for Debezium's transaction topic (config transaction_metadata). A
 * transaction gets them only when it has captured changes: BEGIN goes with the batch holding its
 * first change, END with the batch whose checkpoint passes its commit.
 */
export interface TransactionMarker {
  readonly status: "BEGIN" | "END";
  /** The id every event of the transaction carries (`source.txId`). */
  readonly txId: string;
  /** BEGIN: the position of the transaction's first captured change; END: through its commit. */
  readonly position: Position;
  readonly commitTimeMs: number;
  /** END only: captured changes in the transaction, in all and per table ("schema.table"). */
  readonly eventCount?: number;
  readonly tableEventCounts?: Readonly<Record<string, number>>;
}

/**
 * A source: connect (retried with backoff by the runtime on retriable errors), read batches,
 * acknowledge each after it is durable, close. Reading applies backpressure: a source does not
 * read further ahead than its configured byte bound.
 */
export interface Source {
  readonly name: string;
  readonly kind: SourceKind;
  /** Connects and positions the stream after `from` (or takes a snapshot when there is none, per config). */
  connect(from: Checkpoint | null, signal: AbortSignal): Promise<void>;
  /**
   * Optional: starts, reading only, what connect does before it needs the checkpoint (connecting,
   * the catalog checks), so it overlaps the caller's own start; the next connect takes it up, close ends it.
   */
  prepare?(): void;
  /** Resolves with the next batch, waiting for changes as long as needed; rejects when `signal` aborts. */
  read(signal: AbortSignal): Promise<SourceBatch>;
  close(): Promise<void>;
}

export type {
  CheckpointGuarantee,
  ConsumerOptions,
  GroupActivity,
  GroupHold,
  PartitionLag,
  PartitionOffsets,
  PollOptions,
  ProducedRecord,
  RegistryJournal,
  SeekTarget,
  SkippedRecords,
  StoredRecord,
  TopicConsumer,
  TopicCreation,
  TopicLog,
  TopicPartition,
  TopicPartitionOffset,
  TopicSpec,
} from "./topics/contract.ts";
/** One change as a sink receives it: decoded, with where it came from in the topic log. */
export interface SinkChange {
  readonly event: ChangeEvent;
  readonly origin: TopicPartitionOffset;
}

export interface SinkItemFailure {
  /** Index into the batch's `changes`. */
  readonly index: number;
  readonly error: Error;
  /** Whether retrying the item may succeed (e.g. HTTP 429) or it is poison. */
  readonly retriable: boolean;
}

export interface SinkWriteResult {
  readonly failures: readonly SinkItemFailure[];
}

/**
 * A sink applies changes by version (the source position), so redelivery and replay never move
 * its visible state backwards. `write` reports per-item failures instead of failing the batch
 * where the target allows; a rejected promise means the whole batch failed.
 */
export interface Sink {
  readonly name: string;
  open(signal: AbortSignal): Promise<void>;
  write(changes: readonly SinkChange[], signal: AbortSignal): Promise<SinkWriteResult>;
  close(): Promise<void>;
  /**
   * `sluice halted retry --force`: whether `halt` (the error that halted a table) is a refusal of the target's state the
   * operator may overrule, taking the target as it is now (a ClickHouse table found emptied after a mismatch); when
   * `accept`, the sink does, so the retry writes the table instead of halting it again. Absent or false: nothing to overrule.
   */
  acceptTargetAsIs?(halt: Error, accept: boolean): boolean;
}
