/**
 * Produce path to Kafka: collects produce calls for `linger` or up to `batch_bytes` into one unit,
 * and sends units one at a time, in order, each as one Kafka transaction (records + checkpoints,
 * exactly-once) or, without transactions, records first and checkpoints after (at-least-once).
 * A call resolves once its unit is durable, in call order: every request acknowledged with
 * acks=all, or with transactions, the transaction committed and its records visible to
 * read_committed readers (untilVisible), which is what a restart reads its checkpoint with.
 *
 * Units go out strictly one after another because kafkajs's idempotent producer cannot keep
 * per-partition order across concurrent requests when one of them is retried (it hands the failed
 * request's sequence numbers to the next one). `max_in_flight` therefore bounds how many flushed
 * units may be queued or in delivery (memory and backpressure: further calls wait for room), and
 * kafkajs's requests per connection. Units that queue up during a delivery go out together, as
 * one transaction: the more calls overlap, the fewer round trips per record.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { CompressionTypes, Kafka, Message, Producer } from "kafkajs";
import { Partitioners } from "kafkajs";
import type { Logger } from "../../runtime/logger.ts";
import { backoffDelay } from "../../runtime/backoff.ts";
import type { BackoffPolicy } from "../../runtime/backoff.ts";
import { SluiceError } from "../errors.ts";
import { isConnectionClosed, isUnknownTopicOrPartition, kafkaError } from "./kafka-errors.ts";
import { withLinearPartitionGrouping } from "./partition-grouping.ts";
import { pushAll } from "../../runtime/arrays.ts";
// kafkajs's produce requests are encoded in one pass from here on (before any producer sends).
import "./produce-encoding.ts";
// AddPartitionsToTxn refused with CONCURRENT_TRANSACTIONS is asked again after short waits, not after kafkajs's metadata refresh and backoff.
import "./transaction-retry.ts";
// A produce request a broker drops is told to the producer at once, not after kafkajs's own retries (~30 s).
import { watchDrops } from "./dropped-requests.ts";

/**
 * A record on its way to Kafka: kafkajs's message with its topic and size beside it, one object
 * (kafkajs takes it as it is; the produce encoder reads only a message's own fields).
 */
export interface OutgoingMessage extends Message {
  readonly topic: string;
  readonly partition: number;
  /** Estimated encoded size, for the batch_bytes bound. */
  readonly size: number;
}

export interface BatchingProducerOptions {
  readonly kafka: Kafka;
  readonly brokers: readonly string[];
  readonly lingerMs: number;
  readonly batchBytes: number;
  readonly maxInFlight: number;
  readonly compression: CompressionTypes;
  /** Null: no transactions (at-least-once). */
  readonly transactionalId: string | null;
  readonly retry: BackoffPolicy & { readonly maxAttempts?: number };
  readonly logger: Logger;
  /** Ready again after a delivery, or not ready with the failure being retried. */
  readonly onReadyChange: (ready: boolean, problem?: string) => void;
  /**
   * Transactions only: the last offset written per partition by a unit just committed. Kafka
   * acknowledges a commit before it wrote the commit markers, so read_committed readers may not
   * see these offsets yet; kafka-log.ts makes its own reads wait until they do.
   */
  readonly onCommitted?: (lastOffsets: readonly WrittenOffset[]) => void;
  /**
   * Transactions only: resolves once read_committed readers see the offsets a unit just committed
   * (its commit markers are written); rejects when they do not within its time. A commit Kafka
   * acknowledged is not yet what a reader sees: the coordinator writes the markers after it answers,
   * and it may skip them, completing the transaction in its own log while the partitions keep it
   * open (a hanging transaction, invisible to read_committed readers). Kafka 4.3's single broker did
   * that to a commit it answered during its controlled shutdown, once the partitions had no leader:
   * capture acknowledged the source up to a checkpoint its restart did not read. So a unit's
   * callers are told it is durable only once this resolves, and fail as a failed write when it
   * rejects. The next transaction starts after it either way: the broker refuses one while it still
   * writes the previous one's markers (CONCURRENT_TRANSACTIONS), and the calls that queue up
   * meanwhile go out together in the next.
   * (Starting the next one at once instead, with transaction-retry.ts taking the refusals, was
   * tried: docs/benchmarks.md, "Where capture waits".)
   */
  readonly untilVisible?: (lastOffsets: readonly WrittenOffset[]) => Promise<void>;
  /**
   * The topic's max.message.bytes when known: Kafka refuses a partition's record batch above it
   * whole (MESSAGE_TOO_LARGE, for good), so a batch to that topic stays within it when it is below `batchBytes`.
   */
  readonly batchLimitOf?: (topic: string) => number | undefined;
  /**
   * A delivery failed with UNKNOWN_TOPIC_OR_PARTITION: called with the unit's topics before it is retried, so that one
   * deleted meanwhile (by an operator) is created again; otherwise the retries would go on for as long as the process runs.
   */
  readonly onUnknownTopic?: (topics: readonly string[]) => Promise<void>;
  /**
   * A delivery failed with MESSAGE_TOO_LARGE: called with the unit's topics to read their max.message.bytes again; tells
   * limitLowered those whose limit is now below the one known (an operator lowered it while Sluice ran), the one place a
   * lowered limit is recorded, whichever read found it. The unit then fails as
   * retriable, so that its writer sends its records again within the new limits (capture halts the table of a change
   * over one) instead of stopping for good.
   */
  readonly onMessageTooLarge?: (topics: readonly string[]) => Promise<void>;
  /**
   * The largest record a produce request carries alone (the brokers' socket.request.max.bytes less its framing), when
   * known: requests are cut within it. A broker closes the connection of a larger one, which kafkajs retries for ever.
   */
  readonly requestLimit?: () => number | undefined;
  /**
   * A broker closed a delivery's connection: reads the brokers' socket.request.max.bytes again (a broker restarted with a
   * lower one); tells limitLowered when it is now lower than known, and the delivery is then written again as after
   * onMessageTooLarge.
   */
  readonly onConnectionClosed?: () => Promise<void>;
  /** Milliseconds of a monotonic clock (performance.now by default), for how often onConnectionClosed is called. */
  readonly clock?: () => number;
  /**
   * A delivery failed with INVALID_TIMESTAMP: called with the unit's topics, answers how old a record each of them takes
   * (message.timestamp.before.max.ms, where it is set). The unit's records older than that are given the time of now and
   * the unit is written again: a capture catching up after a stop longer than that window was refused for good.
   */
  readonly onInvalidTimestamp?: (topics: readonly string[]) => Promise<ReadonlyMap<string, number>>;
}

