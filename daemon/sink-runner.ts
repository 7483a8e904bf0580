/**
 * The sink runtime shared by every sink: one consumer group per sink, batches by count, bytes and
 * time, offsets stored only after the batch is applied (inside the target where it can), retries
 * with backoff, and the per-sink policy for rows that cannot be applied (halt or dead-letter).
 * A sink with a staged write (ClickHouse, Elasticsearch: remote I/O) writes one batch while the
 * next is read and staged (writeBehind); DuckDB's write is CPU of the sink's own thread, so its
 * batches stay strictly in turn.
 *
 * A halted table stops at its poison record: what precedes it is applied, its partition's stored
 * offset is the poison record's, and nothing of the table is read further until an operator
 * releases it (`release`: retry from the poison record, or skip it to the dead-letter topic). A
 * table halted because its target refuses writes with a block the target lifts by itself
 * (SINK_TARGET_BLOCKED, liftsByItself) is also retried by itself (blocked-retry.ts).
 */
import type { ChangeEvent, Sink, SinkChange, SinkItemFailure, StoredRecord, TopicLog, TopicPartitionOffset } from "../connectors/contracts.ts";
import { tableName } from "../connectors/contracts.ts";
import { isRetriable, SluiceError } from "../connectors/errors.ts";
import type { StagedWrite, TransactionalSink } from "../connectors/sinks/contract.ts";
import { isStaging } from "../connectors/sinks/contract.ts";
import { markedValues, personalValuesOf, redactFailures, Redactor } from "../connectors/sinks/personal-values.ts";
import { CATALOG_MISMATCH, isAuthRefusal, liftsByItself, SCHEMA_UNSUPPORTED, TARGET_BLOCKED, TARGET_REPLACED } from "../connectors/sinks/errors.ts";
import type { TopicConsumer } from "../connectors/topics/contract.ts";
import { storedBytes } from "../connectors/topics/in-place-record.ts";
import { keepNewest, RECENT_OWN_MEMBERS } from "../connectors/topics/recent-members.ts";
import { RECORD_TOO_LARGE } from "../connectors/topics/spec.ts";
import { releaseLargeValue } from "../runtime/large-values.ts";
import { backoffDelay, retry, sleep } from "../runtime/backoff.ts";
import type { BackoffPolicy } from "../runtime/backoff.ts";
import { checkStoredOffsets, isLogMismatch, logMismatchError, partitionRanges } from "./log-identity.ts";
import { describeMissedHistory, describeSkipped, describeStaleTombstones, missedHistory, staleTombstones } from "./missed-history.ts";
import { HALT_FORCE_INVALID, NOT_HALTED, releaseHint } from "./halted.ts";
import { BlockedRetries } from "./blocked-retry.ts";
import type { HaltAction, HaltedSinkTable, HaltReleaseReport } from "./halted.ts";
import type { Logger } from "../runtime/logger.ts";
import { mergeSummaries, summarizeBatch } from "./batch-counts.ts";
import type { BatchSummary } from "./batch-counts.ts";
import { observeCommitStages } from "./metrics.ts";
import type { SluiceMetrics } from "./metrics.ts";
import { replayMarkerGroup } from "./replay.ts";
import { describeFollowed, followRecreatedTopics, mergeTopicIds, SINK_TOPIC_RECREATED } from "./recreated-topic-follow.ts";
import { controlledTopic } from "./control-records.ts";
import { isSnapshotReset, SnapshotResetGate } from "./snapshot-reset-gate.ts";
import { Serial } from "../runtime/serial.ts";
import { describeHolds, otherHolds } from "./rebuild-sharing.ts";
import type { OtherSinkProcess } from "./rebuild-sharing.ts";

/** Turns a stored record back into its change; null for records that carry none (tombstones). */
export interface RecordDecoder {
  /** At once where it can (the record's schemas known), else a promise. */
  decode(record: StoredRecord): ChangeEvent | null | Promise<ChangeEvent | null>;
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
  /**
   * How often the topics' identities are read again while the sink runs (default 30 s; also at once when this process
   * creates a topic): a topic created again by capture in another process is then read from its first record.
   */
  readonly topicIdCheckMs?: number;
  /** Lease owner id (embedded log: only one runner per group). */
  readonly owner: string;
  /**
   * Writes of a row the target refuses as temporary (per item: HTTP 429, 5xx) before it goes to
   * the sink's policy; whole-write failures (target unreachable) are retried without bound.
   */
  readonly itemAttempts?: number;
  /** Compacted topics keep tombstones this long (topics.retention.tombstones): a sink resuming further behind is warned. */
  readonly tombstoneRetentionMs?: number;
  /** How long the sink's lease (embedded log) lives unless renewed; default 15 s. A lease left by a dead process is waited for this long and 5 s more. */
  readonly leaseTtlMs?: number;
  /**
   * A table halted because its target refuses writes with a block it lifts by itself
   * (SINK_TARGET_BLOCKED, liftsByItself) is read again from the record that halted it after this
   * long, then at doubling intervals up to ten times it, until it goes through (config
   * retry.blocked_interval; default 30 s). 0: only an operator releases it.
   */
  readonly blockedRetryMs?: number;
  /** Called once the sink is open, before it reads (its failure is logged, not fatal): e.g. to look for an interrupted rebuild. */
  readonly onOpened?: (signal: AbortSignal) => Promise<void>;
  /**
   * Called between batches with the largest value (bytes) of the batches let go of since (0: none);
   * default releaseLargeValue, a collection when that is a large value.
   */
  readonly onLetGo?: (largestValueBytes: number) => void;
}

export type { HaltedSinkTable } from "./halted.ts";

/** Default for `retry.item_attempts`: with the default backoff (200 ms doubling to 30 s) about 2 minutes. */
export const DEFAULT_ITEM_ATTEMPTS = 10;
export const ITEM_RETRIES_EXHAUSTED = "SINK_ITEM_RETRIES_EXHAUSTED";
/** Default for `retry.blocked_interval`. */
export const DEFAULT_BLOCKED_RETRY_MS = 30_000;

interface HaltState {
  /** The halted table's data topic (tableTopic), which the halt is kept under. */
  readonly key: string;
  readonly view: HaltedSinkTable;
  readonly record: StoredRecord;
  readonly error: Error;
  readonly source: string;
}

/** A partition the consumer group has read (up to `read`) whose offset the target no longer keeps; `start`: its first kept offset. */
interface LostOffset {
  readonly topic: string;
  readonly partition: number;
  readonly start: bigint;
  readonly read: bigint;
}

/** A change with the record it was decoded from as its origin (a record is a topic, partition and offset): no origin object a change. */
interface RecordChange extends SinkChange {
  readonly origin: StoredRecord;
}

interface Poison {
  readonly record: StoredRecord;
  readonly error: Error;
  readonly event?: ChangeEvent | undefined;
}

/** Where the consumer stands in a partition (the next offset to read), as `TopicConsumer.position`. */
type Positions = Pick<TopicConsumer, "position">;

/** The partitions read and how far everything before is handed over: what waiting resets are judged by (snapshot-reset-gate.ts). */
type AppliedPositions = Pick<TopicConsumer, "assignment" | "position">;

/**
 * The consumer's positions as they were before `ahead` (a batch read but not applied) was read:
 * in each of its partitions, its first record's offset.
 */
function positionsBefore(consumer: TopicConsumer, ahead: readonly StoredRecord[]): AppliedPositions {
  const first = new Map<string, bigint>();
  for (const record of ahead) {
    const key = partitionKey(record.topic, record.partition);
    if (!first.has(key)) first.set(key, record.offset);
  }
  return { assignment: () => consumer.assignment(), position: (topic, partition) => first.get(partitionKey(topic, partition)) ?? consumer.position(topic, partition) };
}

/** A batch handed to the sink's staged write, ready to be written. */
interface StagedBatch {
  readonly staged: StagedWrite;
  /** The next offset to store per partition (held at every record still to be applied: holdOffsets). */
  readonly offsets: TopicPartitionOffset[];
  readonly summaries: BatchSummary[];
  readonly polledMs: number;
  /** The consumer's positions the offsets were taken from, for writing the batch again once later records are read. */
  readonly positions: Positions;
  /** The clear personal values its changes hold (its write's error may quote them); empty when none. */
  readonly personal: readonly string[];
}

/** What failed of a staged write under way: the write (the batch is written again through `Sink.write`) or storing its offsets. */
interface WriteFailure {
  readonly failed: "write" | "offsets";
  readonly error: unknown;
  /** The batch's personal values: the error's text is not logged (written again, its refusal is reported with them redacted). */
  readonly personal?: readonly string[];
}

/** A staged batch's write under way, with what settling it needs: its records are written again through `Sink.write` should it fail. */
interface InFlightWrite {
  readonly consumer: TopicConsumer;
  readonly records: StoredRecord[];
  readonly stop: AbortSignal;
  readonly polledMs: number;
  readonly positions: Positions;
  /** The largest value among `records`, in bytes: let go of once the write is settled. */
  readonly largestValue: number;
  /** Settles once the write and then its offsets are stored (null), or with what failed; never rejects. */
  readonly done: Promise<WriteFailure | null>;
}

/** The largest value among `records`, in bytes. */
function largestValueBytes(records: readonly StoredRecord[]): number {
  let largest = 0;
  for (let r = 0; r < records.length; r++) largest = Math.max(largest, records[r]!.value?.length ?? 0);
  return largest;
}

const LEASE_TTL_MS = 15_000;
/**
 * Records decoded in one turn of the event loop. Decoding a batch takes no I/O, so without a break
 * the sink's thread would answer nothing else (a DuckDB query, /metrics, a schema) until the whole
 * batch is decoded: seconds for a full batch on a loaded machine. A query through the DuckDB
 * endpoint waits for up to a slice at each of its steps (~6): 64 records are ~1 ms of decoding
 * here (~5 ms on a loaded machine), and a turn costs ~1 µs of CPU.
 */
const DECODE_SLICE = 64;
/** Batches written through `Sink.write` after a staged write fell back, before the next is staged: a workload that keeps falling back decodes a batch twice at most once in this many. */
const STAGING_PAUSE_BATCHES = 8;
/** How often a sink refused for offsets from another log checks again (a rebuild may have re-bound them). */
const REFUSAL_RECHECK_MS = 5_000;
/** How often a sink waiting for a command that holds its group (a rebuild) looks again. */
const HOLD_RECHECK_MS = 1_000;
/** Between reads of the running sink's topics' identities (topicIdCheckMs). */
const TOPIC_ID_CHECK_MS = 30_000;

/**
 * The sink's look for new topics, every `intervalMs` (or when this process created one): with
 * Kafka a metadata request listing the cluster's topics, so it runs beside the batches instead of
 * in front of one, one listing at a time, the next due `intervalMs` after the last one started.
 */
class TopicRefresh {
  private readonly list: () => Promise<string[]>;
  private readonly intervalMs: number;
  private dueAt: number;
  private pending = false;
  private outcome: { readonly topics: string[] } | { readonly error: unknown } | null = null;

  constructor(list: () => Promise<string[]>, intervalMs: number) {
    this.list = list;
    this.intervalMs = intervalMs;
    this.dueAt = Date.now() + intervalMs;
  }

  /** Starts a listing unless one is under way or its result is not taken yet; true when started. */
  start(): boolean {
    if (this.pending || this.outcome !== null) return false;
    this.pending = true;
    this.dueAt = Date.now() + this.intervalMs;
    this.list().then(
      (topics) => (this.outcome = { topics }),
      (error: unknown) => (this.outcome = { error }),
    ).finally(() => (this.pending = false));
    return true;
  }

  startIfDue(): boolean {
    return Date.now() >= this.dueAt && this.start();
  }

  /** The last listing's topics once it is done (then null until the next one is), or its failure thrown. */
  take(): string[] | null {
    const outcome = this.outcome;
    if (outcome === null) return null;
    this.outcome = null;
    if ("error" in outcome) throw outcome.error;
    return outcome.topics;
  }
}

function isTransactional(sink: Sink): sink is TransactionalSink {
  return typeof (sink as Partial<TransactionalSink>).committedOffsets === "function";
}

/** A failure of a whole table (its schema, or its target refusing every write), not of one row or of the target's reach. */
/** A credential refusal made retriable: `retry` waits it out, its code and message kept. */
function asOutage(error: SluiceError): SluiceError {
  return new SluiceError(error.message, { code: error.code, retriable: true, context: error.context, cause: error });
}

function isTableLevel(error: unknown): error is SluiceError {
  return error instanceof SluiceError && (error.code === SCHEMA_UNSUPPORTED || error.code === TARGET_BLOCKED || error.code === CATALOG_MISMATCH);
}

/**
 * What a refusal is about, for `sluice halted skip --through`: the record itself ("record": a row
 * the target rejects, a record that does not decode), its table's schema ("schema": a change the
 * target cannot take, a table without a primary key), or the target ("target": a block, a table
 * changed by hand, out of memory, temporary refusals that outlasted their retries, a dead letter too
 * large for its topic). A range skips only refusals of the kind the operator skipped, never the
 * target's: those pass (the block is lifted, memory raised) and the records apply then.
 */
