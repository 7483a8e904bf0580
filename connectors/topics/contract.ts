/**
 * The topic log contract: a durable, ordered, replayable log between sources and sinks, with
 * two implementations (embedded SQLite, Apache Kafka). Re-exported from ../contracts.ts.
 * Every implementation passes the shared suite in contract-suite.ts.
 */
import type { Checkpoint } from "../contracts.ts";

export interface TopicSpec {
  readonly name: string;
  readonly partitions: number;
  /** Retention by age, milliseconds; null keeps forever. On a compacted topic it makes the policy compact,delete. */
  readonly retentionMs: number | null;
  /** Retention by size per partition, bytes; null: no size bound. On a compacted topic it makes the policy compact,delete. */
  readonly retentionBytes: number | null;
  /** Keep only the latest record per key (tombstones remove the key after a while); every record needs a key. */
  readonly compacted: boolean;
  /** Compacted topics: how long a tombstone is kept before compaction removes it (Kafka delete.retention.ms). Absent: the log's default. */
  readonly tombstoneRetentionMs?: number;
  /** Compacted topics: records younger than this are never compacted (Kafka min.compaction.lag.ms). Absent: the log's default. */
  readonly minCompactionLagMs?: number;
  /**
   * A compacted topic that already exists uncompacted (created by a Sluice that predates compacted
   * data topics) is accepted as it is instead of refused with TOPIC_MISMATCH; the daemon reports it
   * at start with how to migrate (daemon/topic-policy.ts).
   */
  readonly acceptUncompacted?: boolean;
  /**
   * Largest record the topic takes, counted as `recordBytes` (spec.ts) does; Kafka gets it as the
   * topic's max.message.bytes, the embedded log refuses larger records. Absent or null: the log's
   * default (Kafka: topics.max_record_bytes, never the broker's ~1 MiB; embedded: no limit).
   */
  readonly maxRecordBytes?: number | null;
}

export interface ProducedRecord {
  readonly topic: string;
  /**
   * Partitioning key: records with equal keys go to the same partition (murmur2, as the Java
   * Kafka client) and keep their order. Records without a key go to partition 0.
   */
  readonly key: Uint8Array | null;
  /** Null is a tombstone. */
  readonly value: Uint8Array | null;
  readonly headers?: Readonly<Record<string, Uint8Array>>;
  /** Milliseconds since the epoch. */
  readonly timestamp: number;
}

export interface StoredRecord extends ProducedRecord {
  readonly partition: number;
  readonly offset: bigint;
}

export type SeekTarget =
  | { readonly kind: "earliest" }
  | { readonly kind: "latest" }
  | { readonly kind: "offset"; readonly offset: bigint }
  /** The first record whose timestamp is at or after `timestampMs`, else the end. */
  | { readonly kind: "timestamp"; readonly timestampMs: number };

export interface TopicPartition {
  readonly topic: string;
  readonly partition: number;
}

export interface TopicPartitionOffset extends TopicPartition {
  readonly offset: bigint;
}

/** The readable range of a partition: `start` is the first offset kept, `end` the next offset to be written. */
export interface PartitionOffsets extends TopicPartition {
  readonly start: bigint;
  readonly end: bigint;
}

export interface PartitionLag extends TopicPartition {
  /** The group's committed offset (next offset to read), null when it never committed. */
  readonly committed: bigint | null;
  readonly end: bigint;
  /** Records between the committed offset (or the start, when none) and the end. */
  readonly lag: bigint;
}

/** Whether some process is consuming as the group right now. */
export interface GroupActivity {
  readonly active: boolean;
  /** Who: lease owners (embedded) or consumer member ids with their client host (Kafka). */
  readonly members: readonly string[];
  /** Kafka: each member's client id (which ends with its process: runtime/local-process.ts) and host, in the order of `members`. */
  readonly clients?: readonly { readonly clientId: string; readonly host: string; readonly heldFor?: string | null; readonly memberId?: string }[];
}

