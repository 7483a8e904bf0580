/**
 * Capture: source -> encode -> topic log -> acknowledge. The source position is acknowledged only
 * after the topic log has durably stored every record up to it together with the checkpoint.
 */
import type { ChangeEvent, Checkpoint, ProducedRecord, Source, SourceBatch, StoredRecord, TopicLog, TransactionMarker } from "../connectors/contracts.ts";
import { joinCheckpoints, tableName } from "../connectors/contracts.ts";
import { formatPosition } from "../connectors/common/position-text.ts";
import { SluiceError } from "../connectors/errors.ts";
import { backoffDelay, retry, sleep } from "../runtime/backoff.ts";
import type { BackoffPolicy } from "../runtime/backoff.ts";
import type { Logger } from "../runtime/logger.ts";
import { RECORD_TOO_LARGE, recordBytes } from "../connectors/topics/spec.ts";
import { pushAll } from "../runtime/arrays.ts";
import { releaseLargeValue } from "../runtime/large-values.ts";
import { mergeSummaries, summarizeBatch } from "./batch-counts.ts";
import type { BatchSummary } from "./batch-counts.ts";
import { deserializeEventBytes, serializeEventBytes } from "./event-json.ts";
import { NOT_HALTED } from "./halted.ts";
import type { CaptureReleaseReport, CaptureSkipThrough, HaltAction, ParkedChange } from "./halted.ts";
import { Serial } from "../runtime/serial.ts";
import { durableWork, runDurableWork } from "./when-durable.ts";

/** Turns one change into the records that carry it (a delete also yields its tombstone). */
export interface ChangeEncoder {
  encode(event: ChangeEvent): Promise<ProducedRecord[]>;
  /**
   * The same as `encode` without a promise where nothing needs waiting for; undefined otherwise,
   * and then `encode` of the same event follows (what it did is not repeated: data checks run once).
   */
  encodeNow?(event: ChangeEvent): ProducedRecord[] | undefined;
  /** Called before the events of each source batch (data checks' unique_in_batch). */
  startBatch?(): void;
  /** Called with the events of each source batch before they are encoded (personal data: their subjects' keys are created in one write). */
  prepare?(events: readonly ChangeEvent[]): Promise<void>;
}

/**
 * Seals the personal values of a change written outside the data topics (parked, dead-lettered)
 * with their subject's key, and opens them when it is read back (daemon/governance/parked-personal.ts).
 */
export interface ParkedChangeSealer {
  /** The change as written, and the headers its records carry (which columns are sealed, which nulled and why). */
  seal(event: ChangeEvent): Promise<{ readonly event: ChangeEvent; readonly headers: Record<string, Uint8Array> }>;
  /** The change as captured; a value whose key is gone is null. A record written without the seal's headers is returned as it is. */
  open(event: ChangeEvent, headers: Readonly<Record<string, Uint8Array>> | undefined): Promise<ChangeEvent>;
  /** Reads the key topic to its end: a key destroyed since (`sluice forget`) opens nothing afterwards. */
  refresh(): Promise<void>;
  /** Makes the keys the sealing of these changes needs ready together (one write for new subjects), before they are sealed one by one. */
  prepare?(events: readonly ChangeEvent[]): Promise<void>;
}

export interface HaltedTable {
  readonly table: string;
  readonly error: string;
  readonly code: string;
  readonly since: string;
  /** For a value that cannot be encoded (AVRO_VALUE_INVALID): its column and the value, shown short. */
  readonly column?: string;
  readonly value?: string;
  /** For a record over the size limit (RECORD_TOO_LARGE): the row's key and the record's size. */
  readonly key?: string;
  readonly bytes?: number;
}

export interface CaptureStats {
  /**
   * A batch acknowledged, given as its summary (the events are let go of at hand-over to the topic log). `times`: wall-clock
   * ms when the batch was read from the source (captured) and when it was durable in the topic log.
   */
  onBatch?(batch: BatchSummary, records: number, produceSeconds: number, times: { readonly capturedMs: number; readonly durableMs: number }): void;
  onHalt?(table: string, error: SluiceError): void;
  /** An operator released the table (`sluice halted retry|skip --source`); it may halt again at once. */
  onRelease?(table: string): void;
}

export interface CaptureOptions {
  readonly source: Source;
  readonly log: TopicLog;
  readonly encoder: ChangeEncoder;
  readonly logger: Logger;
  /** Topic holding the events of halted tables, so the position can advance without losing them. */
  readonly parkingTopic: string;
  /** Topic for transaction BEGIN/END markers, when the source provides them (config transaction_metadata). */
  readonly transactionTopic?: string;
  /** Encodes the markers for `transactionTopic` (Debezium's Avro layout, transaction-codec.ts); without it they are JSON. */
  readonly transactionEncoder?: { encode(marker: TransactionMarker): ProducedRecord };
  readonly reconnect: BackoffPolicy;
  readonly stats?: CaptureStats;
  /** Largest topic record (key, value, headers and framing), config `topics.max_record_bytes`; larger ones halt their table. */
  readonly maxRecordBytes?: number;
  /**
   * Bytes of records (recordBytes) that the batches handed to the log and not yet acknowledged may hold together
   * for a third to join them: the memory plan's two capture batches (2 × captureBatchBytes of the source's read-ahead).
   * Without it, two at most (TWO_IN_FLIGHT).
   */
  readonly inFlightBytes?: number;
  /**
   * Personal columns per table ("schema.table", config governance personal): a skipped change's key is
   * recorded (log, parking marker, report) with their values left out.
   */
  readonly personalColumns?: ReadonlyMap<string, readonly string[]>;
  /** Personal columns of parked changes: sealed with their subject's key in the parking topic, opened when re-published. */
  readonly parkedSealer?: ParkedChangeSealer;
  /**
   * Names of the sources that connected in this process, kept by the daemon across capture terms (each term under the
   * capture lease makes new pipelines): from then on a refused login is waited out (refusalWaitedOut). This pipeline adds its source.
   */
  readonly connectedSources?: Set<string>;
  /**
   * This pipeline's capture term took capture over from another process (this process stood by under the capture lease
   * first): a refused login is then a password rotation half done (the server and this process's password_file not yet
   * agreeing), waited out from the term's first connect, as for a source that connected before, provided the source has a
   * stored checkpoint (its credentials worked before, in some process). The process's own first start, capturing at once,
   * and a takeover of a source that never captured take a refusal for a config error.
   */
  readonly takeover?: boolean;
}

/** What a source may send besides changes: transaction boundaries (config transaction_metadata). */
export type { TransactionMarker } from "../connectors/contracts.ts";

/**
 * Error codes that halt one table's stream instead of the whole source: a schema the registry
 * refuses, a value the table's Avro schema cannot carry, a record over the size limit, an outbox
 * row that is no event (daemon/outbox-router.ts).
 */
const TABLE_HALTING_CODES = new Set(["SCHEMA_INCOMPATIBLE", "SCHEMA_UNSUPPORTED", "AVRO_VALUE_INVALID", RECORD_TOO_LARGE, "OUTBOX_EVENT_INVALID", "OUTBOX_SCHEMA_UNREADABLE", "OUTBOX_SCHEMA_MISSING", "OUTBOX_TOPIC_REFUSED", "DATA_CHECK_FAILED", "GOVERNANCE_KEY_INVALID"]);