type RefusalKind = "record" | "schema" | "target";

function refusalKind(error: unknown): RefusalKind {
  if (isRetriable(error)) return "target";
  if (!(error instanceof SluiceError)) return "record";
  if (error.code === SCHEMA_UNSUPPORTED) return "schema";
  const target: readonly string[] = [TARGET_BLOCKED, CATALOG_MISMATCH, ITEM_RETRIES_EXHAUSTED, RECORD_TOO_LARGE];
  return target.includes(error.code) ? "target" : "record";
}

/** A `skip --through` range: the last offset per partition of `topic`, and the kind of refusal it skips. */
interface SkipRange {
  readonly topic: string;
  readonly last: ReadonlyMap<number, bigint>;
  readonly kind: RefusalKind;
}

/**
 * The data topic of the table a record belongs to: its own topic, or for a truncate or snapshot
 * reset in the shared control topic the one it names. A table halts under this name, so that one
 * table's refused control record halts that table, not every table's truncates.
 */
function tableTopic(record: StoredRecord): string {
  return controlledTopic(record) ?? record.topic;
}

/** The topics this sink reads by now, listed when a batch's control record names a topic the consumer does not read. */
interface ListedTopics {
  topics?: string[];
}

function partitionKey(topic: string, partition: number): string {
  return `${topic}\u0000${partition}`;
}

function skipKey(topic: string, partition: number, from: bigint): string {
  return `skipped\u0000${partitionKey(topic, partition)}\u0000${from}`;
}

/** Sets the next offset to store for `record`'s partition: the consumer's position, not offset + 1, since with Kafka transactions it steps past commit markers. */
function noteNextOffset(consumer: Positions, record: StoredRecord, nextOffsets: Map<string, TopicPartitionOffset>): void {
  const position = consumer.position(record.topic, record.partition);
  const next = position !== null && position > record.offset ? position : record.offset + 1n;
  nextOffsets.set(partitionKey(record.topic, record.partition), { topic: record.topic, partition: record.partition, offset: next });
}

/** `sluice halted skip --through OFFSET` (on the halted record's partition) or `--all-pending` (every partition's end now). */
export type SkipThrough = bigint | "pending";

export class SinkRunner {
  private readonly options: SinkRunnerOptions;
  private readonly logger: Logger;
  /** Halted tables by data topic (tableTopic), with the record that halted each. */
  private readonly halted = new Map<string, HaltState>();
  /** Halts for a blocked target, retried by themselves (null: retry.blocked_interval 0). */
  private readonly blockedRetries: BlockedRetries<HaltState> | null;
  /**
   * Tables (data topics) released since the consumer was opened: skipped, like halted ones, until it
   * is reopened at the stored offsets; with the poison record of a retried one, which keeps its
   * partition's stored offset at it until then.
   */
  private readonly releasing = new Map<string, StoredRecord | null>();
  /**
   * `sluice halted skip --through/--all-pending`: per halted table (data topic), the last offset of each partition
   * up to which a record the sink refuses, for the kind of reason the operator skipped, goes to the dead-letter topic
   * instead of halting the table again. Ended by a refused record past it (or a skip that fails); kept over a halt
   * within it. In memory: after a restart the table halts at its next refused record, and the operator skips again.
   */
  private readonly skipThrough = new Map<string, SkipRange>();
  private reopen = false;
  /** A topic was created in this process since the sink last listed them (the topic log's notice). */
  private topicCreated = false;
  /** The identities of the topics the consumer reads, as read when it opened or since: a topic whose identity changes is read from its start. */
  private topicIdsRead: ReadonlyMap<string, string> = new Map();
  private topicIdsDueAt = 0;
  private topicWake: (() => void) | null = null;
  /** Partitions already reported as read from after records retention removed. */
  private readonly reportedGaps = new Set<string>();
  private activeConsumer: TopicConsumer | null = null;
  /**
   * Member ids the consumers closed so far saw in the group, and their own ones (otherGroupMembersSeen):
   * those seen are kept only while a rebuild watches the group (watchGroupMembers), the own ones
   * then too, else the recent ones.
   */
  private readonly retiredSeen = new Set<string>();
  private readonly retiredOwn = new Set<string>();
  /** Rebuilds watching the group now (watchGroupMembers). */
  private memberWatches = 0;
  /** Batches and releases run one at a time. */
  private readonly lock = new Serial();
  private running = false;
  /** Why consuming fails now (retried), or null. */
  private consumeProblem: string | null = null;
  /** A poll succeeded since the last consume failure: the next failure starts the backoff over. */
  private polled = false;
  /** Credential refusals since a batch was last applied: their backoff, which a successful poll does not start over (the refusal may come at each write). */
  private authRefusals = 0;
  /** Since when (ms) the sink's server refuses its credentials, the refusal waited out; null while it accepts them. */
  private authRefusedSince: number | null = null;
  private targetProblem: string | null = null;
  /** The sink opened once in this process: from then on its server refusing its credentials is waited out (openSink). */
  private opened = false;
  /** False while writes to the target (or opens of it) fail and are being retried. */
  private get targetReachable(): boolean {
    return this.failingSince === null;
  }
  private set targetReachable(reachable: boolean) {
    if (reachable) this.failingSince = null;
    else this.failingSince ??= performance.now();
  }
  /** Since when (performance.now()) writes to the target or opens of it have failed, none succeeding since; null while they succeed. */
  private failingSince: number | null = null;
  /** Batches still to write through `Sink.write` before the next staged write (STAGING_PAUSE_BATCHES). */
  private stagingPause = 0;
  /**
   * The staged write under way, at most one (writeBehind): the next batch is read and staged while
   * it goes on, and it is settled before that batch's write starts and before anything else runs
   * between batches (a release, a forget, a reset, a reopen, shutdown). Offsets are stored by it in
   * turn, after its write.
   */
  private inFlight: InFlightWrite | null = null;
  /** The largest value of the batches let go of since the consume loop last passed it to onLetGo, in bytes. */
  private largestLetGo = 0;
  /** A settle of the write under way that failed outside the consume loop (in a release, a forget): thrown there, the consumer replaced. */
  private settleFailure: unknown = null;
  /**
   * Counts changes of what staging a batch reads of the runner (halts, releases, resets applied): a
   * batch staged while another count held is staged again before it is written.
   */
  private stateChanges = 0;
  private lastAppliedCommitMs: number | null = null;
  /** Why the sink does not start (SINK_LOG_MISMATCH), until its offsets belong to the log again. */
  private refused: SluiceError | null = null;
  /** Snapshot resets read but not applied yet: they wait for the other partitions of their topic (snapshot-reset-gate.ts). */
  private readonly resets: SnapshotResetGate;
  /** The topics the consumer reads now: control records of other tables are not this sink's. */
  private readTopics: ReadonlySet<string> = new Set();
  /**
   * Targets that keep their own offsets: the group's commits run beside the batches, one at a time
   * (`groupCommit`); offsets stored meanwhile wait in `groupOffsets`, later ones replacing earlier
   * ones of the same partition, so one commit carries all of them.
   */
  private groupCommit: Promise<void> | null = null;
  private readonly groupOffsets = new Map<string, TopicPartitionOffset>();
  private groupCommitFailure: unknown = null;
  /**
   * Partitions whose stored offset is the consumer's position, nothing read past it since: were the
   * position to move on with no record polled, it passed only records never handed over (a Kafka
   * transaction's commit marker, aborted records), and is stored when the sink idles. Otherwise an
   * idle sink's stored offset stayed before the marker of the last transaction it applied: lag 1 for good.
   */
  private readonly caughtUp = new Map<string, TopicPartitionOffset>();

  constructor(options: SinkRunnerOptions) {
    this.options = options;
    this.resets = new SnapshotResetGate(options.log, options.group);
    this.logger = options.logger.child({ component: "sink", sink: options.sink.name });
    const blockedRetryMs = options.blockedRetryMs ?? DEFAULT_BLOCKED_RETRY_MS;
    // A retry that could not start (the write before it failed, which the loop takes up) is due again later.
    const onDue = (key: string) => void this.exclusive(async () => this.retryBlocked(key)).catch(() => this.rescheduleBlocked(key));
    this.blockedRetries = blockedRetryMs > 0 ? new BlockedRetries(blockedRetryMs, onDue) : null;
  }

  /** Consuming, and the target accepts writes. */
  ready(): boolean {
    return this.running && this.targetReachable && this.consumeProblem === null;
  }

  /** What keeps the sink from being ready: the topic log or the target it waits for; null when ready. */
  waitingFor(): string | null {
    if (this.refused) return `refused: ${this.refused.message}`;
    if (this.consumeProblem !== null) return this.consumeProblem;
    if (!this.targetReachable) return `its target does not accept writes${this.targetProblem ? `: ${this.targetProblem}` : ""}`;
    return this.running ? null : "starting";
  }

  get sink(): Sink {
    return this.options.sink;
  }

  /** Since when (ms) the sink's server refuses its credentials while the sink waits it out, or null. */
  credentialsRefusedSince(): number | null {
    return this.authRefusedSince;
  }

  /** Why the sink refuses to read (its stored offsets came from another log), or null. */
  refusal(): SluiceError | null {
    return this.refused;
  }

  /** Halted tables, with those being read again by an automatic retry: they show as halted until their record is applied. */
  haltedTables(): HaltedSinkTable[] {
    const views = [...this.halted.values()].map((h) => h.view);
    for (const { key, state } of this.blockedRetries?.inFlight() ?? []) {
      if (!this.halted.has(key)) views.push({ ...state.view, release: `being read again from the record that halted it (automatic retry ${this.blockedRetries!.attempts(key)}); ${state.view.release}` });
    }
    return views;
  }

  /**
   * Releases a halted table (named by table or topic): `retry` reads it again from its poison
   * record; `skip` sends that record to the dead-letter topic with its reason, stores the offset
   * after it, then reads on. Without `execute`, only says what it would do.
   */
  release(table: string, action: HaltAction, execute: boolean, through: SkipThrough | null = null, force = false): Promise<HaltReleaseReport> {
    return this.exclusive(async () => {
      const sink = this.options.sink.name;
      const named = (h: HaltState) => h.view.table === table || h.key === table || h.view.topic === table;
      const state = [...this.halted.values()].find(named);
      const inFlight = this.blockedRetries?.inFlight().find((retried) => named(retried.state));
      if (!state && inFlight !== undefined) {
        const { view } = inFlight.state;
        const where = `${view.topic}:${view.partition}:${view.recordOffset}`;
        // What a retry would do is under way: said so; a skip waits until the table halts again.
        if (action === "retry") {
          const description = `${view.table} is being read again from ${where} already (an automatic retry after its target refused writes); if it still fails, the table halts again`;
          return { sink, table: view.table, topic: view.topic, partition: view.partition, offset: view.recordOffset, error: view.error, action, executed: execute, description };
        }
        throw new SluiceError(`sink ${sink}: table ${view.table} is being read again from ${where} by an automatic retry (its target refused writes); if it halts again, skip it then`, {
          code: NOT_HALTED,
          context: { component: "sink", sink, table: view.table },
        });
      }
      if (!state) {
        const halted = [...this.halted.values()].map((h) => h.view.table);
        throw new SluiceError(`sink ${sink}: table ${table} is not halted (halted now: ${halted.length > 0 ? halted.join(", ") : "none"})`, {
          code: NOT_HALTED,
          context: { component: "sink", sink, table },
        });
      }
      const { view, record } = state;
      const where = `${view.topic}:${view.partition}:${view.recordOffset}`;
      const base = { sink, table: view.table, topic: view.topic, partition: view.partition, offset: view.recordOffset, error: view.error, action, executed: execute };
      if (action === "retry") {
        if (force && !this.options.sink.acceptTargetAsIs?.(state.error, execute)) {
          throw new SluiceError(
            `sink ${sink}: table ${view.table} halted for a reason --force does not overrule (${state.error instanceof SluiceError ? state.error.code : "an error of its record"}): ` +
              `--force takes a target as it is where the sink refused its state (a ClickHouse table found emptied); fix the cause and retry without it`,
            { code: HALT_FORCE_INVALID, context: { component: "sink", sink, table: view.table } },
          );
        }
        if (execute) {
          this.unhalt(state, state.record);
          this.logger.info({ table: view.table, topic: view.topic, partition: view.partition, offset: view.recordOffset }, `sink ${sink}: table ${view.table} released by an operator: retrying from ${where}`);
        }
        const taken = force ? `, its target ${execute ? "taken" : "to be taken"} as it is now (--force)` : "";
        return { ...base, description: `${execute ? "reading" : "would read"} ${view.table} again from ${where} (the record that halted it)${taken}; if it still fails, the table halts again` };
      }
      const dlq = this.options.deadLetterTopic;
      const kind = refusalKind(state.error);
      if (through !== null && kind === "target") {
        throw new SluiceError(
          `sink ${sink}: table ${view.table} halted for a reason of its target (${(state.error as SluiceError).code}), not of its records: a range skips only records refused for the reason ` +
            `the halting one was, and the target's refusals halt the table within it too; fix the target and run sluice halted retry (or skip this record alone, without --through or --all-pending)`,
          { code: "HALT_SKIP_THROUGH_INVALID", context: { component: "sink", sink, table: view.table } },
        );
      }
      const rule = through === null ? null : await this.skipRule(record, through);
      if (execute) {
        // The rule holds for the topic of the record that halted the table (the control topic's resets have their own offsets).
        if (rule !== null) this.skipThrough.set(state.key, { topic: record.topic, last: rule, kind });
        await this.skipRecord(state, rule !== null ? "sluice halted skip --through" : "sluice halted skip");
      }
      if (rule !== null) {
        const ranges = [...rule].map(([partition, last]) => ({ partition, through: last.toString(), records: (partition === record.partition ? last - record.offset + 1n : last + 1n).toString() }));
        const records = [...rule].reduce((sum, [partition, last]) => sum + (partition === record.partition ? last - record.offset + 1n : last + 1n), 0n);
        const span = ranges.map((r) => `partition ${r.partition} through offset ${r.through}`).join(", ");
        return {
          ...base,
          deadLetterTopic: dlq,
          skipThrough: ranges,
          description:
            `${execute ? "sent" : "would send"} the record at ${where} to ${dlq} with its reason, and ${execute ? "sends" : "send"} there every later record of ${view.table} the sink refuses, ` +
            `${span} (at most ${records} record(s) of its topic from the halted one on; the sink applies those it accepts), each logged; a refused record past that halts the table again; ` +
            `within it, one refused for another reason than ${kind === "schema" ? "its schema" : "the record itself"} (its target blocked, out of memory or refusing for a while) halts the table as usual, and the range holds on once it goes on`,
        };
      }
      return {
        ...base,
        deadLetterTopic: dlq,
        description: `${execute ? "sent" : "would send"} the record at ${where} to ${dlq} with its reason, and ${execute ? "reads" : "read"} ${view.table} on from offset ${record.offset + 1n}`,
      };
    });
  }

