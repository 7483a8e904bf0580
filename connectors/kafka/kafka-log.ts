/**
 * The topic log on Apache Kafka (kafkajs). Records are partitioned by Sluice's murmur2 partitioner
 * (the Java client's), produced idempotently with acks=all; source checkpoints live in the compacted
 * topic `<deployment>.sluice.checkpoints` keyed by source name, written in the same Kafka
 * transaction as the records they cover when `transactions` is on (exactly-once), else after them
 * (at-least-once). Each data topic's identity (drawn when Sluice creates the topic, or first sees
 * it) lives in the compacted topic `<deployment>.sluice.topic-ids`, written before the topic is
 * created, so sinks can tell a re-created topic from the one their stored offsets came from.
 */
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import kafkajs from "kafkajs";
import type { Admin, DescribeConfigResponse, ISocketFactory, Kafka, Producer } from "kafkajs";
import type { BackoffPolicy } from "../../runtime/backoff.ts";
import { backoffDelay } from "../../runtime/backoff.ts";
import type { Logger } from "../../runtime/logger.ts";
import { InFlight } from "../common/in-flight.ts";
import type { Checkpoint } from "../contracts.ts";
import { ConnectionError, SluiceError } from "../errors.ts";
import { CheckpointFold, encodeCheckpoint, entryRecords } from "../topics/checkpoint-codec.ts";
import type {
  ConsumerOptions,
  GroupActivity,
  GroupHold,
  PartitionLag,
  PartitionOffsets,
  ProducedRecord,
  RecordLimit,
  RegistryJournal,
  StoredRecord,
  TopicConsumer,
  TopicCreation,
  TopicLog,
  TopicPartitionOffset,
  TopicSpec,
} from "../topics/contract.ts";
import { captureLeaseTopic, checkpointTopic, controlTopic, HIGHEST_SCHEMA_ID_KEY, instancesTopic, isInternalTopic, kafkaTopicNameProblem, registryTopic, schemaHistoryTopic, subjectKeysTopic, TOPIC_NAME_INVALID, topicIdsTopic } from "../topics/names.ts";
import { partitionForKey } from "../topics/partitioner.ts";
import { announceTopicCreated, onTopicCreated } from "../topics/topic-notices.ts";
import { assertSameLayout, RECORD_TOO_LARGE, recordBytes, validateSpec } from "../topics/spec.ts";
import { BatchingProducer, RECORD_OVERHEAD_BYTES, timestampWindowOf, tooOld } from "./batching-producer.ts";
import { commitNotVisibleError } from "./commit-not-visible.ts";
import { setGroupOffsets } from "./group-offsets.ts";
import type { LoweredLimit, OutgoingMessage, RequestLimitLowered, WrittenOffset } from "./batching-producer.ts";
import { compressionType } from "./compression.ts";
import { BROKER_LIMIT_CONFIGS, brokerLimitsOf, describedRecordLimit, ownRecordLimit, raisedConfigValue, requestRecordLimit, tighter } from "./record-limits.ts";
import type { BrokerLimits } from "./record-limits.ts";
import { createKafkaClient } from "./kafka-client.ts";
import type { KafkaTopicsConfig } from "./kafka-client.ts";
import { KafkaPullConsumer, listOffsetsTime } from "./kafka-consumer.ts";
import type { KafkaReaderLimits } from "./kafka-consumer.ts";
import { isInvalidTopicName, kafkaError } from "./kafka-errors.ts";
import { KafkaLease } from "./kafka-lease.ts";
import { holdClientIdPart, holdPurpose, KafkaGroupHold } from "./kafka-group-hold.ts";
import { isGoneLocalProcess, localProcessToken, processTokenInText, processTokenText } from "../../runtime/local-process.ts";
import { FORMER_MEMBER_LOOKS, removeGoneMembers } from "./gone-members.ts";
import { keepNewest, RECENT_OWN_MEMBERS } from "../topics/recent-members.ts";
import { FREQUENT_COMPACTION, frequentlyWritten, keepCompacting } from "./internal-compaction.ts";
import { PartitionReader } from "./partition-reader.ts";
import type { PartitionRange } from "./partition-reader.ts";
import { TOPIC_DELETED, unknownTopicAction, writtenLayoutOf } from "./deleted-topics.ts";
import type { WrittenLayout } from "./deleted-topics.ts";
import type { FetchLimits } from "./partition-reader.ts";
import { framedSchemaId, holdsSealedValue, INTERNAL_TOPIC_LOST, isDeploymentDataTopic, isDeploymentSourceTopic, judgeLostTopics, parkingTopicLostWarning, sealedLookTopics } from "./lost-internal-topics.ts";
import type { DeploymentTraces, InternalTopicsFound, LostTopicPolicy } from "./lost-internal-topics.ts";
import type { StoreMutation } from "../../schema-registry/store.ts";
import { partitionKey, StableOffsets } from "./stable-offsets.ts";

export interface KafkaLogOptions {
  readonly config: KafkaTopicsConfig;
  readonly deployment: string;
  readonly logger: Logger;
  /** Transactional id of this process's producer (default `<deployment>.<client_id>`); two processes writing at once need different ones. */
  readonly transactionalId?: string;
  /**
   * How this process uses the log: "capture" (default) creates Sluice's internal topics and
   * connects the producer at open; "command" (an operator command that may write, under a
   * transactional id of its own) connects the producer only at its first produce call; "read-only"
   * has no producer and refuses every write with TOPIC_LOG_READ_ONLY, so it never fences a daemon.
   */
  readonly access?: KafkaLogAccess;
  /**
   * Retry policy for connecting and producing; default: forever, 200 ms doubling to 5 s, with jitter
   * (a short ceiling: capture resumes within seconds of Kafka's return, and an attempt costs one connection).
   */
  readonly retry?: BackoffPolicy & { readonly maxAttempts?: number };
  readonly signal?: AbortSignal;
  /** Read-ahead and fetch sizes of this log's consumers (a sink thread's share of the memory budget); default: KafkaPullConsumer's. */
  readonly readerLimits?: KafkaReaderLimits;
  /** How long this process's committed records may take to become visible to readers (VISIBLE_WITHIN_MS by default). */
  readonly visibleWithinMs?: number;
  /** How this log's Kafka clients open their connections (kafkajs's own by default): a test cuts them through it, as an outage does. */
  readonly socketFactory?: ISocketFactory;
  /**
   * How an internal topic found missing at open is judged (lost-internal-topics.ts): with none, it is created without a
   * look at the deployment's other topics (tools and tests that write no schema-framed records).
   */
  readonly lostTopics?: LostTopicPolicy;
  /** The most record bytes the look for sealed personal values reads (SEALED_SCAN_BYTES by default; tests lower it). */
  readonly sealedScanBytes?: number;
}

export type KafkaLogAccess = "capture" | "command" | "read-only";

const DEFAULT_RETRY: BackoffPolicy & { readonly maxAttempts?: number } = { initialMs: 200, maxMs: 5_000 };
/**
 * How long a read waits for this process's committed records to become visible before reading without them, and a
 * commit for its records to become visible before its write fails (committedVisible).
 */
const VISIBLE_WITHIN_MS = 10_000;
/** Between ListOffsets requests that failed while waiting for a commit to become visible. */
const VISIBLE_RETRY_MS = 100;
/** How long a topic just created may be without a leader for a partition (kafkajs's own wait: 10 s). */
const LEADERS_WITHIN_MS = 10_000;
/** Fetches of a fold (foldTopic): its memory is one response's records, ~4 times its bytes. */
const FOLD_FETCH: FetchLimits = { fetchBytes: 2 ** 20, partitionFetchBytes: 2 ** 20 };
/** The last offsets of each partition read for the schema ids its records reference (a few: transaction markers take offsets too). */
const SAMPLED_OFFSETS = 8n;
/**
 * The last offsets of each partition read for sealed personal values when the subjects' keys are missing: more than for
 * schema ids, since the last changes of a personal table may carry none (null personal columns, deletes and tombstones).
 */
const SAMPLED_FOR_SEALED = 64n;
/** Offsets from the end of each written partition whose keys tell the partition count a topic was written with. */
const WRITTEN_KEYS_SAMPLED = 8n;
/**
 * The most record bytes the look for sealed values reads: it runs at every start of a deployment with personal_data that
 * has sealed nothing yet (no key topic), over every data, parking and dead-letter topic, so it is bounded.
 */
const SEALED_SCAN_BYTES = 16 * 2 ** 20;
/** Fetches of the sampled last records: one response's records at a time in memory, not a topic's. */
const SAMPLE_FETCH: FetchLimits = { fetchBytes: 2 ** 20, partitionFetchBytes: 2 ** 18 };

export class KafkaTopicLog implements TopicLog {
  readonly kind = "kafka";
  readonly checkpointGuarantee;
  readonly registryJournal: RegistryJournal;
  readonly schemaHistoryJournal: RegistryJournal;
  private readonly kafka: Kafka;
  private memberKafka: Kafka | undefined;
  /**
   * kafkajs's admin refreshes its metadata for every topic it has looked up (offsets, partitions),
   * and fails every later request once one of them is deleted by another process; it is then
   * replaced by a new one (renewAdmin). It never looks topics up by name: see lookups.
   */
  private admin: Admin;
  /**
   * Metadata requests for named topics only (describeTopic, topicExists, the leaders' wait). kafkajs
   * keeps one metadata set per admin client, which such a request replaces with those topics alone:
   * on `admin`, between the two ListOffsets requests of fetchTopicOffsets, it left no leader for the
   * asked topic ("Cannot destructure property 'partitions' of 'low.pop(...)'"). This client looks no
   * topic up for later requests (its kafkajs target topics stay empty), so it needs no renewal.
   */
  private readonly lookups: Admin;
  private readonly config: KafkaTopicsConfig;
  private readonly transactionalId: string | null;
  private readonly deployment: string;
  private readonly logger: Logger;
  /** Null when read-only. */
  private readonly producer: BatchingProducer | null;
  private readonly access: KafkaLogAccess;
  private readonly readerLimits: KafkaReaderLimits | undefined;
  private readonly visibleWithinMs: number;
  private readonly partitionCounts = new Map<string, number>();
  /** Every topic created or adopted, as declared: one deleted while it is written is created again from it. */
  private readonly declared = new Map<string, TopicSpec>();
  /** The layout each declared topic is written with, as created or found: a topic found again after an unknown-topic answer must still have it. */
  private readonly writtenLayouts = new Map<string, WrittenLayout>();
  private readonly recreatedListeners = new Set<(topic: string) => void>();
  /**
   * Record limits of the topics this process created, declared or wrote to (max.message.bytes, or segment.bytes where
   * lower, as recordLimitOf says): batches and records to each stay within it.
   */
  private readonly recordLimits = new Map<string, RecordLimit>();
  /** Each described topic's record limit as its configs set it (describedRecordLimit), for recordLimits. */
  private readonly describedLimits = new Map<string, RecordLimit>();
  /** The brokers' smallest socket.request.max.bytes as a record limit, once read (a produce's connection closed by a broker). */
  private requestLimit: RecordLimit | undefined;
  /** The lowest of the brokers' own record limits (message.max.bytes, log.segment.bytes), read with requestLimit. */
  private brokerLimits: BrokerLimits = {};
  /** Each described or created topic's retention.bytes (null: none), for the segment.bytes Sluice advises or sets. */
  private readonly retentionBytes = new Map<string, number | null>();
  /** Whether a failed read of the brokers' socket.request.max.bytes was logged at warn (once a process). */
  private requestLimitUnreadSaid = false;
  /** How old a record each described topic takes (its message.timestamp.before.max.ms), where that is set. */
  private readonly timestampWindows = new Map<string, number>();
  private readonly consumers = new Set<KafkaPullConsumer>();
  /**
   * Per consumer group, the member ids of this log's closed consumers, which may still be in the group: a consumer that
   * failed (Kafka gone) could not leave it, and the coordinator would hold the group's next join until such a member's
   * session timed out. Removed before this log's next consumer of the group joins (consumer()); forgotten once one joined.
   */
  private readonly formerMembers = new Map<string, Set<string>>();
  private readonly socketFactory: ISocketFactory | undefined;
  private readonly lostTopics: LostTopicPolicy | undefined;
  private readonly sealedScanBytes: number;
  /** Reads internal topics to their end without a consumer group; made at the first such read. */
  private reader: PartitionReader | null = null;
  /** Asks for the last stable offsets of the partitions a transaction wrote; made at the first commit. */
  private stableOffsets: StableOffsets | null = null;
  /** Topic identities as this process last read or wrote them; loaded on the first createTopic. */
  private recordedTopicIds: Map<string, string> | null = null;
  /** The highest schema id this process recorded in the checkpoints topic (recordHighestSchemaId). */
  private highestSchemaIdRecorded = 0;
  /** Writes topic identities outside any transaction, so recording one never fences or waits for the capture's producer. */
  private identityProducer: Promise<Producer> | null = null;
  private isReady = false;
  /**
   * The last offset per partition ("topic\u0000partition") of this process's committed
   * transactions that read_committed readers may not see yet (Kafka writes the commit markers
   * after acknowledging the commit). This process's reads of those topics wait for them.
   */
  private readonly unconfirmed = new Map<string, WrittenOffset>();
  /** Produce calls take their place in the producer one at a time, in call order (their preparation awaits). */
  private accepting: Promise<unknown> = Promise.resolve();
  /** Why the last produce or admin request failed while Kafka is unavailable; null once one succeeds again. */
  private producerProblem: string | null = null;
  private adminProblem: string | null = null;
  private closed = false;
  /**
   * Requests of the admin client and the plain producer under way, and consumers being created:
   * close() lets them finish before it disconnects. kafkajs connects a disconnected client again
   * at its next request (its own retry of one that failed on the closing connection included), and
   * a connected client's request-timeout timer then holds the process open after a complete stop.
   */
  private readonly inFlight = new InFlight();