/** The topic log's refusal of a write over a limit it learnt only then (Kafka): written again, it meets that limit. */
const LIMIT_LOWERED_CODES = new Set(["KAFKA_TOPIC_LIMIT_LOWERED", "KAFKA_REQUEST_LIMIT_LOWERED"]);

/** A change its source could not read whole (ChangeEvent.refusal): it halts its table, whatever its code. */
class SourceRefusalError extends SluiceError {}

function refusalOf(event: ChangeEvent): SourceRefusalError | null {
  const { refusal } = event;
  return refusal === undefined ? null : new SourceRefusalError(refusal.message, { code: refusal.code, context: { ...refusal.context } });
}

function haltsTable(error: unknown): error is SluiceError {
  return error instanceof SourceRefusalError || (error instanceof SluiceError && TABLE_HALTING_CODES.has(error.code));
}

/** The database refused the source's login (its error codes for it). */
const LOGIN_REFUSED = new Set(["PG_AUTH_FAILED", "MYSQL_AUTH_FAILED"]);

function isLoginRefused(error: unknown): error is SluiceError {
  return error instanceof SluiceError && LOGIN_REFUSED.has(error.code);
}

export class CapturePipeline {
  private readonly options: CaptureOptions;
  private readonly logger: Logger;
  private readonly halted = new Map<string, HaltedTable>();
  /** Why each halted table halted, as a skip range compares refusals (refusalReason). */
  private readonly haltReasons = new Map<string, string>();
  /** The topic of each table halted over its limit (RECORD_TOO_LARGE): read again when the table is released. */
  private readonly overLimitTopics = new Map<string, string>();
  /**
   * Halted tables whose last release failed part-way (a write failed): the first parked change after
   * the last durable marker is not known to be one capture refuses (it may have been in the chunk that
   * was not written), so the next skip finds the refused one again by encoding (see plan).
   */
  private readonly interrupted = new Set<string>();
  /** Serialises source batches with operator releases (see exclusive). */
  private readonly lock = new Serial();
  /** Counts the starts and ends of operator releases: a batch encoded while one ran is encoded again. */
  private releases = 0;
  /** The batch being encoded (see encodeBatch). */
  private readonly encoding = new Serial();
  private connected = false;
  /** The sources that connected once in this process: from then on their server refusing the login is waited out (refusalWaitedOut). */
  private readonly connectedSources: Set<string>;
  /** The last failure being retried while not connected. */
  private problem: string | null = null;
  private lastCheckpoint: Checkpoint | null = null;
  private lastAckedCommitMs: number | null = null;
  /** Settles when the last batch handed to the log is acknowledged (rejects when it or one before it failed). */
  private acknowledged: Promise<void> = Promise.resolve();

  constructor(options: CaptureOptions) {
    this.options = options;
    this.logger = options.logger.child({ component: "capture", source: options.source.name });
    this.connectedSources = options.connectedSources ?? new Set();
  }

  ready(): boolean {
    return this.connected;
  }

  /** What capture waits for while not connected (the source, or the topic log for its checkpoint or parked events), or null. */
  waitingFor(): string | null {
    return this.connected ? null : (this.problem ?? "connecting");
  }

  haltedTables(): HaltedTable[] {
    return [...this.halted.values()];
  }

  checkpoint(): Checkpoint | null {
    return this.lastCheckpoint;
  }

  /**
   * Commit time of the last acknowledged change, milliseconds since the epoch. An acknowledged
   * batch without changes (a heartbeat) means the source had nothing older to send: its
   * `throughTimeMs`, or now when it has none.
   */
  lastAckedCommitTime(): number | null {
    return this.lastAckedCommitMs;
  }

  /**
   * Runs until `stop` aborts, reconnecting on retriable errors from the latest durable checkpoint.
   * A batch already read when `stop` aborts is still stored and acknowledged before returning.
   */
  async run(stop: AbortSignal): Promise<void> {
    const { source, log } = this.options;
    await retry(() => this.exclusive(() => this.restoreParked(stop)), {
      ...this.options.reconnect,
      signal: stop,
      onRetry: (error, attempt, delayMs) => {
        this.problem = messageOf(error);
        this.logger.warn({ err: describe(error), attempt, delayMs }, "re-publishing parked events failed; retrying");
      },
    });
    // Interruptions in a row without a batch acknowledged: each waits longer before reconnecting (a full disk, an
    // unwritable log) instead of reconnecting to the source at once, which re-sends everything after the checkpoint.
    let interruptions = 0;
    while (!stop.aborted) {
      let connectedFrom: Checkpoint | null | undefined;
      try {
        await retry(
          async () => {
            this.lastCheckpoint = await log.readCheckpoint(source.name);
            await this.connectSource(stop);
          },
          {
            ...this.options.reconnect,
            signal: stop,
            onRetry: (error, attempt, delayMs) => {
              this.problem = messageOf(error);
              this.logger.warn({ err: describe(error), attempt, delayMs }, "source connect failed; retrying");
            },
          },
        );
        this.connected = true;
        this.connectedSources.add(source.name);
        this.problem = null;
        connectedFrom = this.lastCheckpoint;
        this.logger.info({ from: this.lastCheckpoint ? formatPosition(source.kind, this.lastCheckpoint.position) : "start" }, "capturing");
        await this.pump(stop);
      } catch (caught) {
        // A source opens connections at a read too (MySQL's binlog connection at the first read, PostgreSQL's stream after the initial snapshot).
        const error = this.refusalWaitedOut(caught);
        this.connected = false;
        // Said before closing: closing a source whose server does not answer can take a while.
        this.problem = messageOf(error);
        await source.close().catch(() => undefined);
        if (stop.aborted) break;
        if (!(error instanceof SluiceError) || !error.retriable) throw error;
        if (connectedFrom !== undefined && this.lastCheckpoint !== connectedFrom) interruptions = 0;
        const delayMs = backoffDelay(this.options.reconnect, interruptions++);
        this.logger.warn({ err: describe(error), attempt: interruptions, delayMs }, "capture interrupted; reconnecting");
        await sleep(delayMs, stop).catch(() => undefined);
      }
    }
    this.connected = false;
    await source.close().catch(() => undefined);
  }

  /**
   * A login the database refuses before the source first connected in this process is a config error, told at once
   * (capture stops). Once it has (in this capture term or an earlier one), or when this term took capture over from
   * another process (options.takeover) of a source with a stored checkpoint, the same refusal, at a connect or at a read
   * that opens a connection, is a password rotated on the server (or a role locked for a while): waited out like the
   * server being down, with the reconnect backoff, not ready and naming it, while the other sources and the sinks go on.
   * Each connection reads a password_file again (connection-settings.ts).
   */
  private async connectSource(stop: AbortSignal): Promise<void> {
    try {
      await this.options.source.connect(this.lastCheckpoint, stop);
    } catch (error) {
      throw this.refusalWaitedOut(error);
    }
  }

  /** `error` made retriable when it is a refused login the source's past connection makes waited out (see connectSource). */
  private refusalWaitedOut(error: unknown): unknown {
    // A takeover's refusal is waited out only when the source has a stored checkpoint: its credentials worked before, in
    // some process. Without one, a wrong password would leave each standby in turn waiting forever instead of failing.
    const tookOverCapture = this.options.takeover === true && this.lastCheckpoint !== null;
    const waitedOut = tookOverCapture || this.connectedSources.has(this.options.source.name);
    if (!waitedOut || !isLoginRefused(error) || error.retriable) return error;
    return new SluiceError(`${error.message}; waiting for the server to accept the source's credentials (retried with backoff)`, { code: error.code, retriable: true, context: error.context, cause: error });
  }