export interface LoweredLimit {
  readonly topic: string;
  /** The limit batches were kept within (null: none known). */
  readonly was: number | null;
  readonly now: number;
  /** What sets it now (RecordLimit.setting): "max.message.bytes of topic T", "segment.bytes of topic T", ... */
  readonly setting?: string;
}

export interface WrittenOffset {
  readonly topic: string;
  readonly partition: number;
  readonly offset: bigint;
}

interface Waiter {
  resolve(): void;
  reject(error: Error): void;
}

interface Unit {
  readonly messages: OutgoingMessage[];
  /** Latest checkpoint record per source: a later checkpoint of the same source replaces an earlier one. */
  readonly checkpoints: Map<string, OutgoingMessage>;
  bytes: number;
  readonly waiters: Waiter[];
  /** The count of limits found lower (BatchingProducer.limitLowered) its failures have taken account of: those since it was queued or last failed. */
  lowerings: number;
}

/** Per-record overhead of Kafka's record format beyond key, value and headers (varints, attributes, deltas), rounded up. */
export const RECORD_OVERHEAD_BYTES = 64;

export class BatchingProducer {
  private readonly options: BatchingProducerOptions;
  private readonly logger: Logger;
  private producer: Producer | undefined;
  private pending: Unit | undefined;
  private lingerTimer: NodeJS.Timeout | undefined;
  private readonly queue: Unit[] = [];
  private readonly spaceWaiters: (() => void)[] = [];
  private sending: Promise<void> | undefined;
  private connecting: Promise<void> | undefined;
  /**
   * Sources whose checkpoint went with a write that failed for good: a later checkpoint of theirs
   * would skip the lost records, so it is refused until the caller read the checkpoint again
   * (`forgetFailure`). This covers calls made before the caller learnt of the failure.
   */
  private readonly failedSources = new Map<string, Error>();
  /**
   * Transactions only, once a term of this process's own claimed the id (reregister): another process
   * registered the transactional id since (a new capture term elsewhere). Connecting again would
   * register it anew and fence that process, so every later use is refused with this error until
   * reregister() (a term of this process's own).
   */
  private fenced: SluiceError | undefined;
  /** When onConnectionClosed was last called (clock), for REQUEST_LIMIT_READ_EVERY_MS. */
  private requestLimitReadAt: number | undefined;
  /** The read of onConnectionClosed under way: a drop meanwhile (another leader's request of the same send) waits for it. */
  private requestLimitRead: Promise<void> | undefined;
  /** Limits found lower (limitLowered), the latest LOWERINGS_KEPT, each with its count: a unit's failure takes those since its `lowerings`. */
  private readonly lowerings: { readonly count: number; readonly limit: LoweredLimit | RequestLimitLowered }[] = [];
  private loweringCount = 0;
  /**
   * Whether a term claimed the id (reregister). An id no term claims is this process's own (a sink
   * process's instance id): a fence there is its own transaction aborted by the broker's timeout (a
   * broker down for a minute mid-transaction), and connecting again is how that outage is waited out.
   */
  private claimed = false;
  private closing = false;

  constructor(options: BatchingProducerOptions) {
    this.options = options;
    this.logger = options.logger;
  }

  /** Connects the kafkajs producer (with transactions: registers the transactional id, fencing and aborting a previous holder's open transaction). */
  async connect(): Promise<void> {
    this.connecting ??= this.open().finally(() => (this.connecting = undefined));
    await this.connecting;
  }

  /** Connects unless connected; used before reading what an earlier holder of the transactional id wrote, and before each delivery. */
  async ensureConnected(): Promise<void> {
    if (this.fenced) throw this.fenced;
    if (this.producer && !this.connecting) return;
    await this.connect();
  }