  /**
   * Sends the record that halted a table to the dead-letter topic (`by`: the operator's command, in
   * its reason), stores the offset after it and reads the table on after it.
   */
  private async skipRecord(state: HaltState, by: string): Promise<void> {
    const { view, record } = state;
    const sink = this.options.sink.name;
    const where = `${view.topic}:${view.partition}:${view.recordOffset}`;
    await this.deadLetter(record, view.table, `${view.error} (skipped by an operator: ${by})`);
    // A partition other tables share (the control topic) stays before what they still hold; the skipped record is passed over instead.
    this.resets.skip(record);
    const next = new Map([[partitionKey(record.topic, record.partition), { topic: record.topic, partition: record.partition, offset: record.offset + 1n }]]);
    this.holdOffsets(next, record);
    const after = [...next.values()];
    const { sink: target, log, group } = this.options;
    if (isTransactional(target)) await target.storeOffsets(after, new AbortController().signal);
    if (this.activeConsumer) {
      // After the group's commits under way, which could otherwise move it back.
      await this.groupCommit;
      await this.activeConsumer.commit(after);
    } else {
      await log.setCommittedOffsets(group, after);
    }
    this.unhalt(state, null);
    this.logger.warn(
      { table: view.table, topic: view.topic, partition: view.partition, offset: view.recordOffset, deadLetterTopic: this.options.deadLetterTopic },
      `sink ${sink}: table ${view.table} released by an operator: record ${where} dead-lettered, reading on after it`,
    );
  }

  /** The last offset, per partition of the halted record's topic, that `through` covers (none past its end). */
  private async skipRule(record: StoredRecord, through: SkipThrough): Promise<Map<number, bigint>> {
    const ranges = await this.options.log.partitionOffsets(record.topic);
    const rule = new Map<number, bigint>();
    for (const range of ranges) {
      const last = range.end - 1n;
      if (through === "pending") {
        if (last >= range.start) rule.set(range.partition, last);
      } else if (range.partition === record.partition) {
        if (through < record.offset) {
          throw new SluiceError(`--through ${through} is before the record that halted the table (${record.topic}:${record.partition}:${record.offset})`, {
            code: "HALT_SKIP_THROUGH_INVALID",
            context: { component: "sink", sink: this.options.sink.name, topic: record.topic, partition: record.partition },
          });
        }
        rule.set(range.partition, through < last ? through : last);
      }
    }
    return rule;
  }

  private unhalt(state: HaltState, readAgain: StoredRecord | null): void {
    this.blockedRetries?.forget(state.key);
    this.readOn(state.key, readAgain);
    this.options.metrics?.tablesHalted.set({ source: state.source, sink: this.options.sink.name, table: state.view.table }, 0);
  }

  /**
   * The lease went to another process: the halts this one met, their automatic retries and the skips asked of them are
   * that process's to meet again (it reads from the stored offsets, as this one will when it takes the lease back).
   * None stays halted, retried, counted in sluice_sink_tables_halted or reported here meanwhile.
   */
  private dropHalts(): void {
    const sink = this.options.sink.name;
    const states = [...this.halted.values(), ...(this.blockedRetries?.inFlight() ?? []).map(({ state }) => state)];
    for (const state of states) this.options.metrics?.tablesHalted.set({ source: state.source, sink, table: state.view.table }, 0);
    this.halted.clear();
    this.releasing.clear();
    this.skipThrough.clear();
  }

  /** A halted table is read on at the next consumer (reopened at the stored offsets), from `readAgain` if not null. */
  private readOn(key: string, readAgain: StoredRecord | null): void {
    this.stateChanges++;
    this.halted.delete(key);
    this.releasing.set(key, readAgain);
    this.reopen = true;
  }

  /** A blocked table's retry that could not start: scheduled again. */
  private rescheduleBlocked(key: string): void {
    const state = this.halted.get(key);
    if (state !== undefined) this.blockedRetries?.schedule(key, state);
  }

  /**
   * A table halted for a blocked target, read again from its record as `sluice halted retry` does;
   * it stays in the halted metric (and in haltedTables) until the record is applied (blockedPassed).
   */
  private retryBlocked(key: string): void {
    const state = this.halted.get(key);
    const retries = this.blockedRetries;
    if (state === undefined || retries === null) return;
    const attempt = retries.started(key);
    this.readOn(key, state.record);
    const { view } = state;
    this.logger.info(
      { table: view.table, topic: view.topic, partition: view.partition, offset: view.recordOffset, attempt, code: TARGET_BLOCKED },
      `sink ${this.options.sink.name}: table ${view.table}: automatic retry ${attempt} of its halt for a target that refused writes: reading it again from ${view.topic}:${view.partition}:${view.recordOffset}`,
    );
  }

  /** Tables retried for a blocked target whose halting record is now behind the offsets stored: they go on. */
  private blockedPassed(offsets: readonly TopicPartitionOffset[]): void {
    const retries = this.blockedRetries;
    if (retries === null || retries.size === 0) return;
    for (const { key, state } of retries.inFlight()) {
      if (this.halted.has(key)) continue;
      const { record, view } = state;
      if (!offsets.some((o) => o.topic === record.topic && o.partition === record.partition && o.offset > record.offset)) continue;
      const attempts = retries.attempts(key);
      retries.forget(key);
      this.options.metrics?.tablesHalted.set({ source: state.source, sink: this.options.sink.name, table: view.table }, 0);
      this.logger.info(
        { table: view.table, topic: view.topic, partition: view.partition, offset: view.recordOffset, attempts, since: view.since },
        `sink ${this.options.sink.name}: table ${view.table} goes on: its target accepts writes again (automatic retry ${attempts}; halted since ${view.since})`,
      );
    }
  }

  /** Runs `operation` between batches: no batch is decoded or written meanwhile (sluice forget). */
  betweenBatches<T>(operation: () => Promise<T>): Promise<T> {
    return this.exclusive(operation);
  }

  /**
   * Runs `operation` with no batch decoded or written meanwhile: after the staged write under way,
   * whose failure the consume loop takes up. The consume loop may have read a batch it has not
   * handed over yet, so the resets the write makes due wait for the loop (settleWrite's "unknown").
   */
  private exclusive<T>(operation: () => Promise<T>): Promise<T> {
    return this.lock.run(async () => {
      try {
        await this.settleWrite("unknown");
      } catch (error) {
        // The batch whose write failed is not applied: nothing may run (and store offsets) past it until the loop reads it again.
        this.settleFailure ??= error;
        throw error;
      }
      return operation();
    });
  }

  /** Runs `operation` of the consume loop between batches (nothing read that is not applied), after the staged write under way; its failure thrown. */
  private inTurn(operation: () => Promise<void>): Promise<void> {
    return this.lock.run(async () => {
      this.throwSettleFailure();
      await this.settleWrite(null);
      await operation();
    });
  }

  private blocked(topic: string): boolean {
    return this.halted.has(topic) || this.releasing.has(topic);
  }

  /**
   * Keeps the offsets about to be stored at or before every record still to be applied: waiting
   * resets, and the poison records of halted (or retried, until the consumer is reopened) tables,
   * which matters where tables share a partition (the control topic). `except`: one not to count.
   */
  private holdOffsets(offsets: Map<string, TopicPartitionOffset>, except?: StoredRecord): void {
    this.resets.holdOffsets(offsets, partitionKey);
    const poison = [...this.halted.values()].map((h) => h.record);
    for (const record of this.releasing.values()) if (record !== null) poison.push(record);
    for (const record of poison) {
      if (record === except) continue;
      const key = partitionKey(record.topic, record.partition);
      const current = offsets.get(key);
      if (current !== undefined && current.offset > record.offset) offsets.set(key, { ...current, offset: record.offset });
    }
  }

  /**
   * The members of other processes this sink's consumers saw in its group at their joins so far (Kafka;
   * none elsewhere): a process that joined the group and left it again between two looks at the group
   * is one of them, while this process's consumers opened again (a new topic, a retried failure) and a
   * gone member timing out add none. A rebuild here compares it (sink-worker.ts).
   */
  otherGroupMembersSeen(): ReadonlySet<string> {
    const active = this.activeConsumer?.groupMembersSeen?.();
    const own = new Set([...this.retiredOwn, ...(active?.own ?? [])]);
    return new Set([...this.retiredSeen, ...(active?.seen ?? [])].filter((member) => !own.has(member)));
  }

  /**
   * Keeps what the sink's consumers see in its group from now until `end` (a rebuild's start to its
   * end): otherGroupMembersSeen then holds every member seen since, and otherwise only what the last
   * joins saw, so that the member ids of every peer restart are not kept for the process's life.
   */
  watchGroupMembers(): { readonly seen: () => ReadonlySet<string>; readonly end: () => void } {
    if (this.memberWatches++ === 0) this.activeConsumer?.keepGroupMembersSeen?.(true);
    let ended = false;
    return {
      seen: () => this.otherGroupMembersSeen(),
      end: () => {
        if (ended) return;
        ended = true;
        if (--this.memberWatches > 0) return;
        this.retiredSeen.clear();
        keepNewest(this.retiredOwn, RECENT_OWN_MEMBERS);
        this.activeConsumer?.keepGroupMembersSeen?.(false);
      },
    };
  }

  /** The partitions this process reads now, as `topic:partition` (several processes running one sink split them). */
  assignment(): string[] {
    return (this.activeConsumer?.assignment() ?? []).map((tp) => `${tp.topic}:${tp.partition}`).sort();
  }

  /** Commit time of the last change applied, milliseconds since the epoch. */
  lastAppliedCommitTime(): number | null {
    return this.lastAppliedCommitMs;
  }

  async run(stop: AbortSignal): Promise<void> {
    // The series exists from the start, so an alert or a panel on it sees 0 rather than nothing.
    this.options.metrics?.sinkAuthRefused.set({ sink: this.options.sink.name }, 0);
    const unwatch = this.options.metrics?.watchSinkFailing(this.options.sink.name, () => this.failingSince);
    try {
      await this.runLeased(stop);
    } finally {
      unwatch?.();
    }
  }

  private async runLeased(stop: AbortSignal): Promise<void> {
    // At start, a lease another process keeps holding means a second process on this sink: refused. A lease this
    // process lost (it did not renew it in time: paused, frozen) makes it stand by until the lease is free again,
    // while the rest of the process (capture, other sinks) runs on: one sink's problem does not stop the others.
    for (let standby = false; !stop.aborted; standby = true) {
      await this.acquireSinkLease(stop, standby);
      if (stop.aborted || !(await this.runWhileLeased(stop))) return;
    }
  }