  /**
   * The stages overlap: reading and encoding the next batch, and storing the batches before it.
   * Up to two (or three, see MAX_BATCHES_IN_FLIGHT) encoded batches are handed to the topic log without waiting for
   * the previous ones to be durable (the log stores overlapping calls in call order; with Kafka,
   * batches that queue up during a transaction go out together in the next). Each batch is
   * acknowledged to the source once it is durable and the batch before it was acknowledged, so
   * acknowledgements follow durability in order and never pass it. A failed store ends the pump:
   * no batch after it is acknowledged, and the log refuses their checkpoints. Batches are handed
   * to the log under the lock that keeps operator releases between batches; a batch encoded while
   * a release ran is encoded again, since the release changed which tables are halted.
   */
  private async pump(stop: AbortSignal): Promise<void> {
    const { source } = this.options;
    const inFlight = new Set<Promise<void>>();
    // The bytes of the batches in inFlight: a third goes in only while all three stay within options.inFlightBytes.
    let inFlightBytes = 0;
    const roomFor = (bytes: number) => inFlight.size < TWO_IN_FLIGHT || (inFlight.size < MAX_BATCHES_IN_FLIGHT && inFlightBytes + bytes <= (this.options.inFlightBytes ?? 0));
    // Set from the publishes' callbacks: the first store or acknowledgement that failed.
    const outcome: { failure: { error: unknown } | null } = { failure: null };
    // What the pump waits for ends early when a store fails. (Not a race with one long-lived promise: each race would stay attached to it, keeping its batch alive.)
    const waiting = new Set<(error: unknown) => void>();
    const orFailure = <T>(work: Promise<T>): Promise<T> =>
      new Promise<T>((resolve, reject) => {
        if (outcome.failure !== null) return reject(outcome.failure.error);
        waiting.add(reject);
        work.then(resolve, reject).finally(() => waiting.delete(reject));
      });
    this.acknowledged = Promise.resolve();
    let turnAt = performance.now();
    try {
      while (!stop.aborted) {
        // A full read-ahead answers in microtasks and the embedded log stores synchronously: without a turn now and
        // then, timers and sockets (/metrics, /healthz, heartbeats) would wait until the read-ahead ran dry.
        if (performance.now() - turnAt >= EVENT_LOOP_TURN_MS) {
          await new Promise((resolve) => setImmediate(resolve));
          turnAt = performance.now();
          if (stop.aborted) break;
        }
        const reading = source.read(stop);
        reading.catch(() => undefined);
        let batch: SourceBatch;
        try {
          // A failed store ends the pump at once rather than after the next batch arrives.
          batch = await orFailure(reading);
        } catch (error) {
          if (outcome.failure !== null) throw outcome.failure.error;
          if (stop.aborted) return;
          throw error;
        }
        const capturedMs = Date.now();
        let publishing: Promise<void>;
        let bytes: number;
        if (batch.more === true && this.halted.size === 0) {
          const readNext = () => {
            const next = source.read(stop);
            next.catch(() => undefined);
            return orFailure(next);
          };
          let run: EncodedRun | null = await this.encodeRun(batch, readNext, stop, capturedMs);
          bytes = run.bytes;
          while (!roomFor(bytes)) await orFailure(Promise.race(inFlight));
          if (outcome.failure !== null) throw outcome.failure.error;
          publishing = this.publishRun(run);
          run = null;
        } else {
          const releases = this.releases;
          let records: ProducedRecord[] | null = await this.encodeBatch(batch);
          bytes = recordsBytes(records);
          while (!roomFor(bytes)) await orFailure(Promise.race(inFlight));
          if (outcome.failure !== null) throw outcome.failure.error;
          publishing = this.publish(batch, records, releases, capturedMs);
          // Not kept while the next batch is read and encoded: the log holds what it needs of them.
          records = null;
        }
        inFlight.add(publishing);
        inFlightBytes += bytes;
        publishing.then(
          () => {
            inFlight.delete(publishing);
            inFlightBytes -= bytes;
          },
          (error: unknown) => {
            inFlight.delete(publishing);
            inFlightBytes -= bytes;
            outcome.failure ??= { error };
            for (const reject of waiting) reject(error);
          },
        );
      }
    } finally {
      await Promise.allSettled([...inFlight]);
    }
    if (outcome.failure !== null) throw outcome.failure.error;
  }

  /**
   * Hands the batch to the topic log (in order, under the lock), then acknowledges it to the
   * source once it is durable and the previous batch was acknowledged; rejects without
   * acknowledging when either failed.
   */
  private publish(batch: SourceBatch, encoded: ProducedRecord[], releases: number, capturedMs: number): Promise<void> {
    const previous = this.acknowledged;
    // The batch's events and records are let go of once handed over (what is left of the batch is
    // its summary, checkpoint and ack): this closure lives until the batch is acknowledged, and
    // events held that long were copied by every scavenge meanwhile and promoted.
    const handOver: { batch: SourceBatch | null; records: ProducedRecord[] | null } = { batch, records: encoded };
    const { checkpoint, throughTimeMs } = batch;
    const ack = batch.ack;
    const published = (async () => {
      const issued = await this.exclusive(async () => {
        const records = releases === this.releases && handOver.records !== null ? handOver.records : await this.encodeBatch(handOver.batch!);
        const summary = summarizeBatch(handOver.batch!.events);
        handOver.records = null;
        handOver.batch = null;
        const durable = this.options.log.produce(records, checkpoint);
        durable.catch(() => undefined);
        // Wrapped, so the lock is held only while the batch is handed over, not until it is durable.
        return { durable, records: records.length, work: durableWork(records), largest: largestRecordBytes(records), summary, started: performance.now() };
      });
      await issued.durable;
      // Once per record stored (a metric of dead letters), not per encoding: a batch may be encoded more than once.
      runDurableWork(issued.work);
      releaseLargeValue(issued.largest);
      const durableMs = Date.now();
      const seconds = (performance.now() - issued.started) / 1000;
      await previous;
      await ack();
      this.lastCheckpoint = checkpoint;
      const { summary } = issued;
      this.lastAckedCommitMs = summary.latestCommitMs ?? throughTimeMs ?? Date.now();
      this.options.stats?.onBatch?.(summary, issued.records, seconds, { capturedMs, durableMs });
    })();
    published.catch(() => undefined);
    this.acknowledged = published;
    return published;
  }

