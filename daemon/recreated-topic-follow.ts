/**
 * A running sink meets a data topic created again under its name (capture created it again after a deletion, 6006c5a):
 * its consumer's positions are offsets of the old topic, so once the new one has passed them the sink would skip the
 * new topic's first records without a word. On the topic-created notice (capture in this process), and every
 * topicIdCheckMs (capture in another), the sink reads the topics' identities again, and every partition of a topic whose
 * identity changed is read from its first record (followRecreatedTopics).
 */
import type { TopicLog, TopicPartitionOffset } from "../connectors/contracts.ts";
import { SluiceError } from "../connectors/errors.ts";
import type { TopicConsumer } from "../connectors/topics/contract.ts";

export const SINK_TOPIC_RECREATED = "SINK_TOPIC_RECREATED";

export interface RecreatedFollow {
  /** The identities now (those read over those known): the ones to store offsets with from here on. */
  readonly ids: Map<string, string>;
  /** Topics whose identity changed since `known`. */
  readonly changed: readonly string[];
  /** Their partitions this consumer reads, sought to their first record. */
  readonly sought: readonly TopicPartitionOffset[];
}

export async function followRecreatedTopics(log: TopicLog, consumer: TopicConsumer, topics: readonly string[], known: ReadonlyMap<string, string>): Promise<RecreatedFollow> {
  const read = await log.topicIds(topics);
  const ids = mergeTopicIds(known, read);
  const changed = topics.filter((topic) => known.has(topic) && read.has(topic) && known.get(topic) !== read.get(topic));
  const sought: TopicPartitionOffset[] = [];
  for (const topic of changed) {
    for (const range of await log.partitionOffsets(topic)) {
      try {
        await consumer.seek(topic, range.partition, { kind: "offset", offset: range.start });
        sought.push({ topic, partition: range.partition, offset: range.start });
      } catch (error) {
        // Another member of the group reads it: that member follows the new topic itself.
        if (!(error instanceof SluiceError && error.code === "PARTITION_NOT_ASSIGNED")) throw error;
      }
    }
  }
  return { ids, changed, sought };
}

/**
 * The identities known, each replaced only by a newer one read for the same topic. A read that lacks a topic (the
 * topic-ids topic unreadable for a moment, deleted and not yet recorded again) forgets nothing: the identities the sink
 * knew stay what a later read is compared with, so a topic created again meanwhile is still followed.
 */
export function mergeTopicIds(known: ReadonlyMap<string, string>, read: ReadonlyMap<string, string>): Map<string, string> {
  const merged = new Map(known);
  for (const [topic, id] of read) merged.set(topic, id);
  return merged;
}

export function describeFollowed(sink: string, changed: readonly string[]): string {
  return (
    `sink ${sink}: topic(s) ${changed.join(", ")} were deleted and created again while the sink ran (a new identity): reading them from their first record, ` +
    `since the positions it held were offsets of the deleted topic. The new topic holds only the changes made since it was created: rows that did not change ` +
    `since stay as the sink holds them, and changes the old topic held that the sink had not read are gone (docs/operations.md, "A sink refuses to start")`
  );
}