  private async acquireSinkLease(stop: AbortSignal, standby: boolean): Promise<void> {
    const { log, group, owner } = this.options;
    const leaseTtlMs = this.options.leaseTtlMs ?? LEASE_TTL_MS;
    // A lease left by a process that died (kill -9) expires after its TTL: wait that long before giving up.
    let giveUpAt = standby ? Infinity : Date.now() + leaseTtlMs + 5_000;
    for (;;) {
      let acquired: boolean;
      try {
        acquired = await log.acquireLease(group, owner, leaseTtlMs);
      } catch (error) {
        // The topic log itself is unavailable (e.g. the embedded log busy with a large write): wait, do not count it against the lease.
        if (!isRetriable(error) || stop.aborted) throw error;
        this.consumeProblem = errorText(error);
        this.logger.warn({ group, err: errorText(error) }, "taking the sink lease failed; retrying");
        await sleep(1_000, stop).catch(() => undefined);
        giveUpAt = Math.max(giveUpAt, Date.now() + leaseTtlMs + 5_000);
        continue;
      }
      if (acquired) {
        if (standby) this.consumeProblem = null;
        return;
      }
      if (stop.aborted) return;
      if (Date.now() >= giveUpAt) {
        throw new SluiceError(`sink ${this.options.sink.name}: consumer group ${group} is running in another process`, {
          code: "SINK_ALREADY_RUNNING",
          context: { component: "sink", sink: this.options.sink.name },
        });
      }
      if (standby) this.consumeProblem = `standing by: another process holds the sink's lease on consumer group ${group}`;
      else this.logger.warn({ group }, "sink lease held by another owner; waiting for it to expire");
      await sleep(1_000, stop).catch(() => undefined);
    }
  }

  /** Opens the sink and applies it while this process holds its lease. True when the lease was lost to another process. */
  private async runWhileLeased(stop: AbortSignal): Promise<boolean> {
    const { log, group, owner } = this.options;
    const leaseTtlMs = this.options.leaseTtlMs ?? LEASE_TTL_MS;
    // A lease another process took (this one did not renew it in time: paused, frozen) stops this sink: one process applies it.
    const lost = new AbortController();
    const active = AbortSignal.any([stop, lost.signal]);
    const renew = setInterval(() => {
      void log.renewLease(group, owner, leaseTtlMs).then(
        (held) => {
          if (held || lost.signal.aborted) return;
          this.logger.error(
            { group },
            `sink lease lost to another process (this process did not renew it for ${leaseTtlMs / 1000} s: paused or frozen?): it stops applying the sink and stands by until the lease is free`,
          );
          lost.abort();
        },
        (error: unknown) => this.logger.warn({ group, err: errorText(error) }, "renewing the sink lease failed; retrying at the next renewal"),
      );
    }, leaseTtlMs / 3);
    // Capture in this process creating a table's topic wakes the sink at once, instead of at its next look at the topic list.
    const unwatch = log.onTopicCreated?.(() => {
      this.topicCreated = true;
      this.topicWake?.();
    });
    try {
      const open = () => this.openSink(active);
      await this.waitForCommandHolds(active);
      await open();
      // A command that began holding the group while the sink opened (an open retried a while) may swap in tables the sink did not load: loaded again once it left.
      while (!active.aborted && (await this.waitForCommandHolds(active))) {
        await this.options.sink.close().catch(() => undefined);
        await open();
      }
      await this.options.onOpened?.(active).catch((error: unknown) => this.logger.warn({ err: errorText(error) }, "looking at the sink after it opened failed; it runs on"));
      await this.consumeUntilStopped(active);
    } catch (error) {
      if (!active.aborted) throw error;
    } finally {
      clearInterval(renew);
      unwatch?.();
      if (lost.signal.aborted && !stop.aborted) this.dropHalts();
      this.blockedRetries?.stop();
      this.running = false;
      await this.options.sink.close().catch(() => undefined);
      await log.releaseLease(group, owner).catch(() => undefined);
    }
    return lost.signal.aborted && !stop.aborted;
  }

  /**
   * With Kafka, `sluice replay --rebuild` (or `--abandon-rebuild --execute`) run with no daemon holds
   * the sink's consumer group while it works (rebuild-sharing.ts): the sink opens once it left, so
   * it finds the tables the command leaves, not those a swap is about to replace. Should the group
   * not be described (no permission), the sink starts: a rebuild that began meanwhile sees it join
   * and refuses its swap. True when it waited for one.
   */
  private async waitForCommandHolds(stop: AbortSignal): Promise<boolean> {
    const { log, group } = this.options;
    if (log.holdGroup === undefined) return false;
    let told = "";
    while (!stop.aborted) {
      let holds: OtherSinkProcess[];
      try {
        holds = await otherHolds(log, group);
      } catch (error) {
        if (!isRetriable(error)) {
          this.logger.warn({ group, err: errorText(error) }, "looking for a command at work on the sink (a rebuild) failed; the sink starts");
          this.consumeProblem = null;
          return told !== "";
        }
        this.consumeProblem = errorText(error);
        await sleep(1_000, stop).catch(() => undefined);
        continue;
      }
      if (holds.length === 0) break;
      const who = describeHolds(holds);
      this.consumeProblem = `waiting for ${who} to finish (consumer group ${group})`;
      if (who !== told) this.logger.warn({ group, commands: holds.map((h) => h.clientId) }, `sink ${this.options.sink.name} waits to start: ${who}; it starts once that is done`);
      told = who;
      await sleep(HOLD_RECHECK_MS, stop).catch(() => undefined);
    }
    this.consumeProblem = null;
    return told !== "";
  }

  /**
   * Consumes until `stop` aborts. A retriable failure of the topic log (Kafka unreachable, a
   * consumer that crashed or lost its partitions in a rebalance, the embedded log busy) is waited
   * out with backoff, then a new consumer starts at the stored offsets; only permanent errors end the sink.
   */
  private async consumeUntilStopped(stop: AbortSignal): Promise<void> {
    let attempt = 0;
    while (!stop.aborted) {
      this.polled = false;
      try {
        await this.consume(stop);
        this.consumeProblem = null;
        attempt = 0;
      } catch (error) {
        if (stop.aborted) return;
        if (isLogMismatch(error)) {
          this.refuse(error);
          await sleep(REFUSAL_RECHECK_MS, stop).catch(() => undefined);
          continue;
        }
        if (error instanceof SluiceError && error.code === TARGET_REPLACED) {
          await this.reopenReplacedTarget(error, stop);
          continue;
        }
        if (this.polled) attempt = 0;
        if (isAuthRefusal(error)) {
          await this.waitOutAuthRefusal(error, this.authRefusals++, stop);
          continue;
        }
        if (!isRetriable(error)) throw error;
        this.running = false;
        this.consumeProblem = errorText(error);
        const delayMs = backoffDelay(this.options.retry, attempt++);
        this.logger.warn({ err: error instanceof SluiceError ? error.toLog() : errorText(error), attempt, delayMs }, `sink ${this.options.sink.name} waits for the topic log: ${errorText(error)}; retrying`);
        await sleep(delayMs, stop).catch(() => undefined);
      }
    }
  }

  /** The sink's target was replaced under it (a DuckDB file deleted): opened again, the next consumer starts at the offsets the new one keeps. */
  private async reopenReplacedTarget(error: SluiceError, stop: AbortSignal): Promise<void> {
    const { sink } = this.options;
    this.running = false;
    this.logger.warn({ code: error.code, err: error.toLog() }, `${error.message}; opening it again and reading on from the offsets it keeps`);
    await sink.close().catch(() => undefined);
    await this.openSink(stop);
  }

  /**
   * Opens the sink, retrying with backoff while it fails retriably. Its server refusing its credentials
   * (SINK_AUTH_FAILED) ends it before it first opened in this process, a config error told at once; once it
   * opened, the refusal is this sink's outage (a password rotated), waited out like an unreachable target.
   */
  private async openSink(stop: AbortSignal): Promise<void> {
    const { sink } = this.options;
    const waitOutRefusal = this.opened;
    await retry(
      async () => {
        try {
          await sink.open(stop);
        } catch (error) {
          throw waitOutRefusal && isAuthRefusal(error) ? asOutage(error) : error;
        }
      },
      {
        ...this.options.retry,
        signal: stop,
        onRetry: (err) => {
          if (isAuthRefusal(err)) this.noteAuthRefusal(err);
          else {
            // /readyz and /status name the server that does not answer, not "starting" for as long as it is away.
            this.targetReachable = false;
            this.targetProblem = errorText(err);
            // Counted as a write's retry is: a target unreachable from the start showed no retries at all.
            this.options.metrics?.sinkRetries.inc({ sink: sink.name });
          }
          this.logger.warn({ err }, "sink open failed; retrying");
        },
      },
    );
    this.opened = true;
    this.targetReachable = true;
    this.targetProblem = null;
  }

  /**
   * The sink's server refuses its credentials while it runs (a password or API key rotated): nothing past the
   * stored offsets is applied, the sink waits with backoff, then is opened again (which reads a credential given
   * by file again) and a new consumer starts at the stored offsets. Capture and the other sinks go on.
   */
  private async waitOutAuthRefusal(error: SluiceError, attempt: number, stop: AbortSignal): Promise<void> {
    const { sink } = this.options;
    this.running = false;
    this.noteAuthRefusal(error);
    const delayMs = backoffDelay(this.options.retry, attempt);
    this.logger.warn({ err: error.toLog(), attempt, delayMs }, `sink ${sink.name} waits for its server to accept its credentials: ${error.message}; opening it again`);
    await sleep(delayMs, stop).catch(() => undefined);
    if (stop.aborted) return;
    await sink.close().catch(() => undefined);
    await this.openSink(stop);
    this.targetReachable = true;
    this.targetProblem = null;
  }

  /** /readyz and /status name the refusal; sluice_sink_retries_total counts each attempt, as for an unreachable target. */
  private noteAuthRefusal(error: SluiceError): void {
    this.targetReachable = false;
    this.targetProblem = error.message;
    this.options.metrics?.sinkRetries.inc({ sink: this.options.sink.name });
    this.setAuthRefused(true);
  }

  /**
   * sluice_sink_auth_refused: set at a refusal, cleared only once a batch is applied or a poll finds nothing to write
   * with the consumer read to the end of its partitions (not while it joins its group), not by an open that succeeds (a server may accept the login and refuse each write): the gauge stays 1 however rare
   * the attempts get at the backoff's ceiling, where sluice_sink_retries_total alone no longer pages.
   */
  private setAuthRefused(refused: boolean): void {
    if (refused === (this.authRefusedSince !== null)) return;
    this.authRefusedSince = refused ? Date.now() : null;
    this.options.metrics?.sinkAuthRefused.set({ sink: this.options.sink.name }, refused ? 1 : 0);
  }

  /** Whether the consumer reads partitions and its position in each is at the partition's end offset. */
  private async readToEnd(consumer: TopicConsumer): Promise<boolean> {
    const assigned = consumer.assignment();
    if (assigned.length === 0) return false;
    const ends = new Map<string, bigint>();
    try {
      for (const topic of new Set(assigned.map((tp) => tp.topic))) {
        for (const end of await this.options.log.endOffsets(topic)) ends.set(partitionKey(end.topic, end.partition), end.offset);
      }
    } catch {
      return false; // the log unavailable for a moment: asked again at the next empty poll
    }
    return assigned.every(({ topic, partition }) => {
      const position = consumer.position(topic, partition);
      const end = ends.get(partitionKey(topic, partition));
      return position !== null && end !== undefined && position >= end;
    });
  }