  /**
   * A run of small source batches (SourceBatch.more) encoded as they come, as one batch: one
   * encoding section (startBatch once: data checks' unique_in_batch sees the whole run; prepare per
   * slice), each slice's events let go of once encoded, so they die young. Joined only while no
   * table is halted: such slices park nothing, so an operator's release cannot change how they are
   * encoded and they are never encoded again. A slice that halts a table ends the run and keeps its
   * events (the tail), to be encoded again if a release comes before the run is handed over. A read
   * that fails ends the pump (nothing of the run was acknowledged); one ended by `stop` ends the run. The run's
   * checkpoint is its last slice's, carrying the entries of every slice's (Checkpoint.entries).
   */
  private encodeRun(first: SourceBatch, readNext: () => Promise<SourceBatch>, stop: AbortSignal, capturedMs: number): Promise<EncodedRun> {
    return this.encodingAlone(async () => {
      this.options.encoder.startBatch?.();
      const records: ProducedRecord[] = [];
      const summaries: BatchSummary[] = [];
      const acks: (() => Promise<void>)[] = [];
      // The last slice's checkpoint is stored, with every slice's entries: each slice is acknowledged, so each one's entries must be stored.
      let joined: Checkpoint | null = null;
      let bytes = 0;
      let slice: SourceBatch | null = first;
      for (;;) {
        const releases = this.releases;
        await this.options.encoder.prepare?.(slice.events);
        const encoded = await this.encodeEvents(slice);
        summaries.push(summarizeBatch(slice.events));
        acks.push(slice.ack);
        const checkpoint: Checkpoint = joined === null ? slice.checkpoint : joinCheckpoints(joined, slice.checkpoint);
        joined = checkpoint;
        const { throughTimeMs } = slice;
        bytes += recordsBytes(encoded);
        if (this.halted.size > 0) return { records, tail: { batch: slice, records: encoded, releases }, summaries, acks, checkpoint, throughTimeMs, capturedMs, bytes };
        pushAll(records, encoded);
        const more = slice.more === true;
        slice = null;
        if (!more || stop.aborted) return { records, tail: null, summaries, acks, checkpoint, throughTimeMs, capturedMs, bytes };
        try {
          slice = await readNext();
        } catch (error) {
          if (stop.aborted) return { records, tail: null, summaries, acks, checkpoint, throughTimeMs, capturedMs, bytes };
          throw error;
        }
      }
    });
  }

  /**
   * Hands a run to the topic log in one write (under the lock; its tail encoded again when a
   * release came since), then, once durable and the batch before it acknowledged, acknowledges its
   * slices in order; statistics take it as one batch.
   */
  private publishRun(run: EncodedRun): Promise<void> {
    const previous = this.acknowledged;
    const handOver: { run: EncodedRun | null } = { run };
    const { checkpoint, throughTimeMs, acks, capturedMs } = run;
    const summary = mergeSummaries(run.summaries);
    const published = (async () => {
      const issued = await this.exclusive(async () => {
        const { records, tail } = handOver.run!;
        handOver.run = null;
        if (tail !== null) pushAll(records, tail.releases === this.releases ? tail.records : await this.encodeBatch(tail.batch));
        const durable = this.options.log.produce(records, checkpoint);
        durable.catch(() => undefined);
        return { durable, records: records.length, work: durableWork(records), largest: largestRecordBytes(records), started: performance.now() };
      });
      await issued.durable;
      // Once per record stored (a metric of dead letters), not per encoding: a batch may be encoded more than once.
      runDurableWork(issued.work);
      releaseLargeValue(issued.largest);
      const durableMs = Date.now();
      const seconds = (performance.now() - issued.started) / 1000;
      await previous;
      for (let a = 0; a < acks.length; a++) await acks[a]!();
      this.lastCheckpoint = checkpoint;
      this.lastAckedCommitMs = summary.latestCommitMs ?? throughTimeMs ?? Date.now();
      this.options.stats?.onBatch?.(summary, issued.records, seconds, { capturedMs, durableMs });
    })();
    published.catch(() => undefined);
    this.acknowledged = published;
    return published;
  }

  /**
   * One batch at a time: the encoder's per-batch state (startBatch: data checks' unique_in_batch;
   * prepare: personal data's plan) is the batch's until its last change is encoded. A batch encoded
   * again after a release (under the lock) would otherwise interleave, at its awaits (a change that waits for its seal or key), with the
   * next batch the pump encodes meanwhile.
   */
  private encodeBatch(batch: SourceBatch): Promise<ProducedRecord[]> {
    return this.encodingAlone(() => this.encodeBatchAlone(batch));
  }

  /** Runs `work` when no batch is being encoded, and no batch is encoded until it ends (see encodeBatch). */
  private encodingAlone<T>(work: () => Promise<T>): Promise<T> {
    return this.encoding.run(work);
  }

  private async encodeBatchAlone(batch: SourceBatch): Promise<ProducedRecord[]> {
    this.options.encoder.startBatch?.();
    await this.options.encoder.prepare?.(batch.events);
    return this.encodeEvents(batch);
  }

  /** The batch's transaction markers and changes as records, parking those of halted tables (halting a table whose change fails). */
  private async encodeEvents(batch: SourceBatch): Promise<ProducedRecord[]> {
    const records: ProducedRecord[] = this.transactionRecords(batch);
    // Indexed loops, no spread (runtime/arrays.ts says why).
    const { events } = batch;
    await this.prepareParking(events, 0);
    for (let e = 0; e < events.length; e++) {
      const event = events[e]!;
      // No table name (a string) per change while no table is halted.
      if (this.halted.size > 0 && this.halted.has(tableName(event.schema))) {
        pushAll(records, await this.park(event));
        continue;
      }
      try {
        const refused = refusalOf(event);
        if (refused !== null) throw refused;
        const now = this.options.encoder.encodeNow?.(event);
        pushAll(records, now !== undefined ? this.withinLimits(event, now) : await this.encode(event));
      } catch (error) {
        if (!haltsTable(error)) throw error;
        this.halt(tableName(event.schema), error);
        await this.prepareParking(events, e);
        pushAll(records, await this.park(event));
      }
    }
    return records;
  }

  /** The sealer's keys for the changes of halted tables among events[from..], made ready together: one key-topic write for their new subjects, not one each. */
  private async prepareParking(events: readonly ChangeEvent[], from: number): Promise<void> {
    const prepare = this.options.parkedSealer?.prepare;
    if (prepare === undefined || this.halted.size === 0) return;
    const parked: ChangeEvent[] = [];
    for (let e = from; e < events.length; e++) if (this.halted.has(tableName(events[e]!.schema))) parked.push(events[e]!);
    if (parked.length > 0) await prepare.call(this.options.parkedSealer, parked);
  }

