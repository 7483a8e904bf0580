/**
 * The pull-style TopicConsumer over kafkajs's push-style consumer: kafkajs's eachBatch fills a
 * byte-bounded queue that poll() drains. While the queue holds `maxBufferedBytes` or more, eachBatch
 * waits (heartbeating) until poll() took some, and kafkajs fetches again only after eachBatch
 * returned, so memory stays bounded (the bound plus one fetch response). It does not pause the
 * consumer: a kafkajs consumer whose partitions are all paused sleeps its fetch wait (maxWaitTime)
 * before it fetches again, which throttled a busy sink with a small read-ahead to one read-ahead per
 * fetch wait. Offsets are committed only by commit(), never automatically.
 */
import type { Admin, Consumer, EachBatchPayload, Kafka, KafkaMessage } from "kafkajs";
import { GroupMembersSeen } from "./group-members-seen.ts";
import type { Logger } from "../../runtime/logger.ts";
import { durationFromEnv } from "../../runtime/env-duration.ts";
import { ConnectionError, SluiceError } from "../errors.ts";
import type { PollOptions, SeekTarget, SkippedRecords, StoredRecord, TopicConsumer, TopicPartition, TopicPartitionOffset } from "../topics/contract.ts";
import { kafkaError } from "./kafka-errors.ts";
import { onOffsetReset } from "./offset-resets.ts";
import { ABSENT, FetchedBatch, InPlaceRecord, storedBytes } from "../topics/in-place-record.ts";
// kafkajs decodes a batch the log cleaner emptied to nothing, losing its offsets: this keeps them.
import "./emptied-batches.ts";
import { FetchedMessage } from "./record-batch-decoder.ts";

/** A consumer's memory: its read-ahead and fetch sizes (a sink's share of the memory budget, config/memory.ts). */
export interface KafkaReaderLimits {
  /** Records fetched ahead of poll(), in bytes, before fetching pauses. */
  readonly readAheadBytes: number;
  /** Most bytes of one fetch response (kafkajs maxBytes). */
  readonly fetchBytes: number;
  /** Most bytes of one partition in a fetch response (kafkajs maxBytesPerPartition). */
  readonly partitionFetchBytes: number;
}

export interface KafkaConsumerOptions {
  readonly kafka: Kafka;
  /** The admin client for offset lookups: the log's current one (kafka-log.ts renews it). */
  readonly admin: () => Admin;
  readonly brokers: readonly string[];
  readonly group: string;
  readonly topics: readonly string[];
  readonly logger: Logger;
  /** Read-ahead and fetch sizes; default: 16 MiB ahead, fetches that carry a record of maxRecordBytes whole. */
  readonly limits?: KafkaReaderLimits;
  /** Longest wait for the group to assign partitions before a seek gives up. */
  readonly assignmentTimeoutMs?: number;
  /** Largest record a data topic may hold (topics.max_record_bytes): each fetch allows one of that size. */
  readonly maxRecordBytes?: number;
  /** Offset ranges for seeks to earliest/latest (kafka-log.ts: they include this process's own committed writes); default: the admin's. */
  readonly offsetRanges?: (topic: string) => Promise<readonly { partition: number; start: bigint; end: bigint }[]>;
  /** Longest a fetch waits at the end of a partition (kafkajs maxWaitTimeInMs); a seek waits for the fetch under way. Default 500 ms. */
  readonly fetchWaitMs?: number;
}

interface Chunk {
  readonly key: string;
  readonly records: StoredRecord[];
  /** Offset after the fetched batch, past transaction markers and aborted records. */
  readonly nextOffset: bigint;
  readonly bytes: number;
  index: number;
}

/** Error code of a seek on a partition the group gave to another member (retriable: assignments change). */
export const PARTITION_NOT_ASSIGNED = "PARTITION_NOT_ASSIGNED";

