/**
 * What capture does with a topic it declared when Kafka answers a write to it UNKNOWN_TOPIC_OR_PARTITION
 * (KafkaTopicLog.createDeletedAgain): a data topic deleted by hand is created again; one found again is written only
 * if it still has the layout this log writes; an internal topic deleted is a permanent error, since created again
 * empty it would lose what capture and the sinks read back from it.
 */
import { SluiceError } from "../errors.ts";
import { checkpointTopic, isInternalTopic, registryTopic, schemaHistoryTopic, topicIdsTopic } from "../topics/names.ts";
import type { TopicSpec } from "../topics/contract.ts";

export const TOPIC_DELETED = "TOPIC_DELETED";
export const TOPIC_REPLACED = "TOPIC_REPLACED";

/** The layout this log writes a topic with: the partitions its keys are spread over, whether it is compacted, its retention (null: none). */
export interface WrittenLayout {
  readonly partitions: number;
  readonly compacted: boolean;
  readonly retentionMs: number | null;
  readonly retentionBytes: number | null;
}

/** The layout of a topic created from `spec`, as describeTopic reads it back (retention only where the policy deletes). */
export function writtenLayoutOf(spec: TopicSpec): WrittenLayout {
  const deletes = !spec.compacted || spec.retentionMs !== null || spec.retentionBytes !== null;
  return { partitions: spec.partitions, compacted: spec.compacted, retentionMs: deletes ? spec.retentionMs : null, retentionBytes: deletes ? spec.retentionBytes : null };
}

/**
 * "recreate" for a deleted data topic; "write" for a topic Kafka still has with the layout written (the unknown-topic
 * answer came right after a creation); throws TOPIC_DELETED for a deleted internal topic and TOPIC_REPLACED for a
 * topic found with another layout (fewer partitions, another cleanup policy or retention) (created again by another client or by Kafka's auto.create.topics.enable).
 */
export function unknownTopicAction(deployment: string, name: string, written: WrittenLayout, existing: TopicSpec | undefined): "recreate" | "write" {
  if (existing === undefined) {
    if (isInternalTopic(deployment, name)) throw internalTopicDeletedError(deployment, name);
    return "recreate";
  }
  const differences: string[] = [];
  if (existing.partitions < written.partitions) differences.push(`${existing.partitions} partition(s), Sluice writes ${written.partitions}`);
  if (existing.compacted !== written.compacted) differences.push(`cleanup.policy ${existing.compacted ? "compact" : "delete"}, Sluice writes it ${written.compacted ? "compacted" : "with delete retention"}`);
  // A topic auto-created by the broker deletes by its default retention (7 days): a journal kept for ever would expire.
  if (existing.retentionMs !== written.retentionMs) differences.push(`retention.ms ${existing.retentionMs ?? -1}, Sluice writes it with ${written.retentionMs ?? -1}`);
  if (existing.retentionBytes !== written.retentionBytes) differences.push(`retention.bytes ${existing.retentionBytes ?? -1}, Sluice writes it with ${written.retentionBytes ?? -1}`);
  if (differences.length === 0) return "write";
  throw new SluiceError(
    `topic ${name} was deleted and created again by another client while capture wrote to it (Kafka's auto.create.topics.enable, or by hand): it now has ${differences.join("; ")}. ` +
      `Capture stops rather than write to it (records for the missing partitions would fail for ever; a topic that deletes by retention loses history silently). ` +
      `Set auto.create.topics.enable=false on the brokers, delete the topic (kafka-topics.sh --delete --topic ${name}) and restart Sluice: it creates the topic as configured; ` +
      `then read its table again (sluice snapshot -c FILE --table T --execute), since the topic holds only the changes from there on (docs/topics.md, "Broker trouble")`,
    {
      code: TOPIC_REPLACED,
      context: { component: "kafka", topic: name, existingPartitions: existing.partitions, writtenPartitions: written.partitions, existingCleanupPolicy: existing.compacted ? "compact" : "delete", writtenCleanupPolicy: written.compacted ? "compact" : "delete" },
    },
  );
}

/** A deleted internal topic: what it held, what is lost, and how to recover (docs/topics.md, "Broker trouble"). */
export function internalTopicDeletedError(deployment: string, name: string): SluiceError {
  const redo =
    `Recover: stop Sluice, delete the deployment's other topics too (or rename the deployment: name:) and start it with snapshot.mode: when-needed ` +
    `(PostgreSQL: drop the source's replication slot first), so that every table is read again into new topics; then rebuild the sinks (sluice replay --sink S --from-beginning --rebuild --execute)`;
  const lost =
    name === registryTopic(deployment)
      ? `it held the schema registry: created again, it would hold only schemas registered from now on, and after a restart the records written before, which name earlier schema ids, could not be decoded. Restore it from a backup if you have one, else: ${redo}`
      : name === checkpointTopic(deployment)
        ? `it held the sources' checkpoints and the PostgreSQL sources' record of the captured tables' layouts: created again, partly refilled, it would lose the layouts and a restart would resume from no checkpoint. ${redo}`
        : name === schemaHistoryTopic(deployment)
          ? `it held the MySQL sources' schema histories: created again, a restart would decode older binlog events with today's table definitions. ${redo}`
          : name === topicIdsTopic(deployment)
            ? `it held the data topics' identities, by which sinks tell a topic created again from the one their offsets came from. Restart Sluice: it creates the topic and records new identities; the sinks then refuse their stored offsets (docs/operations.md, "A sink refuses to start") and need a rebuild`
            : `it is one of Sluice's own topics, and what it held (truncates, snapshot resets or parked changes) went with it. Restart Sluice to create it again empty, and read the affected tables again if that matters (docs/topics.md, "Broker trouble")`;
  return new SluiceError(`topic ${name} was deleted while capture wrote to it (by hand?): Sluice does not create it again on its own, since ${lost}`, {
    code: TOPIC_DELETED,
    context: { component: "kafka", topic: name },
  });
}
