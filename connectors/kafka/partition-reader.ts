/**
 * Reads a topic's partitions over known offset ranges without a consumer group: fetch requests
 * straight to each partition's leader, read_committed, nothing committed. kafkajs has no assign(),
 * and every consumer it makes joins a group; a group that is new (each throwaway reader's) waits
 * the broker's group.initial.rebalance.delay.ms (3 s by default) before its first assignment. The
 * daemon reads its internal topics (schema journal, checkpoints, topic identities) to their end at
 * every start, so on a broker with that default a restart waited 3 s per read before it captured.
 *
 * The fetches go through a kafkajs cluster of the client's own (its brokers, TLS and SASL), made
 * by the client's private factory, and the records through kafkajs's own batch filter (control
 * records and aborted transactions left out), as its consumer does.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { createRequire } from "node:module";
import type { Kafka, KafkaMessage } from "kafkajs";
import { SluiceError } from "../errors.ts";
import { InFlight } from "../common/in-flight.ts";
import type { StoredRecord } from "../topics/contract.ts";
import { kafkaError } from "./kafka-errors.ts";
import { storedRecordOf } from "./kafka-consumer.ts";
// kafkajs decodes a batch the log cleaner emptied to nothing, losing its offsets: this keeps them.
import "./emptied-batches.ts";

/** A partition's records to read: offsets from `start` (inclusive) to `end` (exclusive). */
export interface PartitionRange {
  readonly partition: number;
  readonly start: bigint;
  readonly end: bigint;
}

export interface PartitionReaderOptions {
  readonly kafka: Kafka;
  readonly brokers: readonly string[];
  /** Most bytes of one fetch response, and of one partition in it (a larger first batch still comes whole). */
  readonly fetchBytes: number;
  readonly partitionFetchBytes: number;
}

/** Handed a partition's records a fetch response at a time; returning false ends the read. */
export type RecordsVisitor = (partition: number, records: readonly StoredRecord[]) => void | boolean;

/** Fetch sizes of one read in place of the reader's: a fetch response's records are all in memory at once, ~4 times its bytes. */
export type FetchLimits = Pick<PartitionReaderOptions, "fetchBytes" | "partitionFetchBytes">;

type FetchedMessage = KafkaMessage & {
  readonly batchContext: { readonly firstOffset: string; readonly lastOffsetDelta: number };
};

interface PartitionData {
  readonly partition: number;
  readonly messages: FetchedMessage[];
}

interface Broker {
  fetch(request: {
    isolationLevel: number;
    maxWaitTime: number;
    minBytes: number;
    maxBytes: number;
    topics: { topic: string; partitions: { partition: number; fetchOffset: string; maxBytes: number }[] }[];
  }): Promise<{ responses: { topicName: string; partitions: PartitionData[] }[] }>;
}

interface Cluster {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  addTargetTopic(topic: string): Promise<void>;
  refreshMetadata(): Promise<void>;
  refreshMetadataIfNecessary(): Promise<void>;
  findLeaderForPartitions(topic: string, partitions: number[]): Record<string, number[]>;
  findBroker(options: { nodeId: string }): Promise<Broker>;
}

type Batch = new (topic: string, fetchedOffset: string, partitionData: PartitionData) => { readonly messages: FetchedMessage[] };

const require = createRequire(import.meta.url);
const KafkaBatch = require("kafkajs/src/consumer/batch.js") as Batch;
const READ_COMMITTED = 1;
/** A fetch at a partition's end waits this long for records; the ranges read are below the end, so it answers at once. */
const FETCH_WAIT_MS = 500;
/** Fetches in a row that bring a partition no further (stale metadata, a moving leader) before the read gives up. */
const MAX_STALLED_FETCHES = 30;