  private constructor(options: KafkaLogOptions) {
    this.config = options.config;
    this.transactionalId = options.config.transactions ? (options.transactionalId ?? `${options.deployment}.${options.config.client_id}`) : null;
    this.deployment = options.deployment;
    this.logger = options.logger.child({ component: "kafka-log" });
    this.socketFactory = options.socketFactory;
    this.lostTopics = options.lostTopics;
    this.sealedScanBytes = options.sealedScanBytes ?? SEALED_SCAN_BYTES;
    this.kafka = createKafkaClient(options.config, options.logger, this.socketFactory);
    this.admin = this.kafka.admin();
    this.lookups = this.kafka.admin();
    this.checkpointGuarantee = options.config.transactions ? ("exactly-once" as const) : ("at-least-once" as const);
    this.access = options.access ?? "capture";
    this.readerLimits = options.readerLimits;
    this.visibleWithinMs = options.visibleWithinMs ?? VISIBLE_WITHIN_MS;
    this.producer = this.access === "read-only" ? null : new BatchingProducer({
      kafka: this.kafka,
      brokers: options.config.brokers,
      lingerMs: options.config.linger,
      batchBytes: options.config.batch_bytes,
      maxInFlight: options.config.max_in_flight,
      compression: compressionType(options.config.compression),
      transactionalId: this.transactionalId,
      retry: options.retry ?? DEFAULT_RETRY,
      logger: this.logger,
      onReadyChange: (ready, problem) => {
        this.isReady = ready;
        this.producerProblem = ready ? null : (problem ?? null);
        // A delivery proves Kafka answers again, also for the admin requests that failed meanwhile.
        if (ready) this.adminProblem = null;
      },
      onCommitted: (offsets) => {
        for (const o of offsets) this.unconfirmed.set(partitionKey(o.topic, o.partition), o);
      },
      untilVisible: (offsets) => this.committedVisible(offsets),
      batchLimitOf: (topic) => this.recordLimitOf(topic)?.bytes,
      onUnknownTopic: (topics) => this.createDeletedAgain(topics),
      onMessageTooLarge: async (topics) => void (await this.readRecordLimitsAgain(topics)),
      requestLimit: () => this.requestLimit?.bytes,
      onConnectionClosed: async () => void (await this.readRequestLimit()),
      onInvalidTimestamp: (topics) => this.readTimestampWindows(topics),
    });
    this.registryJournal = new KafkaJournal(this, registryTopic(options.deployment), {
      issued: (highest) => this.recordHighestSchemaId(highest),
      loaded: (highest) => (this.lostTopics === undefined ? Promise.resolve() : this.recordHighestSchemaId(highest)),
    });
    this.schemaHistoryJournal = new KafkaJournal(this, schemaHistoryTopic(options.deployment));
  }

  /**
   * Connects (retrying with backoff and jitter while the brokers are unreachable, until `signal`
   * aborts or `retry.maxAttempts` is spent), creates Sluice's internal topics, and readies the producer.
   */
  static async open(options: KafkaLogOptions): Promise<KafkaTopicLog> {
    const log = new KafkaTopicLog(options);
    const retry = options.retry ?? DEFAULT_RETRY;
    for (let attempt = 0; ; attempt++) {
      try {
        await Promise.all([log.admin.connect(), log.lookups.connect()]);
        if (log.access !== "read-only") {
          await log.readRequestLimit();
          await log.ensureInternalTopics();
        }
        if (log.access === "capture") await log.producer!.connect();
        log.isReady = true;
        log.logger.info({ brokers: options.config.brokers, transactions: options.config.transactions, access: log.access }, "Kafka topic log connected");
        return log;
      } catch (error) {
        const failure = kafkaError(error, "connect", options.config.brokers);
        const exhausted = retry.maxAttempts !== undefined && attempt + 1 >= retry.maxAttempts;
        if (!failure.retriable || exhausted || options.signal?.aborted) {
          if (!(error instanceof SluiceError && error.code === INTERNAL_TOPIC_LOST)) log.logger.error({ brokers: options.config.brokers, err: failure.toLog() }, "cannot connect to Kafka");
          // The look at the deployment's topics before creating an internal one may have connected a reader and a producer.
          const reader = log.reader;
          log.reader = null;
          await Promise.all([
            log.admin.disconnect().catch(() => undefined),
            log.lookups.disconnect().catch(() => undefined),
            reader?.close().catch(() => undefined),
            log.identityProducer?.then((producer) => producer.disconnect()).catch(() => undefined),
          ]);
          throw failure;
        }
        const delayMs = backoffDelay(retry, attempt);
        log.logger.warn({ brokers: options.config.brokers, err: failure.toLog(), attempt: attempt + 1, delayMs }, "Kafka unreachable; retrying");
        await sleep(delayMs, undefined, options.signal ? { signal: options.signal } : undefined).catch(() => undefined);
      }
    }
  }

  ready(): boolean {
    return this.isReady && !this.closed && this.adminProblem === null;
  }

  /** What the log waits for while not ready: the broker error of its last failed request. */
  waitingFor(): string | null {
    if (this.closed) return "the Kafka topic log is closed";
    if (this.ready()) return null;
    return this.producerProblem ?? this.adminProblem ?? `connecting to Kafka ${this.config.brokers.join(",")}`;
  }

  async createTopic(spec: TopicSpec, creation?: TopicCreation): Promise<void> {
    await this.declareTopic(spec, false, creation);
  }

  /**
   * createTopic; true when the topic was created, false when one that exists was adopted. A data topic created whose
   * identity was recorded before existed and was deleted (while capture wrote to it: `whileWriting`; else while Sluice
   * was stopped, met at the restart's first record for it): warned, and told to onTopicRecreated, so that its table is read again
   * (toldRecreated: not when `creation` says a snapshot writes every row into it).
   */
  private async declareTopic(spec: TopicSpec, whileWriting = false, creation?: TopicCreation): Promise<boolean> {
    this.assertWritable("create topic");
    validateSpec(spec);
    const problem = kafkaTopicNameProblem(spec.name);
    if (problem !== null) throw new SluiceError(`topic ${JSON.stringify(spec.name)}: ${problem}`, { code: TOPIC_NAME_INVALID, context: { component: "kafka", topic: spec.name } });
    if (isInternalTopic(this.deployment, spec.name)) {
      const existing = await this.describeTopic(spec.name);
      if (!existing) {
        await this.warnLostParking(spec.name);
        return this.createNew([spec]);
      }
      await this.adopt(spec, existing);
      return false;
    }
    // The identity goes in first: a sink that sees the new topic then also sees its new identity. A topic with none recorded
    // gets a new one whether it exists or not, so that one is written while the topic is described.
    const [described, unrecorded] = await Promise.allSettled([this.describeTopic(spec.name), this.recordTopicIdIfNone(spec.name)]);
    if (described.status === "rejected") throw described.reason;
    if (unrecorded.status === "rejected") throw unrecorded.reason;
    const existing = described.value;
    if (existing) {
      if (unrecorded.value !== null) this.logger.info({ topic: spec.name, topicId: unrecorded.value }, "topic identity recorded for an existing topic");
      await this.adopt(spec, existing);
      return false;
    }
    // A topic created again (its former identity recorded) gets a new one.
    const formerlyRecorded = unrecorded.value === null;
    const id = unrecorded.value ?? (await this.writeTopicId(spec.name));
    this.logger.info({ topic: spec.name, topicId: id }, "topic identity drawn");
    try {
      const created = await this.createNew([spec]);
      if (created && formerlyRecorded) this.toldRecreated(spec.name, whileWriting, creation);
      return created;
    } catch (error) {
      // A legal name the broker refuses collides with a topic whose name differs only in "." and "_" (one name in Kafka's metrics).
      if (!isInvalidTopicName(error)) throw error;
      throw new SluiceError(`Kafka refused topic ${JSON.stringify(spec.name)} (${error instanceof Error ? error.message : String(error)}): a topic whose name differs from it only in "." and "_" exists, and Kafka refuses names that collide so`, {
        code: TOPIC_NAME_INVALID,
        context: { component: "kafka", topic: spec.name },
        cause: error,
      });
    }
  }

  /**
   * Topics that need no identity (Sluice's internal topics): described at once, and those missing
   * created in one CreateTopics request (one after another, each creation took 30-45 ms of the
   * broker's controller; a first start waited for five).
   */
  private async createInternalTopics(specs: readonly TopicSpec[], beforeCreating: (missing: readonly string[]) => Promise<void> = async () => undefined): Promise<void> {
    this.assertWritable("create topic");
    for (const spec of specs) validateSpec(spec);
    // Every request settles before one fails the open, so a retry of the open never overlaps them.
    const described = await Promise.allSettled(specs.map((spec) => this.describeTopic(spec.name)));
    const failed = described.find((d) => d.status === "rejected");
    if (failed) throw failed.reason;
    const missing: TopicSpec[] = [];
    const adopting: Promise<void>[] = [];
    for (const [i, spec] of specs.entries()) {
      const existing = (described[i] as PromiseFulfilledResult<TopicSpec | undefined>).value;
      if (existing) adopting.push(this.adopt(spec, existing));
      else missing.push(spec);
    }
    // Adopted together (a few internal topics, each at most one offsets request and one short read), all settled first.
    const adopted = await Promise.allSettled(adopting);
    const refused = adopted.find((a) => a.status === "rejected");
    if (refused) throw refused.reason;
    await beforeCreating(missing.map((spec) => spec.name));
    if (missing.length === 0) return;
    if (await this.createNew(missing)) return;
    // Another process created one of them meanwhile: each is described again, and checked as an existing topic.
    const again = await Promise.allSettled(missing.map((spec) => this.describeTopic(spec.name)));
    for (const [i, spec] of missing.entries()) {
      const outcome = again[i]!;
      if (outcome.status === "rejected") throw outcome.reason;
      if (!outcome.value) throw new SluiceError(`topic "${spec.name}" was neither created nor found in Kafka ${this.config.brokers.join(",")}`, { code: "TOPIC_NOT_FOUND", context: { component: "kafka", topic: spec.name } });
      await this.adopt(spec, outcome.value);
    }
  }

