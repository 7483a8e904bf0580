/**
 * The embedded topic log: one SQLite file (WAL, fsync on every commit) holding records, consumer
 * offsets, sink leases, source checkpoints and the schema registry's journal. A produce call is one
 * transaction, so a batch and the checkpoint that covers it are stored together or not at all:
 * capture into the embedded log is exactly-once.
 */
import type { EventEmitter } from "node:events";
import { randomUUID } from "node:crypto";
import { existsSync, mkdirSync, realpathSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { DatabaseSync } from "node:sqlite";
import type { TopicsConfig } from "../../config/schema.ts";
import type { Logger } from "../../runtime/logger.ts";
import { isGoneLocalProcess, localProcessToken } from "../../runtime/local-process.ts";
import type { Checkpoint } from "../contracts.ts";
import { SluiceError } from "../errors.ts";
import { recordDeployment, recordedDeployment, renamedDeploymentError } from "./checkpoint-deployment.ts";
import { checkpointEntryKey, checkpointEntryName, decodeCheckpoint, encodeCheckpoint, withEntries } from "../topics/checkpoint-codec.ts";
import type {
  GroupActivity,
  PartitionLag,
  PartitionOffsets,
  ProducedRecord,
  RegistryJournal,
  TopicConsumer,
  TopicLog,
  TopicPartitionOffset,
  TopicSpec,
} from "../topics/contract.ts";
import { partitionForKey } from "../topics/partitioner.ts";
import { assertSameLayout, RECORD_TOO_LARGE, recordBytes, validateSpec } from "../topics/spec.ts";
import { EmbeddedConsumer } from "./embedded-consumer.ts";
import { KeyIndex } from "./key-index.ts";
import { Maintenance } from "./maintenance.ts";
import type { MaintenanceResult } from "./maintenance.ts";
import { encodeBatch, encodedSize, recordTimestamps } from "./record-codec.ts";
import { fileIdentity, filesVerdict, type LogFiles } from "./files-in-place.ts";
import { folderCreationFailure, openFailureReason, writeRefusal } from "./open-failure.ts";
import { EmbeddedRegistryJournal } from "./registry-journal.ts";
import { prepareDatabase, readLogId } from "./schema.ts";
import { rollBackQuietly, topicLogError } from "./sqlite-errors.ts";
import { notifierFor, notifyAppend } from "./wakeup.ts";
import { announceTopicCreated, onTopicCreated } from "../topics/topic-notices.ts";

export interface EmbeddedLogOptions {
  readonly path: string;
  readonly logger: Logger;
  /** Period of the retention and compaction job; 0 runs it only when `runMaintenance` is called. */
  readonly maintenanceIntervalMs?: number;
  /** Batch rows the job examines per run, bounding its work. */
  readonly maintenanceBudget?: number;
  /** How often a waiting reader checks for records appended by another process. */
  readonly crossProcessPollMs?: number;
  /** Largest stored batch row; a larger produce call is split into several rows. */
  readonly maxRowBytes?: number;
  /** Tombstones in compacted topics are dropped this long after they were written (once every group read them). */
  readonly tombstoneRetentionMs?: number;
  /** Records of compacted topics younger than this are never compacted. */
  readonly minCompactionLagMs?: number;
  /** Clock for retention and leases; tests pass their own. */
  readonly clock?: () => number;
  /** SQLite page cache of this connection (topics.cache_size, a share of the memory budget); default SQLite's 2 MB. */
  readonly cacheBytes?: number;
  /**
   * Open an existing file for reading only (operator commands beside a running daemon): nothing is
   * created or written, no retention job runs, and every write fails with TOPIC_LOG_READ_ONLY.
   */
  readonly readOnly?: boolean;
  /**
   * The deployment (config `name:`) using the file: recorded with each source's checkpoint, and a
   * checkpoint another deployment wrote is refused (checkpoint-deployment.ts). Unset: not checked.
   */
  readonly deployment?: string;
  /** How often a write checks that the log's files are still the ones open (files-in-place.ts); default 1 s. */
  readonly filesCheckIntervalMs?: number;
}

export interface TopicMeta {
  readonly id: number;
  readonly spec: TopicSpec;
}

interface TopicRow {
  id: number;
  name: string;
  partitions: number;
  retention_ms: number | null;
  retention_bytes: number | null;
  compacted: number;
}

interface PartitionGroup {
  readonly topic: TopicMeta;
  readonly partition: number;
  readonly records: ProducedRecord[];
  readonly sizes: number[];
}

/**
 * The connection's memory: its page cache, and no memory-mapped reads: mapped pages of the file
 * would count in the process's RSS (and a container's memory) beyond the budget.
 */
/**
 * A lease row's owner column: the owner's name, then (after a newline) its process
 * (runtime/local-process.ts), so a process restarted after kill -9 can tell its predecessor's
 * lease from a live one's. Rows of earlier versions have the name alone.
 */
const thisProcess = localProcessToken();
function storedLeaseOwner(owner: string): string {
  return thisProcess === null ? owner : `${owner}\n${JSON.stringify(thisProcess)}`;
}
function leaseOwner(stored: string): string {
  const newline = stored.indexOf("\n");
  return newline < 0 ? stored : stored.slice(0, newline);
}
/**
 * Whether a lease row is held by another process than this one under `owner`: another name, or the
 * same name with another process (two containers with a fixed hostname, both PID 1, share the name
 * `host:1`). A row of an earlier version (no process) or a process that cannot tell its own (not
 * Linux) goes by the name alone.
 */
function heldByAnother(stored: string, owner: string): boolean {
  if (leaseOwner(stored) !== owner) return true;
  return thisProcess !== null && leaseProcess(stored) !== null && stored !== storedLeaseOwner(owner);
}
function leaseProcess(stored: string): unknown {
  const newline = stored.indexOf("\n");
  if (newline < 0) return null;
  try {
    return JSON.parse(stored.slice(newline + 1)) as unknown;
  } catch {
    return null;
  }
}

function limitMemory(db: DatabaseSync, cacheBytes: number | undefined): void {
  if (cacheBytes !== undefined) db.exec(`PRAGMA cache_size = -${Math.max(1, Math.floor(cacheBytes / 1024))}`);
  db.exec("PRAGMA mmap_size = 0");
}

export function embeddedOptionsFromConfig(config: Extract<TopicsConfig, { kind: "embedded" }>, logger: Logger, deployment?: string): EmbeddedLogOptions {
  return { path: config.path, logger, ...(deployment !== undefined ? { deployment } : {}), tombstoneRetentionMs: config.retention.tombstones, minCompactionLagMs: config.retention.min_compaction_lag, ...(config.cache_size !== undefined ? { cacheBytes: config.cache_size } : {}) };
}

/** Statements prepared once per connection; each produce call reuses them. */
function prepareStatements(db: DatabaseSync) {
  return {
    topicByName: db.prepare("SELECT id, name, partitions, retention_ms, retention_bytes, compacted FROM topics WHERE name = ?"),
    allTopics: db.prepare("SELECT id, name, partitions, retention_ms, retention_bytes, compacted FROM topics ORDER BY name"),
    insertTopic: db.prepare("INSERT INTO topics (name, partitions, retention_ms, retention_bytes, compacted, created_at_ms) VALUES (?, ?, ?, ?, ?, ?)"),
    updateTopicRetention: db.prepare("UPDATE topics SET retention_ms = ?, retention_bytes = ? WHERE id = ?"),
    // indexed_offset by its default, 0: a read-only open of a file from before it prepares this too.
    insertPartition: db.prepare("INSERT INTO partitions (topic_id, partition, start_offset, next_offset, bytes, cleaned_offset) VALUES (?, ?, 0, 0, 0, 0)"),
    deleteTopic: db.prepare("DELETE FROM topics WHERE id = ?"),
    deleteTopicBatches: db.prepare("DELETE FROM batches WHERE topic_id = ?"),
    deleteTopicKeys: db.prepare("DELETE FROM latest_keys WHERE topic_id = ?"),
    partitionState: db.prepare("SELECT next_offset, bytes FROM partitions WHERE topic_id = ? AND partition = ?"),
    partitionBounds: db.prepare("SELECT start_offset, next_offset FROM partitions WHERE topic_id = ? AND partition = ?"),
    partitionRange: db.prepare("SELECT partition, start_offset, next_offset FROM partitions WHERE topic_id = ? ORDER BY partition"),
    advancePartition: db.prepare("UPDATE partitions SET next_offset = ?, bytes = ? WHERE topic_id = ? AND partition = ?"),
    insertBatch: db.prepare("INSERT INTO batches (topic_id, partition, base_offset, last_offset, max_timestamp, record_count, bytes, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"),
    firstBatchAtOrAfterTime: db.prepare("SELECT base_offset, payload FROM batches WHERE topic_id = ? AND partition = ? AND max_timestamp >= ? ORDER BY last_offset LIMIT 1"),
    batchesFrom: db.prepare("SELECT base_offset, last_offset, payload FROM batches WHERE topic_id = ? AND partition = ? AND last_offset >= ? ORDER BY last_offset LIMIT ?"),
    upsertCheckpoint: db.prepare("INSERT INTO checkpoints (source, checkpoint, updated_at_ms) VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET checkpoint = excluded.checkpoint, updated_at_ms = excluded.updated_at_ms"),
    checkpoint: db.prepare("SELECT checkpoint FROM checkpoints WHERE source = ?"),
    // A source's entries (Checkpoint.entries) are rows of their own, keyed "<source>/<name>": from "<source>/" up to "<source>0" ("0" follows "/").
    checkpointEntries: db.prepare("SELECT source AS key, checkpoint AS value FROM checkpoints WHERE source >= ? AND source < ?"),
    deleteCheckpointEntry: db.prepare("DELETE FROM checkpoints WHERE source = ?"),
    groupOffsets: db.prepare("SELECT t.name AS topic, g.partition, g.next_offset FROM group_offsets g JOIN topics t ON t.id = g.topic_id WHERE g.group_name = ? ORDER BY t.name, g.partition"),
    groupOffset: db.prepare("SELECT next_offset FROM group_offsets WHERE group_name = ? AND topic_id = ? AND partition = ?"),
    upsertGroupOffset: db.prepare("INSERT INTO group_offsets (group_name, topic_id, partition, next_offset) VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE SET next_offset = excluded.next_offset"),
    lease: db.prepare("SELECT owner, expires_at_ms FROM leases WHERE group_name = ?"),
    upsertLease: db.prepare("INSERT INTO leases (group_name, owner, expires_at_ms) VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET owner = excluded.owner, expires_at_ms = excluded.expires_at_ms"),
    deleteLease: db.prepare("DELETE FROM leases WHERE group_name = ? AND owner = ?"),
  };
}

export type EmbeddedStatements = ReturnType<typeof prepareStatements>;

export class EmbeddedTopicLog implements TopicLog {
  readonly kind = "embedded";
  readonly checkpointGuarantee = "exactly-once";
  readonly path: string;
  readonly registryJournal: RegistryJournal;
  readonly notifier: EventEmitter;
  readonly crossProcessPollMs: number;
  readonly clock: () => number;
  /** This file's identity (log_meta.log_id): a replaced file has another. */
  readonly logId: string;
  private readonly db: DatabaseSync;
  private readonly statements: EmbeddedStatements;
  private readonly logger: Logger;
  private readonly maxRowBytes: number;
  /** Made on the first run: its statements need this version's schema, which a read-only open of an older file lacks. */
  private maintenance: Maintenance | undefined;
  private readonly tombstoneRetentionMs: number;
  private readonly minCompactionLagMs: number;
  private readonly maintenanceBudget: number;
  private readonly topics = new Map<string, TopicMeta>();
  /** Record size limits of the topics this process created or declared (TopicSpec.maxRecordBytes). */
  private readonly recordLimits = new Map<string, number>();
  private readonly consumers = new Set<EmbeddedConsumer>();
  /** Sources whose write with a checkpoint failed: a later checkpoint of theirs is refused until it is read again (see produce). */
  private readonly failedSources = new Map<string, Error>();
  private readonly readOnly: boolean;
  private readonly deployment: string | undefined;
  /** Sources whose checkpoint row names this deployment (read or written since their checkpoint was last read). */
  private readonly deploymentRecorded = new Set<string>();
  private maintenanceTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** The files this connection opened and writes (writable opens): the file, its -wal and -shm. */
  private openedFiles: LogFiles | null = null;
  private filesCheckedAt = -Infinity;
  private readonly filesCheckIntervalMs: number;

  private constructor(db: DatabaseSync, path: string, options: EmbeddedLogOptions) {
    this.db = db;
    this.path = path;
    this.logger = options.logger.child({ component: "embedded-log", path });
    this.statements = prepareStatements(db);
    this.logId = readLogId(db) ?? "";
    this.notifier = notifierFor(path);
    this.crossProcessPollMs = options.crossProcessPollMs ?? 200;
    this.maxRowBytes = options.maxRowBytes ?? 2 ** 20;
    this.clock = options.clock ?? Date.now;
    this.tombstoneRetentionMs = options.tombstoneRetentionMs ?? 86_400_000;
    this.minCompactionLagMs = options.minCompactionLagMs ?? 0;
    this.maintenanceBudget = options.maintenanceBudget ?? 500;
    this.readOnly = options.readOnly ?? false;
    this.deployment = options.deployment;
    this.filesCheckIntervalMs = options.filesCheckIntervalMs ?? 1_000;
    this.registryJournal = new EmbeddedRegistryJournal(db, path, this.clock, () => this.assertWritable("append registry entry"));
    const interval = this.readOnly ? 0 : (options.maintenanceIntervalMs ?? 10_000);
    if (interval > 0) {
      this.maintenanceTimer = setInterval(() => this.runScheduledMaintenance(), interval);
      this.maintenanceTimer.unref();
    }
  }

  /** Opens (creating if needed) the log file; a file another Sluice version wrote is refused. */
  static open(options: EmbeddedLogOptions): EmbeddedTopicLog {
    const path = resolve(options.path);
    if (options.readOnly && !existsSync(path)) {
      throw new SluiceError(`no embedded topic log at ${path}: nothing has been captured with this config yet (start "sluice run", or check topics.path)`, {
        code: "TOPIC_LOG_NOT_FOUND",
        context: { component: "embedded-log", path },
      });
    }
    if (!options.readOnly) {
      try {
        mkdirSync(dirname(path), { recursive: true });
      } catch (error) {
        const errno = (error as NodeJS.ErrnoException).code;
        if (errno === "ENOSPC" || errno === "EDQUOT") {
          throw new SluiceError(`embedded topic log ${path}: disk full during open (cannot create its folder ${dirname(path)}: ${errno}); nothing of it was stored`, { code: "TOPIC_LOG_DISK_FULL", retriable: true, context: { component: "embedded-log", path, operation: "open" }, cause: error });
        }
        throw new SluiceError(`cannot open embedded topic log ${path}: ${folderCreationFailure(dirname(path), error)}`, { code: "TOPIC_LOG_OPEN_FAILED", context: { component: "embedded-log", path }, cause: error });
      }
    }
    let db: DatabaseSync;
    try {
      db = new DatabaseSync(path, { readOnly: options.readOnly ?? false });
    } catch (error) {
      const reason = openFailureReason(path, options.readOnly ?? false);
      throw new SluiceError(`cannot open embedded topic log ${path}: ${reason === "" ? "" : `${reason}; `}${(error as Error).message}`, { code: "TOPIC_LOG_OPEN_FAILED", context: { component: "embedded-log", path }, cause: error });
    }
    // SQLite opens a file it may not write read-only without a word, and the first write then fails.
    const unwritable = options.readOnly ? "" : writeRefusal(db, path);
    if (unwritable !== "") {
      db.close();
      throw new SluiceError(`cannot open embedded topic log ${path}: ${unwritable}`, { code: "TOPIC_LOG_OPEN_FAILED", context: { component: "embedded-log", path } });
    }
    try {
      prepareDatabase(db, path, options.readOnly ?? false);
      limitMemory(db, options.cacheBytes);
    } catch (error) {
      db.close();
      throw topicLogError(error, "open", path);
    }
    const log = new EmbeddedTopicLog(db, realpathSync(path), options);
    if (!log.readOnly) {
      // After prepareDatabase this connection has its -wal and -shm open: recorded now, when they are its own.
      log.openedFiles = { main: fileIdentity(log.path), wal: null, shm: null };
      filesVerdict(log.path, log.openedFiles);
    }
    log.logger.info({ readOnly: log.readOnly }, "embedded topic log open");
    return log;
  }

  ready(): boolean {
    return !this.closed;
  }

  async createTopic(spec: TopicSpec): Promise<void> {
    this.assertOpen();
    validateSpec(spec);
    // Kept for this process: every start declares its topics again, with the limit of its config.
    if (spec.maxRecordBytes) this.recordLimits.set(spec.name, spec.maxRecordBytes);
    else this.recordLimits.delete(spec.name);
    const existing = this.findTopic(spec.name);
    if (existing) {
      assertSameLayout(spec, existing.spec);
      if (spec.compacted && !existing.spec.compacted) {
        this.switchToCompaction(existing, spec);
        return;
      }
      if (existing.spec.retentionMs !== spec.retentionMs || existing.spec.retentionBytes !== spec.retentionBytes) {
        this.write("create topic", () => this.statements.updateTopicRetention.run(spec.retentionMs, spec.retentionBytes, existing.id));
        this.topics.set(spec.name, { id: existing.id, spec });
        // Told, not silent: a bound set on a topic that kept everything drops its oldest records from now on.
        this.logger.warn(
          { topic: spec.name, retentionMs: { was: existing.spec.retentionMs, now: spec.retentionMs }, retentionBytes: { was: existing.spec.retentionBytes, now: spec.retentionBytes } },
          `topic ${spec.name}: retention changed from ${retentionText(existing.spec)} to ${retentionText(spec)}, as the config now says${spec.retentionMs !== null || spec.retentionBytes !== null ? "; records beyond it are dropped" : ""}`,
        );
      }
      return;
    }
    this.write("create topic", () => {
      const { lastInsertRowid } = this.statements.insertTopic.run(spec.name, spec.partitions, spec.retentionMs, spec.retentionBytes, spec.compacted ? 1 : 0, this.clock());
      for (let p = 0; p < spec.partitions; p++) this.statements.insertPartition.run(lastInsertRowid, p);
      // The key is built here: node:sqlite binds a JS number as REAL, and 'topic:' || 2.0 is 'topic:2.0'.
      this.db.prepare("INSERT INTO log_meta (key, value) VALUES (?, ?) ON CONFLICT DO UPDATE SET value = excluded.value").run(`topic:${lastInsertRowid}`, randomUUID());
    });
    this.logger.info({ topic: spec.name, partitions: spec.partitions, compacted: spec.compacted }, "topic created");
    announceTopicCreated(this.path);
  }

  onTopicCreated(listener: () => void): () => void {
    return onTopicCreated(this.path, listener);
  }

  maxRecordBytes(topic: string): number | undefined {
    return this.recordLimits.get(topic);
  }

  /**
   * A data topic written before Sluice compacted them (spec.acceptUncompacted) is compacted from
   * now on, in place: the key index starts at the partitions' current ends, and compaction removes a
   * record only when a later record of its key is indexed, so keys last written before the switch
   * keep all their records (nothing is lost; they are just not compacted). Records retention already removed
   * stay gone: a partition that no longer starts at offset 0 stays incomplete for rebuilds.
   */
  private switchToCompaction(existing: TopicMeta, spec: TopicSpec): void {
    this.write("switch topic to compaction", () => {
      this.db.prepare("UPDATE topics SET compacted = 1, retention_ms = ?, retention_bytes = ? WHERE id = ?").run(spec.retentionMs, spec.retentionBytes, existing.id);
      this.db.prepare("UPDATE partitions SET indexed_offset = next_offset WHERE topic_id = ?").run(existing.id);
    });
    this.topics.set(spec.name, { id: existing.id, spec });
    const incomplete = (this.statements.partitionRange.all(existing.id) as unknown as { partition: number; start_offset: number }[]).filter((p) => p.start_offset > 0);
    this.logger.warn(
      { topic: spec.name, incompletePartitions: incomplete.map((p) => `${spec.name}:${p.partition} starts at offset ${p.start_offset}`) },
      incomplete.length === 0
        ? "topic was created with delete retention; switched it to compaction (topics.retention.cleanup_policy), it holds its whole history"
        : "topic was created with delete retention; switched it to compaction (topics.retention.cleanup_policy), but retention already removed its first records: rebuilds and new sinks need a re-snapshot (docs/operations.md, \"Rebuilds need complete history\")",
    );
  }

  async deleteTopic(name: string): Promise<void> {
    this.assertOpen();
    const topic = this.findTopic(name);
    if (!topic) return;
    this.write("delete topic", () => {
      this.statements.deleteTopicBatches.run(topic.id);
      this.statements.deleteTopicKeys.run(topic.id);
      this.statements.deleteTopic.run(topic.id);
    });
    this.topics.delete(name);
  }

  async listTopics(names?: readonly string[]): Promise<TopicSpec[]> {
    this.assertOpen();
    const all = (this.statements.allTopics.all() as unknown as TopicRow[]).map((row) => specOf(row));
    return names ? all.filter((spec) => names.includes(spec.name)) : all;
  }

  async topicNames(): Promise<string[]> {
    return (await this.listTopics()).map((topic) => topic.name);
  }

  /**
   * Stores the records and the checkpoint in one SQLite transaction, synchronously: overlapping
   * calls are stored in call order. After a call with a checkpoint fails, a later checkpoint of the
   * same source (maybe issued before the caller saw the failure) is refused until the source's
   * checkpoint is read again, so none skips the records that were not stored.
   */
  async produce(records: readonly ProducedRecord[], checkpoint?: Checkpoint): Promise<void> {
    this.assertOpen();
    const failed = checkpoint ? this.failedSources.get(checkpoint.source) : undefined;
    if (failed) {
      throw new SluiceError(`an earlier write of source ${checkpoint!.source}'s changes failed (${failed.message}); a later checkpoint of it is refused until its checkpoint is read again, so none skips the lost changes`, {
        code: failed instanceof SluiceError ? failed.code : "TOPIC_LOG_WRITE_FAILED",
        retriable: failed instanceof SluiceError && failed.retriable,
        cause: failed,
        context: { component: "embedded-log", source: checkpoint!.source, path: this.path },
      });
    }
    try {
      const groups = this.groupByPartition(records);
      this.write("produce", () => {
        for (const group of groups) this.append(group);
        if (checkpoint) this.storeCheckpoint(checkpoint);
      });
    } catch (error) {
      if (checkpoint) this.failedSources.set(checkpoint.source, error as Error);
      throw error;
    }
    if (records.length > 0) notifyAppend(this.notifier);
  }

  async readCheckpoint(source: string): Promise<Checkpoint | null> {
    this.assertOpen();
    this.failedSources.delete(source);
    this.deploymentRecorded.delete(source);
    // One read transaction: the entries are those of the checkpoint read.
    const { row, stored, writtenBy } = this.read("read checkpoint", () => {
      this.db.exec("BEGIN");
      try {
        return {
          row: this.statements.checkpoint.get(source) as { checkpoint: string } | undefined,
          stored: this.statements.checkpointEntries.all(`${source}/`, `${source}0`) as { key: string; value: string }[],
          writtenBy: this.deployment === undefined ? null : recordedDeployment(this.db, source),
        };
      } finally {
        this.db.exec("COMMIT");
      }
    });
    if (!row) return null;
    if (this.deployment !== undefined) this.checkDeployment(source, this.deployment, writtenBy);
    const entries = new Map<string, string>();
    for (const { key, value } of stored) {
      const name = checkpointEntryName(source, key);
      if (name !== null) entries.set(name, value);
    }
    return withEntries(decodeCheckpoint(row.checkpoint, this.path), entries);
  }

  /**
   * A checkpoint another deployment wrote is refused; one from before the deployment was recorded
   * is adopted: this deployment is recorded as its writer.
   */
  private checkDeployment(source: string, deployment: string, writtenBy: string | null): void {
    if (writtenBy !== null && writtenBy !== deployment) throw renamedDeploymentError(this.path, source, writtenBy, deployment);
    if (writtenBy === null && !this.readOnly) {
      this.write("record checkpoint deployment", () => recordDeployment(this.db, source, deployment));
      this.logger.info({ source, deployment }, "checkpoint from before deployments were recorded: adopted by this deployment");
    }
    if (writtenBy !== null || !this.readOnly) this.deploymentRecorded.add(source);
  }

  /** Within produce's transaction: the checkpoint and the entries it writes (Checkpoint.entries). */
  private storeCheckpoint(checkpoint: Checkpoint): void {
    if (this.deployment !== undefined && !this.deploymentRecorded.has(checkpoint.source)) {
      recordDeployment(this.db, checkpoint.source, this.deployment);
      this.deploymentRecorded.add(checkpoint.source);
    }
    const now = this.clock();
    for (const [name, value] of Object.entries(checkpoint.entries ?? {})) {
      const key = checkpointEntryKey(checkpoint.source, name);
      if (value === null) this.statements.deleteCheckpointEntry.run(key);
      else this.statements.upsertCheckpoint.run(key, value, now);
    }
    this.statements.upsertCheckpoint.run(checkpoint.source, encodeCheckpoint(checkpoint), now);
  }

  /**
   * `<log id>/<uuid drawn at creation>` (topics created before Sluice drew one: `<log id>/<row id>@<creation ms>`):
   * another file, or the topic deleted and created again, gives another. A file no Sluice that
   * records identities has opened for writing yet has none.
   */
  async topicIds(topics: readonly string[]): Promise<Map<string, string>> {
    this.assertOpen();
    const ids = new Map<string, string>();
    if (!this.logId) return ids;
    const statement = this.read("read topic", () => this.db.prepare("SELECT t.id, t.created_at_ms, m.value AS uuid FROM topics t LEFT JOIN log_meta m ON m.key = 'topic:' || t.id WHERE t.name = ?"));
    for (const name of topics) {
      const row = this.read("read topic", () => statement.get(name)) as { id: number; created_at_ms: number; uuid: string | null } | undefined;
      if (row) ids.set(name, `${this.logId}/${row.uuid ?? `${row.id}@${row.created_at_ms}`}`);
    }
    return ids;
  }

  async consumer(group: string, topics: readonly string[]): Promise<TopicConsumer> {
    this.assertOpen();
    const metas = topics.map((name) => this.requireTopic(name));
    const consumer = new EmbeddedConsumer(this, this.statements, group, metas, (c) => this.consumers.delete(c));
    this.consumers.add(consumer);
    return consumer;
  }

  async partitionOffsets(topic: string): Promise<PartitionOffsets[]> {
    this.assertOpen();
    const meta = this.requireTopic(topic);
    const rows = this.read("read offsets", () => this.statements.partitionRange.all(meta.id)) as unknown as { partition: number; start_offset: number; next_offset: number }[];
    return rows.map((row) => ({ topic, partition: row.partition, start: BigInt(row.start_offset), end: BigInt(row.next_offset) }));
  }

  async endOffsets(topic: string): Promise<TopicPartitionOffset[]> {
    return (await this.partitionOffsets(topic)).map(({ topic: t, partition, end }) => ({ topic: t, partition, offset: end }));
  }

  async offsetsForTimestamp(topic: string, timestampMs: number): Promise<TopicPartitionOffset[]> {
    const ranges = await this.partitionOffsets(topic);
    const meta = this.requireTopic(topic);
    return ranges.map((range) => ({ topic, partition: range.partition, offset: BigInt(this.offsetForTimestamp(meta, range.partition, timestampMs) ?? Number(range.end)) }));
  }

  async committedOffsets(group: string): Promise<TopicPartitionOffset[]> {
    this.assertOpen();
    const rows = this.read("read group offsets", () => this.statements.groupOffsets.all(group)) as unknown as { topic: string; partition: number; next_offset: number }[];
    return rows.map((row) => ({ topic: row.topic, partition: row.partition, offset: BigInt(row.next_offset) }));
  }

  async setCommittedOffsets(group: string, offsets: readonly TopicPartitionOffset[]): Promise<void> {
    this.assertOpen();
    const resolved = offsets.map((o) => ({ id: this.requirePartition(o.topic, o.partition).id, partition: o.partition, offset: toSafeOffset(o.offset) }));
    this.write("commit offsets", () => {
      for (const o of resolved) this.statements.upsertGroupOffset.run(group, o.id, o.partition, o.offset);
    });
  }

  async groupLag(group: string, topics: readonly string[]): Promise<PartitionLag[]> {
    const committed = new Map((await this.committedOffsets(group)).map((o) => [`${o.topic}\u0000${o.partition}`, o.offset]));
    const lags: PartitionLag[] = [];
    for (const topic of topics) {
      for (const range of await this.partitionOffsets(topic)) {
        const offset = committed.get(`${topic}\u0000${range.partition}`) ?? null;
        const from = offset === null || offset < range.start ? range.start : offset;
        lags.push({ topic, partition: range.partition, committed: offset, end: range.end, lag: range.end > from ? range.end - from : 0n });
      }
    }
    return lags;
  }

  async groupActivity(group: string): Promise<GroupActivity> {
    this.assertOpen();
    const lease = this.statements.lease.get(group) as { owner: string; expires_at_ms: number } | undefined;
    const active = lease !== undefined && lease.expires_at_ms > this.clock();
    return { active, members: active ? [leaseOwner(lease.owner)] : [] };
  }

  async acquireLease(group: string, owner: string, ttlMs: number): Promise<boolean> {
    this.assertOpen();
    return this.write("acquire lease", () => {
      const lease = this.statements.lease.get(group) as { owner: string; expires_at_ms: number } | undefined;
      if (lease && heldByAnother(lease.owner, owner) && lease.expires_at_ms > this.clock()) {
        // A lease a killed process of this machine left (this process before a restart) is not waited out.
        if (!isGoneLocalProcess(leaseProcess(lease.owner))) return false;
        this.logger.info({ group, owner: leaseOwner(lease.owner) }, "took over the lease a process that is gone (killed) left, instead of waiting for it to expire");
      }
      this.statements.upsertLease.run(group, storedLeaseOwner(owner), this.clock() + ttlMs);
      return true;
    });
  }

  async renewLease(group: string, owner: string, ttlMs: number): Promise<boolean> {
    this.assertOpen();
    return this.write("renew lease", () => {
      const lease = this.statements.lease.get(group) as { owner: string; expires_at_ms: number } | undefined;
      // An expired lease nobody took over is still ours to renew; a lease another owner took is lost.
      if (lease && heldByAnother(lease.owner, owner)) return false;
      this.statements.upsertLease.run(group, storedLeaseOwner(owner), this.clock() + ttlMs);
      return true;
    });
  }

  async releaseLease(group: string, owner: string): Promise<void> {
    this.assertOpen();
    this.write("release lease", () => {
      const lease = this.statements.lease.get(group) as { owner: string } | undefined;
      if (lease && !heldByAnother(lease.owner, owner)) this.statements.deleteLease.run(group, lease.owner);
    });
  }

  /** Runs one bounded retention and compaction pass now (the timer runs it periodically). */
  runMaintenance(): MaintenanceResult {
    this.assertOpen();
    this.assertWritable("retention");
    try {
      this.maintenance ??= new Maintenance(this.db, new KeyIndex(this.db), this.tombstoneRetentionMs, { minCompactionLagMs: this.minCompactionLagMs });
      return this.maintenance.run(this.clock(), this.maintenanceBudget);
    } catch (error) {
      throw topicLogError(error, "retention", this.path);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.maintenanceTimer);
    for (const consumer of [...this.consumers]) await consumer.close();
    this.db.close();
    this.logger.info("embedded topic log closed");
  }

  // ---- used by EmbeddedConsumer ----

  assertOpen(): void {
    if (this.closed) throw new SluiceError(`embedded topic log ${this.path} is closed`, { code: "TOPIC_LOG_CLOSED", context: { component: "embedded-log", path: this.path } });
  }

  /** Runs `operation` in one IMMEDIATE transaction; any failure rolls it back whole. */
  write<T>(operation: string, body: () => T): T {
    this.assertWritable(operation);
    this.assertFilesInPlace(operation);
    try {
      this.db.exec("BEGIN IMMEDIATE");
      const result = body();
      this.db.exec("COMMIT");
      return result;
    } catch (error) {
      rollBackQuietly(this.db);
      throw topicLogError(error, operation, this.path);
    }
  }

  /**
   * Refuses to write (TOPIC_LOG_FILE_GONE, permanent: the daemon stops) once the log's file, its -wal or its -shm was
   * deleted or replaced while open (told by device and inode: another process opening the log after a deletion creates
   * new ones under the same names). Stopping closes the connections; SQLite's close copies what the deleted -wal holds
   * into the file when that is still in place, so a restart reads on from there. A file that cannot be looked at (not
   * ENOENT: EACCES, EIO, ESTALE...) refuses the write retriably with that cause, checked again at the next write.
   * Checked at most once per filesCheckIntervalMs.
   */
  private assertFilesInPlace(operation: string): void {
    if (this.openedFiles === null) return;
    const now = performance.now();
    if (now - this.filesCheckedAt < this.filesCheckIntervalMs) return;
    const verdict = filesVerdict(this.path, this.openedFiles);
    if (verdict.state === "in place") {
      this.filesCheckedAt = now;
      return;
    }
    if (verdict.state === "unknown") {
      const cause = verdict.error as NodeJS.ErrnoException;
      throw new SluiceError(
        `embedded topic log ${this.path}: cannot check that ${verdict.path} is still the file this process writes (${cause.message}); ` +
          `nothing is written until it can be, retried`,
        { code: "TOPIC_LOG_IO_ERROR", retriable: true, context: { component: "embedded-log", path: this.path, operation }, cause },
      );
    }
    throw new SluiceError(
      `embedded topic log ${this.path}: ${verdict.what} while the daemon ran (to free disk space?). SQLite writes on into the deleted file, so what it stored would be lost ` +
        `at a crash, and a process opening the log now writes files of its own beside it and sees none of it: nothing more is written, and the daemon stops (its stop copies a deleted -wal's contents into ` +
        `the file when the file is still in place). Never delete or move the log's files (sluice.db, -wal, -shm) while Sluice runs (docs/topics.md)`,
      { code: "TOPIC_LOG_FILE_GONE", retriable: false, context: { component: "embedded-log", path: this.path, operation } },
    );
  }

  /** Throws TOPIC_LOG_READ_ONLY when this log was opened read-only. */
  assertWritable(operation: string): void {
    if (!this.readOnly) return;
    throw new SluiceError(`cannot ${operation}: this command opened the embedded topic log ${this.path} read-only (so it never takes a lock a running daemon waits for)`, {
      code: "TOPIC_LOG_READ_ONLY",
      context: { component: "embedded-log", path: this.path, operation },
    });
  }

  read<T>(operation: string, body: () => T): T {
    try {
      return body();
    } catch (error) {
      throw topicLogError(error, operation, this.path);
    }
  }

  offsetForTimestamp(topic: TopicMeta, partition: number, timestampMs: number): number | undefined {
    const row = this.read("seek by time", () => this.statements.firstBatchAtOrAfterTime.get(topic.id, partition, timestampMs)) as { base_offset: number; payload: Uint8Array } | undefined;
    if (!row) return undefined;
    return this.firstOffsetAtOrAfter(row.base_offset, row.payload, timestampMs);
  }

  private firstOffsetAtOrAfter(baseOffset: number, payload: Uint8Array, timestampMs: number): number | undefined {
    // The batch's max timestamp is at or after the target, so one of its records is.
    for (const record of recordTimestamps(payload)) {
      if (record.timestamp >= timestampMs) return baseOffset + record.offsetDelta;
    }
    return undefined;
  }

  requireTopic(name: string): TopicMeta {
    const meta = this.findTopic(name);
    if (!meta) throw new SluiceError(`topic "${name}" does not exist in the embedded log ${this.path}`, { code: "TOPIC_NOT_FOUND", context: { component: "embedded-log", topic: name } });
    return meta;
  }

  private requirePartition(topic: string, partition: number): TopicMeta {
    const meta = this.requireTopic(topic);
    if (!Number.isInteger(partition) || partition < 0 || partition >= meta.spec.partitions) {
      throw new SluiceError(`topic "${topic}" has no partition ${partition} (it has ${meta.spec.partitions})`, { code: "PARTITION_NOT_FOUND", context: { component: "embedded-log", topic, partition } });
    }
    return meta;
  }

  private findTopic(name: string): TopicMeta | undefined {
    const cached = this.topics.get(name);
    if (cached) return cached;
    const row = this.read("read topic", () => this.statements.topicByName.get(name)) as TopicRow | undefined;
    if (!row) return undefined;
    const meta = { id: row.id, spec: specOf(row) };
    this.topics.set(name, meta);
    return meta;
  }

  private groupByPartition(records: readonly ProducedRecord[]): PartitionGroup[] {
    const groups = new Map<string, PartitionGroup>();
    for (const record of records) {
      const topic = this.requireTopic(record.topic);
      const limit = this.recordLimits.get(record.topic);
      if (limit !== undefined && recordBytes(record) > limit) {
        throw new SluiceError(`a ${recordBytes(record)}-byte record for topic "${record.topic}" is over the topic's limit of ${limit} bytes (topics.max_record_bytes); nothing of this produce call was stored`, {
          code: RECORD_TOO_LARGE,
          context: { component: "embedded-log", topic: record.topic, bytes: recordBytes(record), limit },
        });
      }
      if (topic.spec.compacted && record.key === null) {
        throw new SluiceError(`topic "${record.topic}" is compacted: every record needs a key`, { code: "RECORD_KEY_MISSING", context: { component: "embedded-log", topic: record.topic } });
      }
      const partition = partitionForKey(record.key, topic.spec.partitions);
      const id = `${topic.id}:${partition}`;
      let group = groups.get(id);
      if (!group) {
        group = { topic, partition, records: [], sizes: [] };
        groups.set(id, group);
      }
      group.records.push(record);
      group.sizes.push(encodedSize(record));
    }
    return [...groups.values()];
  }

  /** Appends one partition's records as batch rows of at most maxRowBytes; runs inside the produce transaction. */
  private append(group: PartitionGroup): void {
    const { topic, partition, records, sizes } = group;
    const state = this.statements.partitionState.get(topic.id, partition) as { next_offset: number; bytes: number };
    let next = state.next_offset;
    let bytes = state.bytes;
    let start = 0;
    while (start < records.length) {
      let end = start;
      let size = 0;
      let maxTimestamp = -Infinity;
      do {
        size += sizes[end]!;
        maxTimestamp = Math.max(maxTimestamp, records[end]!.timestamp);
        end++;
      } while (end < records.length && size + sizes[end]! <= this.maxRowBytes);
      const chunk = records.slice(start, end);
      this.statements.insertBatch.run(topic.id, partition, next, next + chunk.length - 1, maxTimestamp, chunk.length, size, encodeBatch(chunk, size));
      next += chunk.length;
      bytes += size;
      start = end;
    }
    this.statements.advancePartition.run(next, bytes, topic.id, partition);
  }

  private runScheduledMaintenance(): void {
    try {
      const result = this.runMaintenance();
      if (result.deletedBatches > 0 || result.compactedRecords > 0) this.logger.debug(result, "retention and compaction");
    } catch (error) {
      this.logger.warn({ err: error instanceof SluiceError ? error.toLog() : String(error) }, "retention job failed; retrying at the next run");
    }
  }
}

function specOf(row: TopicRow): TopicSpec {
  return { name: row.name, partitions: row.partitions, retentionMs: row.retention_ms, retentionBytes: row.retention_bytes, compacted: row.compacted === 1 };
}

export function toSafeOffset(offset: bigint): number {
  if (offset < 0n || offset > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new SluiceError(`offset ${offset} is out of range`, { code: "OFFSET_OUT_OF_RANGE", context: { component: "embedded-log", offset: offset.toString() } });
  }
  return Number(offset);
}

/** "max_age 2592000000 ms, max_bytes 67108864", or "kept for ever". */
function retentionText(spec: Pick<TopicSpec, "retentionMs" | "retentionBytes">): string {
  const parts = [...(spec.retentionMs === null ? [] : [`max_age ${spec.retentionMs} ms`]), ...(spec.retentionBytes === null ? [] : [`max_bytes ${spec.retentionBytes}`])];
  return parts.length === 0 ? "kept for ever" : parts.join(", ");
}