/** kafkajs's cluster factory of a client (its brokers, TLS, SASL and retry settings): private in kafkajs 2.2. */
export function clusterFactory(kafka: Kafka): (options: { allowAutoTopicCreation: boolean; isolationLevel: number }) => Cluster {
  const key = Object.getOwnPropertySymbols(kafka).find((s) => s.description === "private:Kafka:createCluster");
  const factory = key === undefined ? undefined : (kafka as unknown as Record<symbol, unknown>)[key];
  if (typeof factory !== "function") throw new TypeError("this kafkajs version has no cluster factory on its client (connectors/kafka/partition-reader.ts expects kafkajs 2.2)");
  return factory as (options: { allowAutoTopicCreation: boolean; isolationLevel: number }) => Cluster;
}

export class PartitionReader {
  private readonly options: PartitionReaderOptions;
  private readonly cluster: Cluster;
  private connecting: Promise<void> | null = null;
  private closed = false;
  /** Reads under way: close() lets them end (each stops at its next fetch) before it disconnects, since kafkajs connects a disconnected cluster again at its next request. */
  private readonly reading = new InFlight();
  /**
   * The last fetch to each broker (by node id): fetches to one broker go one at a time. kafkajs connects a broker's fetch
   * connection at its first fetch, and two first fetches at once (two reads at once) each connected it: the first socket
   * was never closed, not even by close(). A broker serves one connection's requests in turn anyway.
   */
  private readonly lastFetch = new Map<string, Promise<unknown>>();

  constructor(options: PartitionReaderOptions) {
    this.options = options;
    this.cluster = clusterFactory(options.kafka)({ allowAutoTopicCreation: false, isolationLevel: READ_COMMITTED });
  }

  /**
   * The committed records of `topic` in the given ranges, in offset order per partition (ranges
   * below the partitions' last stable offsets: every record in them is committed or aborted).
   */
  async read(topic: string, ranges: readonly PartitionRange[]): Promise<StoredRecord[]> {
    const out = new Map<number, StoredRecord[]>(ranges.map((r) => [r.partition, []]));
    await this.each(topic, ranges, (partition, records) => {
      const kept = out.get(partition)!;
      for (const record of records) kept.push(record);
    });
    return [...out.values()].flat();
  }

  /**
   * Hands `visit` the committed records of `topic` in the given ranges a fetch response at a time,
   * in offset order per partition, keeping none of them: what the read holds is one response's
   * records (`limits`, default the reader's), however many the ranges have. `visit` returning false
   * ends the read: no further fetch is made, and the rest of the response is not handed over.
   */
  async each(topic: string, ranges: readonly PartitionRange[], visit: RecordsVisitor, limits: FetchLimits = this.options): Promise<void> {
    if (this.closed) throw closedError(topic);
    await this.reading.track(this.readRanges(topic, ranges, visit, limits));
  }