  /** Takes an existing topic as it is: its layout must be the spec's; a different retention or record limit is only reported. */
  private async adopt(spec: TopicSpec, existing: TopicSpec): Promise<void> {
    const { partitions, layout } = await this.partitionsToWrite(spec, existing);
    assertSameLayout(spec, { ...existing, partitions: layout }, this.policyFix(spec, existing, layout));
    if (!spec.compacted && (existing.retentionMs !== spec.retentionMs || existing.retentionBytes !== spec.retentionBytes)) {
      this.logger.warn({ topic: spec.name, existing: { retentionMs: existing.retentionMs, retentionBytes: existing.retentionBytes }, configured: { retentionMs: spec.retentionMs, retentionBytes: spec.retentionBytes } }, "topic exists with a different retention; Sluice leaves it as it is (change it with kafka-configs)");
    }
    const limit = this.describedLimits.get(spec.name);
    if (limit) this.recordLimits.set(spec.name, limit);
    if (spec.maxRecordBytes && (existing.maxRecordBytes ?? 0) < spec.maxRecordBytes) {
      // Kafka's AlterConfigs would reset the topic's other settings, so Sluice only says what to run.
      this.logger.warn(
        { topic: spec.name, existingMaxMessageBytes: existing.maxRecordBytes, configuredMaxRecordBytes: spec.maxRecordBytes, fix: `kafka-configs.sh --bootstrap-server ${this.config.brokers[0]} --alter --entity-type topics --entity-name ${spec.name} --add-config max.message.bytes=${spec.maxRecordBytes}` },
        "topic exists with a smaller max.message.bytes than topics.max_record_bytes: records between the two are refused by Kafka; raise it with the command in `fix`",
      );
    }
    if (spec.maxRecordBytes && limit?.config === "segment.bytes" && limit.bytes < spec.maxRecordBytes) {
      // Kafka refuses a partition's records of one request above it, whatever max.message.bytes says.
      this.logger.warn(
        { topic: spec.name, limit: limit.bytes, setting: limit.setting, configuredMaxRecordBytes: spec.maxRecordBytes, fix: `kafka-configs.sh --bootstrap-server ${this.config.brokers[0]} --alter --entity-type topics --entity-name ${spec.name} --add-config segment.bytes=${raisedConfigValue("segment.bytes", spec.maxRecordBytes, existing.retentionBytes)}` },
        `topic exists with a segment.bytes (${limit.setting}) smaller than topics.max_record_bytes: a change whose record is between the two halts its table; raise it with the command in \`fix\``,
      );
    }
    this.partitionCounts.set(spec.name, partitions);
    this.declared.set(spec.name, spec);
    this.writtenLayouts.set(spec.name, { partitions, compacted: existing.compacted, retentionMs: existing.retentionMs, retentionBytes: existing.retentionBytes });
  }

  /**
   * For an internal topic whose cleanup.policy alone differs from its spec (changed by hand with kafka-configs): the
   * command that sets it back. Deleting it, the general advice, would lose what it holds (checkpoints, schemas), and no
   * configuration changes its policy. (A data topic's differs also when its table lost its key: components.ts says so.)
   */
  private policyFix(spec: TopicSpec, existing: TopicSpec, partitions: number): string | undefined {
    if (partitions !== spec.partitions || spec.compacted === existing.compacted || !isInternalTopic(this.deployment, spec.name)) return undefined;
    const command = `kafka-configs.sh --bootstrap-server ${this.config.brokers[0]} --alter --entity-type topics --entity-name ${spec.name} --add-config cleanup.policy=${spec.compacted ? "compact" : "delete"}`;
    return `Its cleanup.policy was changed (by hand?): set it back with ${command}. Do not delete it: it holds this deployment's own state`;
  }

  /**
   * A produce Kafka answered UNKNOWN_TOPIC_OR_PARTITION: a data topic of `topics` this log declared and Kafka no longer
   * has (an operator deleted it while capture wrote) is created again as declared, as a restart would (a new identity, so
   * sinks read it from its first record; it holds only the changes from here on), and the listeners of onTopicRecreated
   * are told, so that its table is read again. A deleted internal topic, or one found with another layout, is waited
   * for, the write retried (unknownTopicAction says why and what to do).
   */
  private async createDeletedAgain(topics: readonly string[]): Promise<void> {
    for (const name of topics) {
      const spec = this.declared.get(name);
      if (spec === undefined) continue;
      const written = this.writtenLayouts.get(name) ?? writtenLayoutOf(spec);
      if (unknownTopicAction(this.deployment, name, written, await this.describeTopic(name)) === "write") continue;
      // Described as missing, it may still be there (a broker's stale answer): told only when it is created now (declareTopic).
      await this.declareTopic(spec, true);
    }
  }

  private toldRecreated(name: string, whileWriting: boolean, creation?: TopicCreation): void {
    const when = whileWriting ? "while capture wrote to it" : "while Sluice was stopped (its identity was recorded, the topic is gone)";
    if (creation?.snapshot === "whole-table") {
      // The initial snapshot's first read (a first start after the topics were deleted, docs/operations.md "Start the history
      // again"): every row of the table goes into the new topic, so nothing is missing and nothing is asked.
      this.logger.info({ topic: name }, `topic ${name} was deleted ${when} and is created again by a snapshot reading its whole table: every row goes into it`);
      return;
    }
    if (creation?.snapshot === "online") {
      // An online snapshot's read: its task reads the whole table, or only a WHERE condition's rows; the listeners look at it.
      this.logger.info({ topic: name }, `topic ${name} was deleted ${when} and is created again by an online snapshot's read of its table`);
      for (const listener of this.recreatedListeners) listener(name);
      return;
    }
    this.logger.warn(
      { topic: name, code: TOPIC_DELETED },
      `topic ${name} was deleted ${when} (by hand?): created again as configured; it holds only the changes from here on, so its table is read again (an online snapshot is requested), and sinks read it from its first record (docs/operations.md, "A sink refuses to start")`,
    );
    for (const listener of this.recreatedListeners) listener(name);
  }

  /** Tells `listener` each data topic this log created again after it was deleted while capture wrote to it (createDeletedAgain). */
  onTopicRecreated(listener: (topic: string) => void): () => void {
    this.recreatedListeners.add(listener);
    return () => this.recreatedListeners.delete(listener);
  }

  /**
   * The partitions records are spread over: the topic's own count, or the configured one when an operator added partitions
   * (kafka-topics.sh --alter --partitions) that hold no record yet. Keys then stay in the partitions their earlier records are
   * in (spread over the new count, most would move: compaction keeps a key's newest record only within a partition, so a
   * deleted row's older record would outlive its tombstone elsewhere, and readers would lose each key's order). The added
   * partitions stay empty; warned. Likewise when the configured count was raised to the topic's after partitions were added
   * by hand: the last records' keys tell the count they were written with (writtenPartitionCount). Added partitions that
   * hold records cannot be told from a count Sluice wrote with: refused by the layout check as before.
   */
  private async partitionsToWrite(spec: TopicSpec, existing: TopicSpec): Promise<{ partitions: number; layout: number }> {
    const as = (partitions: number, layout = partitions) => ({ partitions, layout });
    // One partition, or fewer than configured: nothing the offsets show changes the count (no request at each adoption).
    if (existing.partitions === 1 || existing.partitions < spec.partitions) return as(existing.partitions);
    const offsets = await this.writtenOffsets(spec, existing);
    if (offsets === null) return as(spec.partitions);
    if (existing.partitions > spec.partitions && offsets.some((o) => o.partition >= spec.partitions && BigInt(o.high) > 0n)) return as(existing.partitions);
    // The layout checked against the config: the configured count where the partitions beyond it are empty.
    const count = Math.min(existing.partitions, spec.partitions);
    const written = await this.writtenPartitionCount(spec.name, offsets, count).catch((error: unknown) => {
      this.guessFailed(spec.name, count, error);
      return count;
    });
    if (written === existing.partitions) return as(written);
    const raised = written < spec.partitions ? ` (topics.partitions raised to ${spec.partitions} after partitions were added by hand?)` : " (added by hand?)";
    this.logger.warn(
      { topic: spec.name, partitions: existing.partitions, configuredPartitions: spec.partitions, writtenPartitions: written, code: "TOPIC_PARTITIONS_ADDED" },
      `topic ${spec.name} has ${existing.partitions} partitions, ${spec.partitions} configured, and its records were written over ${written} of them: partitions ${written} to ${existing.partitions - 1} hold no record${raised}: ` +
        `Sluice writes ${written} of them as before, so each key's records stay in one partition, and leaves the others empty; sinks read every partition`,
    );
    return as(written, count);
  }

  /**
   * The topic's offsets. Needed to tell whether partitions beyond the configured count hold records (a failure fails the
   * adoption, to be retried); where the counts are equal they serve only writtenPartitionCount's guess: null on a failure,
   * warned, and the configured count is written, as before that guess.
   */
  private async writtenOffsets(spec: TopicSpec, existing: TopicSpec): Promise<TopicOffsets[] | null> {
    const fetch = () => this.call(`fetch offsets of ${spec.name}`, () => this.admin.fetchTopicOffsets(spec.name));
    if (existing.partitions > spec.partitions) return fetch();
    return fetch().catch((error: unknown) => {
      this.guessFailed(spec.name, spec.partitions, error);
      return null;
    });
  }

  private guessFailed(topic: string, count: number, error: unknown): void {
    this.logger.warn(
      { topic, partitions: count, err: error instanceof SluiceError ? error.toLog() : String(error) },
      `topic ${topic}: its last records could not be read to tell which partition count they were written with; writing ${count} partitions as configured`,
    );
  }

  /**
   * The count the topic's keys were spread over: `count`, unless its last partitions hold no record and the last records
   * of the others (a few offsets each) have keys that `count` would put elsewhere; then the smallest count above the last
   * partition written that puts each of them where it is. `count` when none does (another producer wrote there).
   */
  private async writtenPartitionCount(topic: string, offsets: readonly TopicOffsets[], count: number): Promise<number> {
    // A partition whose records retention deleted was still written: its end counts, its start is where a read may begin.
    const highest = Math.max(-1, ...offsets.filter((o) => BigInt(o.high) > 0n).map((o) => o.partition));
    if (highest < 0 || highest >= count - 1) return count;
    const keys: { key: Uint8Array; partition: number }[] = [];
    const ranges = lastRanges(offsets, WRITTEN_KEYS_SAMPLED);
    // One read of every partition's last records (fetched together), not one read per partition.
    if (ranges.length > 0) {
      await this.partitionReader().each(topic, ranges, (partition, records) => {
        for (const record of records) if (record.key) keys.push({ key: record.key, partition });
      }, SAMPLE_FETCH);
    }
    const fits = (partitions: number) => keys.every((k) => partitionForKey(k.key, partitions) === k.partition);
    if (fits(count)) return count;
    for (let partitions = highest + 1; partitions < count; partitions++) if (fits(partitions)) return partitions;
    return count;
  }