  /**
   * Registers the transactional id anew (a new producer epoch) even when connected: a new capture
   * term fences whoever wrote under the id since this producer registered it (a leader in between,
   * frozen or cut off, that has not learnt it lost the lease), before anything is read or written.
   */
  async reregister(): Promise<void> {
    await this.connecting?.catch(() => undefined);
    await this.discardProducer();
    if (this.closing) throw new SluiceError("Kafka topic log is closed", { code: "TOPIC_LOG_CLOSED", context: { component: "kafka" } });
    this.fenced = undefined;
    this.claimed = true;
    await this.connect();
  }

  private async open(): Promise<void> {
    this.producer = this.options.kafka.producer({
      idempotent: true,
      maxInFlightRequests: this.options.maxInFlight,
      createPartitioner: Partitioners.DefaultPartitioner,
      allowAutoTopicCreation: false,
      // Short first retries: the broker answers CONCURRENT_TRANSACTIONS while it still writes the previous commit's markers.
      retry: { initialRetryTime: 10, maxRetryTime: 5_000, retries: 10 },
      ...(this.options.transactionalId ? { transactionalId: this.options.transactionalId, transactionTimeout: 60_000 } : {}),
    });
    try {
      await this.producer.connect();
      if (this.options.transactionalId) {
        // kafkajs registers the transactional id lazily; an empty transaction does it now, so a zombie's open transaction is aborted before anyone reads.
        const transaction = await this.producer.transaction();
        await transaction.commit();
      }
    } catch (error) {
      await this.discardProducer();
      throw kafkaError(error, "connect producer", this.options.brokers);
    }
  }

  /** Resolves when the messages (and checkpoint) are durable in Kafka; rejects when they are not and will not be. */
  async send(messages: readonly OutgoingMessage[], checkpoint?: { source: string; message: OutgoingMessage }): Promise<void> {
    const { durable } = await this.enqueue(messages, checkpoint);
    return durable;
  }

  /**
   * Takes the messages into the pending unit once there is room (at most `max_in_flight` units
   * queued or in delivery) and returns, without waiting for delivery: `durable` resolves when
   * they are durable. Calls are taken in the order they get room; the caller keeps them in order
   * by enqueueing one at a time (kafka-log.ts does).
   */
  async enqueue(messages: readonly OutgoingMessage[], checkpoint?: { source: string; message: OutgoingMessage }): Promise<{ durable: Promise<void> }> {
    while (this.queue.length >= this.options.maxInFlight && !this.closing) await new Promise<void>((resolve) => this.spaceWaiters.push(resolve));
    if (this.closing) throw new SluiceError("Kafka topic log is closed", { code: "TOPIC_LOG_CLOSED", context: { component: "kafka" } });
    const failed = checkpoint ? this.failedSources.get(checkpoint.source) : undefined;
    if (failed) throw failedBefore(checkpoint!.source, failed);
    const unit: Unit = (this.pending ??= { messages: [], checkpoints: new Map(), bytes: 0, waiters: [], lowerings: this.loweringCount });
    // Indexed loops here and below: they run once a batch, where a for-of or a spread allocates per message (runtime/arrays.ts).
    for (let m = 0; m < messages.length; m++) {
      const message = messages[m]!;
      unit.messages.push(message);
      unit.bytes += message.size;
    }
    if (checkpoint) unit.checkpoints.set(checkpoint.source, checkpoint.message);
    const durable = new Promise<void>((resolve, reject) => unit.waiters.push({ resolve, reject }));
    // The caller may not await it at once (it has more to enqueue first).
    durable.catch(() => undefined);
    // Even to an idle producer: a source transaction handed on in several batches goes out in one Kafka transaction (sending the first part at once put the rest, and the commit, a whole transaction later).
    if (unit.bytes >= this.options.batchBytes || this.options.lingerMs === 0) this.flush();
    else this.lingerTimer ??= setTimeout(() => this.flush(), this.options.lingerMs);
    return { durable };
  }

  /** Records that a write carrying a checkpoint of `source` failed before it reached the producer (kafka-log.ts: preparing it failed). */
  markFailed(source: string, error: Error): void {
    this.failedSources.set(source, error);
  }

  /** The caller read the source's checkpoint again: its next checkpoint starts from what is durable. */
  forgetFailure(source: string): void {
    this.failedSources.delete(source);
  }

  /** Flushed units not yet sent or being sent (at most max_in_flight). */
  get queuedUnits(): number {
    return this.queue.length;
  }

  /** Sends what is pending, waits until every unit is settled, and disconnects. */
  async close(): Promise<void> {
    this.flush();
    this.closing = true;
    for (const wake of this.spaceWaiters.splice(0)) wake();
    await this.sending;
    // A connect under way (a capture term registering its transactional id) ends first: kafkajs connects a producer disconnected meanwhile again.
    await this.connecting?.catch(() => undefined);
    await this.discardProducer();
  }

  private flush(): void {
    clearTimeout(this.lingerTimer);
    this.lingerTimer = undefined;
    if (!this.pending) return;
    this.queue.push(this.pending);
    this.pending = undefined;
    this.startDrain();
  }