  private async readRanges(topic: string, ranges: readonly PartitionRange[], visit: RecordsVisitor, limits: FetchLimits): Promise<void> {
    const positions = new Map(ranges.filter((r) => r.end > r.start).map((r) => [r.partition, r.start]));
    const ends = new Map(ranges.map((r) => [r.partition, r.end]));
    if (positions.size === 0) return;
    let stopped = false;
    try {
      await this.connect();
      await this.cluster.addTargetTopic(topic);
      for (let stalled = 0; positions.size > 0 && !stopped; ) {
        if (this.closed) throw closedError(topic);
        let moved = false;
        try {
          await this.cluster.refreshMetadataIfNecessary();
          const leaders = this.cluster.findLeaderForPartitions(topic, [...positions.keys()]);
          if (Object.keys(leaders).length === 0) throw Object.assign(new Error(`no leader known for ${topic}`), { type: "LEADER_NOT_AVAILABLE" });
          await Promise.all(
            Object.entries(leaders).map(async ([nodeId, partitions]) => {
              const broker = await this.cluster.findBroker({ nodeId });
              const requested = partitions.map((partition) => ({ partition, fetchOffset: positions.get(partition)!.toString(), maxBytes: limits.partitionFetchBytes }));
              const { responses } = await this.inTurn(nodeId, () => broker.fetch({ isolationLevel: READ_COMMITTED, maxWaitTime: FETCH_WAIT_MS, minBytes: 1, maxBytes: limits.fetchBytes, topics: [{ topic, partitions: requested }] }));
              for (const data of responses.filter((r) => r.topicName === topic).flatMap((r) => r.partitions)) {
                const taken = this.take(topic, data, positions, ends);
                if (taken === null) continue;
                moved = true;
                if (taken.length > 0 && !stopped && visit(data.partition, taken) === false) stopped = true;
              }
            }),
          );
        } catch (error) {
          if ((error as { name?: string }).name === "KafkaJSOffsetOutOfRange") {
            // Records before the position were deleted (retention) since the range was listed: nothing to read there any more.
            throw new SluiceError(`reading ${topic}: offsets ${describe(positions)} are no longer in the topic (deleted by retention meanwhile); read it again`, { code: "KAFKA_OFFSET_OUT_OF_RANGE", retriable: true, context: { component: "kafka", topic } });
          }
          const failure = kafkaError(error, "read topic", this.options.brokers);
          const stale = ["LEADER_NOT_AVAILABLE", "NOT_LEADER_FOR_PARTITION", "FENCED_LEADER_EPOCH", "UNKNOWN_LEADER_EPOCH", "UNKNOWN_TOPIC_OR_PARTITION"].includes((error as { type?: string }).type ?? "");
          if (!stale && !failure.retriable) throw failure;
          if (++stalled > MAX_STALLED_FETCHES || this.closed) throw failure;
          await this.cluster.refreshMetadata().catch(() => undefined);
          await sleep(Math.min(1_000, 50 * stalled));
          continue;
        }
        stalled = moved ? 0 : stalled + 1;
        if (stalled > MAX_STALLED_FETCHES) {
          throw new SluiceError(`reading ${topic} to its end did not finish: ${MAX_STALLED_FETCHES} fetches in a row brought ${describe(positions)} no records`, { code: "KAFKA_READ_TIMEOUT", retriable: true, context: { component: "kafka", topic } });
        }
      }
    } catch (error) {
      throw error instanceof SluiceError ? error : kafkaError(error, "read topic", this.options.brokers);
    }
  }

  private inTurn<T>(nodeId: string, fetch: () => Promise<T>): Promise<T> {
    const fetching = (this.lastFetch.get(nodeId) ?? Promise.resolve()).then(fetch);
    this.lastFetch.set(nodeId, fetching.catch(() => undefined));
    return fetching;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.reading.settled();
    if (this.connecting) await this.cluster.disconnect().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    this.connecting ??= this.cluster.connect().catch((error: unknown) => {
      this.connecting = null;
      throw error;
    });
    await this.connecting;
  }

  /**
   * A partition's fetched records in its range, having moved its position past the last record
   * batch the response held; null when it did not move: a response with no record for the partition (the
   * fetch's size spent on other partitions, a leader not caught up) leaves the position where it
   * is, to be fetched again. A batch the log cleaner emptied of every record arrives as one control
   * record at its last offset (emptied-batches.ts), so the position moves past it too.
   */
  private take(topic: string, data: PartitionData, positions: Map<number, bigint>, ends: Map<number, bigint>): StoredRecord[] | null {
    const position = positions.get(data.partition);
    const end = ends.get(data.partition);
    if (position === undefined || end === undefined) return null;
    let next = position;
    for (const message of data.messages) {
      const batchEnd = BigInt(message.batchContext.firstOffset) + BigInt(message.batchContext.lastOffsetDelta) + 1n;
      if (batchEnd > next) next = batchEnd;
    }
    if (next === position) return null;
    const out: StoredRecord[] = [];
    for (const message of new KafkaBatch(topic, position.toString(), data).messages) {
      const offset = BigInt(message.offset);
      if (offset >= position && offset < end) out.push(storedRecordOf(topic, data.partition, message));
    }
    if (next >= end) positions.delete(data.partition);
    else positions.set(data.partition, next);
    return out;
  }
}

function closedError(topic: string): SluiceError {
  return new SluiceError(`reading ${topic}: the Kafka topic log was closed`, { code: "TOPIC_LOG_CLOSED", context: { component: "kafka", topic } });
}

function describe(positions: Map<number, bigint>): string {
  return [...positions].map(([partition, offset]) => `partition ${partition} at ${offset}`).join(", ");
}