  /**
   * Creates the topics in one request and waits for their leaders. False when more than one was
   * asked and one of them already existed (Kafka still creates the others); their leaders are waited for either way.
   */
  private async createNew(specs: readonly TopicSpec[]): Promise<boolean> {
    const created = await this.call("create topic", () =>
      this.admin.createTopics({
        // Waited for below: kafkajs's own wait sleeps 100 ms before its first look (most of a creation's ~150 ms).
        waitForLeaders: false,
        topics: specs.map((spec) => ({
          topic: spec.name,
          numPartitions: spec.partitions,
          replicationFactor: this.config.replication_factor,
          configEntries: [
            { name: "cleanup.policy", value: cleanupPolicy(spec) },
            { name: "retention.ms", value: String(spec.retentionMs ?? -1) },
            { name: "retention.bytes", value: String(spec.retentionBytes ?? -1) },
            ...(spec.compacted && spec.tombstoneRetentionMs !== undefined ? [{ name: "delete.retention.ms", value: String(spec.tombstoneRetentionMs) }] : []),
            ...(spec.compacted && spec.minCompactionLagMs !== undefined ? [{ name: "min.compaction.lag.ms", value: String(spec.minCompactionLagMs) }] : []),
            ...(frequentlyWritten(this.deployment).includes(spec.name) ? FREQUENT_COMPACTION : []),
            { name: "max.message.bytes", value: String(this.maxMessageBytes(spec)) },
            ...this.segmentBytes(spec),
          ],
        })),
      }),
    );
    const waits = await Promise.allSettled(specs.map((spec) => this.call("wait for the new topic's leaders", () => this.untilLeaders(spec.name))));
    const failed = waits.find((w) => w.status === "rejected");
    if (failed) throw failed.reason;
    // A single topic that existed already: a creation that raced another process's counts as this one's (as before the batches).
    if (!created && specs.length > 1) return false;
    for (const spec of specs) {
      this.partitionCounts.set(spec.name, spec.partitions);
      this.declared.set(spec.name, spec);
      this.writtenLayouts.set(spec.name, writtenLayoutOf(spec));
      this.recordLimits.set(spec.name, ownRecordLimit(spec.name, this.maxMessageBytes(spec)));
      this.retentionBytes.set(spec.name, writtenLayoutOf(spec).retentionBytes);
      this.logger.info({ topic: spec.name, partitions: spec.partitions, cleanupPolicy: cleanupPolicy(spec), replicationFactor: this.config.replication_factor }, "topic created");
    }
    announceTopicCreated(`kafka:${this.deployment}`);
    return true;
  }

  /**
   * A new topic's max.message.bytes: its spec's, else topics.max_record_bytes (Sluice's internal
   * topics, the key store, the erasure audit). Without one a topic takes the broker's default
   * (about 1 MiB), and a partition's batch of up to batch_bytes above it was refused whole, for good.
   */
  private maxMessageBytes(spec: TopicSpec): number {
    return spec.maxRecordBytes ?? this.config.max_record_bytes;
  }

  /**
   * A new topic's segment.bytes, where the brokers' log.segment.bytes (their lowest, read at open) is below its
   * max.message.bytes: Kafka refuses a partition's records of one request above the segment size whatever
   * max.message.bytes says, so a record the topic is made to take would be refused. Set as Sluice advises it (room for
   * 16 such records, Kafka's default 1 GiB at least, within retention.bytes); else the topic takes the brokers' own.
   */
  private segmentBytes(spec: TopicSpec): { name: string; value: string }[] {
    const needed = this.maxMessageBytes(spec);
    const brokers = this.brokerLimits.logSegmentBytes;
    if (brokers === undefined || brokers >= needed) return [];
    return [{ name: "segment.bytes", value: String(raisedConfigValue("segment.bytes", needed, writtenLayoutOf(spec).retentionBytes)) }];
  }

  onTopicCreated(listener: () => void): () => void {
    return onTopicCreated(`kafka:${this.deployment}`, listener);
  }

  /**
   * Resolves once every partition of a topic just created has a leader that serves it (until then
   * produce and offset requests are refused): looks at once, then every 10 ms growing to 100 ms.
   * The metadata names a partition's leader a moment before that broker serves the partition, so
   * the wait ends when the leaders answer an offset request, not at the metadata.
   */
  private async untilLeaders(topic: string): Promise<void> {
    const deadline = performance.now() + LEADERS_WITHIN_MS;
    let lastRefusal: unknown;
    for (let waitMs = 10; ; waitMs = Math.min(100, waitMs * 2)) {
      if (this.closed) throw closedError();
      try {
        const { topics } = await this.lookups.fetchTopicMetadata({ topics: [topic] });
        const partitions = topics[0]?.partitions ?? [];
        if (partitions.length > 0 && partitions.every((p) => p.leader >= 0)) {
          await this.admin.fetchTopicOffsets(topic).catch(async (error: unknown) => {
            // kafkajs refreshes every topic this admin has looked up before it asks: one deleted since by another
            // process fails the request as unknown too (see admin), and a new admin tells which at the next look.
            if (isUnknownTopic(error)) await this.renewAdmin();
            throw error;
          });
          return;
        }
      } catch (error) {
        // The broker answering may not know the new topic or its leader for a moment, nor serve the partitions it leads.
        const type = (error as { type?: string }).type;
        if (!isUnknownTopic(error) && type !== "LEADER_NOT_AVAILABLE" && type !== "NOT_LEADER_FOR_PARTITION") throw error;
        lastRefusal = error;
      }
      if (performance.now() > deadline) {
        throw new ConnectionError(`Kafka topic ${topic} still has a partition without a leader that serves it ${LEADERS_WITHIN_MS / 1000} s after it was created (brokers ${this.config.brokers.join(",")}); the broker is slow or short of replicas`, { code: "KAFKA_UNAVAILABLE", context: { component: "kafka", topic }, ...(lastRefusal === undefined ? {} : { cause: lastRefusal }) });
      }
      await sleep(waitMs);
    }
  }

  /**
   * Kafka refused a batch of `topics` as too large: their max.message.bytes read again (an operator may have lowered one
   * with kafka-configs while Sluice ran), kept for the batches and records that follow; answers the ones now lower.
   * Also before a table halted over a topic's limit is retried (`sluice halted retry`): the limit may have been raised.
   */
  async readRecordLimitsAgain(topics: readonly string[]): Promise<LoweredLimit[]> {
    const lowered: LoweredLimit[] = [];
    // The broker leading a refused partition may have a lower message.max.bytes or log.segment.bytes than the one that
    // answers the topic's describe: the brokers' own are read again too (best effort).
    await this.readRequestLimit();
    for (const topic of topics) {
      const now = (await this.describeTopic(topic)) ? this.describedLimits.get(topic) : undefined;
      if (now === undefined) continue;
      const was = this.recordLimits.get(topic)?.bytes ?? null;
      this.recordLimits.set(topic, now);
      if (was === null || now.bytes < was) lowered.push(this.foundLower({ topic, was, now: now.bytes, setting: now.setting }));
    }
    return lowered;
  }

  /**
   * Every limit a read finds lower than known is told to the producer here and only here, whichever read found it (a refusal's, a
   * dropped request's, a halted table's retry): a record queued before it and over it is then refused for its table,
   * not sent alone and dropped for ever (a later read finds nothing lower).
   */
  private foundLower<T extends LoweredLimit | RequestLimitLowered>(limit: T): T {
    this.producer?.limitLowered(limit);
    return limit;
  }

  /**
   * The brokers' smallest socket.request.max.bytes, read at open, when a broker closed a produce's connection (as it
   * does on a request above it, which kafkajs retries as a network failure for ever) and when Kafka refused a batch as
   * too large: requests and records then stay within it. Answers it when lower than the one known, or none was. The
   * lowest message.max.bytes and log.segment.bytes of the brokers are read with it (brokerLimits), for the topics that
   * take theirs. Best effort: brokers that do not describe their configs to this user (no DESCRIBE_CONFIGS on the
   * cluster) leave them unknown.
   */
  async readRequestLimit(): Promise<RequestLimitLowered | undefined> {
    let smallest: number | undefined;
    try {
      const { brokers } = await this.request(() => this.admin.describeCluster());
      const resources = brokers.map((b) => ({ type: kafkajs.ConfigResourceTypes.BROKER, name: String(b.nodeId), configNames: BROKER_LIMIT_CONFIGS }));
      const described = await this.request(() => this.admin.describeConfigs({ includeSynonyms: false, resources }));
      this.brokerLimits = brokerLimitsOf(described.resources);
      smallest = this.brokerLimits.socketRequestMaxBytes;
    } catch (error) {
      // Once at warn: unknown, a request over it is refused only by a closed connection (read again then, at most every 30 s).
      const level = this.requestLimitUnreadSaid ? "debug" : "warn";
      this.requestLimitUnreadSaid = true;
      this.logger[level](
        { err: error, brokers: this.config.brokers },
        "could not read the brokers' socket.request.max.bytes (DescribeConfigs on the cluster: grant it with kafka-acls.sh --add --allow-principal User:<sluice's user> --operation DescribeConfigs --cluster); requests are kept within 64 MiB beyond one batch until it is read, which is tried again when a broker closes a produce's connection",
      );
      return undefined;
    }
    if (smallest === undefined) return undefined;
    const was = this.requestLimit?.bytes ?? null;
    this.requestLimit = requestRecordLimit(smallest);
    return was === null || this.requestLimit.bytes < was ? this.foundLower({ was, now: this.requestLimit.bytes, setting: this.requestLimit.setting }) : undefined;
  }

  /** Kafka refused a batch of `topics` for its timestamps: how old a record each of them takes, read again. */
  private async readTimestampWindows(topics: readonly string[]): Promise<Map<string, number>> {
    for (const topic of topics) await this.describeTopic(topic);
    return new Map(topics.flatMap((topic) => (this.timestampWindows.has(topic) ? [[topic, this.timestampWindows.get(topic)!] as const] : [])));
  }

  maxRecordBytes(topic: string): number | undefined {
    return this.recordLimitOf(topic)?.bytes;
  }

  recordLimitOf(topic: string): RecordLimit | undefined {
    return tighter(this.recordLimits.get(topic), this.requestLimit);
  }

  async deleteTopic(name: string): Promise<void> {
    this.assertWritable("delete topic");
    try {
      await this.request(() => this.admin.deleteTopics({ topics: [name], timeout: 30_000 }));
    } catch (error) {
      if ((error as { type?: string }).type !== "UNKNOWN_TOPIC_OR_PARTITION") throw kafkaError(error, "delete topic", this.config.brokers);
    }
    this.partitionCounts.delete(name);
  }

  async listTopics(names?: readonly string[]): Promise<TopicSpec[]> {
    const specs: TopicSpec[] = [];
    const existing = await this.topicNames();
    for (const name of names ? existing.filter((n) => names.includes(n)) : existing) {
      const spec = await this.describeTopic(name);
      // The layout and retention, as the embedded log lists them; the size limit is the broker's business.
      if (spec) {
        const { maxRecordBytes: _limit, tombstoneRetentionMs: _tombstones, minCompactionLagMs: _lag, ...layout } = spec;
        specs.push(layout);
      }
    }
    return specs;
  }

  async topicNames(): Promise<string[]> {
    return (await this.call("list topics", () => this.admin.listTopics())).filter((n) => !n.startsWith("__")).sort();
  }

  /**
   * Resolves once durable (committed), without waiting until readers see the records: this
   * process's own reads wait for that (see partitionOffsets). Overlapping calls are stored in
   * call order and resolve in that order; a call with a checkpoint of a source whose earlier
   * write failed is refused until that checkpoint is read again.
   */
  produce(records: readonly ProducedRecord[], checkpoint?: Checkpoint): Promise<void> {
    // Not an async function: suspended until durable, it would keep every ProducedRecord of the
    // call alive that long (the messages made from them are what the producer needs).
    try {
      if (this.closed) throw closedError();
      const producer = this.assertWritable("produce");
      const accepted = this.accepting.then(() => this.enqueue(producer, records, checkpoint));
      this.accepting = accepted.catch(() => undefined);
      return accepted.then(({ durable }) => durable);
    } catch (error) {
      return Promise.reject(error as Error);
    }
  }

  private async enqueue(producer: BatchingProducer, records: readonly ProducedRecord[], checkpoint: Checkpoint | undefined): Promise<{ durable: Promise<void> }> {
    try {
      const messages = await this.messagesOf(records);
      // Records of their own (a later checkpoint of the unit does not replace them): with the records, so before the checkpoint or in its transaction.
      if (checkpoint) for (const entry of entryRecords(checkpoint)) messages.push(await this.checkpointTopicMessage(entry.key, entry.value));
      return await producer.enqueue(messages, checkpoint ? { source: checkpoint.source, message: await this.checkpointMessage(checkpoint) } : undefined);
    } catch (error) {
      // Refused before it reached the producer (e.g. an unknown topic): a later checkpoint of the source must not skip these records.
      if (checkpoint) producer.markFailed(checkpoint.source, error as Error);
      throw error;
    }
  }