  /**
   * Events parked by an earlier run (their table was halted) go back to their topics, in order,
   * before capture resumes -- once their schema is accepted again (e.g. the operator set the
   * subject's compatibility level, or the column change was undone). A table whose parked events
   * still cannot be encoded stays halted, and its new events are parked behind them. Markers in
   * the parking topic record how far each table was re-published, in the same write.
   * With `skip` (an operator's `sluice halted skip --source`), the table's change that halted it
   * and, up to the range's end, each change refused again for the same reason are skipped: a marker
   * naming it (key without personal values, position, op) goes in the same write as the changes
   * re-published around it, so a write that fails (a crash) leaves all of a chunk or none of it.
   */
  private async restoreParked(stop: AbortSignal, only?: string, skip?: SkipPlan): Promise<{ republished: number; skipped: number; listed: ParkedChange[] }> {
    const { log, parkingTopic, parkedSealer } = this.options;
    const through = new Map<string, bigint>();
    // Before the first parked change is opened: a subject forgotten since capture last read the key topic gets null.
    let keysRead = false;
    await this.scanParking(stop, async (record) => {
      if (isMarker(record)) through.set(Buffer.from(record.key!).toString(), BigInt(Buffer.from(record.headers![MARKER_HEADER]!).toString()));
    });
    let pending: ProducedRecord[] = [];
    const republished = new Map<string, bigint>();
    let count = 0;
    let skipped = 0;
    const listed: ParkedChange[] = [];
    const flush = async () => {
      if (pending.length === 0 && republished.size === 0) return;
      const markers: ProducedRecord[] = [...republished].map(([table, offset]) => ({
        topic: parkingTopic,
        key: Buffer.from(table),
        value: null,
        headers: { [MARKER_HEADER]: Buffer.from(offset.toString()) },
        timestamp: Date.now(),
      }));
      const work = durableWork(pending);
      await log.produce([...pending, ...markers]);
      runDurableWork(work);
      pending = [];
      republished.clear();
      // A turn of the event loop between writes: a release of many changes runs without one otherwise (the embedded log
      // stores synchronously), and /healthz, /metrics and the log lines would wait until its end.
      await new Promise((resolve) => setImmediate(resolve));
    };
    // A plain skip after an interrupted release skips the first change refused for the halt's reason: the range ends there.
    let rangeEnd = skip?.through ?? -1n;
    const skipOne = (table: string, offset: bigint, event: ChangeEvent, why: string) => {
      if (skip!.halting === null && skip!.single) rangeEnd = offset;
      const change = this.parkedChange(offset, event);
      pending.push(skipMarker(parkingTopic, table, change, `skipped by an operator (${skip!.by}): ${why}`));
      republished.set(table, offset);
      skipped++;
      if (listed.length < LISTED_CHANGES) listed.push(change);
      this.logger.warn(
        { table, parkingTopic, offset: change.offset, op: change.op, key: change.key, position: change.position, reason: why, by: skip!.by },
        `table ${table}: parked change ${change.op} of key ${change.key} at ${change.position} (${parkingTopic} offset ${change.offset}) skipped by an operator (${skip!.by}); it stays in ${parkingTopic}`,
      );
    };
    await this.scanParking(stop, async (record) => {
      if (isMarker(record) || record.value === null) return;
      const table = Buffer.from(record.key!).toString();
      if ((only !== undefined && table !== only) || this.halted.has(table) || record.offset <= (through.get(table) ?? -1n)) return;
      const parked = deserializeEventBytes(record.value);
      const inRange = skip !== undefined && table === skip.table && record.offset <= rangeEnd;
      // The change that halted the table is encoded like the others, not skipped unseen: what capture accepts is published.
      const halting = inRange && record.offset === skip.halting;
      try {
        const sealed = record.headers?.[SEALED_PERSONAL_HEADER] !== undefined;
        if (sealed && !parkedSealer) throw sealedWithoutKeys(table, parkingTopic, record.offset);
        // A key that cannot be unwrapped (GOVERNANCE_KEY_INVALID) halts the table again, as at capture.
        if (parkedSealer && !keysRead) {
          await parkedSealer.refresh();
          keysRead = true;
        }
        const event = parkedSealer ? await parkedSealer.open(parked, record.headers) : parked;
        pending.push(...(await this.encode(event)));
        count++;
      } catch (error) {
        if (!haltsTable(error)) throw error;
        if (!halting && (!inRange || refusalReason(error) !== skip.reason)) {
          this.halt(table, error);
          return;
        }
        skipOne(table, record.offset, parked, halting ? `the change that halted the table (${refusalReason(error)})` : `refused again for the same reason (${skip!.reason})`);
      }
      republished.set(table, record.offset);
      if (pending.length >= REPUBLISH_CHUNK) await flush();
    });
    await flush();
    if (count > 0) this.logger.info({ events: count, parkingTopic, ...(only === undefined ? {} : { table: only }) }, "re-published parked events to their topics");
    return { republished: count, skipped, listed };
  }

  /** A parked change as a skip names it: parking offset, op, key (personal columns' values left out) and source position. */
  private parkedChange(offset: bigint, event: ChangeEvent): ParkedChange {
    const personal = this.options.personalColumns?.get(tableName(event.schema)) ?? [];
    return { offset: offset.toString(), op: event.op, key: showKey(event, personal), position: formatPosition(event.source.connector, event.source.position) };
  }

  /**
   * Releases a table halted at capture, on the running pipeline (`sluice halted retry|skip
   * --source`): `retry` re-publishes its parked changes in order and resumes the table; `skip`
   * marks the change that halted it (the first one parked) as skipped -- it stays in the parking
   * topic, with its reason, as the dead letter -- and re-publishes the rest. With `through` (`skip
   * --through OFFSET | --all-pending`) it also skips, up to that parking offset (or the table's last
   * parked change now), each parked change of the table refused again for the reason the halting
   * one was (same code, column and check); a change refused for another reason, or past the range,
   * halts the table again, with the rest parked behind it. Runs between two source batches, so the
   * table's parked changes go out before any newer one. Without `execute` it only says what it
   * would do: the range, how many parked changes it holds and the first of them.
   */
  async release(table: string, action: HaltAction, execute: boolean, stop: AbortSignal, through: CaptureSkipThrough | null = null): Promise<CaptureReleaseReport> {
    if (through !== null && action !== "skip") throw new SluiceError("a range (through) goes with skip only", { code: "HALT_SKIP_THROUGH_INVALID", context: { component: "capture", table } });
    if (!execute) return this.plan(table, action, through, stop);
    // Batches handed to the log before this release are durable and acknowledged before it starts (their parked changes included).
    const handedOver = this.acknowledged;
    return this.exclusive(async () => {
      await handedOver.catch(() => undefined);
      // Planned under the lock: what is skipped is what the plan says, even with a release or a batch just before.
      const planned = await this.plan(table, action, through, stop);
      this.releases++;
      try {
        return await this.releaseNow(table, action, stop, planned);
      } finally {
        this.releases++;
      }
    });
  }

  /** What a release would do now (CaptureReleaseReport, not executed), with its skip plan. */
  private async plan(table: string, action: HaltAction, through: CaptureSkipThrough | null, stop: AbortSignal): Promise<CaptureReleaseReport & { skipPlan: SkipPlan | null }> {
    const halted = this.halted.get(table);
    if (!halted) {
      throw new SluiceError(`table ${table} is not halted at capture of source ${this.options.source.name}; halted: ${[...this.halted.keys()].join(", ") || "(none)"}`, {
        code: NOT_HALTED,
        context: { component: "capture", source: this.options.source.name, table },
      });
    }
    const { parkingTopic } = this.options;
    const reason = this.haltReasons.get(table) ?? halted.code;
    // After a release that failed part-way, the first parked change may be one capture accepts: the refused one is found again by encoding.
    const interrupted = this.interrupted.has(table);
    const parked = await this.parkedOf(table, stop, action === "skip" ? (through ?? (interrupted ? "pending" : "halting")) : null);
    const { first, range } = parked;
    const base = { source: this.options.source.name, table, action, error: halted.error, code: halted.code, parkingTopic, parked: parked.count, executed: false };
    if (action === "retry") {
      return { ...base, skipPlan: null, description: `re-publish the ${parked.count} parked change(s) of ${table} to its topic, in order, and capture the table again; a change that still fails halts it again` };
    }
    if (first === null || range === null) return { ...base, skipPlan: null, description: `skip nothing (no parked change is left) and capture the table again` };
    if (through !== null && through !== "pending" && through < first.offset) {
      throw new SluiceError(`--through ${through} is before the change that halted the table (${parkingTopic} offset ${first.offset})`, {
        code: "HALT_SKIP_THROUGH_INVALID",
        context: { component: "capture", source: this.options.source.name, table, parkingTopic },
      });
    }
    const by = through === null ? "sluice halted skip" : `sluice halted skip --through ${range.through}`;
    const skipPlan: SkipPlan = { table, halting: interrupted ? null : first.offset, single: through === null, through: range.through, reason, by };
    const rest = parked.count - range.changes;
    const others = `; those it accepts are re-published, one refused for another reason halts the table again there`;
    const after = `${rest > 0 ? `; the ${rest} parked after offset ${range.through} are re-published, and the first refused halts the table again` : ""}`;
    const named = `Each skipped change stays in ${parkingTopic}, named (table, key, position) by a marker and a log line; changes of other tables are not touched`;
    let description: string;
    if (interrupted) {
      const lead =
        `find the change that halts ${table} again (its last release failed part-way, so the first of its parked changes, ${parkingTopic} offset ${first.offset}, may be one capture accepts): ` +
        `re-publish its parked changes in order from there`;
      description =
        through === null
          ? `${lead} and mark the first that capture refuses for the halt's reason (${reason}) as skipped${others}; after it, the first refused halts the table again. ${named}`
          : `${lead}, skipping each of the ${range.changes} parked change(s) of ${table} through ${parkingTopic} offset ${range.through} that capture refuses for the halt's reason (${reason})${others}${after}. ${named}`;
    } else {
      const firstText = `the change that halted it (${first.op} at ${parkingTopic} offset ${first.offset}) as skipped if capture still refuses it (if it accepts it now, it is re-published)`;
      description =
        through === null
          ? `mark ${firstText}, and re-publish the other ${parked.count - 1} parked change(s) of ${table} to its topic, in order (it stays in ${parkingTopic} with its reason); then capture the table again`
          : `mark ${firstText}, then re-publish the table's parked changes in order, skipping each of the other ${range.changes - 1} parked change(s) of ${table} through ${parkingTopic} offset ${range.through} ` +
            `that capture refuses again for the same reason (${reason})${others}${after}. ${named}`;
    }
    return {
      ...base,
      skipPlan,
      skipRange: { from: first.offset.toString(), through: range.through.toString(), changes: range.changes, reason, listed: range.listed },
      description,
    };
  }