  private startDrain(): void {
    this.sending ??= this.drain().finally(() => {
      this.sending = undefined;
      // A unit flushed after the drain's last look at the queue (or after a failure) is not left behind.
      if (this.queue.length > 0) this.startDrain();
    });
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      // Units that queued up while the previous send was under way go out together: one transaction, fewer round trips.
      const units = this.queue.slice();
      const merged = mergeUnits(units);
      try {
        const written = await this.deliver(merged);
        if (written.length > 0) {
          this.options.onCommitted?.(written);
          // Durable is what readers see (see untilVisible); a commit that never becomes visible fails like a write.
          await this.options.untilVisible?.(written);
        }
        for (const waiter of merged.waiters) waiter.resolve();
      } catch (error) {
        // A later unit must not be written after an earlier one failed for good: its checkpoint would skip the lost records.
        const failed = [...this.queue.splice(0), ...(this.pending ? [this.pending] : [])];
        this.pending = undefined;
        clearTimeout(this.lingerTimer);
        this.lingerTimer = undefined;
        for (const source of failed.flatMap((u) => [...u.checkpoints.keys()])) this.failedSources.set(source, error as Error);
        for (const waiter of failed.flatMap((u) => u.waiters)) waiter.reject(error as Error);
        for (const wake of this.spaceWaiters.splice(0)) wake();
        return;
      }
      this.queue.splice(0, units.length);
      for (const wake of this.spaceWaiters.splice(0, units.length)) wake();
    }
  }

  /** Sends one unit, retrying the whole unit with backoff and jitter on retriable failures; returns the last offset written per partition. */
  private async deliver(unit: Unit): Promise<WrittenOffset[]> {
    // The write again after a lowered max.message.bytes (at most one: a second refusal finds nothing lower) is not an
    // attempt of retry.maxAttempts: a command writing once would otherwise fail with the refusal's wrong advice.
    let uncounted = 0;
    for (let attempt = 0; ; attempt++) {
      try {
        await this.ensureConnected();
        const written = await this.sendUnit(unit);
        if (attempt > 0) this.logger.info({ brokers: this.options.brokers, attempts: attempt + 1 }, "Kafka reachable again; produce succeeded");
        this.options.onReadyChange(true);
        return written;
      } catch (error) {
        const failure = kafkaError(error, "produce", this.options.brokers);
        if (failure.code === "KAFKA_PRODUCER_FENCED" && this.options.transactionalId && this.claimed) this.fenced ??= failure;
        await this.discardProducer();
        // Records re-stamped: written again, but counted and after the backoff like any retry (a window shorter than a
        // reconnect and send, or a broker clock ahead of this one, would re-stamp and be refused at every attempt).
        const restamped = failure.code === "KAFKA_INVALID_TIMESTAMP" && !this.closing && (await this.restampedTooOld(unit));
        const lowered = this.closing
          ? undefined
          : failure.code === "KAFKA_MESSAGE_TOO_LARGE"
            ? await this.limitsLowered(unit, failure)
            : isConnectionClosed(error)
              ? await this.requestLimitLowered(unit, failure)
              : undefined;
        if (lowered?.recordOver) {
          // Capture writes it again from its checkpoint, and its per-record check halts the table of the change over it.
          this.logger.warn({ brokers: this.options.brokers, err: lowered.error.toLog() }, "a Kafka record limit is lower than Sluice knew and a record of the batch is over it; the batch is written again within the new limit");
          throw lowered.error;
        }
        // Every record within the new limits: the next attempt cuts its batches within them (batchLimitOf), no restart.
        const recut = lowered !== undefined;
        if (recut) this.logger.warn({ brokers: this.options.brokers, err: lowered.error.toLog() }, "a Kafka record limit is lower than Sluice knew; the batch is written again in batches within it");
        if (recut && uncounted === 0) uncounted = 1;
        const exhausted = this.options.retry.maxAttempts !== undefined && attempt + 1 - uncounted >= this.options.retry.maxAttempts;
        if (!(failure.retriable || restamped || recut) || exhausted || this.closing) {
          this.logger.error({ brokers: this.options.brokers, err: failure.toLog() }, "produce to Kafka failed; nothing of the failed batch is acknowledged");
          if (failure.retriable) this.options.onReadyChange(false, failure.message);
          throw failure;
        }
        const delayMs = backoffDelay(this.options.retry, attempt);
        if (restamped || recut) {
          // Re-stamped and refused again: the window is shorter than a send, or the broker's clock is ahead.
          if (attempt > 0) this.options.onReadyChange(false, failure.message);
          await sleep(delayMs);
          continue;
        }
        this.options.onReadyChange(false, failure.message);
        this.logger.warn({ brokers: this.options.brokers, err: failure.toLog(), attempt: attempt + 1, delayMs }, "Kafka unavailable; retrying the batch");
        if (this.options.onUnknownTopic && isUnknownTopicOrPartition(error)) {
          const topics = [...new Set([...unit.messages, ...unit.checkpoints.values()].map((m) => m.topic))];
          const problem = await this.options.onUnknownTopic(topics).then(() => undefined, (problem: unknown) => problem);
          if (problem instanceof SluiceError) {
            // A topic that cannot be written as it is (a deleted internal one, one with another layout): readiness says
            // why, not the unknown topic's 'capture creates it again', which it showed since the failure.
            this.options.onReadyChange(false, problem.message);
            if (!problem.retriable) {
              this.logger.error({ brokers: this.options.brokers, err: problem.toLog(), topics }, "produce to Kafka failed; nothing of the failed batch is acknowledged");
              throw problem;
            }
            this.logger.warn({ err: problem.toLog(), topics }, "a topic Kafka answered as unknown cannot be written as it is; retrying the batch");
          } else if (problem !== undefined) this.logger.warn({ err: problem, topics }, "could not look for or create again the topics Kafka does not know; retrying the batch");
        }
        await sleep(delayMs);
      }
    }
  }

  /** Gives the unit's records older than their topic takes (onInvalidTimestamp) the time of now; whether any was. */
  private async restampedTooOld(unit: Unit): Promise<boolean> {
    if (!this.options.onInvalidTimestamp) return false;
    const topics = [...new Set(unit.messages.map((m) => m.topic))];
    const windows = await this.options.onInvalidTimestamp(topics).catch((error: unknown) => {
      this.logger.warn({ err: error, topics }, "could not read the message.timestamp.before.max.ms of the topics of a batch Kafka refused for its timestamps");
      return new Map<string, number>();
    });
    const now = Date.now();
    const restamped = new Map<string, number>();
    for (const message of unit.messages) {
      const window = windows.get(message.topic);
      if (window === undefined || !tooOld(Number(message.timestamp), window, now)) continue;
      message.timestamp = String(now);
      restamped.set(message.topic, (restamped.get(message.topic) ?? 0) + 1);
    }
    if (restamped.size === 0) return false;
    this.logger.warn(
      { topics: Object.fromEntries([...restamped].map(([topic, records]) => [topic, { records, beforeMaxMs: windows.get(topic) }])) },
      "Kafka refused records older than their topic's message.timestamp.before.max.ms (capture catching up after a stop longer than that?): they are written again with the time of now (their changes' commit times stay in the records' source.ts_ms)",
    );
    return true;
  }

  /**
   * A record limit found lower than known, by whichever read (a refusal's or a dropped request's, the brokers' limits read
   * again before a halted table is retried, ...). A unit queued before it whose request a broker then refuses as too
   * large or drops is written again within it, or fails as retriable when a record of it is over it (capture's record
   * check then halts that record's table), rather than refused for good or retried for ever as an outage.
   */
  limitLowered(limit: LoweredLimit | RequestLimitLowered): void {
    this.lowerings.push({ count: ++this.loweringCount, limit });
    if (this.lowerings.length > LOWERINGS_KEPT) this.lowerings.shift();
  }

  /** The limits found lower since the unit was queued or last failed (each once); the unit has then taken account of them. */
  private takeLowerings(unit: Unit): (LoweredLimit | RequestLimitLowered)[] {
    const since = new Map<string, LoweredLimit | RequestLimitLowered>();
    for (const { count, limit } of this.lowerings) if (count > unit.lowerings) since.set(`${"topic" in limit ? limit.topic : ""}\u0000${limit.now}`, limit);
    unit.lowerings = this.loweringCount;
    return [...since.values()];
  }

  /**
   * After a refusal as too large (MESSAGE_TOO_LARGE): the unit's topics' max.message.bytes read again (onMessageTooLarge);
   * when a limit was found lower since the unit was queued, a retriable failure naming it, and whether a record of the
   * unit is over its limit now; undefined when none was (the refusal is then final, as before).
   */
  private async limitsLowered(unit: Unit, failure: SluiceError): Promise<{ error: SluiceError; recordOver: boolean } | undefined> {
    const topics = [...new Set([...unit.messages, ...unit.checkpoints.values()].map((m) => m.topic))];
    await this.options.onMessageTooLarge?.(topics).catch((error: unknown) => {
      this.logger.warn({ err: error, topics }, "could not read the max.message.bytes of the topics of a batch Kafka refused as too large");
    });
    const lowered = this.takeLowerings(unit);
    if (lowered.length === 0) return undefined;
    const recordOver = this.recordOver(unit, lowered);
    const error = new SluiceError(
      `Kafka refused a record batch as larger than a topic's record limit (max.message.bytes or segment.bytes), lower than Sluice knew: ${lowered.map(saidOf).join(", ")}; nothing of the batch is acknowledged and it is written again within the limit` +
        (recordOver ? " (a change over it halts its table: RECORD_TOO_LARGE)" : ""),
      { code: "KAFKA_TOPIC_LIMIT_LOWERED", retriable: true, context: { component: "kafka", operation: "produce", topics: lowered.flatMap((l) => ("topic" in l ? [l.topic] : [])).join(","), brokers: this.options.brokers.join(",") }, cause: failure },
    );
    return { error, recordOver };
  }

  /**
   * After a broker closed a delivery's connection: the brokers' socket.request.max.bytes read again (onConnectionClosed);
   * when a limit was found lower since the unit was queued (by this read, the one at the drop, or any other), a retriable
   * failure, and whether a record of the unit is over its limit now; else undefined (an outage: retried with backoff).
   */
  private async requestLimitLowered(unit: Unit, failure: SluiceError): Promise<{ error: SluiceError; recordOver: boolean } | undefined> {
    await this.readRequestLimitAfterDrop();
    const lowered = this.takeLowerings(unit);
    if (lowered.length === 0) return undefined;
    const recordOver = this.recordOver(unit, lowered);
    const error = new SluiceError(
      `a Kafka broker closed the connection of a produce request, and the largest request or record Kafka takes is lower than Sluice knew: ${lowered.map(saidOf).join(", ")}; nothing of the batch is acknowledged and it is written again in requests within it` +
        (recordOver ? " (a change over it halts its table: RECORD_TOO_LARGE)" : ""),
      { code: "KAFKA_REQUEST_LIMIT_LOWERED", retriable: true, context: { component: "kafka", operation: "produce", brokers: this.options.brokers.join(",") }, cause: failure },
    );
    return { error, recordOver };
  }

  /**
   * Whether a record of the unit is over its topic's limit now: the tighter of the topic's and the brokers' request
   * limit (batchLimitOf), and of the lowered limits just told. As the per-record check before it works the exact size
   * out: size + 64 is never below a record's framed bytes.
   */
  private recordOver(unit: Unit, lowered: readonly (LoweredLimit | RequestLimitLowered)[]): boolean {
    const limits = new Map<string, number>();
    const limitOf = (topic: string): number => {
      let limit = limits.get(topic);
      if (limit === undefined) {
        limit = this.options.batchLimitOf?.(topic) ?? Number.POSITIVE_INFINITY;
        for (const l of lowered) if (!("topic" in l) || l.topic === topic) limit = Math.min(limit, l.now);
        limits.set(topic, limit);
      }
      return limit;
    };
    return [...unit.messages, ...unit.checkpoints.values()].some((m) => m.size + RECORD_OVERHEAD_BYTES > limitOf(m.topic));
  }

  /**
   * The brokers' socket.request.max.bytes read again after a broker closed a produce's connection (onConnectionClosed),
   * told to limitLowered when lower than known. A read under way is waited for: kafkajs sends a send's requests to each
   * partition leader at once, and two brokers dropping them must both learn its answer. Every broker's stop in a rolling
   * restart closes connections: the brokers are described at most once in REQUEST_LIMIT_READ_EVERY_MS.
   */
  private readRequestLimitAfterDrop(): Promise<void> {
    const read = this.options.onConnectionClosed;
    if (!read) return Promise.resolve();
    if (this.requestLimitRead) return this.requestLimitRead;
    const now = this.options.clock?.() ?? performance.now();
    if (this.requestLimitReadAt !== undefined && now - this.requestLimitReadAt < REQUEST_LIMIT_READ_EVERY_MS) return Promise.resolve();
    this.requestLimitReadAt = now;
    this.requestLimitRead = read()
      .then(
        () => undefined,
        (error: unknown) => void this.logger.warn({ err: error }, "could not read the brokers' socket.request.max.bytes after a broker closed a produce's connection"),
      )
      .finally(() => (this.requestLimitRead = undefined));
    return this.requestLimitRead;
  }

  private async sendUnit(unit: Unit): Promise<WrittenOffset[]> {
    const producer = this.producer!;
    const checkpoints = [...unit.checkpoints.values()];
    const requestLimit = this.options.requestLimit?.();
    // Within the brokers' request limit, the first request's room for the checkpoints kept free (a transaction sends them
    // with it); checkpoints too large for that (many sources' GTID sets) go in a request of their own instead.
    const reserved = this.options.transactionalId && requestLimit !== undefined && sizeOf(checkpoints) <= requestLimit / 4 ? sizeOf(checkpoints) : 0;
    const { chunks, first } = chunkMessages(unit.messages, this.options.batchBytes, this.options.batchLimitOf, requestLimit === undefined ? undefined : requestLimit - reserved);
    const request = (messages: readonly OutgoingMessage[]) => ({ topicMessages: byTopic(messages), acks: -1, compression: this.options.compression });
    // A request a broker drops ends kafkajs's retries of it when the brokers' limit is now found lower: it is cut again at once.
    const dropWatch = { onDropped: async () => (await this.readRequestLimitAfterDrop(), this.loweringCount > unit.lowerings) };
    // Checkpoints of several sources (long GTID sets each) may themselves need more than one request.
    const checkpointChunks = () => chunkMessages(checkpoints, this.options.batchBytes, this.options.batchLimitOf, requestLimit).chunks;
    if (!this.options.transactionalId) {
      for (const chunk of chunks) await watchDrops(dropWatch, () => producer.sendBatch(request(chunk)));
      // At-least-once: the checkpoint is written only after every record it covers is acknowledged.
      if (checkpoints.length > 0) for (const chunk of checkpointChunks()) await watchDrops(dropWatch, () => producer.sendBatch(request(chunk)));
      return [];
    }
    const written = new Map<string, WrittenOffset>();
    const transaction = await producer.transaction();
    try {
      // With the first request: the transaction's partitions are all added in one AddPartitionsToTxn
      // (kafkajs adds a request's new partitions before sending it), not the checkpoint's later in a round trip of its own.
      // A first request that took a record near the request limit alone has no room for them: they follow in their own,
      // in the same transaction (a request over socket.request.max.bytes is closed by the broker, again at every retry).
      if (chunks.length === 0) chunks.push([]);
      if (requestLimit === undefined || first.withBytesOf(checkpoints) <= requestLimit) pushAll(chunks[0]!, checkpoints);
      else if (checkpoints.length > 0) pushAll(chunks, checkpointChunks());
      for (const chunk of chunks) {
        if (chunk.length === 0) continue;
        const counts = countPerPartition(chunk);
        for (const result of await watchDrops(dropWatch, () => transaction.sendBatch(request(chunk)))) {
          const key = `${result.topicName}\u0000${result.partition}`;
          const count = counts.get(key) ?? 0;
          if (count > 0 && result.baseOffset !== undefined) written.set(key, { topic: result.topicName, partition: result.partition, offset: BigInt(result.baseOffset) + BigInt(count - 1) });
        }
      }
      await transaction.commit();
    } catch (error) {
      await transaction.abort().catch(() => undefined);
      throw error;
    }
    return [...written.values()];
  }

  private async discardProducer(): Promise<void> {
    const producer = this.producer;
    this.producer = undefined;
    await producer?.disconnect().catch(() => undefined);
  }
}