const tpKey = (topic: string, partition: number) => `${topic}\u0000${partition}`;
/** A fetch at the end of a partition waits this long for records (a seek waits for it). */
const DEFAULT_FETCH_WAIT_MS = 500;
/**
 * Kafka's session timeout of a consumer group member: a process that dies keeps its partitions this
 * long before the group moves them. SLUICE_KAFKA_SESSION_MS changes it (at least the broker's
 * group.min.session.timeout.ms, 6 s by default); the tests that kill sinks use the least.
 */
export function kafkaSessionTimeoutMs(env: NodeJS.ProcessEnv = process.env): number {
  return durationFromEnv("SLUICE_KAFKA_SESSION_MS", 30_000, { min: 1_000, max: 3_600_000 }, env);
}
/** Bytes a queued record counts besides its key and value. */
const RECORD_OVERHEAD = 64;
/**
 * The same with limits (a memory budget): what a queued record holds besides its key and value,
 * so the read-ahead bounds what it takes. A record is a position in its fetched batch
 * (in-place-record.ts): ~50 bytes of heap (the record object and its slot in the batch's array,
 * Node 24 without pointer compression) and 32 bytes of the batch's typed arrays, whatever its size
 * (kafka-consumer-overhead.test.ts measures it). It was 384 when each record held two Buffer views
 * and its offset and time as objects: counted so, a read-ahead held about half the records it was
 * planned for.
 */
export const RECORD_HEAP_OVERHEAD = 96;
/** A fetched batch waiting for room in the queue looks again (and heartbeats) at least this often. */
const ROOM_CHECK_MS = 1_000;

export class KafkaPullConsumer implements TopicConsumer {
  private readonly options: KafkaConsumerOptions;
  private readonly consumer: Consumer;
  private readonly logger: Logger;
  private readonly maxBufferedBytes: number;
  private readonly recordOverhead: number;
  private readonly heartbeatIntervalMs: number;
  private readonly queue: Chunk[] = [];
  private readonly positions = new Map<string, bigint>();
  /** Partitions seeked whose first fetch from the new offset has not arrived yet, with that offset. */
  private readonly seeking = new Map<string, bigint>();
  /** Per partition, the offset after the last batch fetched: where kafkajs fetches next. */
  private readonly fetched = new Map<string, bigint>();
  /** Partitions kafkajs moved to their earliest offset (OFFSET_OUT_OF_RANGE), with the offset it could not fetch. */
  private readonly outOfRange = new Map<string, bigint>();
  private skipped: SkippedRecords[] = [];
  private readonly stopResets: () => void;
  private assigned: TopicPartition[] = [];
  private bufferedBytes = 0;
  private wake: (() => void) | undefined;
  /** Wakes a fetched batch waiting for room in the queue (poll took records, a seek or rebalance dropped some, close). */
  private roomWake: (() => void) | undefined;
  private joined: Promise<void>;
  /** Who it saw in its group at its joins (every rebalance is one). */
  private readonly seen = new GroupMembersSeen();
  private markJoined!: () => void;
  private failure: SluiceError | undefined;
  private closed = false;