  private async releaseNow(table: string, action: HaltAction, stop: AbortSignal, planned: CaptureReleaseReport & { skipPlan: SkipPlan | null }): Promise<CaptureReleaseReport> {
    const { skipPlan, ...report } = planned;
    // The parked changes are encoded while no batch is (the pump encodes on during a release): they would share its per-batch state.
    const halted = this.halted.get(table)!;
    const reason = this.haltReasons.get(table);
    // A table halted over a topic's limit: the limit read again, it may have been raised since (else it halts again).
    const overLimitTopic = this.overLimitTopics.get(table);
    if (halted.code === RECORD_TOO_LARGE && overLimitTopic !== undefined && this.options.log.readRecordLimitsAgain) {
      await this.options.log.readRecordLimitsAgain([overLimitTopic]).catch((error: unknown) => this.logger.warn({ table, topic: overLimitTopic, err: error }, "could not read the topic's limit again before the release; the one known is kept"));
    }
    const outcome = await this.encodingAlone(async () => {
      this.halted.delete(table);
      this.haltReasons.delete(table);
      this.options.stats?.onRelease?.(table);
      try {
        const done = await this.restoreParked(stop, table, skipPlan ?? undefined).catch(async (error: unknown) => {
          // A topic's limit (the table's, the parking topic's, the brokers' request limit) lower than known: the log reads
          // it at that refusal, and re-publishing again halts the table of a change over it (RECORD_TOO_LARGE), as capture
          // does, instead of failing the operator's release once. With transactions nothing of the failed write is stored;
          // with transactions: false its requests acknowledged before the refusal are, and are written again (duplicates,
          // at-least-once as any retried write there).
          if (!(error instanceof SluiceError) || !LIMIT_LOWERED_CODES.has(error.code) || stop.aborted) throw error;
          this.logger.warn({ table, err: error.toLog() }, `table ${table}: a Kafka record limit was lower than known while its parked changes were re-published; re-publishing them again within it`);
          this.halted.delete(table);
          this.haltReasons.delete(table);
          return this.restoreParked(stop, table, skipPlan ?? undefined);
        });
        this.interrupted.delete(table);
        return done;
      } catch (error) {
        // A write that failed (the log unavailable) leaves changes parked: the table stays halted, so its new ones are parked behind them.
        // What it wrote is durable, what it did not is not (a halt found after the failed write included): the halt is the one released,
        // and which parked change halts it is found again by the next release.
        const again = !this.halted.has(table);
        this.halted.set(table, { ...halted, error: `${halted.error.replace(RELEASE_FAILED_NOTE, "")}; releasing it failed, run the release again: ${messageOf(error)}` });
        if (reason === undefined) this.haltReasons.delete(table);
        else this.haltReasons.set(table, reason);
        this.interrupted.add(table);
        if (again) this.options.stats?.onHalt?.(table, new SluiceError(messageOf(error), { code: halted.code }));
        throw error;
      }
    });
    const again = this.halted.get(table);
    const end = again ? `; it halted again: ${again.error}` : "; the table is captured again";
    this.logger.info({ table, action, republished: outcome.republished, skipped: outcome.skipped, haltedAgain: again?.error ?? null }, `table ${table} released at capture (${action})`);
    const skippedText = action === "skip" ? `skipped ${outcome.skipped} parked change(s) (each named in the log and by a marker in ${this.options.parkingTopic}), ` : "";
    return {
      ...report,
      executed: true,
      republished: outcome.republished,
      ...(action === "skip" ? { skipped: outcome.skipped, skippedChanges: outcome.listed } : {}),
      ...(again ? { haltedAgain: again.error } : {}),
      description: `${skippedText}re-published ${outcome.republished} parked change(s)${end}`,
    };
  }

  /**
   * How many changes of the table wait in the parking topic and the first of them and, for a skip,
   * its range: `"halting"` the first change alone, `"pending"` through the table's last parked
   * change now, an offset through it (none past the last); how many parked changes of the table the
   * range holds and the first LISTED_CHANGES of them. Two reads of the topic, constant memory.
   */
  private async parkedOf(
    table: string,
    stop: AbortSignal,
    through: CaptureSkipThrough | "halting" | null,
  ): Promise<{ count: number; first: { offset: bigint; op: string } | null; range: { through: bigint; changes: number; listed: ParkedChange[] } | null }> {
    const ofTable = (record: StoredRecord) => Buffer.from(record.key ?? []).toString() === table;
    let done = -1n;
    await this.scanParking(stop, async (record) => {
      if (ofTable(record) && isMarker(record)) done = BigInt(Buffer.from(record.headers![MARKER_HEADER]!).toString());
    });
    let count = 0;
    let first: { offset: bigint; op: string } | null = null;
    let changes = 0;
    let last = -1n;
    const listed: ParkedChange[] = [];
    const within = (offset: bigint) => through !== null && (through === "pending" || (through === "halting" ? offset === first?.offset : offset <= through));
    await this.scanParking(stop, async (record) => {
      if (!ofTable(record) || isMarker(record) || record.value === null || record.offset <= done) return;
      count++;
      // Only the op is read here; the event is decoded when it is re-published (or listed).
      first ??= { offset: record.offset, op: /"op":"(\w)"/.exec(Buffer.from(record.value.subarray(0, 4096)).toString())?.[1] ?? "?" };
      if (!within(record.offset)) return;
      changes++;
      last = record.offset;
      if (listed.length < LISTED_CHANGES) listed.push(this.parkedChange(record.offset, deserializeEventBytes(record.value)));
    });
    return { count, first, range: through === null || first === null ? null : { through: last, changes, listed } };
  }

