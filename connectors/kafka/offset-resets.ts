/**
 * kafkajs answers OFFSET_OUT_OF_RANGE on a fetch (retention deleted the records at the consumer's
 * position, or the partition no longer reaches it) by moving the consumer to the partition's
 * earliest offset, and only logs it. This tells Sluice's consumers, so a sink can say which
 * records it never read (KafkaPullConsumer.takeSkipped).
 */
import { createRequire } from "node:module";

export interface OffsetReset {
  readonly group: string;
  readonly topic: string;
  readonly partition: number;
}

interface ConsumerGroup {
  groupId: string;
  preferredReadReplicasPerTopicPartition: Record<string, Record<number, unknown> | undefined>;
  recoverFromOffsetOutOfRange(e: { topic: string; partition: number }): Promise<void>;
}

const listeners = new Set<(reset: OffsetReset) => void>();
let patched = false;

/** Calls `listener` whenever a consumer of this process is moved to the earliest offset of a partition; returns its removal. */
export function onOffsetReset(listener: (reset: OffsetReset) => void): () => void {
  patch();
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function patch(): void {
  if (patched) return;
  patched = true;
  const { prototype } = createRequire(import.meta.url)("kafkajs/src/consumer/consumerGroup.js") as { prototype: ConsumerGroup };
  const recover = prototype.recoverFromOffsetOutOfRange;
  prototype.recoverFromOffsetOutOfRange = async function (this: ConsumerGroup, e) {
    // A follower's answer only sends the fetch back to the leader (kafkajs keeps the position).
    const fromFollower = typeof this.preferredReadReplicasPerTopicPartition[e.topic]?.[e.partition] === "number";
    await recover.call(this, e);
    if (fromFollower) return;
    for (const listener of listeners) listener({ group: this.groupId, topic: e.topic, partition: e.partition });
  };
}