  private constructor(options: KafkaConsumerOptions) {
    this.options = options;
    this.logger = options.logger.child({ component: "kafka-consumer", group: options.group });
    this.maxBufferedBytes = options.limits?.readAheadBytes ?? 16 * 2 ** 20;
    this.recordOverhead = options.limits ? RECORD_HEAP_OVERHEAD : RECORD_OVERHEAD;
    this.joined = new Promise((resolve) => (this.markJoined = resolve));
    const sessionTimeout = kafkaSessionTimeoutMs();
    this.heartbeatIntervalMs = Math.min(3_000, Math.floor(sessionTimeout / 5));
    this.consumer = options.kafka.consumer({
      groupId: options.group,
      readUncommitted: false,
      allowAutoTopicCreation: false,
      sessionTimeout,
      heartbeatInterval: this.heartbeatIntervalMs,
      // By default a fetch may carry the largest record whole. With limits (a memory budget) fetches
      // are smaller: a bigger record still comes, since a broker answers (Fetch v3 and later) with the
      // first record batch of the first partition that has one even when it exceeds these bounds
      // (kafka-consumer-fetch.int.test.ts), as do parked records of up to 4 × the limit.
      maxBytesPerPartition: options.limits?.partitionFetchBytes ?? Math.max(2 ** 20, options.maxRecordBytes ?? 0),
      maxBytes: options.limits?.fetchBytes ?? Math.max(8 * 2 ** 20, options.maxRecordBytes ?? 0),
      maxWaitTimeInMs: options.fetchWaitMs ?? DEFAULT_FETCH_WAIT_MS,
      // A crashed consumer is not restarted by kafkajs (that would lose pauses and seeks): it fails,
      // and the sink runtime waits with backoff and opens a new one at the right offsets.
      retry: { retries: 8, initialRetryTime: 200, maxRetryTime: 10_000, restartOnFailure: async () => false },
      partitionAssigners: [this.seen.assigner],
    });
    this.consumer.on(this.consumer.events.GROUP_JOIN, (event) => {
      this.seen.joined(event.payload);
      this.onAssignment(event.payload.memberAssignment);
    });
    this.stopResets = onOffsetReset((reset) => {
      if (reset.group !== options.group) return;
      const key = tpKey(reset.topic, reset.partition);
      const from = this.fetched.get(key) ?? this.seeking.get(key);
      if (from !== undefined) this.outOfRange.set(key, from);
    });
    this.consumer.on(this.consumer.events.END_BATCH_PROCESS, (event) => {
      // Batches of only transaction markers (or of batches the log cleaner emptied, emptied-batches.ts) never reach eachBatch; the position still moves past them.
      const { topic, partition, batchSize, lastOffset } = event.payload;
      if (batchSize !== 0) return;
      // kafkajs's type says string; a batch of only records before the fetched offset has none.
      const firstOffset = event.payload.firstOffset as string | null;
      const key = tpKey(topic, partition);
      if (firstOffset !== null) this.noteFetched(topic, partition, BigInt(firstOffset), BigInt(lastOffset) + 1n);
      const sought = this.seeking.get(key);
      // One fetched before a seek belongs to the old position; one that starts at the sought offset is what a fetch from there
      // brings (e.g. the commit marker of the transaction a restarted sink applied last): kept, or its position stayed before it.
      if (sought !== undefined && (firstOffset === null || BigInt(firstOffset) !== sought)) return;
      this.seeking.delete(key);
      this.push(topic, partition, [], BigInt(lastOffset) + 1n, 0);
    });
    this.consumer.on(this.consumer.events.CRASH, (event) => {
      const { error } = event.payload;
      const failure = kafkaError(error, "consume", options.brokers);
      this.logger.warn({ brokers: options.brokers, err: failure.toLog() }, failure.retriable ? "Kafka consumer failed; it is opened again once Kafka answers" : "Kafka consumer stopped");
      this.fail(failure);
    });
  }

  static async create(options: KafkaConsumerOptions): Promise<KafkaPullConsumer> {
    const consumer = new KafkaPullConsumer(options);
    try {
      await consumer.consumer.connect();
      await consumer.consumer.subscribe({ topics: [...options.topics], fromBeginning: true });
      await consumer.consumer.run({ autoCommit: false, eachBatchAutoResolve: true, partitionsConsumedConcurrently: 1, eachBatch: (payload) => consumer.onBatch(payload) });
    } catch (error) {
      await consumer.consumer.disconnect().catch(() => undefined);
      throw kafkaError(error, "start consumer", options.brokers);
    }
    // kafkajs's run() also returns when the first join failed (a restarted broker's coordinator not ready, the connection
    // lost): the consumer crashed (CRASH said so) and would never get partitions; a seek waited for them until its timeout.
    if (consumer.failure) {
      await consumer.close();
      throw consumer.failure;
    }
    return consumer;
  }