/** A command's member of a sink's consumer group (TopicLog.holdGroup). */
export interface GroupHold {
  /** The group rebalanced since the hold joined (a process joined or left it, maybe gone again since), or the hold lost its place. */
  changed(): boolean;
  /** Leaves the group. */
  close(): Promise<void>;
}

/** How a consumer reads (topic logs that have no such setting ignore it). */
export interface ConsumerOptions {
  /**
   * Longest a fetch waits at the end of the log for new records (Kafka: the fetch's maxWaitTime,
   * default 500 ms). A seek waits for the fetch under way, so a reader that seeks often and reads
   * little (the subject key store) asks for a short one; each costs an empty fetch per wait when idle.
   */
  readonly fetchWaitMs?: number;
}

export interface PollOptions {
  readonly maxRecords: number;
  readonly maxBytes: number;
  readonly maxWaitMs: number;
  readonly signal?: AbortSignal;
}

/**
 * A member of a consumer group reading some topics. Where the group has no committed offset for a
 * partition, reading starts at the earliest kept record; a committed offset that retention has
 * since passed also restarts at the earliest kept record.
 */
export interface TopicConsumer {
  /**
   * Next records of the assigned partitions, in offset order per partition, waiting up to
   * `maxWaitMs` (less when `signal` aborts: then possibly none); at most `maxRecords` and
   * `maxBytes` (but at least one record).
   */
  poll(options: PollOptions): Promise<StoredRecord[]>;
  /** Commit offsets (the next offset to read) for the consumer group, durably. */
  commit(offsets: readonly TopicPartitionOffset[]): Promise<void>;
  /** Moves this member's read position; records already returned are not returned again unless the seek goes back. */
  seek(topic: string, partition: number, target: SeekTarget): Promise<void>;
  /**
   * The next offset this member reads in the partition, past transaction markers and compaction
   * gaps (commit this one to say "everything read"); null before it read the partition.
   */
  position(topic: string, partition: number): bigint | null;
  /** Partitions this member reads now (may change with Kafka group rebalances). */
  assignment(): readonly TopicPartition[];
  /**
   * Kafka: the member ids this member saw in its group at its joins (`seen`: all of a generation it
   * led, else its leader; its own included) and its own ones (`own`). Absent where a group has one member.
   */
  groupMembersSeen?(): { readonly own: readonly string[]; readonly seen: readonly string[] };
  /**
   * Kafka: whether groupMembersSeen keeps every join's members (true, as from the start: while a rebuild
   * watches the group), or only the last join's and its recent own member ids (false: forgets the rest).
   */
  keepGroupMembersSeen?(keep: boolean): void;
  /**
   * Records this member was to read next but the log no longer held when it got there (retention
   * deleted them while it lagged, or the partition no longer reaches its position), each told once;
   * the reading went on at the first record kept. Empty when nothing was skipped.
   */
  takeSkipped?(): SkippedRecords[];
  close(): Promise<void>;
}

/** Offsets `from` (inclusive) to `to` (exclusive) of a partition were gone when its reader got to `from`. */
export interface SkippedRecords extends TopicPartition {
  readonly from: bigint;
  readonly to: bigint;
}

/** Ordered JSON entries kept with the log: the built-in schema registry's store (and, in Kafka, the MySQL schema histories). */
export interface RegistryJournal {
  /** Appends one JSON-serializable entry durably. */
  append(entry: unknown): Promise<void>;
  /** Every entry, in append order. */
  loadAll(): Promise<unknown[]>;
}

/**
 * How a batch and the checkpoint that covers it are stored: "exactly-once" means atomically (both
 * or neither are visible); "at-least-once" means the records are durable before the checkpoint, so
 * a crash in between repeats records (sinks apply by version, so this is invisible downstream).
 */
export type CheckpointGuarantee = "exactly-once" | "at-least-once";