  /** Reads the current topic set until it changes or `stop` aborts. */
  private async consume(stop: AbortSignal): Promise<void> {
    this.topicCreated = false;
    const topics = await this.options.topics();
    if (topics.length === 0) {
      // Nothing to read yet (no table has a topic): waiting for the first one is this sink's steady state, so it is ready.
      this.running = true;
      await this.untilTopicCreated(this.options.topicRefreshMs ?? 2_000, stop);
      return;
    }
    // Released tables are read again from their stored offsets by the consumer opened now.
    this.releasing.clear();
    this.reopen = false;
    // Waiting resets are read again: the stored offsets of their partitions are at or before them.
    this.resets.clear();
    this.readTopics = new Set(topics);
    const consumer = await this.options.log.consumer(this.options.group, topics);
    this.activeConsumer = consumer;
    if (this.memberWatches === 0) consumer.keepGroupMembersSeen?.(false);
    try {
      this.caughtUp.clear();
      // One read: the identities the stored offsets are checked against are those a later read is compared with, so a
      // topic created again after it (while the consumer opens) is followed at the next look, not taken as known. Merged
      // with those known before (a reopen: a new table's topic, a release, a credentials wait), as while running: a read
      // lacking a topic's identity for a moment forgets nothing, so the stored offsets are not refused for it.
      const topicIds = mergeTopicIds(this.topicIdsRead, await this.options.log.topicIds(topics));
      const lost = await this.seekToTargetOffsets(consumer, topics, topicIds, stop);
      this.topicIdsRead = topicIds;
      this.topicIdsDueAt = Date.now() + (this.options.topicIdCheckMs ?? TOPIC_ID_CHECK_MS);
      // The consumer reads on from the group's offsets (the target's, sought above, which the group's follow).
      for (const offset of await this.options.log.committedOffsets(this.options.group)) {
        if (topics.includes(offset.topic)) this.caughtUp.set(partitionKey(offset.topic, offset.partition), offset);
      }
      await this.reportMissedHistory(topics, lost);
      if (this.refused) this.logger.info({ group: this.options.group }, `sink ${this.options.sink.name}: its stored offsets belong to the topic log now; reading on`);
      this.refused = null;
      this.running = true;
      const refresh = new TopicRefresh(this.options.topics, this.options.topicRefreshMs ?? 5_000);
      while (!stop.aborted && !this.reopen) {
        if (this.groupCommitFailure !== null) await this.settleGroupCommits();
        this.throwSettleFailure();
        const polled = await this.pollAndApply(consumer, stop);
        if (polled === 0 && this.resets.size > 0) await this.inTurn(() => this.applyDueResets(consumer, stop));
        else if (polled === 0) {
          // Nothing to write: the credentials the last open was accepted with stand until a write says otherwise. Only
          // once read to the end: polls come back empty while a consumer joins its group (Kafka), before the refused
          // records are read again.
          if (this.inFlight === null && this.authRefusedSince !== null && (await this.readToEnd(consumer))) this.setAuthRefused(false);
          await this.inTurn(() => this.storePassedMarkers(consumer, stop));
        }
        // The batches let go of by now (a staged one once its write is settled: the write holds it until then), a large value's buffers with them.
        this.passLetGo();
        const listed = refresh.take();
        if (listed?.some((t) => !topics.includes(t))) return;
        if (this.topicCreated || Date.now() >= this.topicIdsDueAt) await this.inTurn(() => this.followRecreated(consumer, topics, stop));
        if (this.topicCreated ? refresh.start() : refresh.startIfDue()) this.topicCreated = false;
      }
    } finally {
      // Stopping, failing or reopening: the write under way is waited for (its offsets stored if it succeeded); nothing is written after it.
      await this.lock.run(() => this.dropWrite()).catch(() => undefined);
      this.settleFailure = null;
      await this.settleGroupCommits().catch(() => undefined);
      const seen = consumer.groupMembersSeen?.();
      if (this.memberWatches > 0) for (const member of seen?.seen ?? []) this.retiredSeen.add(member);
      for (const member of seen?.own ?? []) this.retiredOwn.add(member);
      if (this.memberWatches === 0) keepNewest(this.retiredOwn, RECENT_OWN_MEMBERS);
      this.activeConsumer = null;
      await consumer.close().catch(() => undefined);
      this.passLetGo();
    }
  }

  private passLetGo(): void {
    const largest = this.largestLetGo;
    this.largestLetGo = 0;
    (this.options.onLetGo ?? releaseLargeValue)(largest);
  }

