/**
 * The end offsets read_committed readers see (the last stable offsets) of partitions this process
 * wrote to: one ListOffsets request per leader for all of them, through a kafkajs cluster of the
 * client's own. kafkajs's admin asks per topic, for both ends, one after the other (two round trips
 * per topic); the wait for a commit's markers before the next transaction needs only this one, and
 * it is on the capture's critical path once per transaction.
 *
 * Any failure (a leader moved, a topic deleted by another process) drops the cluster, so the next
 * call starts from fresh metadata with only its own topics; the caller decides what a failure means.
 */
import type { Kafka } from "kafkajs";
import { InFlight } from "../common/in-flight.ts";
import { clusterFactory } from "./partition-reader.ts";

export interface TopicPartition {
  readonly topic: string;
  readonly partition: number;
}

interface OffsetsCluster {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  addMultipleTargetTopics(topics: string[]): Promise<void>;
  refreshMetadataIfNecessary(): Promise<void>;
  fetchTopicsOffset(topics: { topic: string; partitions: { partition: number }[]; fromBeginning: boolean }[]): Promise<{ topic: string; partitions: { partition: number; offset: string }[] }[]>;
}

const READ_COMMITTED = 1;

/** `${topic}\u0000${partition}`: how a partition is keyed in the map `stableEnds` returns. */
export function partitionKey(topic: string, partition: number): string {
  return `${topic}\u0000${partition}`;
}

export class StableOffsets {
  private readonly kafka: Kafka;
  private cluster: Promise<OffsetsCluster> | null = null;
  private closed = false;
  private readonly asking = new InFlight();

  constructor(kafka: Kafka) {
    this.kafka = kafka;
  }

  /** The last stable offset of each partition (keyed by partitionKey). */
  async stableEnds(partitions: readonly TopicPartition[]): Promise<Map<string, bigint>> {
    if (this.closed) throw new Error("the stable offsets' cluster is closed");
    return this.asking.track(this.ask(partitions));
  }

  private async ask(partitions: readonly TopicPartition[]): Promise<Map<string, bigint>> {
    const perTopic = new Map<string, { partition: number }[]>();
    for (const { topic, partition } of partitions) {
      let list = perTopic.get(topic);
      if (list === undefined) perTopic.set(topic, (list = []));
      list.push({ partition });
    }
    const cluster = this.connected();
    try {
      const ready = await cluster;
      await ready.addMultipleTargetTopics([...perTopic.keys()]);
      await ready.refreshMetadataIfNecessary();
      const answered = await ready.fetchTopicsOffset([...perTopic].map(([topic, list]) => ({ topic, partitions: list, fromBeginning: false })));
      const ends = new Map<string, bigint>();
      for (const { topic, partitions: offsets } of answered) for (const { partition, offset } of offsets) ends.set(partitionKey(topic, partition), BigInt(offset));
      return ends;
    } catch (error) {
      if (this.cluster === cluster) this.cluster = null;
      await cluster.then((c) => c.disconnect()).catch(() => undefined);
      throw error;
    }
  }

  private connected(): Promise<OffsetsCluster> {
    if (this.cluster !== null) return this.cluster;
    const cluster = clusterFactory(this.kafka)({ allowAutoTopicCreation: false, isolationLevel: READ_COMMITTED }) as unknown as OffsetsCluster;
    const connecting = cluster.connect().then(() => cluster);
    this.cluster = connecting;
    return connecting;
  }

  /** Lets the requests under way end, then disconnects. */
  async close(): Promise<void> {
    this.closed = true;
    await this.asking.settled();
    const cluster = this.cluster;
    this.cluster = null;
    await cluster?.then((c) => c.disconnect()).catch(() => undefined);
  }
}