function failedBefore(source: string, cause: Error): SluiceError {
  const retriable = cause instanceof SluiceError ? cause.retriable : false;
  return new SluiceError(`an earlier write of source ${source}'s changes failed (${cause.message}); a later checkpoint of it is refused until its checkpoint is read again, so none skips the lost changes`, {
    code: cause instanceof SluiceError ? cause.code : "KAFKA_PRODUCE_FAILED",
    retriable,
    cause,
    context: { component: "kafka", source },
  });
}

function mergeUnits(units: readonly Unit[]): Unit {
  if (units.length === 1) return units[0]!;
  const merged: Unit = { messages: [], checkpoints: new Map(), bytes: 0, waiters: [], lowerings: Math.min(...units.map((u) => u.lowerings)) };
  for (const unit of units) {
    pushAll(merged.messages, unit.messages);
    for (const [source, checkpoint] of unit.checkpoints) merged.checkpoints.set(source, checkpoint);
    merged.bytes += unit.bytes;
    merged.waiters.push(...unit.waiters);
  }
  return merged;
}

/** A partition's bytes in a produce request beyond its records (index, batch length and header) and its topic's name. */
const PARTITION_FRAMING_BYTES = 80;

/**
 * The first request chunkMessages made, as counted under a request limit (its records' bytes and each partition's framing
 * once; an empty one when there was none). Without a request limit its bytes leave the framing out.
 */