/**
 * The durable, ordered, replayable log between sources and sinks (embedded or Kafka).
 * `produce` resolves only when the records, and the checkpoint if given, are durable.
 */
/** What creates a data topic: its first record (capture's encoder, daemon/components.ts). */
export interface TopicCreation {
  /**
   * The record is a snapshot's: "whole-table" a read (or the reset closing it) of a snapshot that reads every row of the
   * table (the initial snapshot, exported or MySQL's), so a topic created again by it gets every row and nothing is
   * missing; "online" a read of an online snapshot, whose task may read the whole table or only a WHERE condition's rows
   * (daemon/recreated-topics.ts looks at the task).
   */
  readonly snapshot?: "whole-table" | "online";
}

/** A topic's record limit and what sets it, e.g. "max.message.bytes of topic T" or "segment.bytes of topic T". */
export interface RecordLimit {
  readonly bytes: number;
  /** What sets it, as an operator changes it. */
  readonly setting: string;
  /** How to raise it, as advice that follows the limit in an error. */
  readonly raise: string;
  /** The topic config that raises it (kafka-configs --add-config NAME=...); null for a broker-wide static one. */
  readonly config: "max.message.bytes" | "segment.bytes" | null;
}

export interface TopicLog {
  readonly kind: "embedded" | "kafka";
  readonly checkpointGuarantee: CheckpointGuarantee;
  /** Connected and able to store records now. */
  ready(): boolean;

  /**
   * Creates the topic, or checks that an existing one matches (partitions, compaction): a mismatch is a TOPIC_MISMATCH error naming both.
   * `creation` says what the data topic's first record is, so that a topic created again after it was deleted is told only when it lacks rows.
   */
  createTopic(spec: TopicSpec, creation?: TopicCreation): Promise<void>;
  deleteTopic(name: string): Promise<void>;
  /** Every topic, or only those of `names` that exist (Kafka: one describe per topic listed). */
  listTopics(names?: readonly string[]): Promise<TopicSpec[]>;
  /** The names alone, sorted: cheap enough to call often (Kafka: no describe per topic). */
  topicNames(): Promise<string[]>;
  /** Calls `listener` when any thread of this process creates a topic in this log (other processes' topics are not told); returns the unsubscribe. */
  onTopicCreated?(listener: () => void): () => void;
  /** Calls `listener` with each data topic this log created again after it was deleted while capture wrote to it (Kafka); returns the unsubscribe. */
  onTopicRecreated?(listener: (topic: string) => void): () => void;

  /**
   * Stores the records, partitioned by key, and the checkpoint if given (with its entries, in the
   * same atomic step; at-least-once: before it, with the records); resolves once durable
   * (not necessarily visible to other processes' readers yet: Kafka writes commit markers after
   * the commit; this process's own reads do see it). A rejection means nothing of the call is
   * acknowledged (it may be retried as a whole). Calls may overlap: a call is stored after every
   * call made before it and resolves after them. Once a call with a checkpoint of a source fails,
   * later calls with a checkpoint of that source (they may have been made before the caller saw
   * the failure) are refused until `readCheckpoint` of that source, so no stored checkpoint ever
   * skips records that were not stored.
   */
  produce(records: readonly ProducedRecord[], checkpoint?: Checkpoint): Promise<void>;
  /**
   * The last checkpoint stored for the source, with every entry kept beside it (Checkpoint.entries),
   * or null; after a crash of the process that stored
   * it too (Kafka with transactions: reading registers this process's transactional id first,
   * which makes Kafka complete a commit the crashed holder of that id left half-written).
   */
  readCheckpoint(source: string): Promise<Checkpoint | null>;

  /**
   * The identity of each topic's incarnation, for those of `topics` that have one: it changes when
   * the log is replaced (another embedded log file, another Kafka cluster) or the topic is deleted
   * and created again under the same name, so offsets stored for one incarnation are never applied
   * to another. Topics without a recorded identity yet are absent from the map.
   */
  topicIds(topics: readonly string[]): Promise<Map<string, string>>;