  /** Resolves after `ms`, when a topic is created in this process, or when `stop` aborts. */
  private untilTopicCreated(ms: number, stop: AbortSignal): Promise<void> {
    if (this.topicCreated || stop.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        stop.removeEventListener("abort", done);
        this.topicWake = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      stop.addEventListener("abort", done, { once: true });
      this.topicWake = done;
    });
  }

  /**
   * Warns, once per partition, when the sink reads from before a partition's first kept record (topic-policy.ts).
   * `lost`: partitions whose target lost their offsets (seekToTargetOffsets), read from the start as by a new sink.
   */
  private async reportMissedHistory(topics: readonly string[], lost: ReadonlySet<string>): Promise<void> {
    const { log, group, sink } = this.options;
    const groupPositions = (await log.committedOffsets(group)).filter((o) => !lost.has(partitionKey(o.topic, o.partition)));
    const positions = [...groupPositions, ...(isTransactional(sink) ? await sink.committedOffsets() : [])];
    const retention = this.options.tombstoneRetentionMs;
    const stale = retention === undefined ? [] : (await staleTombstones(log, topics, positions, retention, Date.now())).filter((s) => !this.reportedGaps.has(`tombstones\u0000${partitionKey(s.topic, s.partition)}`));
    for (const s of stale) this.reportedGaps.add(`tombstones\u0000${partitionKey(s.topic, s.partition)}`);
    if (stale.length > 0) {
      this.logger.warn(
        { code: "SINK_DELETES_MAY_BE_MISSED", group, partitions: stale.map((s) => ({ topic: s.topic, partition: s.partition, from: String(s.from), until: String(s.until) })) },
        describeStaleTombstones(sink.name, stale),
      );
    }
    const missed = (await missedHistory(log, topics, positions)).filter((m) => !this.reportedGaps.has(partitionKey(m.topic, m.partition)));
    if (missed.length === 0) return;
    for (const m of missed) {
      this.reportedGaps.add(partitionKey(m.topic, m.partition));
      // The consumer steps over the same records at its first read: told here already.
      if (m.from !== null) this.reportedGaps.add(skipKey(m.topic, m.partition, m.from));
    }
    this.logger.warn(
      { code: "SINK_HISTORY_INCOMPLETE", group, partitions: missed.map((m) => ({ topic: m.topic, partition: m.partition, start: String(m.start), from: m.from === null ? null : String(m.from) })) },
      describeMissedHistory(sink.name, missed),
    );
  }

  /** Records retention deleted before this running sink read them (it lagged behind): warned, naming the offsets, as at start. */
  private reportSkipped(consumer: TopicConsumer): void {
    const skipped = (consumer.takeSkipped?.() ?? []).filter((s) => !this.reportedGaps.has(skipKey(s.topic, s.partition, s.from)));
    if (skipped.length === 0) return;
    for (const s of skipped) this.reportedGaps.add(skipKey(s.topic, s.partition, s.from));
    this.logger.warn(
      { code: "SINK_HISTORY_INCOMPLETE", group: this.options.group, partitions: skipped.map((s) => ({ topic: s.topic, partition: s.partition, from: String(s.from), to: String(s.to) })) },
      describeSkipped(this.options.sink.name, skipped),
    );
  }

  private refuse(error: SluiceError): void {
    this.running = false;
    if (this.refused?.message !== error.message) this.logger.error({ err: error.toLog() }, error.message);
    this.refused = error;
  }

  /**
   * A waiting poll returns with the first records that arrive, but what arrived together may not
   * all be there yet: Kafka's consumer hands a fetch response over one partition at a time, in the
   * same turn of the event loop, and a source transaction spans partitions and tables. After one
   * turn, what else has arrived joins the batch (no timer: nothing is waited for), so a quiet sink
   * applies a transaction in one batch instead of one per partition, each with the target's fixed
   * cost and the last a whole write later. A full batch (a busy sink) is left as it is. Like any
   * poll, the second may take one record past the batch's bytes.
   */
  private async takeArrived(consumer: TopicConsumer, records: StoredRecord[], stop: AbortSignal): Promise<StoredRecord[]> {
    const { maxRows, maxBytes } = this.options.batch;
    if (records.length === 0 || records.length >= maxRows) return records;
    let bytes = 0;
    for (const record of records) bytes += storedBytes(record);
    if (bytes >= maxBytes) return records;
    await new Promise((resolve) => setImmediate(resolve));
    if (stop.aborted) return records;
    const more = await consumer.poll({ maxRecords: maxRows - records.length, maxBytes: maxBytes - bytes, maxWaitMs: 0, signal: stop });
    return more.length === 0 ? records : records.concat(more);
  }

  private pollLimits() {
    const { maxRows, maxBytes, maxWaitMs } = this.options.batch;
    return { maxRecords: maxRows, maxBytes, maxWaitMs };
  }

  /**
   * A target that keeps its own offsets is the authority on where to resume -- unless a replay set
   * the group's offsets since: then the group's offset equals the replay's marker and wins. Stored
   * offsets must belong to the topics as the log holds them now (log-identity.ts): offsets from
   * another log are refused (SINK_LOG_MISMATCH); offsets stored before identities were recorded
   * are bound to the current ones.
   *
   * A partition the group has read past its first record, of which the target keeps no offset, was
   * lost with the target (a DuckDB file deleted or replaced, a database dropped): it is read again
   * from its first record, as by a new sink, not from the group's offset, which would fill the new
   * target with the changes since only. Returns those partitions (partitionKey).
   */
  private async seekToTargetOffsets(consumer: TopicConsumer, topics: string[], topicIds: ReadonlyMap<string, string>, stop: AbortSignal): Promise<Set<string>> {
    const { sink, log, group } = this.options;
    if (!isTransactional(sink)) return new Set();
    const key = (o: TopicPartitionOffset) => partitionKey(o.topic, o.partition);
    const committed = await log.committedOffsets(group);
    const groupOffsets = new Map(committed.map((o) => [key(o), o.offset]));
    const replayed = new Map((await log.committedOffsets(replayMarkerGroup(group))).map((o) => [key(o), o.offset]));
    sink.useTopicIds(topicIds);
    const stored = await sink.committedOffsets();
    const lost = await this.lostOffsets(topics, stored, committed, replayed);
    const resume = stored.filter((offset) => {
      if (!topics.includes(offset.topic)) return false;
      const marker = replayed.get(key(offset));
      return marker === undefined || marker !== groupOffsets.get(key(offset));
    });
    const { adopted, mismatches } = checkStoredOffsets(resume, topicIds, await partitionRanges(log, [...new Set(resume.map((o) => o.topic))]));
    if (mismatches.length > 0) throw logMismatchError(sink.name, mismatches);
    if (adopted.length > 0) {
      await retry(() => sink.storeOffsets(adopted, stop), { ...this.options.retry, signal: stop });
      this.logger.info({ topics: [...new Set(adopted.map((o) => o.topic))] }, `sink ${sink.name}: stored offsets had no topic identity (written by an older Sluice); bound them to the topics the log holds now`);
    }
    const behind: TopicPartitionOffset[] = [];
    const refilled: LostOffset[] = [];
    for (const offset of [...resume, ...lost.map((l) => ({ topic: l.topic, partition: l.partition, offset: l.start, lost: l }))]) {
      try {
        await consumer.seek(offset.topic, offset.partition, { kind: "offset", offset: offset.offset });
        if (groupOffsets.get(key(offset)) !== offset.offset) behind.push({ topic: offset.topic, partition: offset.partition, offset: offset.offset });
        if ("lost" in offset) refilled.push(offset.lost);
      } catch (error) {
        // Another member holds it now (its records are that member's); if it comes here later, its group offset is at or before the target's, and re-applying is idempotent.
        if (!(error instanceof SluiceError && error.code === "PARTITION_NOT_ASSIGNED")) throw error;
        this.logger.debug({ topic: offset.topic, partition: offset.partition }, "partition not assigned to this member; not seeking it");
      }
    }
    // The group's offsets (lag, replay planning) follow the target's at once: a partition with no new records
    // (e.g. the control topic after a rebuild moved the target's offsets) would otherwise show lag for ever.
    if (behind.length > 0) await retry(() => consumer.commit(behind), { ...this.options.retry, signal: stop, maxAttempts: 3 });
    if (refilled.length > 0) this.reportLostOffsets(refilled);
    return new Set(refilled.map((l) => partitionKey(l.topic, l.partition)));
  }

  /**
   * A topic created in this process may be one the sink reads, deleted and created again (recreated-topic-follow.ts): its
   * partitions are read from their first record, and offsets are stored with its new identity from here on.
   */
  private async followRecreated(consumer: TopicConsumer, topics: readonly string[], stop: AbortSignal): Promise<void> {
    const { log, sink, group } = this.options;
    this.topicIdsDueAt = Date.now() + (this.options.topicIdCheckMs ?? TOPIC_ID_CHECK_MS);
    let followed: Awaited<ReturnType<typeof followRecreatedTopics>>;
    try {
      followed = await followRecreatedTopics(log, consumer, topics, this.topicIdsRead);
    } catch (error) {
      // The log unavailable for a moment: looked at again when next due, rather than reopening the consumer.
      if (!isRetriable(error)) throw error;
      this.logger.debug({ err: errorText(error) }, "reading the topics' identities failed; trying again later");
      return;
    }
    const { ids, changed, sought } = followed;
    this.topicIdsRead = ids;
    if (changed.length === 0) return;
    if (isTransactional(sink)) sink.useTopicIds(ids);
    this.resets.forgetTopics(changed, ids);
    this.stateChanges++;
    for (const o of sought) this.caughtUp.delete(partitionKey(o.topic, o.partition));
    if (sought.length > 0) await retry(() => consumer.commit(sought), { ...this.options.retry, signal: stop, maxAttempts: 3 });
    this.logger.warn({ code: SINK_TOPIC_RECREATED, group, topics: changed, partitions: sought.map((o) => ({ topic: o.topic, partition: o.partition, from: String(o.offset) })) }, describeFollowed(sink.name, changed));
  }

  /** Partitions of `topics` the group has read past their first record and the target keeps no offset of, unless a replay set the group's offset. */
  private async lostOffsets(
    topics: readonly string[],
    stored: readonly TopicPartitionOffset[],
    committed: readonly TopicPartitionOffset[],
    replayed: ReadonlyMap<string, bigint>,
  ): Promise<LostOffset[]> {
    const kept = new Set(stored.map((o) => partitionKey(o.topic, o.partition)));
    const unkept = committed.filter((o) => {
      const key = partitionKey(o.topic, o.partition);
      return topics.includes(o.topic) && !kept.has(key) && replayed.get(key) !== o.offset;
    });
    const lost: LostOffset[] = [];
    for (const topic of new Set(unkept.map((o) => o.topic))) {
      const starts = new Map((await this.options.log.partitionOffsets(topic)).map((range) => [range.partition, range.start]));
      for (const { partition, offset: read } of unkept.filter((o) => o.topic === topic)) {
        const start = starts.get(partition);
        if (start !== undefined && read > start) lost.push({ topic, partition, start, read });
      }
    }
    return lost;
  }

  private reportLostOffsets(lost: readonly LostOffset[]): void {
    const { sink, group } = this.options;
    const target = (isTransactional(sink) ? sink.targetLabel : undefined) ?? "its target";
    const shown = lost.slice(0, 10).map((l) => `${l.topic}:${l.partition} read up to ${l.read}`).join("; ") + (lost.length > 10 ? ` and ${lost.length - 10} more` : "");
    const gaps = lost.filter((l) => l.start > 0n).length;
    this.logger.warn(
      { code: "SINK_TARGET_OFFSETS_LOST", group, target, partitions: lost.map((l) => ({ topic: l.topic, partition: l.partition, read: String(l.read), from: String(l.start) })) },
      `sink ${sink.name}: ${target} keeps no offsets of partitions its consumer group ${group} has read (${shown}): it was deleted, replaced or emptied since it held them, ` +
        "and resuming from the group's offsets would leave it with only the rows changed since. Reading these partitions again from their first record, as a new sink does" +
        (gaps > 0 ? `; ${gaps} of them no longer start at offset 0, so rows whose changes retention removed stay missing (SINK_HISTORY_INCOMPLETE)` : ""),
    );
  }

  /** Polls a batch and applies it, or stages it and leaves its write under way; the number of its records. */
  private async pollAndApply(consumer: TopicConsumer, stop: AbortSignal): Promise<number> {
    const records = await this.takeArrived(consumer, await consumer.poll({ ...this.pollLimits(), signal: stop }), stop);
    this.polled = true;
    this.consumeProblem = null;
    this.reportSkipped(consumer);
    this.forgetCaughtUp(records);
    if (records.length === 0) return 0;
    // A failure parked by an operation between batches is taken up before what was polled meanwhile, which follows the failed batch.
    await this.lock.run(() => {
      this.throwSettleFailure();
      return this.applyBatch(consumer, records, stop);
    });
    // A batch whose staged write is under way is let go of when the write is settled (settleWrite, dropWrite).
    if (this.inFlight?.records !== records) this.largestLetGo = Math.max(this.largestLetGo, largestValueBytes(records));
    return records.length;
  }

  private async applyBatch(consumer: TopicConsumer, records: StoredRecord[], stop: AbortSignal): Promise<void> {
    const polledMs = Date.now();
    if (this.inFlight !== null) {
      if (await this.writeBehind(consumer, records, stop, polledMs)) return;
      // Stopping, or the write settled opened the consumer again (a topic to read): this batch is read again from the stored offsets.
      if (this.reopen || stop.aborted) return;
    }
    if (await this.applyStaged(consumer, records, stop, polledMs)) return;
    await this.applyPlain(consumer, records, stop, polledMs, consumer, consumer);
  }

  /**
   * A batch through the sink's `write`, every failure handled: retries, poison (halt or dead
   * letter), held records. `positions`: the consumer's, or those of when the batch was read when
   * records after it have been read since (a staged write that failed). `dueResets`: the positions
   * the resets the batch makes due are judged by, then applied after it; null: left for later.
   */
  private async applyPlain(consumer: TopicConsumer, records: StoredRecord[], stop: AbortSignal, polledMs: number, positions: Positions, dueResets: AppliedPositions | null): Promise<void> {
    const changes: RecordChange[] = [];
    const nextOffsets = new Map<string, TopicPartitionOffset>();
    const poison: Poison[] = [];
    /** Records left unapplied because an earlier record of their table halted it in this batch. */
    const held: StoredRecord[] = [];
    const undecodable = new Set<string>();
    const listed: ListedTopics = {};
    let decoded = 0;
    // A poll hands over each partition's records in one run: its next offset is noted once, at the
    // run's last record, not made (key and offset) for every record; the last run of a partition wins.
    let runLast: StoredRecord | undefined;
    for (const record of records) {
      if (this.blocked(record.topic)) continue;
      if (++decoded % DECODE_SLICE === 0) await new Promise((resolve) => setImmediate(resolve));
      if (runLast !== undefined && (runLast.topic !== record.topic || runLast.partition !== record.partition)) noteNextOffset(positions, runLast, nextOffsets);
      runLast = record;
      const controlled = controlledTopic(record);
      if (controlled !== null && this.resets.isSkipped(record)) continue;
      if (undecodable.has(controlled ?? record.topic)) {
        held.push(record);
        continue;
      }
      let event: ChangeEvent | null;
      try {
        const decoding = this.options.decoder.decode(record);
        event = decoding instanceof Promise ? await decoding : decoding;
      } catch (error) {
        // The registry unreachable is an outage, not poison: the batch is read again from the stored offsets.
        if (isRetriable(error)) throw error;
        poison.push({ record, error: error as Error });
        // Under halt the table stops at this record: nothing after it is applied.
        if (this.options.onError === "halt") undecodable.add(controlled ?? record.topic);
        continue;
      }
      if (!event) continue;
      const change: RecordChange = { event, origin: record };
      if (controlled !== null) {
        if (!(await this.readsControlled(controlled, listed))) continue;
        // Held until its data topic is applied up to here.
        if (!(await this.resets.hold(record, change, controlled))) changes.push(change);
        continue;
      }
      if (isSnapshotReset(event) && (await this.resets.hold(record, change))) continue;
      changes.push(change);
    }
    if (runLast !== undefined) noteNextOffset(positions, runLast, nextOffsets);
    this.holdOffsets(nextOffsets);
    const started = performance.now();
    // Where the target keeps offsets, they go in with the data (one transaction in DuckDB).
    const offsetsWithData = poison.length === 0 ? [...nextOffsets.values()] : undefined;
    const written = await this.writeWithRetries(changes, stop, offsetsWithData);
    const appliedMs = Date.now();
    for (const failure of written.failures) poison.push({ record: changes[failure.index]!.origin, error: failure.error, event: changes[failure.index]!.event });
    for (const index of written.held) held.push(changes[index]!.origin);
    // The table halts at its oldest poison: by version where both decoded (partitions of a topic do not share offsets), else by offset.
    poison.sort((a, b) => {
      const [x, y] = a.event && b.event ? [a.event.source.position.change, b.event.source.position.change] : [a.record.offset, b.record.offset];
      return x < y ? -1 : x > y ? 1 : 0;
    });
    for (const { record, error, event } of poison) await this.handlePoison(record, event, error);
    this.holdHaltedPartitions(records, poison, held, changes, nextOffsets);
    const offsets = [...nextOffsets.values()];
    await this.storeOffsets(consumer, offsets, written.offsetsStored, stop);
    const unapplied = new Set([...written.failures.map((f) => f.index), ...written.held]);
    this.recordProgress(
      summarizeBatch(changes.filter((_, index) => !unapplied.has(index)).map((change) => change.event)),
      (performance.now() - started) / 1000,
      { polled: polledMs, applied: appliedMs },
    );
    if (dueResets !== null) await this.applyDueResets(consumer, stop, dueResets);
  }

  /**
   * Whether this sink writes the table a control record names. Not when it is another sink's table; a table whose
   * data topic appeared since the consumer opened is read too from now on (the consumer reopens; the record, held,
   * is read again then). `listed` keeps the topics listed for one batch: listed once, when first needed.
   */
  private async readsControlled(controlled: string, listed: ListedTopics): Promise<boolean> {
    if (this.readTopics.has(controlled)) return true;
    listed.topics ??= await this.options.topics();
    if (!listed.topics.includes(controlled)) return false;
    this.reopen = true;
    return true;
  }

  /**
   * The batch through the sink's staged write (StagedWrite), when it has one: each change is
   * handed to the sink as it is decoded and let go of, and only a summary of the batch's changes
   * is kept for the statistics. The write is left under way (startWrite) while the next batch is
   * read and staged (writeBehind). False when the batch is not staged (a truncate or snapshot reset
   * applied with its batch, a record that does not decode, a change the sink cannot stage):
   * applyBatch then decodes and writes it as usual, and every failure is handled there. Nothing of
   * the batch needs handling before that: halted topics are skipped and waiting resets held as
   * there (idempotent). A staged write that fails writes the batch again the same way (settleWrite).
   */
  private async applyStaged(consumer: TopicConsumer, records: StoredRecord[], stop: AbortSignal, polledMs: number): Promise<boolean> {
    if (!isStaging(this.options.sink) || records.length === 0) return false;
    if (this.stagingPause > 0) {
      this.stagingPause--;
      return false;
    }
    const batch = await this.stageBatch(consumer, records, stop, polledMs, false);
    if (typeof batch === "string") {
      this.pauseStaging(batch);
      return false;
    }
    if (batch === null) return false;
    this.startWrite(consumer, records, stop, batch);
    return true;
  }

  private pauseStaging(reason: string): void {
    this.stagingPause = STAGING_PAUSE_BATCHES;
    this.logger.debug({ reason }, "batch not staged: written through the sink's write");
  }

  /**
   * The batch read while the staged write of the one before is under way (one write at a time, at
   * most this one batch staged ahead of it): staged meanwhile, then its write starts once the
   * earlier one has succeeded and stored its offsets, and left everything the staging read as it
   * was (no table halted, released or reset since); true then. Otherwise (it could not be staged
   * ahead: a control record or reset, which waits on what is applied; the earlier write failed and
   * was written again through `Sink.write`, halting or dead-lettering; ...) false, with nothing of
   * it written and the earlier write settled: the batch is then taken afresh, as read just now.
   */
  private async writeBehind(consumer: TopicConsumer, records: StoredRecord[], stop: AbortSignal, polledMs: number): Promise<boolean> {
    const changes = this.stateChanges;
    let ahead = isStaging(this.options.sink) && this.stagingPause === 0 ? await this.stageBatch(consumer, records, stop, polledMs, true) : null;
    // A failed write is written again in full: the batch staged ahead is let go first, so the memory plan's batches are not exceeded.
    if (this.inFlight !== null && (await this.inFlight.done) !== null) ahead = null;
    const settled = await this.settleWrite(records);
    if (ahead === null || typeof ahead === "string" || !settled || changes !== this.stateChanges || this.reopen || stop.aborted) return false;
    this.startWrite(consumer, records, stop, ahead);
    return true;
  }

  /**
   * Hands the batch's changes to a new staged write as they are decoded. The batch, or why it is
   * not staged (a reason), or null when the sink has no staged write now. `ahead`: a write is under
   * way, so what depends on it being applied is not staged (control records, resets).
   */
  private async stageBatch(consumer: TopicConsumer, records: StoredRecord[], stop: AbortSignal, polledMs: number, ahead: boolean): Promise<StagedBatch | string | null> {
    const { sink } = this.options;
    if (!isStaging(sink)) return null;
    const staged = sink.stagedWrite(stop);
    if (staged === null) return null;
    const nextOffsets = new Map<string, TopicPartitionOffset>();
    const listed: ListedTopics = {};
    // Summarized a slice at a time, so that no more than a slice of decoded events is kept.
    const summaries: BatchSummary[] = [];
    const personal: string[] = [];
    let slice: ChangeEvent[] = [];
    let decoded = 0;
    let runLast: StoredRecord | undefined;
    for (const record of records) {
      if (this.blocked(record.topic)) continue;
      if (++decoded % DECODE_SLICE === 0) await new Promise((resolve) => setImmediate(resolve));
      if (runLast !== undefined && (runLast.topic !== record.topic || runLast.partition !== record.partition)) noteNextOffset(consumer, runLast, nextOffsets);
      runLast = record;
      const controlled = controlledTopic(record);
      if (ahead && controlled !== null) return "control record read ahead of a write";
      let event: ChangeEvent | null;
      try {
        const decoding = this.options.decoder.decode(record);
        event = decoding instanceof Promise ? await decoding : decoding;
      } catch (error) {
        if (isRetriable(error)) throw error;
        return "undecodable record";
      }
      if (!event) continue;
      // Control records and snapshot resets as applyBatch takes them: a reset held by the gate is not part of
      // the batch's write (holding one again after a fall back is a no-op); one applied with its batch is not staged.
      if (controlled !== null) {
        if (!(await this.readsControlled(controlled, listed))) continue;
        if (!(await this.resets.hold(record, { event, origin: record }, controlled))) return "control record applied with its batch";
        continue;
      }
      if (isSnapshotReset(event)) {
        if (ahead) return "snapshot reset read ahead of a write";
        if (await this.resets.hold(record, { event, origin: record })) continue;
        return "snapshot reset applied with its batch";
      }
      const taken = staged.stage(event);
      if (!(taken instanceof Promise ? await taken : taken)) return "change not staged";
      slice.push(event);
      const values = markedValues(event);
      if (values !== undefined) personal.push(...values);
      if (slice.length === DECODE_SLICE) {
        summaries.push(summarizeBatch(slice));
        slice = [];
      }
    }
    if (runLast !== undefined) noteNextOffset(consumer, runLast, nextOffsets);
    // The positions now, for writing the batch again should its write fail after later records are read.
    const read = new Map([...nextOffsets].map(([key, offset]) => [key, offset.offset]));
    const positions: Positions = { position: (topic, partition) => read.get(partitionKey(topic, partition)) ?? null };
    this.holdOffsets(nextOffsets);
    if (slice.length > 0) summaries.push(summarizeBatch(slice));
    return { staged, offsets: [...nextOffsets.values()], summaries, polledMs, positions, personal };
  }

  /**
   * Starts a staged batch's write and leaves it under way (inFlight): after it, the batch's offsets
   * are stored and its progress counted; a failure is kept for settleWrite.
   */
  private startWrite(consumer: TopicConsumer, records: StoredRecord[], stop: AbortSignal, batch: StagedBatch): void {
    const { staged, offsets, summaries, polledMs, positions, personal } = batch;
    const started = performance.now();
    const done = (async (): Promise<WriteFailure | null> => {
      let offsetsStored = false;
      if (summaries.length > 0) {
        try {
          offsetsStored = await staged.write(stop, offsets);
        } catch (error) {
          return { failed: "write", error, personal };
        }
        this.targetReachable = true;
      }
      const appliedMs = Date.now();
      try {
        await this.storeOffsets(consumer, offsets, offsetsStored, stop);
        this.recordProgress(mergeSummaries(summaries), (performance.now() - started) / 1000, { polled: polledMs, applied: appliedMs });
      } catch (error) {
        return { failed: "offsets", error, personal };
      }
      return null;
    })();
    this.inFlight = { consumer, records, stop, polledMs, positions, largestValue: largestValueBytes(records), done };
  }

  /**
   * Waits for the staged write under way, if any. When it succeeded (its offsets stored), the
   * resets it made due apply; true. They are judged by what is applied, so `readAhead` (the batch
   * read since, not applied: the consumer's positions are past it) is left out of the consumer's
   * positions; "unknown" (outside the consume loop, which may hold such a batch): they wait for the
   * loop. When its write failed, the batch is written again through `Sink.write` as any batch
   * (retries, halts, dead letters); false. A failure to store its offsets, or any failure while
   * stopping, is thrown: the batch is read again from the stored offsets.
   */
  private async settleWrite(readAhead: readonly StoredRecord[] | "unknown" | null): Promise<boolean> {
    const write = this.inFlight;
    if (write === null) return true;
    this.inFlight = null;
    this.largestLetGo = Math.max(this.largestLetGo, write.largestValue);
    const outcome = await write.done;
    const applied = readAhead === "unknown" ? null : readAhead === null ? write.consumer : positionsBefore(write.consumer, readAhead);
    if (outcome === null) {
      if (applied !== null) await this.applyDueResets(write.consumer, write.stop, applied);
      return true;
    }
    if (outcome.failed === "offsets" || write.stop.aborted) {
      // Read again from the stored offsets: the error is reported as is, so without the batch's personal values.
      const personal = outcome.personal ?? [];
      throw personal.length > 0 && outcome.error instanceof Error ? new Redactor(personal).error(outcome.error) : outcome.error;
    }
    const failure = (outcome.personal?.length ?? 0) > 0 ? { code: outcome.error instanceof SluiceError ? outcome.error.code : undefined } : { err: outcome.error };
    this.logger.debug(failure, "staged write failed: the batch is written again through the sink's write");
    this.pauseStaging("staged write failed");
    await this.applyPlain(write.consumer, write.records, write.stop, write.polledMs, write.positions, applied);
    return false;
  }

  /** Waits for the write under way and lets it go: stored if it succeeded, else read again from the stored offsets (stopping, reopening). */
  private async dropWrite(): Promise<void> {
    const write = this.inFlight;
    this.inFlight = null;
    if (write === null) return;
    this.largestLetGo = Math.max(this.largestLetGo, write.largestValue);
    await write.done;
  }

  /** A settle that failed in a release or forget: thrown in the consume loop, which replaces the consumer. */
  private throwSettleFailure(): void {
    const failure = this.settleFailure;
    if (failure === null) return;
    this.settleFailure = null;
    throw failure;
  }

  /**
   * Applies the waiting snapshot resets whose topics are applied, in every partition, up to where
   * they were when the reset was read; then their partitions' stored offsets move up to what was read.
   */
  private async applyDueResets(consumer: TopicConsumer, stop: AbortSignal, applied: AppliedPositions = consumer): Promise<void> {
    if (this.resets.size === 0) return;
    const due = await this.resets.due(applied, (topic) => this.blocked(topic));
    if (due.length === 0) return;
    this.stateChanges++;
    const changes = due.map((reset) => reset.change);
    const nextOffsets = new Map<string, TopicPartitionOffset>();
    for (const { record } of due) {
      const position = applied.position(record.topic, record.partition);
      const next = position !== null && position > record.offset ? position : record.offset + 1n;
      const key = partitionKey(record.topic, record.partition);
      const current = nextOffsets.get(key);
      if (current === undefined || current.offset < next) nextOffsets.set(key, { topic: record.topic, partition: record.partition, offset: next });
    }
    this.holdOffsets(nextOffsets);
    const started = performance.now();
    const written = await this.writeWithRetries(changes, stop, [...nextOffsets.values()]);
    const failed = new Set(written.failures.map((f) => f.index));
    for (const failure of written.failures) {
      const reset = due[failure.index]!;
      await this.handlePoison(reset.record, reset.change.event, failure.error);
      // Its table halted: it waits again like its table's data records, and keeps its partition's stored offset at it; the others' apply.
      if (this.halted.has(reset.dataTopic)) this.resets.restore(reset);
    }
    // Not written because an earlier one of their table failed (its table halted): they wait again, never dropped.
    for (const index of written.held) {
      failed.add(index);
      this.resets.restore(due[index]!);
    }
    for (const [index, { record, change }] of due.entries()) {
      if (failed.has(index)) continue;
      this.logger.debug({ topic: record.topic, partition: record.partition, offset: String(record.offset), version: String(change.event.source.position.change) }, "truncate or snapshot reset applied: every partition of its table's topic is applied past it");
    }
    if (failed.size > 0) this.holdOffsets(nextOffsets);
    await this.storeOffsets(consumer, [...nextOffsets.values()], written.offsetsStored, stop);
    if (written.failures.length === 0) this.recordProgress(summarizeBatch(changes.map((change) => change.event)), (performance.now() - started) / 1000);
  }

  /**
   * For each table halted in this batch, every partition's offset stays at its first record not
   * applied: the poison record, records held behind it, and (other partitions of the topic)
   * changes not older than the poison, which a sink applying in version order left out. A retry
   * reads them again; applying by version makes re-reading harmless.
   */
  private holdHaltedPartitions(
    records: StoredRecord[],
    poison: Poison[],
    held: StoredRecord[],
    changes: RecordChange[],
    nextOffsets: Map<string, TopicPartitionOffset>,
  ): void {
    const haltedNow = new Set(poison.map((p) => tableTopic(p.record)).filter((topic) => this.halted.has(topic)));
    if (haltedNow.size === 0) return;
    const haltVersion = new Map<string, bigint>();
    for (const { record, event } of poison) {
      const table = tableTopic(record);
      if (!event || !haltedNow.has(table)) continue;
      const version = event.source.position.change;
      const current = haltVersion.get(table);
      if (current === undefined || version < current) haltVersion.set(table, version);
    }
    const versionOf = new Map<StoredRecord, bigint>(changes.map((change) => [change.origin, change.event.source.position.change]));
    const stopped = new Set<StoredRecord>([...poison.map((p) => p.record), ...held]);
    for (const record of records) {
      const table = tableTopic(record);
      if (!haltedNow.has(table)) continue;
      const cutoff = haltVersion.get(table);
      const version = versionOf.get(record);
      const unapplied = stopped.has(record) || (cutoff !== undefined && version !== undefined && version >= cutoff);
      if (!unapplied) continue;
      const key = partitionKey(record.topic, record.partition);
      const current = nextOffsets.get(key);
      if (current === undefined || record.offset < current.offset) nextOffsets.set(key, { topic: record.topic, partition: record.partition, offset: record.offset });
    }
  }

  /**
   * Writes the batch. Items the target refuses as temporary are written again with backoff, at
   * most `itemAttempts` times in all; then they go to the sink's policy with that reason. `held`:
   * changes not written because an earlier change of their table halted it.
   */
  private async writeWithRetries(
    changes: SinkChange[],
    stop: AbortSignal,
    offsets: TopicPartitionOffset[] | undefined,
  ): Promise<{ failures: SinkItemFailure[]; held: number[]; offsetsStored: boolean }> {
    if (changes.length === 0) return { failures: [], held: [], offsetsStored: false };
    const { sink } = this.options;
    const maxAttempts = Math.max(1, this.options.itemAttempts ?? DEFAULT_ITEM_ATTEMPTS);
    const firstAt = Date.now();
    const permanent: SinkItemFailure[] = [];
    const held: number[] = [];
    let offsetsStored = false;
    // The batch's indices still to write; null: all of them (the first attempt writes the batch as it is, without a copy).
    let pending: number[] | null = null;
    for (let attempt = 0; pending === null || pending.length > 0; attempt++) {
      const current = pending;
      const batch = current === null ? changes : current.map((index) => changes[index]!);
      const indexOf = (position: number): number => (current === null ? position : current[position]!);
      const withOffsets = attempt === 0 && offsets !== undefined && isTransactional(sink) ? offsets : undefined;
      let result: { failures: readonly SinkItemFailure[]; offsetsStored?: boolean; held?: readonly number[] };
      try {
        result = await this.write(batch, stop, withOffsets);
      } catch (error) {
        // A schema change the target cannot take fails the whole write: find its table and change, halt only there.
        if (!isTableLevel(error)) throw error;
        result = await this.writeTableByTable(batch, stop);
      }
      if (withOffsets && result.offsetsStored) offsetsStored = true;
      for (const position of result.held ?? []) held.push(indexOf(position));
      const retriable: number[] = [];
      for (const failure of result.failures) {
        const index = indexOf(failure.index);
        if (!failure.retriable) permanent.push({ ...failure, index });
        else if (attempt + 1 >= maxAttempts) permanent.push({ index, error: this.retriesExhausted(changes[index]!, failure.error, attempt + 1, Date.now() - firstAt), retriable: false });
        else retriable.push(index);
      }
      pending = retriable;
      if (pending.length > 0) {
        this.options.metrics?.sinkRetries.inc({ sink: sink.name });
        this.logger.warn({ items: pending.length, attempt: attempt + 1, maxAttempts, err: result.failures.find((f) => f.retriable)?.error.message }, "sink refused items as temporary; writing them again");
        await sleep(Math.min(this.options.retry.maxMs, this.options.retry.initialMs * 2 ** attempt), stop);
      }
    }
    return { failures: permanent, held, offsetsStored };
  }

  private retriesExhausted(change: SinkChange, error: Error, attempts: number, elapsedMs: number): SluiceError {
    const sink = this.options.sink.name;
    const table = tableName(change.event.schema);
    const { topic, partition, offset } = change.origin;
    return new SluiceError(
      `sink ${sink}: a row of ${table} (${topic}:${partition}:${offset}) was retried ${attempts} times over ${Math.round(elapsedMs / 1000)} s and the target still refuses it: ${error.message}. ` +
        `It is treated as a row the sink cannot apply (on_error); raise retry.item_attempts if the target needs longer`,
      { code: ITEM_RETRIES_EXHAUSTED, retriable: false, context: { component: "sink", sink, table, position: `${topic}:${partition}:${offset}` }, cause: error },
    );
  }

  private async write(changes: SinkChange[], stop: AbortSignal, offsets?: TopicPartitionOffset[]): Promise<{ failures: readonly SinkItemFailure[]; offsetsStored?: boolean }> {
    const { sink } = this.options;
    // A server's refusal may quote a row's values: the personal ones never leave in it (logs, /status, dead letters).
    // A whole-batch error with the batch's values, one redactor for all attempts; a row's refusal with its row's only.
    let batch: Redactor | null = null;
    const redacted = (error: unknown) => (error instanceof Error ? (batch ??= new Redactor(personalValuesOf(changes.map((c) => c.event)))).error(error) : error);
    const attempt = async () => {
      try {
        return await (offsets ? (sink as TransactionalSink).write(changes, stop, offsets) : sink.write(changes, stop));
      } catch (error) {
        throw redacted(error);
      }
    };
    const result = await retry(attempt, {
      ...this.options.retry,
      signal: stop,
      onRetry: (err, n, delayMs) => {
        this.targetReachable = false;
        this.targetProblem = errorText(err);
        this.options.metrics?.sinkRetries.inc({ sink: sink.name });
        this.logger.warn({ err, attempt: n, delayMs }, "sink write failed; retrying");
      },
    });
    this.targetReachable = true;
    redactFailures(result.failures, changes);
    return result;
  }

  /**
   * Writes each table's changes on their own, in version order. A table whose write
   * fails as a whole is narrowed down to the change it fails on (halving the rest): the changes
   * before it apply, it fails, the ones after are held. Under halt a rejected row holds the rest too.
   */
  private async writeTableByTable(changes: SinkChange[], stop: AbortSignal): Promise<{ failures: SinkItemFailure[]; held: number[] }> {
    // By table, not by topic: the control topic holds every table's truncates, and one table's refusal must not hold back another's.
    const byTopic = new Map<string, number[]>();
    changes.forEach((change, index) => {
      const table = `${change.event.schema.source}\u0000${tableName(change.event.schema)}`;
      const indices = byTopic.get(table);
      if (indices) indices.push(index);
      else byTopic.set(table, [index]);
    });
    const failures: SinkItemFailure[] = [];
    const held: number[] = [];
    const order = (a: number, b: number) => {
      const va = changes[a]!.event.source.position.change;
      const vb = changes[b]!.event.source.position.change;
      return va === vb ? (changes[a]!.origin.offset < changes[b]!.origin.offset ? -1 : 1) : va < vb ? -1 : 1;
    };
    for (const indices of byTopic.values()) {
      const ordered = [...indices].sort(order);
      let start = 0;
      let end = ordered.length;
      while (start < ordered.length) {
        const subset = ordered.slice(start, end);
        try {
          const { failures: own } = await this.write(
            subset.map((i) => changes[i]!),
            stop,
          );
          for (const failure of own) failures.push({ ...failure, index: subset[failure.index]! });
          start = end;
          end = ordered.length;
          if (this.options.onError === "halt" && own.some((f) => !f.retriable)) break;
        } catch (error) {
          if (!isTableLevel(error)) throw error;
          if (subset.length > 1) {
            end = start + Math.ceil(subset.length / 2);
            continue;
          }
          failures.push({ index: subset[0]!, error, retriable: false });
          start += 1;
          break;
        }
      }
      held.push(...ordered.slice(start));
    }
    return { failures, held };
  }

  private async handlePoison(record: StoredRecord, event: ChangeEvent | undefined, cause: Error): Promise<void> {
    const table = event ? tableName(event.schema) : record.topic;
    const sink = this.options.sink.name;
    let error = cause;
    // A table the target cannot take halts under either policy: dead-lettering every later row of it would empty the table's stream.
    if (this.options.onError === "dead-letter" && !isTableLevel(error)) {
      try {
        await this.deadLetter(record, table, error.message);
        return;
      } catch (failure) {
        // The dead-letter topic takes less than the data topic (one made before Sluice sized its topics): the table halts instead, nothing lost.
        if (!(failure instanceof SluiceError && failure.code === RECORD_TOO_LARGE)) throw failure;
        error = new SluiceError(`${cause.message}; its dead letter is too large for ${this.options.deadLetterTopic}, so the table halts instead: ${failure.message}`, {
          code: RECORD_TOO_LARGE,
          context: { ...failure.context, component: "sink-runner", sink, table },
          cause: failure,
        });
      }
    }
    const key = tableTopic(record);
    if (this.halted.has(key)) return;
    const skipThrough = this.skippedByRange(key, record, error);
    const retries = skipThrough === null && liftsByItself(error) ? this.blockedRetries : null;
    const before = retries?.last(key);
    const view: HaltedSinkTable = {
      topic: record.topic,
      table,
      error: error.message,
      offset: `${record.partition}:${record.offset}`,
      partition: record.partition,
      recordOffset: record.offset.toString(),
      // A table that halts again at an automatic retry has been halted since the first time.
      since: before?.view.since ?? new Date().toISOString(),
      release: releaseHint(sink, table, refusalKind(error) !== "target"),
    };
    const state: HaltState = { key, view, record, error, source: event?.source.name ?? "" };
    this.halted.set(key, state);
    this.stateChanges++;
    if (skipThrough !== null) {
      this.skipInRange(state, skipThrough);
      return;
    }
    this.announceHalt(state, retries);
  }

  /**
   * The end of the `skip --through` range a refused record is in, when the range skips its refusal;
   * null otherwise. A refused record past the range (or on another topic) ends it; within it, a
   * refusal of another kind (the target's: a block, running out of memory) halts the table as usual
   * and the range holds on, for the records after it once the table goes on.
   */
  private skippedByRange(key: string, record: StoredRecord, error: Error): bigint | null {
    const range = this.skipThrough.get(key);
    if (range === undefined) return null;
    const last = range.topic === record.topic ? range.last.get(record.partition) : undefined;
    if (last === undefined || record.offset > last) {
      this.skipThrough.delete(key);
      return null;
    }
    const kind = refusalKind(error);
    return kind !== "target" && kind === range.kind ? last : null;
  }

  /**
   * Releases a table halted by a refused record within a `skip --through` range as the operator's
   * skip would, after the batch under way (releases run one at a time). A skip that fails (the
   * dead-letter topic refuses the record, the topic log unavailable) ends the range, and the table
   * stays halted as any halt is: counted, logged as an error, for an operator to release.
   */
  private skipInRange(state: HaltState, through: bigint): void {
    const { view, record, error, key } = state;
    const sink = this.options.sink.name;
    this.logger.warn(
      { table: view.table, topic: record.topic, partition: record.partition, offset: String(record.offset), err: error.message, through: String(through) },
      `sink ${sink}: table ${view.table}: record ${record.topic}:${record.partition}:${record.offset} refused (${error.message}); dead-lettering it as the operator asked (sluice halted skip --through ${through})`,
    );
    const endRange = (failure: unknown) => {
      // Released meanwhile by the operator.
      if (this.halted.get(key) !== state) return;
      this.skipThrough.delete(key);
      const halted: HaltState = { ...state, view: { ...view, error: `${view.error}; sending it to the dead-letter topic as the operator's range asked (sluice halted skip --through) failed, so the range ends and the table halts: ${errorText(failure)}` } };
      this.halted.set(key, halted);
      this.stateChanges++;
      this.announceHalt(halted, null);
    };
    // Refused (not run) when the write before it failed: then too the range ends and the table halts where everyone sees it.
    void this.exclusive(async () => {
      if (this.halted.get(key) !== state) return;
      await this.skipRecord(state, "sluice halted skip --through");
    }).catch(endRange);
  }

  /** Counts a table that halted and says so (an error line), or schedules its automatic retry (`retries`: its target's block lifts by itself). */
  private announceHalt(state: HaltState, retries: BlockedRetries<HaltState> | null): void {
    const { key, view, record, error } = state;
    const { table } = view;
    const sink = this.options.sink.name;
    let release = view.release;
    this.options.metrics?.tablesHalted.set({ source: state.source, sink, table }, 1);
    if (retries !== null) {
      const { delayMs, attempts } = retries.schedule(key, state);
      const at = new Date(Date.now() + delayMs).toISOString();
      release = `retried automatically (the target may lift its block by itself), next at ${at}; or ${release}`;
      this.halted.set(key, { ...state, view: { ...view, release } });
      if (attempts > 0) {
        this.logger.warn(
          { table, topic: record.topic, partition: record.partition, offset: String(record.offset), err: error.message, attempts, delayMs, code: TARGET_BLOCKED },
          `sink ${sink}: table ${table} still halted after automatic retry ${attempts}: ${error.message}; retried again in ${Math.round(delayMs / 1000)} s`,
        );
        return;
      }
    }
    this.logger.error(
      { table, topic: record.topic, partition: record.partition, offset: String(record.offset), err: view.error, release },
      `sink ${sink}: table ${table} halted at ${record.topic}:${record.partition}:${record.offset}: ${view.error}; ${release}`,
    );
  }

  /** Sends a record as it is stored to the dead-letter topic, with the reason, the sink and where it came from in headers. */
  private async deadLetter(record: StoredRecord, table: string, reason: string): Promise<void> {
    const sink = this.options.sink.name;
    await this.options.log.produce([
      {
        topic: this.options.deadLetterTopic,
        key: record.key,
        value: record.value,
        headers: {
          ...record.headers,
          "sluice.error": Buffer.from(reason),
          "sluice.sink": Buffer.from(sink),
          "sluice.origin": Buffer.from(`${record.topic}:${record.partition}:${record.offset}`),
        },
        timestamp: record.timestamp,
      },
    ]);
    this.options.metrics?.deadLettered.inc({ sink, table });
    this.logger.warn({ table, topic: record.topic, offset: String(record.offset), err: reason }, "row dead-lettered");
  }
  private async storeOffsets(consumer: TopicConsumer, offsets: TopicPartitionOffset[], storedInTarget: boolean, stop: AbortSignal): Promise<void> {
    if (offsets.length === 0) return;
    this.blockedPassed(offsets);
    for (const offset of offsets) {
      const key = partitionKey(offset.topic, offset.partition);
      if (consumer.position(offset.topic, offset.partition) === offset.offset) this.caughtUp.set(key, offset);
      else this.caughtUp.delete(key);
    }
    const { sink } = this.options;
    // The group's offsets in the topic log serve lag reporting and replay planning.
    // A consumer that keeps failing (crashed, lost its group) is replaced by the loop in consumeUntilStopped.
    if (!isTransactional(sink)) {
      await retry(() => consumer.commit(offsets), { ...this.options.retry, signal: stop, maxAttempts: 3 });
      return;
    }
    if (!storedInTarget) await retry(() => sink.storeOffsets(offsets, stop), { ...this.options.retry, signal: stop });
    // The target holds the offsets a restart resumes from: the group's follow while the next batch is
    // read (a round trip to the topic log off the path of every batch), in order.
    for (const offset of offsets) this.groupOffsets.set(partitionKey(offset.topic, offset.partition), offset);
    if (this.groupCommit === null && this.groupCommitFailure === null) this.groupCommit = this.commitGroupOffsets(consumer, stop);
  }

  /** Partitions records were polled from are read past their stored offsets until the batch stores them. */
  private forgetCaughtUp(records: readonly StoredRecord[]): void {
    if (this.caughtUp.size === 0) return;
    let last: StoredRecord | undefined;
    for (const record of records) {
      if (last !== undefined && last.topic === record.topic && last.partition === record.partition) continue;
      this.caughtUp.delete(partitionKey(record.topic, record.partition));
      last = record;
    }
  }

  /** Stores the positions of caught-up partitions that moved past records never handed over (see `caughtUp`). */
  private async storePassedMarkers(consumer: TopicConsumer, stop: AbortSignal): Promise<void> {
    const moved = new Map<string, TopicPartitionOffset>();
    for (const [key, stored] of this.caughtUp) {
      if (this.blocked(stored.topic)) continue;
      const position = consumer.position(stored.topic, stored.partition);
      if (position !== null && position > stored.offset) moved.set(key, { topic: stored.topic, partition: stored.partition, offset: position });
    }
    this.holdOffsets(moved);
    const offsets = [...moved].filter(([key, offset]) => offset.offset > this.caughtUp.get(key)!.offset).map(([, offset]) => offset);
    await this.storeOffsets(consumer, offsets, false, stop);
  }

  /** Commits the waiting group offsets until none are left; a failure is kept for the consume loop. */
  private async commitGroupOffsets(consumer: TopicConsumer, stop: AbortSignal): Promise<void> {
    try {
      while (this.groupOffsets.size > 0 && this.groupCommitFailure === null) {
        const offsets = [...this.groupOffsets.values()];
        this.groupOffsets.clear();
        await retry(() => consumer.commit(offsets), { ...this.options.retry, signal: stop, maxAttempts: 3 });
      }
    } catch (error) {
      this.groupCommitFailure = error;
    } finally {
      this.groupCommit = null;
    }
  }

  /** Waits for the group's commits under way; one that failed is thrown here (the consumer is replaced). */
  private async settleGroupCommits(): Promise<void> {
    await this.groupCommit;
    this.groupOffsets.clear();
    const failure = this.groupCommitFailure;
    this.groupCommitFailure = null;
    if (failure !== null) throw failure;
  }

  /** `stages`: wall-clock ms when the batch was polled and applied, for the commit -> stage latencies. */
  private recordProgress(applied: BatchSummary, seconds: number, stages?: { readonly polled: number; readonly applied: number }): void {
    this.authRefusals = 0;
    const metrics = this.options.metrics;
    const commitMs = applied.latestCommitMs;
    this.setAuthRefused(false);
    if (commitMs !== null && (this.lastAppliedCommitMs === null || commitMs > this.lastAppliedCommitMs)) this.lastAppliedCommitMs = commitMs;
    for (const { table, op, count } of applied.counts) metrics?.sinkApplied.inc({ sink: this.options.sink.name, table, op }, count);
    metrics?.sinkApplyLatency.observe({ sink: this.options.sink.name }, seconds);
    if (metrics && stages) observeCommitStages(metrics.sinkLatency, { sink: this.options.sink.name }, applied.commitTimesMs, stages);
  }
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