class FirstRequest {
  readonly bytes: number;
  /** Bytes per partition, in arrays per topic. */
  private readonly perTopic: ReadonlyMap<string, readonly number[]>;

  constructor(bytes: number, perTopic: ReadonlyMap<string, readonly number[]>) {
    this.bytes = bytes;
    this.perTopic = perTopic;
  }

  /**
   * Its bytes with `extra` (a unit's few checkpoints) added: theirs, and the framing of each partition not in it yet. Counted
   * from the chunk's tally, not by going over its records again (a unit can hold thousands).
   */
  withBytesOf(extra: readonly OutgoingMessage[]): number {
    let bytes = this.bytes;
    for (let m = 0; m < extra.length; m++) {
      const { topic, partition, size } = extra[m]!;
      bytes += size;
      let framed = this.perTopic.get(topic)?.[partition] !== undefined;
      for (let e = 0; !framed && e < m; e++) framed = extra[e]!.topic === topic && extra[e]!.partition === partition;
      if (!framed) bytes += PARTITION_FRAMING_BYTES + topic.length;
    }
    return bytes;
  }
}

function sizeOf(messages: readonly OutgoingMessage[]): number {
  let bytes = 0;
  for (let m = 0; m < messages.length; m++) bytes += messages[m]!.size + PARTITION_FRAMING_BYTES + messages[m]!.topic.length;
  return bytes;
}