  /**
   * The largest record (counted as `recordBytes` in spec.ts does) the topic takes, as far as this
   * process knows: from the spec it created or declared the topic with, or, for an existing Kafka
   * topic, its max.message.bytes. Undefined when unknown.
   */
  maxRecordBytes?(topic: string): number | undefined;
  /** maxRecordBytes with what sets it, for an error an operator acts on; undefined when unknown. */
  recordLimitOf?(topic: string): RecordLimit | undefined;
  /** Reads the topics' limits (maxRecordBytes) again, e.g. before a table halted over one is retried (it may have been raised). */
  readRecordLimitsAgain?(topics: readonly string[]): Promise<unknown>;

  /** A member of `group` reading `topics` (which must exist). */
  consumer(group: string, topics: readonly string[], options?: ConsumerOptions): Promise<TopicConsumer>;
  /**
   * Visits every record of `topic` up to its current end, one partition after another, each in
   * offset order, holding at most `chunkRecords` records at a time; no consumer group. Offered
   * where a throwaway group costs time (Kafka: a new group waits the broker's initial rebalance
   * delay); otherwise read with a consumer.
   */
  scanTopic?(topic: string, chunkRecords: number, visit: (record: StoredRecord) => Promise<void>, signal?: AbortSignal): Promise<void>;
  /**
   * The committed records of one partition of `topic` from offset `start` (inclusive) to `end`
   * (exclusive, at most the end partitionOffsets gave), in offset order; no consumer group.
   * Offered where a group costs time (Kafka, as scanTopic); otherwise read with a consumer.
   */
  readRange?(topic: string, partition: number, start: bigint, end: bigint): Promise<StoredRecord[]>;
  partitionOffsets(topic: string): Promise<PartitionOffsets[]>;
  endOffsets(topic: string): Promise<TopicPartitionOffset[]>;
  /** Per partition: the first offset whose record has a timestamp at or after `timestampMs`, else the end offset. */
  offsetsForTimestamp(topic: string, timestampMs: number): Promise<TopicPartitionOffset[]>;
  committedOffsets(group: string): Promise<TopicPartitionOffset[]>;
  /** Overwrites the group's committed offsets; only safe while no member of the group runs (see groupActivity). */
  setCommittedOffsets(group: string, offsets: readonly TopicPartitionOffset[]): Promise<void>;
  groupLag(group: string, topics: readonly string[]): Promise<PartitionLag[]>;
  groupActivity(group: string): Promise<GroupActivity>;

  /**
   * Exclusive right to run a sink's consumer group (embedded: a row with owner and expiry, renewed
   * by the sink runtime; Kafka: group membership already says who runs, so these always succeed).
   * Returns false when another owner holds an unexpired lease.
   */
  acquireLease(group: string, owner: string, ttlMs: number): Promise<boolean>;
  /** Extends the owner's lease; false when it was lost (expired and taken by another owner). */
  renewLease(group: string, owner: string, ttlMs: number): Promise<boolean>;
  releaseLease(group: string, owner: string): Promise<void>;
  /**
   * Kafka (where leases always succeed): joins `group` as a member that reads nothing, its client id
   * marked as held for `purpose` (lowercase letters; groupActivity's clients tell it as heldFor), so
   * every process looking at the group sees a command at work on its sink (kafka-group-hold.ts).
   * Resolves once joined. Absent where the lease already makes a sink's group exclusive (embedded).
   */
  holdGroup?(group: string, purpose: string): Promise<GroupHold>;

  readonly registryJournal: RegistryJournal;
  /**
   * Kafka: the MySQL sources' schema histories (records `{source, entries}`), which must outlive the
   * process like the checkpoints they explain. The embedded log has none: sources keep theirs in
   * files beside it.
   */
  readonly schemaHistoryJournal?: RegistryJournal;
  close(): Promise<void>;
}