  /** Runs `work` alone: a source batch and an operator's release never interleave. */
  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    return this.lock.run(work);
  }

  /** Reads the whole parking topic once, in order; an event split into parts is visited once, whole, at its last part's offset. */
  private async scanParking(stop: AbortSignal, visitWhole: (record: StoredRecord) => Promise<void>): Promise<void> {
    const { log, parkingTopic } = this.options;
    let parts: Uint8Array[] = [];
    const visit = async (record: StoredRecord) => {
      const part = record.headers?.[PART_HEADER];
      if (part === undefined || record.value === null) return visitWhole(record);
      const [index, count] = Buffer.from(part).toString().split("/").map(Number);
      if (index === 1) parts = [];
      parts.push(record.value);
      if (index !== count) return;
      const value = Buffer.concat(parts);
      parts = [];
      await visitWhole({ ...record, value });
    };
    // Kafka: read by offsets, without a throwaway consumer group (a new group waits the broker's initial rebalance delay, 3 s by default).
    if (log.scanTopic) return log.scanTopic(parkingTopic, REPUBLISH_CHUNK, visit, stop);
    const ends = await log.endOffsets(parkingTopic);
    if (ends.every((end) => end.offset === 0n)) return;
    const consumer = await log.consumer(`${parkingTopic}.scan.${process.pid}.${Date.now()}`, [parkingTopic]);
    try {
      for (const end of ends) await consumer.seek(parkingTopic, end.partition, { kind: "earliest" });
      const finished = () => ends.every((end) => (consumer.position(parkingTopic, end.partition) ?? 0n) >= end.offset);
      while (!finished() && !stop.aborted) {
        const records = await consumer.poll({ maxRecords: REPUBLISH_CHUNK, maxBytes: 16 << 20, maxWaitMs: 200, signal: stop });
        for (const record of records) if (record.offset < ends.find((e) => e.partition === record.partition)!.offset) await visit(record);
      }
    } finally {
      await consumer.close();
    }
  }

  /** The event's records; one over the size limit is refused with RECORD_TOO_LARGE (the caller halts its table). */
  private async encode(event: ChangeEvent): Promise<ProducedRecord[]> {
    const refused = refusalOf(event);
    if (refused !== null) throw refused;
    return this.withinLimits(event, await this.options.encoder.encode(event));
  }

  private withinLimits(event: ChangeEvent, records: ProducedRecord[]): ProducedRecord[] {
    for (let r = 0; r < records.length; r++) {
      const record = records[r]!;
      const bytes = recordBytes(record);
      const configured = this.options.maxRecordBytes ?? Number.POSITIVE_INFINITY;
      // An existing Kafka topic may take less than the config says (its max.message.bytes was never raised, or lowered
      // since, its segment.bytes, the brokers' message.max.bytes or socket.request.max.bytes).
      const topicLimit = this.options.log.maxRecordBytes?.(record.topic) ?? Number.POSITIVE_INFINITY;
      if (bytes > Math.min(configured, topicLimit)) {
        throw recordTooLarge(event, record.topic, bytes, Math.min(configured, topicLimit), this.limitText(record.topic, topicLimit, configured), this.options.parkingTopic);
      }
    }
    return records;
  }

  /** What limits a record to `topic`, as the halt's error says it: the log's limit when tighter than the config's, and how to raise it. */
  private limitText(topic: string, topicLimit: number, configured: number): string {
    if (topicLimit >= configured) return `topics.max_record_bytes (${configured})`;
    const limit = this.options.log.recordLimitOf?.(topic);
    return limit ? `${limit.setting} (${limit.bytes}; ${limit.raise})` : `max.message.bytes of topic ${topic} (${topicLimit}; raise it to topics.max_record_bytes)`;
  }

  /** BEGIN/END markers with event counts, keyed by transaction id, stored with the batch. */
  private transactionRecords(batch: SourceBatch): ProducedRecord[] {
    const topic = this.options.transactionTopic;
    const markers = batch.transactions;
    if (!topic || !markers || markers.length === 0) return [];
    const encoder = this.options.transactionEncoder;
    if (encoder) return markers.map((marker) => encoder.encode(marker));
    return markers.map((marker) => ({
      topic,
      key: Buffer.from(marker.txId),
      value: Buffer.from(
        JSON.stringify({
          status: marker.status,
          id: marker.txId,
          event_count: marker.eventCount ?? null,
          data_collections: marker.tableEventCounts ? Object.entries(marker.tableEventCounts).map(([data_collection, event_count]) => ({ data_collection, event_count })) : null,
          ts_ms: marker.commitTimeMs,
          position: { commit: marker.position.commit.toString(), change: marker.position.change.toString() },
        }),
      ),
      timestamp: marker.commitTimeMs,
    }));
  }

  private halt(table: string, error: SluiceError): void {
    const { column, value, key, bytes, topic } = error.context;
    if (error.code === RECORD_TOO_LARGE && typeof topic === "string") this.overLimitTopics.set(table, topic);
    this.haltReasons.set(table, refusalReason(error));
    this.halted.set(table, {
      table,
      error: error.message,
      code: error.code,
      since: new Date().toISOString(),
      ...(typeof column === "string" ? { column } : {}),
      ...(typeof value === "string" ? { value } : {}),
      ...(typeof key === "string" ? { key } : {}),
      ...(typeof bytes === "number" ? { bytes } : {}),
    });
    const release = `sluice halted retry|skip --source ${this.options.source.name} --table ${table}`;
    this.logger.error(
      { table, err: error.toLog(), parkingTopic: this.options.parkingTopic, release },
      `table ${table} halted: ${error.message} (its changes are parked in ${this.options.parkingTopic}, nothing is lost; fix the cause and release it with "${release}", a dry run without --execute)`,
    );
    this.options.stats?.onHalt?.(table, error);
  }

  /**
   * The parking records of an event: its JSON form, keyed by table, with the halt's reason. An
   * event larger than one record may be (a row over topics.max_record_bytes) is split into parts
   * of at most that size, in consecutive records with header `sluice.part` = "<i>/<n>", so any row
   * can be parked; scanParking puts them together again.
   */
  private async park(captured: ChangeEvent): Promise<ProducedRecord[]> {
    const table = tableName(captured.schema);
    const key = Buffer.from(table);
    // Personal values sealed with their subject's key (or left out): never in clear in the parking topic.
    const { event, headers: sealing } = this.options.parkedSealer ? await this.options.parkedSealer.seal(captured) : { event: captured, headers: {} };
    const value = serializeEventBytes(event);
    const reason = Buffer.from((this.halted.get(table)?.error ?? "").slice(0, 400));
    const record = (part: Buffer, headers: Record<string, Uint8Array>): ProducedRecord => ({
      topic: this.options.parkingTopic,
      key,
      value: part,
      headers: { "sluice.reason": reason, ...sealing, ...headers },
      timestamp: event.source.commitTimeMs,
    });
    const limit = Math.min(this.options.maxRecordBytes ?? Number.POSITIVE_INFINITY, this.options.log.maxRecordBytes?.(this.options.parkingTopic) ?? Number.POSITIVE_INFINITY);
    const whole = record(value, {});
    if (recordBytes(whole) <= limit) return [whole];
    const room = limit - recordBytes(record(Buffer.alloc(0), { [PART_HEADER]: Buffer.from("999999/999999") }));
    const size = Math.max(256, room);
    const count = Math.ceil(value.length / size);
    return Array.from({ length: count }, (_, i) => record(value.subarray(i * size, (i + 1) * size), { [PART_HEADER]: Buffer.from(`${i + 1}/${count}`) }));
  }
}