/** A broker's close of a produce's connection reads the brokers' socket.request.max.bytes again at most this often. */
export const REQUEST_LIMIT_READ_EVERY_MS = 30_000;

/** How many limits found lower the producer keeps for the units queued before them (a unit takes those since it was queued). */
const LOWERINGS_KEPT = 64;

/** The brokers' request limit found lower (a LoweredLimit of no topic). */
export type RequestLimitLowered = Omit<LoweredLimit, "topic">;

function saidOf(limit: LoweredLimit | RequestLimitLowered): string {
  const change = limit.was === null ? `${limit.now}, not known before` : `lowered from ${limit.was} to ${limit.now}`;
  const setting = limit.setting === undefined ? "" : `: ${limit.setting}`;
  return "topic" in limit ? `${limit.topic} (${change}${setting})` : `the brokers' request limit (${change}${setting})`;
}

/** A produce request holds at most this many times batch_bytes in all (each partition's batch at most batch_bytes). */
export const REQUEST_BATCHES = 4;
/**
 * ...but no more than this beyond batch_bytes: a broker closes the connection on a request above its
 * socket.request.max.bytes (100 MiB by default), which kafkajs retries as a connection error forever.
 */
export const MAX_REQUEST_BYTES = 64 * 2 ** 20;

/**
 * The unit's produce requests, in order: each partition's record batch in a request is at most
 * `batchBytes` (the size Kafka limits, max.message.bytes, is per batch), and a request at most
 * REQUEST_BATCHES × `batchBytes`. Requests of a transaction go one after another (a round trip
 * each): bounding the whole request by `batchBytes` instead sent a unit spread over three
 * partitions in three requests, and its tail often in a request of its own.
 */