  private async messagesOf(records: readonly ProducedRecord[]): Promise<OutgoingMessage[]> {
    const messages: OutgoingMessage[] = [];
    let limitTopic: string | undefined;
    let limit = Number.POSITIVE_INFINITY;
    let recordLimit: RecordLimit | undefined;
    // The records of a transaction share their timestamp: its text is made once a run.
    let timestamp = Number.NaN;
    let timestampText = "";
    let windowTopic: string | undefined;
    // A record's time is its change's commit time at the source; one ahead of now (a session's SET TIMESTAMP, a source
    // clock ahead of this one) is written at now: the broker refuses a time more than message.timestamp.after.max.ms
    // (an hour by default) ahead of its clock, and capture could never get past that change.
    const now = Date.now();
    // An indexed loop: once a batch, a for-of allocated an iterator result per record (runtime/arrays.ts).
    for (let r = 0; r < records.length; r++) {
      const record = records[r]!;
      // Known after a topic's first record: no await (a microtask) per record.
      const partitions = this.partitionCounts.get(record.topic) ?? (await this.partitionCount(record.topic));
      // A topic's change matters only where some topic has a window (rare): else a run of one timestamp is one text.
      if (record.timestamp !== timestamp || (this.timestampWindows.size > 0 && record.topic !== windowTopic)) {
        timestamp = record.timestamp;
        windowTopic = record.topic;
        // Likewise older than the topic's message.timestamp.before.max.ms (a capture catching up after a long stop).
        const window = this.timestampWindows.get(record.topic);
        timestampText = String(timestamp > now || (window !== undefined && tooOld(timestamp, window, now)) ? now : timestamp);
      }
      const key = record.key === null ? null : toBuffer(record.key);
      const value = record.value === null ? null : toBuffer(record.value);
      const partition = partitionForKey(record.key, partitions);
      const size = estimateSize(record);
      if (record.topic !== limitTopic) {
        limitTopic = record.topic;
        recordLimit = this.recordLimitOf(record.topic);
        limit = recordLimit?.bytes ?? Number.POSITIVE_INFINITY;
      }
      // estimateSize + 64 is never below recordBytes (the framing capture counts), which is only worked out near the limit.
      if (size + 64 > limit && recordBytes(record) > limit) throw this.recordTooLarge(record, recordLimit!);
      // One object per record, held until its transaction commits.
      messages.push(
        record.headers
          ? { topic: record.topic, key, value, timestamp: timestampText, partition, size, headers: Object.fromEntries(Object.entries(record.headers).map(([k, v]) => [k, toBuffer(v)])) }
          : { topic: record.topic, key, value, timestamp: timestampText, partition, size },
      );
    }
    return messages;
  }

  /**
   * Starts a term of capture under this log's transactional id (this process was granted the
   * capture lease): registers the id anew, so a former leader that froze or lost its network, and
   * may wake up before it learns it lost the lease, is fenced before the checkpoint is read. Its
   * open transaction is aborted; its next one refused.
   */
  async claimWriter(): Promise<void> {
    if (this.closed) throw closedError();
    if (!this.producer || !this.config.transactions) return;
    try {
      await this.producer.reregister();
    } catch (error) {
      throw kafkaError(error, "connect producer", this.config.brokers);
    }
  }

  /**
   * The source's last committed checkpoint. With transactions, the producer registers its
   * transactional id first: Kafka then finishes what a previous holder of it (this capture before
   * a kill -9) committed, writing its commit markers, and aborts what it left open, so the
   * checkpoint read is the last one committed, which the source may already have acknowledged.
   */
  async readCheckpoint(source: string): Promise<Checkpoint | null> {
    if (this.closed) throw closedError();
    this.producer?.forgetFailure(source);
    if (this.producer && this.config.transactions) {
      try {
        await this.producer.ensureConnected();
      } catch (error) {
        throw kafkaError(error, "connect producer", this.config.brokers);
      }
    }
    const fold = new CheckpointFold(source);
    await this.foldTopic(checkpointTopic(this.deployment), (record) => fold.add(record));
    return fold.checkpoint(checkpointTopic(this.deployment));
  }

  async topicIds(topics: readonly string[]): Promise<Map<string, string>> {
    const recorded = await this.readTopicIds();
    return new Map(topics.flatMap((topic) => (recorded.has(topic) ? [[topic, recorded.get(topic)!] as const] : [])));
  }

  /** Records a new identity for a topic that has none (about to be created, or created before Sluice recorded them, or by someone else): the identity, or null when one is recorded. */
  private async recordTopicIdIfNone(topic: string): Promise<string | null> {
    this.recordedTopicIds ??= await this.readTopicIds();
    return this.recordedTopicIds.has(topic) ? null : this.writeTopicId(topic);
  }

  /** Writes a new identity for `topic` (after recordTopicIdIfNone loaded those recorded) and returns it. */
  private async writeTopicId(topic: string): Promise<string> {
    const id = randomUUID();
    await this.call("record topic identity", async () => {
      await (await this.plainProducer()).send({ topic: topicIdsTopic(this.deployment), acks: -1, messages: [{ key: topic, value: id, partition: 0 }] });
    });
    (this.recordedTopicIds ??= new Map()).set(topic, id);
    return id;
  }