  groupMembersSeen(): { readonly own: readonly string[]; readonly seen: readonly string[] } {
    return { own: this.seen.ownMembers(), seen: this.seen.members() };
  }

  keepGroupMembersSeen(keep: boolean): void {
    this.seen.keep(keep);
  }

  async poll(options: PollOptions): Promise<StoredRecord[]> {
    const deadline = Date.now() + options.maxWaitMs;
    for (;;) {
      if (this.failure) throw this.failure;
      if (this.closed) throw closedError(this.options.group);
      const records = this.take(options.maxRecords, options.maxBytes);
      if (records.length > 0 || Date.now() >= deadline || options.signal?.aborted) return records;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, deadline - Date.now());
        function done() {
          clearTimeout(timer);
          options.signal?.removeEventListener("abort", done);
          resolve();
        }
        this.wake = done;
        options.signal?.addEventListener("abort", done, { once: true });
      });
      this.wake = undefined;
    }
  }

  async commit(offsets: readonly TopicPartitionOffset[]): Promise<void> {
    if (this.closed) throw closedError(this.options.group);
    if (this.failure) throw this.failure;
    try {
      await this.consumer.commitOffsets(offsets.map((o) => ({ topic: o.topic, partition: o.partition, offset: o.offset.toString() })));
    } catch (error) {
      throw this.failure ?? kafkaError(error, "commit offsets", this.options.brokers);
    }
  }

  async seek(topic: string, partition: number, target: SeekTarget): Promise<void> {
    if (this.closed) throw closedError(this.options.group);
    await this.waitForAssignment();
    if (!this.assigned.some((tp) => tp.topic === topic && tp.partition === partition)) {
      // Partitions move between members in a rebalance, e.g. while the group still lists a member of a killed process until its session times out.
      throw new SluiceError(`cannot seek ${topic}/${partition}: not assigned to this member of group "${this.options.group}" now (a rebalance moves partitions between members)`, {
        code: PARTITION_NOT_ASSIGNED,
        retriable: true,
        context: { component: "kafka", topic, partition },
      });
    }
    const offset = await this.resolveTarget(topic, partition, target);
    const key = tpKey(topic, partition);
    this.dropQueued((chunk) => chunk.key === key);
    this.positions.set(key, offset);
    this.seeking.set(key, offset);
    try {
      this.consumer.seek({ topic, partition, offset: offset.toString() });
    } catch (error) {
      throw this.failure ?? kafkaError(error, "seek", this.options.brokers);
    }
  }

  position(topic: string, partition: number): bigint | null {
    return this.positions.get(tpKey(topic, partition)) ?? null;
  }

  assignment(): readonly TopicPartition[] {
    return this.assigned;
  }

  takeSkipped(): SkippedRecords[] {
    const taken = this.skipped;
    this.skipped = [];
    return taken;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stopResets();
    this.wake?.();
    this.roomWake?.();
    await this.consumer.disconnect().catch(() => undefined);
  }

  private async onBatch({ batch, isStale, isRunning, heartbeat }: EachBatchPayload): Promise<void> {
    const key = tpKey(batch.topic, batch.partition);
    const first = batch.messages[0]?.offset ?? batch.firstOffset();
    const next = BigInt(batch.lastOffset()) + 1n;
    const records = inPlaceRecordsOf(batch.topic, batch.partition, batch.messages);
    let bytes = records.length * this.recordOverhead;
    for (const record of records) bytes += storedBytes(record);
    releaseMessages(batch);
    // The queue is full: hold this batch (kafkajs fetches again only after it is handed over) until
    // poll() makes room, heartbeating meanwhile so a slow sink keeps its partitions; a heartbeat
    // that finds the group rebalancing throws, and kafkajs rejoins as after any batch.
    while (this.bufferedBytes >= this.maxBufferedBytes && !this.closed && isRunning() && !isStale()) {
      await this.untilRoom();
      if (!this.closed) await heartbeat();
    }
    // A batch fetched before a seek belongs to the old position.
    if (isStale() || this.closed) return;
    this.seeking.delete(key);
    if (first !== null) this.noteFetched(batch.topic, batch.partition, BigInt(first), next);
    this.push(batch.topic, batch.partition, records, next, bytes);
  }

  /** A batch from `first` to before `next` was fetched: after an out-of-range reset, what lay between the lost position and it was skipped. */
  private noteFetched(topic: string, partition: number, first: bigint, next: bigint): void {
    const key = tpKey(topic, partition);
    this.fetched.set(key, next);
    const from = this.outOfRange.get(key);
    if (from === undefined) return;
    this.outOfRange.delete(key);
    if (first !== from) this.skipped.push({ topic, partition, from, to: first });
  }

  private push(topic: string, partition: number, records: StoredRecord[], nextOffset: bigint, bytes: number): void {
    const key = tpKey(topic, partition);
    if (!this.assigned.some((tp) => tp.topic === topic && tp.partition === partition)) return;
    this.queue.push({ key, records, nextOffset, bytes, index: 0 });
    this.bufferedBytes += bytes;
    this.wake?.();
  }

  /** Resolves when the queue has room (or may have: a seek, a rebalance, close) or after ROOM_CHECK_MS. */
  private untilRoom(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        if (this.roomWake === done) this.roomWake = undefined;
        resolve();
      };
      const timer = setTimeout(done, Math.min(ROOM_CHECK_MS, this.heartbeatIntervalMs));
      this.roomWake = done;
    });
  }

  private wakeIfRoom(): void {
    if (this.bufferedBytes < this.maxBufferedBytes) this.roomWake?.();
  }

  private take(maxRecords: number, maxBytes: number): StoredRecord[] {
    const out: StoredRecord[] = [];
    let bytes = 0;
    while (this.queue.length > 0 && out.length < maxRecords) {
      const chunk = this.queue[0]!;
      let full = false;
      let last: StoredRecord | undefined;
      while (chunk.index < chunk.records.length && out.length < maxRecords) {
        const record = chunk.records[chunk.index]!;
        const size = storedBytes(record) + RECORD_OVERHEAD;
        if (out.length > 0 && bytes + size > maxBytes) {
          full = true;
          break;
        }
        out.push(record);
        bytes += size;
        chunk.index++;
        last = record;
      }
      // The position after the chunk's last record taken (once per chunk, not a bigint per record).
      if (last !== undefined) this.positions.set(chunk.key, last.offset + 1n);
      if (full) return this.afterTake(out);
      if (chunk.index < chunk.records.length) break;
      this.queue.shift();
      this.bufferedBytes -= chunk.bytes;
      this.positions.set(chunk.key, chunk.nextOffset);
    }
    return this.afterTake(out);
  }

  private afterTake(out: StoredRecord[]): StoredRecord[] {
    this.wakeIfRoom();
    return out;
  }

  /** After a rebalance kafkajs fetches every assigned partition again from the committed offsets, so what was queued is dropped. */
  private onAssignment(memberAssignment: Record<string, number[]>): void {
    this.assigned = Object.entries(memberAssignment).flatMap(([topic, partitions]) => partitions.map((partition) => ({ topic, partition })));
    this.dropQueued(() => true);
    this.positions.clear();
    this.seeking.clear();
    this.fetched.clear();
    this.outOfRange.clear();
    this.logger.debug({ assignment: memberAssignment }, "partitions assigned");
    this.markJoined();
  }

  private dropQueued(predicate: (chunk: Chunk) => boolean): void {
    for (let i = this.queue.length - 1; i >= 0; i--) {
      const chunk = this.queue[i]!;
      if (!predicate(chunk)) continue;
      this.queue.splice(i, 1);
      this.bufferedBytes -= chunk.bytes;
    }
    this.wakeIfRoom();
  }

  private async waitForAssignment(): Promise<void> {
    const timeoutMs = this.options.assignmentTimeoutMs ?? 60_000;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new ConnectionError(`group "${this.options.group}" got no partitions within ${timeoutMs} ms`, { code: "KAFKA_GROUP_JOIN_TIMEOUT", context: { component: "kafka", group: this.options.group } })), timeoutMs);
    });
    try {
      await Promise.race([this.joined, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async resolveTarget(topic: string, partition: number, target: SeekTarget): Promise<bigint> {
    if (target.kind === "offset") return target.offset;
    try {
      if (target.kind === "timestamp") {
        const offsets = await this.options.admin().fetchTopicOffsetsByTimestamp(topic, listOffsetsTime(target.timestampMs));
        return BigInt(offsets.find((o) => o.partition === partition)!.offset);
      }
      if (this.options.offsetRanges) {
        const range = (await this.options.offsetRanges(topic)).find((o) => o.partition === partition)!;
        return target.kind === "earliest" ? range.start : range.end;
      }
      const offsets = await this.options.admin().fetchTopicOffsets(topic);
      const range = offsets.find((o) => o.partition === partition)!;
      return BigInt(target.kind === "earliest" ? range.low : range.high);
    } catch (error) {
      throw kafkaError(error, "seek", this.options.brokers);
    }
  }

  private fail(error: SluiceError): void {
    this.failure ??= error;
    this.wake?.();
  }
}

/** A fetched kafkajs message as a StoredRecord. */
export function storedRecordOf(topic: string, partition: number, message: KafkaMessage): StoredRecord {
  const record: { -readonly [K in keyof StoredRecord]: StoredRecord[K] } = {
    topic,
    partition,
    offset: BigInt(message.offset),
    key: message.key ?? null,
    value: message.value ?? null,
    timestamp: Number(message.timestamp),
  };
  const headers = message.headers;
  if (headers && hasAny(headers)) {
    record.headers = Object.fromEntries(Object.entries(headers).map(([name, value]) => [name, toBytes(value)]));
  }
  return record;
}

/**
 * A fetched batch's messages as records over one buffer holding just their keys and values (and a
 * copy of each header value): no Buffer view per record, and nothing of the fetch response kept
 * (in-place-record.ts says why).
 */
export function inPlaceRecordsOf(topic: string, partition: number, messages: readonly KafkaMessage[]): InPlaceRecord[] {
  const count = messages.length;
  let total = 0;
  let anyHeaders = false;
  for (const message of messages) {
    total += message instanceof FetchedMessage ? rangeLength(message.buffer, message.keyStart, message.keyEnd) + rangeLength(message.buffer, message.valueStart, message.valueEnd) : (message.key?.length ?? 0) + (message.value?.length ?? 0);
    if (!anyHeaders && message.headers && hasAny(message.headers)) anyHeaders = true;
  }
  // Its own memory, not a slice of Node's shared pool: it lives as long as the batch's last record.
  const bytes = Buffer.allocUnsafeSlow(total);
  const ranges = new Int32Array(4 * count);
  const offsets = new BigInt64Array(count);
  const timestamps = new Float64Array(count);
  const headers = anyHeaders ? new Array<Readonly<Record<string, Uint8Array>> | undefined>(count) : null;
  let at = 0;
  for (let i = 0; i < count; i++) {
    const message = messages[i]!;
    if (message instanceof FetchedMessage) {
      // Copied from the batch's bytes by their ranges: no view made.
      const { buffer } = message;
      ranges[4 * i] = message.keyStart === ABSENT ? ABSENT : at;
      if (message.keyStart !== ABSENT) at += buffer.copy(bytes, at, message.keyStart, message.keyEnd);
      ranges[4 * i + 1] = at;
      ranges[4 * i + 2] = message.valueStart === ABSENT ? ABSENT : at;
      if (message.valueStart !== ABSENT) at += buffer.copy(bytes, at, message.valueStart, message.valueEnd);
      ranges[4 * i + 3] = at;
      offsets[i] = BigInt(message.offsetValue);
      timestamps[i] = Number(message.timestampValue);
    } else {
      const key = message.key ?? null;
      ranges[4 * i] = key === null ? ABSENT : at;
      if (key !== null) at += key.copy(bytes, at);
      ranges[4 * i + 1] = at;
      const value = message.value ?? null;
      ranges[4 * i + 2] = value === null ? ABSENT : at;
      if (value !== null) at += value.copy(bytes, at);
      ranges[4 * i + 3] = at;
      offsets[i] = BigInt(message.offset);
      timestamps[i] = Number(message.timestamp);
    }
    if (headers !== null && message.headers && hasAny(message.headers)) {
      headers[i] = Object.fromEntries(Object.entries(message.headers).map(([name, header]) => [name, Buffer.from(toBytes(header))]));
    }
  }
  const batch = new FetchedBatch(topic, partition, bytes, ranges, offsets, timestamps, headers);
  const records = new Array<InPlaceRecord>(count);
  for (let i = 0; i < count; i++) records[i] = new InPlaceRecord(batch, i);
  return records;
}

/** Bytes of `buffer` from `start` to `end` (none for ABSENT), as a view of them would hold. */
function rangeLength(buffer: Buffer, start: number, end: number): number {
  return start === ABSENT ? 0 : Math.max(0, Math.min(end, buffer.length) - start);
}

/**
 * Lets go of kafkajs's message objects of a batch once its records are made: a batch waits in
 * eachBatch for room in the read-ahead while the sink writes (the normal state of a sink working
 * through a backlog), and kafkajs's batch (its three message arrays, the first shared with the
 * fetch response) kept every message, its offset and timestamp text alive meanwhile, long enough
 * to be promoted into the old generation beside the record made from it. Each array keeps its last
 * message, which is all kafkajs reads of them after eachBatch (consumer/batch.js lastOffset,
 * isEmpty*; the END_BATCH_PROCESS payload was made before eachBatch).
 */
export function releaseMessages(batch: EachBatchPayload["batch"]): void {
  const arrays = batch as unknown as { messages: KafkaMessage[]; messagesWithinOffset?: KafkaMessage[]; rawMessages?: KafkaMessage[] };
  for (const messages of [arrays.messages, arrays.messagesWithinOffset, arrays.rawMessages]) {
    if (messages === undefined || messages.length === 0) continue;
    // The message kept has no key or value: their views would keep the whole fetch response.
    messages[0] = keptMessage(messages[messages.length - 1]!);
    messages.length = 1;
  }
}

/** What kafkajs reads of a message after eachBatch (its offset, whether a control record). */
function keptMessage(message: KafkaMessage): KafkaMessage {
  const { offset, isControlRecord } = message as KafkaMessage & { isControlRecord?: boolean };
  return { offset, isControlRecord, key: null, value: null, timestamp: message.timestamp, attributes: message.attributes, headers: {} } as KafkaMessage;
}

/** Whether an object has an own enumerable property (without Object.keys's array per record). */
function hasAny(object: object): boolean {
  for (const name in object) if (Object.hasOwn(object, name)) return true;
  return false;
}

/** A header's value; a null one (a producer other than Sluice can write it, and both record decoders give it) is read as empty. */
function toBytes(value: Buffer | string | (Buffer | string)[] | null | undefined): Uint8Array {
  if (value === undefined || value === null) return new Uint8Array(0);
  if (Array.isArray(value)) return toBytes(value.at(-1));
  return typeof value === "string" ? new TextEncoder().encode(value) : value;
}

function closedError(group: string): SluiceError {
  return new SluiceError(`consumer of group "${group}" is closed`, { code: "CONSUMER_CLOSED", context: { component: "kafka", group } });
}

/**
 * The time to ask ListOffsets for the first record at or after `timestampMs`. Kafka reads -1 as "the end" and -2 as
 * "the start" and refuses other negative times, but a time before 1970 is before every record: its first one.
 */
export function listOffsetsTime(timestampMs: number): number {
  return timestampMs < 0 ? 0 : timestampMs;
}