const MARKER_HEADER = "sluice.unparked-through";
/** On the parts of a parked event split over several records: "<i>/<n>", 1-based. */
const PART_HEADER = "sluice.part";
/**
 * On a marker written by `sluice halted skip --source`: the change at the marker's offset was skipped, not re-published
 * (the header holds why and by which command; sluice.skipped.* name the change: op, key without personal values, source position).
 */
const SKIPPED_HEADER = "sluice.skipped";
/** Skipped changes listed in a skip's report (all are in the log and the parking topic's markers). */
const LISTED_CHANGES = 20;
/** The note a failed release adds to the halt's error (replaced, not repeated, when the next one fails too). */
const RELEASE_FAILED_NOTE = /; releasing it failed, run the release again: .*$/s;

/**
 * The header of a parked record whose personal values are sealed with their subject's key: defined
 * here, as capture loads no governance code; daemon/governance/parked-personal.ts writes it (SEALED_HEADER).
 */
export const SEALED_PERSONAL_HEADER = "sluice.personal.sealed";

/** A parked change with sealed personal values, and no personal_data to open them: released, it would publish the ciphertext as values. */
function sealedWithoutKeys(table: string, parkingTopic: string, offset: bigint): SluiceError {
  return new SluiceError(
    `table ${table}: its parked change at ${parkingTopic} offset ${offset} holds personal values sealed with their subject's key, and personal_data is not configured to open them; ` +
      `set personal_data.master_key_file (the master key they were sealed under) and release the table again (values are never published sealed)`,
    { code: "GOVERNANCE_KEY_INVALID", context: { component: "capture", table, parkingTopic, offset: offset.toString() } },
  );
}
const REPUBLISH_CHUNK = 1_000;
/**
 * Encoded batches handed to the topic log and not yet acknowledged: one being stored and one waiting keep the log
 * busy while the next is read and encoded, always (TWO_IN_FLIGHT). A third joins them only while the three hold at most
 * options.inFlightBytes (the memory plan's two batches): batches of narrow rows behind a backlog, where a run ends at
 * 4,096 changes well below its bytes, so a Kafka transaction (a fixed chain of round trips) carries more of them.
 * Each holds its records until acknowledged; a fourth is not taken (a capture-only daemon at four batches of any size
 * ran out of its ~120 MiB main-thread heap under the 256 MB default budget). With Kafka, `max_in_flight` bounds them further.
 */
const TWO_IN_FLIGHT = 2;
const MAX_BATCHES_IN_FLIGHT = 3;
/**
 * Longest the pump runs without letting the event loop turn (between batches; a run of 4,096 changes is encoded without
 * one: turns inside runs, every 4-100 ms, cost CPU per change or the drain's rate on a loaded machine, docs/benchmarks.md,
 * the seventeenth session).
 */
const EVENT_LOOP_TURN_MS = 20;

/** A run of source batches encoded (encodeRun): what is left of them until acknowledged. */
interface EncodedRun {
  /** The records of the slices encoded while no table was halted. */
  readonly records: ProducedRecord[];
  /** The slice that halted a table, with its events: encoded again if a release comes before hand-over. */
  readonly tail: { readonly batch: SourceBatch; readonly records: ProducedRecord[]; readonly releases: number } | null;
  readonly summaries: BatchSummary[];
  readonly acks: (() => Promise<void>)[];
  readonly checkpoint: Checkpoint;
  readonly throughTimeMs: number | undefined;
  readonly capturedMs: number;
  /** What its records cost against the bytes in flight (recordBytes of each). */
  readonly bytes: number;
}

/** The largest value among `records`, in bytes. */
function largestRecordBytes(records: readonly ProducedRecord[]): number {
  let largest = 0;
  for (let i = 0; i < records.length; i++) largest = Math.max(largest, records[i]!.value?.length ?? 0);
  return largest;
}

function recordsBytes(records: readonly ProducedRecord[]): number {
  let bytes = 0;
  for (let r = 0; r < records.length; r++) bytes += recordBytes(records[r]!);
  return bytes;
}

function recordTooLarge(event: ChangeEvent, topic: string, bytes: number, limit: number, limitText: string, parkingTopic: string): SluiceError {
  const table = tableName(event.schema);
  const key = showKey(event);
  const position = formatPosition(event.source.connector, event.source.position);
  return new SluiceError(
    `table ${table}: the change of the row with key ${key} is a ${bytes}-byte topic record, over ${limitText} (topic ${topic}, source position ${position}); ` +
      `the table is halted and its changes are parked in ${parkingTopic}. Raise topics.max_record_bytes (and, with Kafka, max.message.bytes of existing topics) and restart to re-publish them`,
    { code: RECORD_TOO_LARGE, context: { component: "capture", source: event.source.name, table, topic, position, key, bytes, limit } },
  );
}

/** A `skip --source` release: the table, the change that halted it, the range's last parking offset and the refusal it skips. */
interface SkipPlan {
  readonly table: string;
  /** The parking offset of the change that halted the table; null when not known (the last release failed part-way). */
  readonly halting: bigint | null;
  /** A plain skip (no --through): one change. */
  readonly single: boolean;
  readonly through: bigint;
  /** refusalReason of the halt. */
  readonly reason: string;
  /** The command, for the markers and log lines. */
  readonly by: string;
}

/**
 * What a change was refused for, as a skip range compares refusals: the code, and the column and
 * data check it names (a value of another column, or another check, is another reason).
 */
export function refusalReason(error: SluiceError): string {
  const { column, check } = error.context;
  return [error.code, ...(typeof column === "string" ? [`column ${column}`] : []), ...(typeof check === "string" ? [`check ${check}`] : [])].join(", ");
}

/** The parking marker of a skipped change: through its offset, why, and which change (no value but the key's non-personal columns). */
function skipMarker(parkingTopic: string, table: string, change: ParkedChange, why: string): ProducedRecord {
  return {
    topic: parkingTopic,
    key: Buffer.from(table),
    value: null,
    headers: {
      [MARKER_HEADER]: Buffer.from(change.offset),
      [SKIPPED_HEADER]: Buffer.from(why.slice(0, 400)),
      "sluice.skipped.op": Buffer.from(change.op),
      "sluice.skipped.key": Buffer.from(change.key),
      "sluice.skipped.position": Buffer.from(change.position),
    },
    timestamp: Date.now(),
  };
}

function showKey(event: ChangeEvent, personal: readonly string[] = []): string {
  const key = personal.length === 0 ? (event.key ?? {}) : Object.fromEntries(Object.entries(event.key ?? {}).map(([column, value]) => [column, personal.includes(column) ? "(personal)" : value]));
  const text = JSON.stringify(key, (_name, value: unknown) => (typeof value === "bigint" ? value.toString() : value instanceof Uint8Array ? Buffer.from(value).toString("hex") : value)) ?? "{}";
  return text.length > 200 ? `${text.slice(0, 200)}...` : text;
}

function isMarker(record: StoredRecord): boolean {
  return record.headers?.[MARKER_HEADER] !== undefined;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function describe(error: unknown): unknown {
  return error instanceof SluiceError ? { message: error.message, ...error.toLog() } : error;
}