  /** The producer for writes outside any transaction (topic identities, instance announcements): never fences or waits for the capture's. */
  private plainProducer(): Promise<Producer> {
    // One connection for every caller: two first callers at once each made a producer, and the first stayed connected for good.
    if (this.identityProducer) return this.identityProducer;
    const producer = this.kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false });
    const connected = producer.connect().then(
      () => producer,
      async (error: unknown) => {
        // The next caller tries again.
        if (this.identityProducer === connected) this.identityProducer = null;
        await producer.disconnect().catch(() => undefined);
        throw error;
      },
    );
    this.identityProducer = connected;
    return connected;
  }

  /**
   * Writes `value` (null: a tombstone) under `key` to the compacted topic of instance
   * announcements, outside any transaction: a standby capture process announces itself without
   * touching the capture's transactional id.
   */
  async announce(key: string, value: string | null): Promise<void> {
    this.assertWritable("announce this instance");
    await this.call("announce this instance", async () => {
      await (await this.plainProducer()).send({ topic: instancesTopic(this.deployment), acks: -1, messages: [{ key, value, partition: 0 }] });
    });
  }

  /**
   * A lease through a consumer group on `<deployment>.sluice.capture-lease` (kafka-lease.ts): the
   * capture of a set of sources runs in the one process holding it.
   */
  captureLease(options: { group: string; holder: string; sessionTimeoutMs: number; onChange: (held: boolean) => void }): KafkaLease {
    return new KafkaLease({ kafka: this.memberClient(), topic: captureLeaseTopic(this.deployment), logger: this.logger, ...options });
  }

  /**
   * The client of this process's consumer group members (the capture lease, sinks): its client id
   * ends with this process (runtime/local-process.ts), which the group's coordinator tells of every
   * member in any state, so a process restarted after kill -9 can tell its predecessor's members
   * and remove them instead of waiting for their sessions to time out (gone-members.ts).
   */
  private memberClient(): Kafka {
    const token = localProcessToken();
    this.memberKafka ??= token === null ? this.kafka : createKafkaClient({ ...this.config, client_id: `${this.config.client_id}.${processTokenText(token)}` }, this.logger, this.socketFactory);
    return this.memberKafka;
  }

  private async readTopicIds(): Promise<Map<string, string>> {
    const ids = new Map<string, string>();
    try {
      await this.foldTopic(topicIdsTopic(this.deployment), (record) => {
        if (!record.key) return;
        const topic = Buffer.from(record.key).toString("utf8");
        if (record.value === null) ids.delete(topic);
        else ids.set(topic, Buffer.from(record.value).toString("utf8"));
      });
    } catch (error) {
      if (error instanceof SluiceError && error.code === "TOPIC_NOT_FOUND") return new Map();
      throw error;
    }
    return ids;
  }

  async consumer(group: string, topics: readonly string[], options: ConsumerOptions = {}): Promise<TopicConsumer> {
    if (this.closed) throw closedError();
    for (const topic of topics) await this.partitionCount(topic);
    const consumer = await this.request(async () => {
      const kafka = this.memberClient();
      // A killed process of this machine (this one before a restart) would keep its partitions until its session times out,
      // and so would this log's own consumers of the group that failed. Only member ids this log's consumers had are its
      // own: another process's members (several processes running one sink) are never taken for them.
      const former = this.formerMembers.get(group);
      // Looked at again when the look fails and this log knows former members (Kafka just back: its coordinator may still load the group).
      const attempts = former === undefined ? 1 : FORMER_MEMBER_LOOKS;
      await removeGoneMembers(kafka, group, (member) => former?.has(member.memberId) === true || isGoneLocalProcess(processTokenInText(member.clientId)), this.logger, attempts);
      const created = await KafkaPullConsumer.create({
        kafka,
        admin: () => this.admin,
        brokers: this.config.brokers,
        group,
        topics,
        logger: this.logger,
        maxRecordBytes: this.config.max_record_bytes,
        ...(this.readerLimits ? { limits: this.readerLimits } : {}),
        offsetRanges: (topic) => this.partitionOffsets(topic),
        ...(options.fetchWaitMs === undefined ? {} : { fetchWaitMs: options.fetchWaitMs }),
      });
      // Its join completed: the group's former members rejoined or were dropped.
      this.formerMembers.delete(group);
      // The log was closed while the consumer joined its group: nothing would close it.
      if (this.closed) {
        await created.close();
        throw closedError();
      }
      return created;
    });
    this.consumers.add(consumer);
    const close = consumer.close.bind(consumer);
    consumer.close = async () => {
      this.consumers.delete(consumer);
      this.rememberFormerMembers(group, consumer.groupMembersSeen().own);
      await close();
    };
    return consumer;
  }

  private rememberFormerMembers(group: string, members: readonly string[]): void {
    if (members.length === 0) return;
    const former = this.formerMembers.get(group) ?? new Set<string>();
    for (const member of members) former.add(member);
    keepNewest(former, RECENT_OWN_MEMBERS);
    // Most recent last: a group never opened again (a reader's own group) is dropped after RECENT_OWN_MEMBERS others.
    this.formerMembers.delete(group);
    this.formerMembers.set(group, former);
    for (const [oldest] of this.formerMembers) {
      if (this.formerMembers.size <= RECENT_OWN_MEMBERS) break;
      this.formerMembers.delete(oldest);
    }
  }

  /**
   * The partitions' offset ranges as read_committed readers see them, including (read-your-writes)
   * every record of this process's transactions committed before the call: while their commit
   * markers are not written yet, it asks again every few milliseconds (up to 10 s; the records are
   * durable either way). Only reads wait for this, never produce calls.
   */
  async partitionOffsets(topic: string): Promise<PartitionOffsets[]> {
    await this.partitionCount(topic);
    const own = [...this.unconfirmed.values()].filter((o) => o.topic === topic);
    const deadline = Date.now() + this.visibleWithinMs;
    for (;;) {
      const offsets = await this.call(`fetch offsets of ${topic}`, () => this.admin.fetchTopicOffsets(topic));
      const ranges = offsets.map((o) => ({ topic, partition: o.partition, start: BigInt(o.low), end: BigInt(o.high) })).sort((a, b) => a.partition - b.partition);
      const hidden = own.filter((o) => (ranges.find((r) => r.partition === o.partition)?.end ?? -1n) <= o.offset);
      for (const o of own) {
        const key = `${topic}\u0000${o.partition}`;
        if (!hidden.includes(o) && this.unconfirmed.get(key) === o) this.unconfirmed.delete(key);
      }
      if (hidden.length === 0) return ranges;
      if (Date.now() > deadline) {
        this.logger.warn({ brokers: this.config.brokers, topic }, `records committed by this process are not visible to readers after ${this.visibleWithinMs / 1000} s; the broker is slow writing transaction markers`);
        for (const o of hidden) if (this.unconfirmed.get(`${topic}\u0000${o.partition}`) === o) this.unconfirmed.delete(`${topic}\u0000${o.partition}`);
        return ranges;
      }
      await sleep(2);
    }
  }

  /**
   * Resolves once read_committed readers see the offsets a transaction just committed (its commit
   * markers are written): until then the commit's callers are not told it is durable, and the next
   * transaction waits (BatchingProducerOptions.untilVisible says why). All their partitions are asked
   * in one ListOffsets request, every few milliseconds; partitionOffsets asked per topic for both
   * ends, two round trips one after the other, on capture's critical path once per transaction.
   * Rejects (retriable) when they are not all seen within visibleWithinMs, failed requests retried
   * meanwhile: the commit's changes are then not acknowledged, and its
   * source reads its checkpoint again. The offsets seen are no longer waited for by this process's
   * reads, nor are those given up on (the reads would only wait for them again).
   */
  private async committedVisible(offsets: readonly WrittenOffset[]): Promise<void> {
    this.stableOffsets ??= new StableOffsets(this.kafka);
    const deadline = Date.now() + this.visibleWithinMs;
    let hidden = offsets;
    let failure: unknown = null;
    let stableEnds: ReadonlyMap<string, bigint> = new Map();
    // Not cut short when the log closes: close() flushes the producer before it closes the stable offsets, and a unit
    // committed during the flush is durable once seen (refusing it would leave its changes unacknowledged at every stop).
    while (hidden.length > 0) {
      try {
        const ends = await this.stableOffsets.stableEnds(hidden);
        stableEnds = ends;
        failure = null;
        const seen = hidden.filter((o) => (ends.get(partitionKey(o.topic, o.partition)) ?? -1n) > o.offset);
        for (const o of seen) this.confirmed(o);
        hidden = hidden.filter((o) => !seen.includes(o));
        if (hidden.length === 0) return;
      } catch (error) {
        failure = error;
      }
      if (Date.now() > deadline) {
        for (const o of hidden) this.confirmed(o);
        const error = commitNotVisibleError({ hidden, stableEnds, failure, brokers: this.config.brokers, transactionalId: this.transactionalId, waitedMs: this.visibleWithinMs });
        this.logger.error({ brokers: this.config.brokers, err: error.toLog() }, "a committed Kafka transaction did not become visible; its changes are not acknowledged");
        throw error;
      }
      await sleep(failure === null ? 2 : VISIBLE_RETRY_MS);
    }
  }

  /** This process's reads no longer wait for the partition's records through `written`. */
  private confirmed(written: WrittenOffset): void {
    const key = partitionKey(written.topic, written.partition);
    if (this.unconfirmed.get(key) === written) this.unconfirmed.delete(key);
  }

  async endOffsets(topic: string): Promise<TopicPartitionOffset[]> {
    return (await this.partitionOffsets(topic)).map(({ partition, end }) => ({ topic, partition, offset: end }));
  }

  async offsetsForTimestamp(topic: string, timestampMs: number): Promise<TopicPartitionOffset[]> {
    await this.partitionCount(topic);
    const offsets = await this.call("fetch offsets by time", () => this.admin.fetchTopicOffsetsByTimestamp(topic, listOffsetsTime(timestampMs)));
    return offsets.map((o) => ({ topic, partition: o.partition, offset: BigInt(o.offset) })).sort((a, b) => a.partition - b.partition);
  }

  async committedOffsets(group: string): Promise<TopicPartitionOffset[]> {
    const topics = await this.call("fetch group offsets", () => this.admin.fetchOffsets({ groupId: group }));
    return topics
      .flatMap(({ topic, partitions }) => partitions.filter((p) => Number(p.offset) >= 0).map((p) => ({ topic, partition: p.partition, offset: BigInt(p.offset) })))
      .sort((a, b) => (a.topic === b.topic ? a.partition - b.partition : a.topic < b.topic ? -1 : 1));
  }

  async setCommittedOffsets(group: string, offsets: readonly TopicPartitionOffset[]): Promise<void> {
    this.assertWritable("set group offsets");
    const moved = offsets.map((o) => ({ topic: o.topic, partition: o.partition, offset: o.offset.toString() }));
    await this.call("set group offsets", () => setGroupOffsets(this.kafka, this.admin, group, moved));
  }

  async groupLag(group: string, topics: readonly string[]): Promise<PartitionLag[]> {
    const committed = await this.committedOffsets(group);
    const lags: PartitionLag[] = [];
    for (const topic of topics) {
      for (const range of await this.partitionOffsets(topic)) {
        const offset = committed.find((c) => c.topic === topic && c.partition === range.partition)?.offset ?? null;
        const from = offset === null || offset < range.start ? range.start : offset;
        lags.push({ topic, partition: range.partition, committed: offset, end: range.end, lag: range.end > from ? range.end - from : 0n });
      }
    }
    return lags;
  }

  async groupActivity(group: string): Promise<GroupActivity> {
    const { groups } = await this.call("describe group", () => this.admin.describeGroups([group]));
    const members = groups[0]?.members ?? [];
    return {
      active: members.length > 0,
      members: members.map((m) => `${m.memberId} (${m.clientHost})`),
      clients: members.map((m) => ({ clientId: m.clientId, host: m.clientHost, heldFor: holdPurpose(m.clientId), memberId: m.memberId })),
    };
  }

  // Kafka's consumer group membership already says which processes run a sink.
  async acquireLease(): Promise<boolean> {
    return true;
  }

  async renewLease(): Promise<boolean> {
    return true;
  }

  async releaseLease(): Promise<void> {}

  /**
   * A member of `group` on the never-written capture-lease topic, its client id marked
   * (kafka-group-hold.ts), also subscribed (paused) to every existing topic the group has offsets
   * of: the coordinator expires at once a stable group's offsets of topics no member subscribes to
   * and last committed longer ago than offsets.retention.minutes (a quiet table's).
   */
  async holdGroup(group: string, purpose: string): Promise<GroupHold> {
    if (this.closed) throw closedError();
    const token = localProcessToken();
    const clientId = `${this.config.client_id}.${holdClientIdPart(purpose)}${token === null ? "" : `.${processTokenText(token)}`}`;
    const kafka = createKafkaClient({ ...this.config, client_id: clientId }, this.logger, this.socketFactory);
    const existing = new Set(await this.topicNames());
    const kept = [...new Set((await this.committedOffsets(group)).map((o) => o.topic))].filter((topic) => existing.has(topic));
    await removeGoneMembers(kafka, group, (member) => isGoneLocalProcess(processTokenInText(member.clientId)), this.logger);
    return KafkaGroupHold.join({ kafka, group, topic: captureLeaseTopic(this.deployment), keptTopics: kept, brokers: this.config.brokers, logger: this.logger });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // No request starts from now on; those under way finish on their connections before these close.
    await this.inFlight.settled();
    for (const consumer of [...this.consumers]) await consumer.close();
    await this.reader?.close();
    await this.producer?.close();
    await this.stableOffsets?.close();
    await this.identityProducer?.then((producer) => producer.disconnect()).catch(() => undefined);
    await Promise.all([this.admin.disconnect().catch(() => undefined), this.lookups.disconnect().catch(() => undefined)]);
    this.logger.info("Kafka topic log closed");
  }

  /**
   * Every record of a topic up to its current end, read without a consumer group (a new group
   * waits the broker's group.initial.rebalance.delay.ms, 3 s by default, before it reads).
   */
  async readWholeTopic(topic: string): Promise<StoredRecord[]> {
    if (this.closed) throw closedError();
    // Read-only opens create no topics: an internal topic the daemon has not created yet is empty.
    if (this.access === "read-only" && !(await this.describeTopic(topic))) return [];
    const ranges = (await this.partitionOffsets(topic)).filter((r) => r.end > r.start);
    if (ranges.length === 0) return [];
    return this.partitionReader().read(topic, ranges);
  }

  /**
   * Hands `visit` every record of a topic up to its current end as it is read, a fetch of at most
   * FOLD_FETCH at a time, keeping none: a compacted topic is read down to its latest value per key
   * in memory bounded by its keys, however many records its uncompacted part holds.
   */
  async foldTopic(topic: string, visit: (record: StoredRecord) => void): Promise<void> {
    if (this.closed) throw closedError();
    if (this.access === "read-only" && !(await this.describeTopic(topic))) return;
    const ranges = (await this.partitionOffsets(topic)).filter((r) => r.end > r.start);
    if (ranges.length === 0) return;
    await this.partitionReader().each(topic, ranges, (_partition, records) => records.forEach((record) => visit(record)), FOLD_FETCH);
  }

  async scanTopic(topic: string, chunkRecords: number, visit: (record: StoredRecord) => Promise<void>, signal?: AbortSignal): Promise<void> {
    if (this.closed) throw closedError();
    const ranges = (await this.partitionOffsets(topic)).filter((r) => r.end > r.start);
    const chunk = BigInt(Math.max(1, chunkRecords));
    for (const range of ranges) {
      for (let from = range.start; from < range.end && !signal?.aborted; from += chunk) {
        const to = from + chunk < range.end ? from + chunk : range.end;
        for (const record of await this.partitionReader().read(topic, [{ partition: range.partition, start: from, end: to }])) await visit(record);
      }
    }
  }

  async readRange(topic: string, partition: number, start: bigint, end: bigint): Promise<StoredRecord[]> {
    if (this.closed) throw closedError();
    if (end <= start) return [];
    return this.partitionReader().read(topic, [{ partition, start, end }]);
  }

  private partitionReader(): PartitionReader {
    this.reader ??= new PartitionReader({
      kafka: this.kafka,
      brokers: this.config.brokers,
      fetchBytes: this.readerLimits?.fetchBytes ?? Math.max(8 * 2 ** 20, this.config.max_record_bytes ?? 0),
      partitionFetchBytes: this.readerLimits?.partitionFetchBytes ?? Math.max(2 ** 20, this.config.max_record_bytes ?? 0),
    });
    return this.reader;
  }

  /** The producer; throws TOPIC_LOG_READ_ONLY when this log was opened read-only. */
  private assertWritable(operation: string): BatchingProducer {
    if (this.producer) return this.producer;
    throw new SluiceError(`cannot ${operation}: this command opened the Kafka topic log read-only (so it never disturbs a running daemon's producer)`, {
      code: "TOPIC_LOG_READ_ONLY",
      context: { component: "kafka", deployment: this.deployment, operation },
    });
  }

  /** Checked at once and created in one request (each in turn, a first start spent ~0.7 s on them; one after another on the broker, ~0.2 s). */
  private async ensureInternalTopics(): Promise<void> {
    let reserveIdsThrough: number | null = null;
    await this.createInternalTopics(
      [
        { name: checkpointTopic(this.deployment), partitions: 1, retentionMs: null, retentionBytes: null, compacted: true },
        { name: registryTopic(this.deployment), partitions: 1, retentionMs: null, retentionBytes: null, compacted: false },
        { name: schemaHistoryTopic(this.deployment), partitions: 1, retentionMs: null, retentionBytes: null, compacted: false },
        { name: topicIdsTopic(this.deployment), partitions: 1, retentionMs: null, retentionBytes: null, compacted: true },
        { name: instancesTopic(this.deployment), partitions: 1, retentionMs: null, retentionBytes: null, compacted: true },
        { name: captureLeaseTopic(this.deployment), partitions: 1, retentionMs: null, retentionBytes: null, compacted: true },
      ],
      async (missing) => {
        reserveIdsThrough = await this.judgeMissing(missing);
      },
    );
    if (reserveIdsThrough !== null) await this.reserveSchemaIds(reserveIdsThrough);
    // Those created by an earlier version without them.
    await this.request(() => keepCompacting(this.lookups, frequentlyWritten(this.deployment), this.logger));
  }

  /**
   * Before missing internal topics are created: refuses (INTERNAL_TOPIC_LOST) when the deployment's other topics show it
   * ran before and the missing one held what cannot be made again, warns the losses it can go on with; returns the
   * schema id new schemas must be above (judgeLostTopics) when the registry's loss is accepted. Looks at the other topics only when a
   * topic that matters is missing (or the built-in registry's journal empty), so a start with all of them costs one
   * offsets request.
   */
  private async judgeMissing(missing: readonly string[]): Promise<number | null> {
    const policy = this.lostTopics;
    if (policy === undefined) return null;
    const d = this.deployment;
    // A topic there with no record (created again by hand or from a manifest) is judged as one missing.
    const kept = async (topic: string, judged: boolean): Promise<"kept" | "missing" | "empty"> => {
      if (missing.includes(topic)) return "missing";
      if (!judged) return "kept";
      const offsets = await this.call(`fetch offsets of ${topic}`, () => this.admin.fetchTopicOffsets(topic));
      return offsets.every((o) => BigInt(o.high) === BigInt(o.low)) ? "empty" : "kept";
    };
    // The checkpoints are judged only when missing: a deployment's data topics can hold records with no checkpoint yet
    // (written by another tool, or by tests through the log itself), and an empty checkpoints topic refused at every start
    // of such a deployment would be a false alarm; one created again empty by hand is not caught (docs/topics.md).
    const [registry, checkpoints, subjectKeys] = await Promise.all([
      kept(registryTopic(d), policy.builtinRegistry),
      kept(checkpointTopic(d), false),
      // Created by the key store at a governed table's first record, not here: judged only where personal_data is set.
      policy.personalData === true ? this.describeTopic(subjectKeysTopic(d)).then((there) => (there ? kept(subjectKeysTopic(d), true) : "missing" as const)) : ("kept" as const),
    ]);
    const found: InternalTopicsFound = {
      registry,
      checkpoints,
      schemaHistoryMissing: missing.includes(schemaHistoryTopic(d)),
      topicIdsMissing: missing.includes(topicIdsTopic(d)),
      subjectKeys,
    };
    if (found.registry === "kept" && found.checkpoints === "kept" && !found.schemaHistoryMissing && !found.topicIdsMissing && found.subjectKeys === "kept") return null;
    const traces = await this.deploymentTraces(policy, {
      // The schema ids show what a lost registry or checkpoints topic held; nothing else needs them.
      schemaIds: found.registry !== "kept" || found.checkpoints !== "kept",
      checkpointed: found.schemaHistoryMissing && policy.mysqlSources.length > 0 && found.checkpoints === "kept",
      highestSchemaId: found.registry !== "kept" && found.checkpoints === "kept",
      sealed: found.subjectKeys !== "kept",
    });
    const verdict = judgeLostTopics(d, found, traces, policy);
    for (const warning of verdict.warnings) this.logger.warn({ topic: warning.topic, code: "INTERNAL_TOPIC_LOST" }, warning.message);
    if (verdict.refusal) {
      this.logger.error({ err: verdict.refusal.toLog() }, "internal topics lost");
      throw verdict.refusal;
    }
    return verdict.reserveIdsThrough;
  }

  /**
   * What the deployment's topics show of earlier runs: its data topics and, when asked, the schema ids in the last records
   * of its framed topics, the sources checkpointed and the registry's recorded highest id (read from the checkpoints), and
   * a topic whose last records hold a sealed personal value.
   */
  private async deploymentTraces(policy: LostTopicPolicy, read: { schemaIds: boolean; checkpointed: boolean; highestSchemaId: boolean; sealed: boolean }): Promise<DeploymentTraces> {
    const d = this.deployment;
    const names = (await this.topicNames()).filter((name) => name.startsWith(`${d}.`)).sort();
    // Only the topics this deployment's naming gives: others under `<deployment>.` (another producer's) are no trace of it.
    const sourceTopics = names.filter((name) => !isInternalTopic(d, name) && isDeploymentSourceTopic(d, policy, name));
    const dataTopics = sourceTopics.filter((name) => isDeploymentDataTopic(d, policy, name));
    const framedTopics = [...sourceTopics, ...names.filter((name) => name === controlTopic(d) || name.startsWith(`${d}.sluice.halted.`))];
    const framed = read.schemaIds ? await this.sampledSchemaIds(framedTopics) : new Map<string, number[]>();
    // Dead letters (a data check's, a sink's, custom names too) hold sealed values too.
    // The topics of the tables with personal columns first: the look is bounded, and large other topics may sort before them.
    const sealed = read.sealed ? await this.topicHoldingSealedValue(sealedLookTopics(d, policy, framedTopics, names)) : [];
    const checkpointed = new Set<string>();
    let highestSchemaId: number | null = null;
    if (read.checkpointed || read.highestSchemaId) {
      await this.foldTopic(checkpointTopic(d), (record) => {
        const key = record.key === null ? "" : Buffer.from(record.key).toString("utf8");
        if (key === HIGHEST_SCHEMA_ID_KEY) {
          const id = record.value === null ? NaN : Number(Buffer.from(record.value).toString("utf8"));
          if (Number.isSafeInteger(id) && id >= 0) highestSchemaId = Math.max(highestSchemaId ?? 0, id);
          return;
        }
        // Entries are keyed <source>/<name>; a checkpoint by the source's name.
        if (key !== "" && !key.includes("/")) {
          if (record.value === null) checkpointed.delete(key);
          else checkpointed.add(key);
        }
      });
    }
    return { framed, dataTopics, checkpointed: [...checkpointed], sealed, highestSchemaId };
  }

  /** The last `depth` offsets of each of the topic's partitions that holds records. */
  private async lastOffsets(topic: string, depth: bigint): Promise<PartitionRange[]> {
    return lastRanges(await this.call(`fetch offsets of ${topic}`, () => this.admin.fetchTopicOffsets(topic)), depth);
  }

  /** Per topic, the schema ids the last SAMPLED_OFFSETS records of its partitions reference (topics referencing none left out). */
  private async sampledSchemaIds(topics: readonly string[]): Promise<Map<string, number[]>> {
    const framed = new Map<string, number[]>();
    for (const topic of topics) {
      const ranges = await this.lastOffsets(topic, SAMPLED_OFFSETS);
      if (ranges.length === 0) continue;
      const ids = new Set<number>();
      await this.partitionReader().each(topic, ranges, (_partition, records) => {
        for (const record of records) {
          for (const payload of [record.key, record.value]) {
            const id = framedSchemaId(payload);
            if (id !== null) ids.add(id);
          }
        }
      }, SAMPLE_FETCH);
      if (ids.size > 0) framed.set(topic, [...ids].sort((a, b) => a - b));
    }
    return framed;
  }

  /**
   * The first of `topics` (as a list of one) whose last SAMPLED_FOR_SEALED records of a partition hold a sealed personal
   * value: one proves the key topic held keys, so the look ends at it. Read a fetch response at a time, and no more than
   * sealedScanBytes of records in all: without a sealed value (a deployment that has sealed nothing yet, its normal state
   * until its first governed record) it runs at every start. None found within the bound: [] (logged at info).
   */
  private async topicHoldingSealedValue(topics: readonly string[]): Promise<string[]> {
    const read = { records: 0, bytes: 0, topics: 0 };
    for (const topic of topics) {
      const ranges = await this.lastOffsets(topic, SAMPLED_FOR_SEALED);
      if (ranges.length === 0) continue;
      read.topics++;
      const look = { found: false };
      await this.partitionReader().each(topic, ranges, (_partition, records) => {
        for (const record of records) {
          read.records++;
          read.bytes += (record.key?.byteLength ?? 0) + (record.value?.byteLength ?? 0);
          if (holdsSealedValue(record.value) || holdsSealedValue(record.key)) {
            look.found = true;
            return false;
          }
        }
        return read.bytes < this.sealedScanBytes;
      }, SAMPLE_FETCH);
      if (look.found) return [topic];
      if (read.bytes >= this.sealedScanBytes) {
        this.logger.info(
          { ...read, topicsToRead: topics.length },
          `looked for sealed personal values in the last records of ${read.topics} of ${topics.length} topics (${read.bytes} bytes) without finding one; stopped there, a loss of ${subjectKeysTopic(this.deployment)} is not told from a deployment that sealed nothing yet`,
        );
        return [];
      }
    }
    return [];
  }

  /**
   * A parking topic about to be created while its source's data topics exist was deleted while Sluice was stopped: warned
   * with what may be lost (parkingTopicLostWarning says why it is not refused). Only for a log opened with the config's
   * policy (sluice run); a first start creates the parking topic before any data topic, so it says nothing.
   */
  private async warnLostParking(topic: string): Promise<void> {
    const prefix = `${this.deployment}.sluice.halted.`;
    if (this.lostTopics === undefined || !topic.startsWith(prefix)) return;
    const source = { name: topic.slice(prefix.length), transactionTopic: false, outboxTopic: null };
    const dataTopics = (await this.topicNames()).filter((name) => isDeploymentDataTopic(this.deployment, { sources: [source] }, name));
    if (dataTopics.length > 0) this.logger.warn({ topic, code: INTERNAL_TOPIC_LOST }, parkingTopicLostWarning(topic, dataTopics));
  }

  /**
   * The registry's loss accepted: its journal's first entry keeps new schema ids above those the sampled records reference
   * and a margin (schema-registry/store.ts, reserveIds; judgeLostTopics), so no new schema takes an id an old record names
   * unless that id is above the margin. Written before the open
   * returns: a registry opened after it never hands out such an id.
   */
  private async reserveSchemaIds(through: number): Promise<void> {
    const mutations: StoreMutation[] = [{ op: "reserveIds", through }];
    await this.call("reserve schema ids", async () => {
      await (await this.plainProducer()).send({ topic: registryTopic(this.deployment), acks: -1, messages: [{ key: null, value: JSON.stringify({ mutations }), partition: 0 }] });
    });
    this.logger.warn({ topic: registryTopic(this.deployment), through, code: "INTERNAL_TOPIC_LOST" }, `schema registry created again empty: schema ids up to ${through} (those the last records of the deployment's topics reference, and a margin for older records) are kept from new schemas`);
  }

  /**
   * Records `highest`, a schema id the built-in registry issued (or found issued), in the checkpoints topic under
   * HIGHEST_SCHEMA_ID_KEY, outside any transaction, unless this process recorded one as high: the registry's journal lost
   * with its topic, an accepted loss keeps new ids above it (judgeLostTopics). Written before the registration that issued
   * it returns, so no record names an id above the one recorded. Another process's registry loaded just before a new id was
   * issued may write a lower one after it: the reservation's margin covers such a few.
   */
  private async recordHighestSchemaId(highest: number): Promise<void> {
    if (highest <= this.highestSchemaIdRecorded || this.producer === null) return;
    const topic = checkpointTopic(this.deployment);
    const key = Buffer.from(HIGHEST_SCHEMA_ID_KEY, "utf8");
    const partition = partitionForKey(key, await this.partitionCount(topic));
    await this.call("record the highest schema id", async () => {
      await (await this.plainProducer()).send({ topic, acks: -1, messages: [{ key, value: String(highest), partition }] });
    });
    this.highestSchemaIdRecorded = Math.max(this.highestSchemaIdRecorded, highest);
  }

  private async checkpointMessage(checkpoint: Checkpoint): Promise<OutgoingMessage> {
    return this.checkpointTopicMessage(checkpoint.source, encodeCheckpoint(checkpoint));
  }

  /** A record of the checkpoint topic: a checkpoint, or a source's entry (null: deleted). */
  private async checkpointTopicMessage(keyText: string, valueText: string | null): Promise<OutgoingMessage> {
    const topic = checkpointTopic(this.deployment);
    const key = Buffer.from(keyText, "utf8");
    const value = valueText === null ? null : Buffer.from(valueText, "utf8");
    return { topic, key, value, timestamp: String(Date.now()), partition: partitionForKey(key, await this.partitionCount(topic)), size: key.length + (value?.length ?? 0) + RECORD_OVERHEAD_BYTES };
  }

  private async partitionCount(topic: string): Promise<number> {
    const cached = this.partitionCounts.get(topic);
    if (cached !== undefined) return cached;
    const spec = await this.describeTopic(topic);
    if (!spec) throw new SluiceError(`topic "${topic}" does not exist in Kafka ${this.config.brokers.join(",")}`, { code: "TOPIC_NOT_FOUND", context: { component: "kafka", topic } });
    this.partitionCounts.set(topic, spec.partitions);
    // A topic this process writes without having declared it (a command such as sluice forget): its batches keep to its limit too.
    const limit = this.describedLimits.get(topic);
    if (limit && !this.recordLimits.has(topic)) this.recordLimits.set(topic, limit);
    return spec.partitions;
  }

  /** Refused before anything of the produce call is sent: Kafka would refuse its batch for good, with an error naming no topic. */
  private recordTooLarge(record: ProducedRecord, limit: RecordLimit): SluiceError {
    const bytes = recordBytes(record);
    const raise = limit.config === null
      ? `${limit.raise[0]!.toUpperCase()}${limit.raise.slice(1)}`
      : `Raise the topic's limit (kafka-configs.sh --bootstrap-server ${this.config.brokers[0]} --alter --entity-type topics --entity-name ${record.topic} --add-config ${limit.config}=${raisedConfigValue(limit.config, Math.max(bytes, this.config.max_record_bytes), this.retentionBytes.get(record.topic) ?? null)})`;
    return new SluiceError(`a ${bytes}-byte record for topic "${record.topic}" is over ${limit.setting} (${limit.bytes}); nothing of this produce call was sent. ${raise}`, {
      code: RECORD_TOO_LARGE,
      context: { component: "kafka", topic: record.topic, bytes, limit: limit.bytes },
    });
  }

  private async describeTopic(name: string): Promise<TopicSpec | undefined> {
    let partitions: number;
    try {
      const { topics } = await this.request(() => this.lookups.fetchTopicMetadata({ topics: [name] }));
      partitions = topics[0]?.partitions.length ?? 0;
    } catch (error) {
      if (isUnknownTopic(error)) return undefined;
      throw kafkaError(error, "describe topic", this.config.brokers);
    }
    const describeConfigs = () =>
      this.admin.describeConfigs({ includeSynonyms: false, resources: [{ type: kafkajs.ConfigResourceTypes.TOPIC, name, configNames: ["cleanup.policy", "retention.ms", "retention.bytes", "max.message.bytes", "segment.bytes", "delete.retention.ms", "min.compaction.lag.ms", "message.timestamp.before.max.ms", "message.timestamp.difference.max.ms"] }] });
    let described: DescribeConfigResponse;
    try {
      described = await this.request(describeConfigs);
      this.adminProblem = null;
    } catch (error) {
      if (!isUnknownTopic(error)) throw this.adminFailure(error, "describe topic configs");
      // This topic deleted since its metadata (by another process): left out. Else another one this admin had looked up,
      // or this one and the broker's metadata has not caught up with its deletion yet: only a new admin tells which.
      if (!(await this.topicExists(name))) return undefined;
      if (!(await this.renewAdmin())) {
        throw this.adminFailure(
          new ConnectionError(`Kafka ${this.config.brokers.join(",")} unavailable while topic ${name} was described: its configs request failed as unknown topic on an admin client that may be failing on another topic it had looked up, and a new admin client could not be connected to tell which`, {
            code: "KAFKA_UNAVAILABLE",
            context: { component: "kafka", operation: "describe topic configs", topic: name, brokers: this.config.brokers.join(",") },
            cause: error,
          }),
          "describe topic configs",
        );
      }
      try {
        described = await this.request(describeConfigs);
        this.adminProblem = null;
      } catch (again) {
        // A new admin refreshes no topic of its own: the topic itself is gone, and the broker's metadata had not caught up with its deletion yet.
        if (isUnknownTopic(again)) return undefined;
        throw this.adminFailure(again, "describe topic configs");
      }
    }
    const configEntries = described.resources[0]?.configEntries ?? [];
    const entries = new Map(configEntries.map((e) => [e.configName, e.configValue]));
    const configOf = (name: string) => {
      const entry = configEntries.find((e) => e.configName === name);
      return { value: entry?.configValue, source: entry?.configSource };
    };
    const recordLimit = describedRecordLimit(name, configOf("max.message.bytes"), configOf("segment.bytes"), this.brokerLimits);
    if (recordLimit) this.describedLimits.set(name, recordLimit);
    else this.describedLimits.delete(name);
    const limit = (value: string | undefined) => (value === undefined || Number(value) < 0 ? null : Number(value));
    const policy = (entries.get("cleanup.policy") ?? "delete").split(",").map((p) => p.trim());
    const compacted = policy.includes("compact");
    // Under cleanup.policy=compact alone the broker ignores retention.ms and retention.bytes.
    const deletes = policy.includes("delete");
    const tombstones = limit(entries.get("delete.retention.ms"));
    const lag = limit(entries.get("min.compaction.lag.ms"));
    const window = timestampWindowOf(entries.get("message.timestamp.before.max.ms"), entries.get("message.timestamp.difference.max.ms"));
    if (window !== undefined) this.timestampWindows.set(name, window);
    else this.timestampWindows.delete(name);
    this.retentionBytes.set(name, deletes ? limit(entries.get("retention.bytes")) : null);
    return {
      name,
      partitions,
      retentionMs: deletes ? limit(entries.get("retention.ms")) : null,
      retentionBytes: deletes ? limit(entries.get("retention.bytes")) : null,
      compacted,
      maxRecordBytes: limit(entries.get("max.message.bytes")),
      ...(compacted && tombstones !== null ? { tombstoneRetentionMs: tombstones } : {}),
      ...(compacted && lag !== null ? { minCompactionLagMs: lag } : {}),
    };
  }

  /** An admin call with Sluice's error mapping; kafkajs already retried it a few times. */
  private async call<T>(operation: string, body: () => Promise<T>): Promise<T> {
    try {
      const result = await this.request(body);
      this.adminProblem = null;
      return result;
    } catch (error) {
      if (isUnknownTopic(error)) await this.renewAdmin();
      throw this.adminFailure(error, operation);
    }
  }

  private adminFailure(error: unknown, operation: string): SluiceError {
    const failure = kafkaError(error, operation, this.config.brokers);
    if (failure.retriable) this.adminProblem = failure.message;
    return failure;
  }

  /** Whether a topic exists, from a metadata request of its own (which no other topic can fail). */
  private async topicExists(name: string): Promise<boolean> {
    try {
      await this.request(() => this.lookups.fetchTopicMetadata({ topics: [name] }));
      return true;
    } catch (error) {
      if (isUnknownTopic(error)) return false;
      throw kafkaError(error, "describe topic", this.config.brokers);
    }
  }

  /**
   * A new admin client in place of one that may hold a deleted topic among those it refreshes (see admin). True when the
   * admin is now one made by this call or by another renewal meanwhile; false when none could be connected (or the log is closed).
   */
  private async renewAdmin(): Promise<boolean> {
    if (this.closed) return false;
    const stale = this.admin;
    const fresh = this.kafka.admin();
    try {
      await fresh.connect();
    } catch (error) {
      this.logger.warn({ err: kafkaError(error, "connect a new admin client", this.config.brokers).toLog() }, "cannot renew the Kafka admin client; the old one is kept for now");
      await fresh.disconnect().catch(() => undefined);
      return false;
    }
    if (this.closed || this.admin !== stale) {
      await fresh.disconnect().catch(() => undefined);
      return !this.closed;
    }
    this.admin = fresh;
    this.logger.info("Kafka admin client renewed: a topic it had looked up may be gone");
    await stale.disconnect().catch(() => undefined);
    return true;
  }

  /** Runs a request of the log's Kafka clients unless the log is closed (see inFlight). */
  private async request<T>(body: () => Promise<T>): Promise<T> {
    if (this.closed) throw closedError();
    return this.inFlight.track(body());
  }
}

