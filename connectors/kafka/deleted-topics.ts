/**
 * What capture does with a topic it declared when Kafka answers a write to it UNKNOWN_TOPIC_OR_PARTITION
 * (KafkaTopicLog.createDeletedAgain): a data topic deleted by hand is created again; one found again is written only
 * if it still has the layout this log writes; an internal topic deleted is never created again, since created again
 * empty it would lose what capture and the sinks read back from it. Both refusals are retriable: capture waits, the
 * readiness saying why, since a broker restarting or moving partitions can answer so for a topic that is there, and an
 * operator's change (a retention set back) makes the topic writable again with no restart.
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
 * answer came right after a creation, or from a broker with stale metadata); throws TOPIC_DELETED for a deleted internal
 * topic and TOPIC_REPLACED for a topic found with another layout: fewer partitions, another cleanup policy, or a time or
 * size limit on one Sluice writes to keep everything (created again by another client or by Kafka's
 * auto.create.topics.enable, which deletes after 7 days). Another limit on a topic that has one is an operator's tuning.
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
  if (written.retentionMs === null && existing.retentionMs !== null) differences.push(`retention.ms ${existing.retentionMs}, Sluice writes it with -1`);
  if (written.retentionBytes === null && existing.retentionBytes !== null) differences.push(`retention.bytes ${existing.retentionBytes}, Sluice writes it with -1`);
  if (differences.length === 0) return "write";
  throw new SluiceError(
    `topic ${name} does not have the layout capture writes it with: it now has ${differences.join("; ")}. ` +
      `Capture waits rather than write to it (records for missing partitions would fail for ever; a topic that deletes by retention loses history silently), and goes on by itself once the topic has that layout again. ` +
      `If you changed its settings, set them back (kafka-configs.sh --alter --entity-type topics --entity-name ${name}). ` +
      `If another client created it again after a deletion (Kafka's auto.create.topics.enable), it holds none of Sluice's history: set auto.create.topics.enable=false on the brokers, delete that topic and restart Sluice, which creates it as configured, ` +
      `then read its table again (sluice snapshot -c FILE --table T --execute) (docs/topics.md, "Broker trouble")`,
    {
      code: TOPIC_REPLACED,
      retriable: true,
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
  return new SluiceError(`Kafka does not know topic ${name}: if it was deleted while capture wrote to it (by hand?), Sluice does not create it again on its own, since ${lost}. Capture waits, and goes on by itself if the answer was a broker's passing one`, {
    code: TOPIC_DELETED,
    retriable: true,
    context: { component: "kafka", topic: name },
  });
}