function chunkMessages(
  messages: readonly OutgoingMessage[],
  batchBytes: number,
  batchLimitOf?: (topic: string) => number | undefined,
  requestLimit?: number,
): { chunks: OutgoingMessage[][]; first: FirstRequest } {
  const chunks: OutgoingMessage[][] = [];
  let first: FirstRequest | undefined;
  const requestBytes = Math.min(Math.max(batchBytes, Math.min(REQUEST_BATCHES * batchBytes, MAX_REQUEST_BYTES)), requestLimit ?? Number.POSITIVE_INFINITY);
  // Under the brokers' request limit a partition's framing counts too (its topic's name, index, batch header).
  const framed = requestLimit !== undefined;
  // A partition's batch: batch_bytes, or less where the topic's limit (or the request's) is lower.
  const partitionLimits = new Map<string, number>();
  const partitionLimitOf = (name: string): number => {
    let limit = partitionLimits.get(name);
    if (limit === undefined) partitionLimits.set(name, (limit = Math.min(batchBytes, requestBytes, batchLimitOf?.(name) ?? batchBytes)));
    return limit;
  };
  let current: OutgoingMessage[] = [];
  let bytes = 0;
  // Bytes per partition in the current request, in arrays per topic (no key string per message).
  let perTopic = new Map<string, number[]>();
  let topic: string | undefined;
  let partitionBytes: number[] = [];
  let partitionLimit = batchBytes;
  for (let m = 0; m < messages.length; m++) {
    const message = messages[m]!;
    const { partition, size } = message;
    const sameTopic = message.topic === topic;
    const inPartition = (sameTopic ? partitionBytes[partition] : perTopic.get(message.topic)?.[partition]) ?? 0;
    const limit = sameTopic ? partitionLimit : partitionLimitOf(message.topic);
    const added = framed && inPartition === 0 ? size + PARTITION_FRAMING_BYTES + message.topic.length : size;
    if (current.length > 0 && (inPartition + size > limit || bytes + added > requestBytes)) {
      first ??= new FirstRequest(bytes, perTopic);
      chunks.push(current);
      current = [];
      bytes = 0;
      perTopic = new Map();
      topic = undefined;
    }
    if (message.topic !== topic) {
      topic = message.topic;
      partitionBytes = perTopic.get(topic) ?? [];
      perTopic.set(topic, partitionBytes);
      partitionLimit = limit;
    }
    current.push(message);
    bytes += framed && partitionBytes[partition] === undefined ? size + PARTITION_FRAMING_BYTES + message.topic.length : size;
    partitionBytes[partition] = (partitionBytes[partition] ?? 0) + size;
  }
  if (current.length > 0) {
    first ??= new FirstRequest(bytes, perTopic);
    chunks.push(current);
  }
  return { chunks, first: first ?? new FirstRequest(0, new Map()) };
}

function countPerPartition(messages: readonly OutgoingMessage[]): Map<string, number> {
  // Counted per topic in arrays indexed by partition: no key string per message.
  const perTopic = new Map<string, number[]>();
  let topic: string | undefined;
  let counts: number[] = [];
  for (let m = 0; m < messages.length; m++) {
    const message = messages[m]!;
    if (message.topic !== topic) {
      topic = message.topic;
      counts = perTopic.get(topic) ?? [];
      perTopic.set(topic, counts);
    }
    const partition = message.partition;
    counts[partition] = (counts[partition] ?? 0) + 1;
  }
  const result = new Map<string, number>();
  for (const [name, list] of perTopic) list.forEach((count, partition) => result.set(`${name}\u0000${partition}`, count));
  return result;
}

function byTopic(messages: readonly OutgoingMessage[]): { topic: string; messages: Message[] }[] {
  const topics = new Map<string, (Message & { partition: number })[]>();
  for (let m = 0; m < messages.length; m++) {
    const message = messages[m]!;
    let list = topics.get(message.topic);
    if (!list) topics.set(message.topic, (list = []));
    list.push(message);
  }
  return [...topics].map(([topic, list]) => ({ topic, messages: withLinearPartitionGrouping(list) }));
}

/**
 * Whether a record of time `timestamp` is too old for a topic taking records up to `windowMs` old (its
 * message.timestamp.before.max.ms): a minute short of the window, or half of a window shorter than two minutes, so that
 * the broker's clock a little ahead of this one still takes it.
 */
export function tooOld(timestamp: number, windowMs: number, now: number): boolean {
  return timestamp < now - Math.max(windowMs - 60_000, windowMs / 2);
}

/**
 * How old a record a topic takes, from its configs: message.timestamp.before.max.ms (Kafka 3.6+), else the older
 * message.timestamp.difference.max.ms (before 3.6 the only one; a 3.x broker still honours it when set, 4.0 removed it).
 * Where both are set the newer one wins, as the broker takes it (3.6+ falls back to the older key only while the newer
 * one is at its default). Each is Long.MAX_VALUE (any age) by default: undefined.
 */
export function timestampWindowOf(beforeMaxMs: string | undefined, differenceMaxMs: string | undefined): number | undefined {
  return windowMs(beforeMaxMs) ?? windowMs(differenceMaxMs);
}

/** A window set in a config (not its Long.MAX_VALUE default, which is not a safe integer), else undefined. */
function windowMs(value: string | undefined): number | undefined {
  if (value === undefined || value === "") return undefined;
  const ms = Number(value);
  return Number.isSafeInteger(ms) && ms >= 0 ? ms : undefined;
}