/** A journal in Kafka: a single-partition topic kept forever (the schema registry's `<deployment>.sluice.schemas`, the schema histories' `<deployment>.sluice.schema-history`). */
/** The registry journal's hooks for the highest schema id it holds (KafkaTopicLog.recordHighestSchemaId). */
interface SchemaIdRecorder {
  /** An entry about to be appended issues ids up to `highest`: awaited with the append. */
  issued(highest: number): Promise<void>;
  /** The journal loaded holds ids up to `highest` (ids issued before they were recorded: an upgrade): best effort. */
  loaded(highest: number): Promise<void>;
}

class KafkaJournal implements RegistryJournal {
  private readonly log: KafkaTopicLog;
  private readonly topic: string;
  private readonly ids: SchemaIdRecorder | null;

  constructor(log: KafkaTopicLog, topic: string, ids: SchemaIdRecorder | null = null) {
    this.log = log;
    this.topic = topic;
    this.ids = ids;
  }

  async append(entry: unknown): Promise<void> {
    const text = JSON.stringify(entry);
    if (text === undefined) throw new TypeError(`entries of the journal ${this.topic} must be JSON values`);
    const appended = this.log.produce([{ topic: this.topic, key: null, value: Buffer.from(text, "utf8"), timestamp: Date.now() }]);
    const highest = this.ids === null ? 0 : highestSchemaIdIn([entry]);
    // Both durable before the registration returns: a record naming a new id is written only after it.
    await Promise.all([appended, highest > 0 ? this.ids!.issued(highest) : undefined]);
  }

  async loadAll(): Promise<unknown[]> {
    const entries = (await this.log.readWholeTopic(this.topic)).filter((r) => r.value !== null).map((r) => JSON.parse(Buffer.from(r.value!).toString("utf8")) as unknown);
    const highest = this.ids === null ? 0 : highestSchemaIdIn(entries);
    // Best effort: a registry whose ids were never recorded still opens; the reservation's margin covers it then.
    if (highest > 0) await this.ids!.loaded(highest).catch(() => undefined);
    return entries;
  }
}

/** The highest schema id registry journal entries (`{mutations}`, schema-registry/journal-backend.ts) issue or reserve; 0 for none. */
function highestSchemaIdIn(entries: readonly unknown[]): number {
  let highest = 0;
  for (const entry of entries) {
    const mutations = (entry as { mutations?: unknown } | null)?.mutations;
    if (!Array.isArray(mutations)) continue;
    for (const mutation of mutations as { op?: unknown; id?: unknown; through?: unknown }[]) {
      const id = mutation?.op === "register" ? mutation.id : mutation?.op === "reserveIds" ? mutation.through : undefined;
      if (typeof id === "number" && Number.isSafeInteger(id) && id > highest) highest = id;
    }
  }
  return highest;
}

/** Kafka's cleanup.policy for a spec: a compacted topic with an age or size bound also deletes. */
export function cleanupPolicy(spec: Pick<TopicSpec, "compacted" | "retentionMs" | "retentionBytes">): "compact" | "compact,delete" | "delete" {
  if (!spec.compacted) return "delete";
  return spec.retentionMs !== null || spec.retentionBytes !== null ? "compact,delete" : "compact";
}

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function estimateSize(record: ProducedRecord): number {
  let size = RECORD_OVERHEAD_BYTES + (record.key?.length ?? 0) + (record.value?.length ?? 0);
  if (record.headers) for (const name in record.headers) size += name.length * 3 + record.headers[name]!.length + 10;
  return size;
}

function closedError(): SluiceError {
  return new SluiceError("Kafka topic log is closed", { code: "TOPIC_LOG_CLOSED", context: { component: "kafka" } });
}

/** kafkajs's UNKNOWN_TOPIC_OR_PARTITION, also inside its retries-exceeded wrapper. */
function isUnknownTopic(error: unknown): boolean {
  const { type, cause } = error as { type?: string; cause?: { type?: string } };
  return type === "UNKNOWN_TOPIC_OR_PARTITION" || cause?.type === "UNKNOWN_TOPIC_OR_PARTITION";
}

type TopicOffsets = { partition: number; low: string; high: string };

/** The last `depth` offsets of each partition that holds records, from no lower than its first (retention may have deleted the rest). */
function lastRanges(offsets: readonly TopicOffsets[], depth: bigint): PartitionRange[] {
  return offsets
    .map((o) => ({ partition: o.partition, low: BigInt(o.low), end: BigInt(o.high) }))
    .filter((r) => r.end > r.low)
    .map((r) => ({ partition: r.partition, start: r.end - depth > r.low ? r.end - depth : r.low, end: r.end }));
}
