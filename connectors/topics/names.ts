/**
 * Names a deployment uses in the topic log: data topics are `<deployment>.<source>.<schema>.<table>`
 * (daemon/components.ts);
 * Sluice's own topics sit under `<deployment>.sluice.`; dead letters under `<deployment>.dlq.`.
 */

/** Data topics are `<deployment>.<source>.<schema>.<table>`. */
export function dataTopicPrefix(deployment: string, source: string): string {
  return `${deployment}.${source}`;
}

/** Where capture parks the changes of a source's tables halted at capture. */
export function parkingTopicOf(deployment: string, source: string): string {
  return `${deployment}.sluice.halted.${source}`;
}

/** Where changes failing a dead-letter check go: `<deployment>.dlq.<source>`, beside the sinks' dead letters. */
export function dataCheckDeadLetterTopic(deployment: string, source: string): string {
  return `${deployment}.dlq.${source}`;
}

/**
 * Where logical messages that are no event go: `<deployment>.dlq.<source>.messages`, bounded, apart from the source's
 * dead-letter topic (anyone connected may emit a message, and junk messages must never evict a change's only copy).
 * No source or sink name holds a dot, so it is no other source's or sink's dead-letter topic.
 */
export function outboxMessageDeadLetterTopic(deployment: string, source: string): string {
  return `${deployment}.dlq.${source}.messages`;
}

/** A sink's dead letters: its dead_letter_topic (any name), else `<deployment>.dlq.<sink>`. */
export function sinkDeadLetterTopic(deployment: string, sink: { readonly name: string; readonly dead_letter_topic?: string | undefined }): string {
  return sink.dead_letter_topic ?? `${deployment}.dlq.${sink.name}`;
}

export function sinkGroup(deployment: string, sinkName: string): string {
  return `${deployment}.sink.${sinkName}`;
}

/** Kafka: the compacted topic holding source checkpoints, keyed by source name. */
export function checkpointTopic(deployment: string): string {
  return `${deployment}.sluice.checkpoints`;
}

/** Kafka: the single-partition topic holding the schema registry's journal. */
export function registryTopic(deployment: string): string {
  return `${deployment}.sluice.schemas`;
}

/** Kafka: the single-partition topic holding the MySQL sources' schema histories (connectors/mysql/schema/schema-history.ts), kept forever. */
export function schemaHistoryTopic(deployment: string): string {
  return `${deployment}.sluice.schema-history`;
}

/** Kafka: the compacted topic holding the identity Sluice drew for each data topic it created, keyed by topic name. */
export function topicIdsTopic(deployment: string): string {
  return `${deployment}.sluice.topic-ids`;
}

/**
 * The compacted topic holding the data subjects' keys of personal columns (daemon/governance/subject-keys.ts), wrapped by
 * the master key, keyed by source and subject.
 */
export function subjectKeysTopic(deployment: string): string {
  return `${deployment}.sluice.subject-keys`;
}

/**
 * Kafka: the record of `<deployment>.sluice.checkpoints` holding the highest schema id the built-in registry issued
 * (kafka-log.ts, KafkaJournal), kept outside the registry's own topic so that a registry lost with its topic gives new
 * schemas ids above every id a record names. No source's name holds a NUL, so no checkpoint or entry has this key.
 */
export const HIGHEST_SCHEMA_ID_KEY = "\u0000registry/highest-schema-id";

/**
 * The compacted topic holding every table's truncates and snapshot resets (daemon/control-records.ts),
 * keyed by source and table, so that data topics stay free of them (Debezium consumers fail on op t).
 */
export function controlTopic(deployment: string): string {
  return `${deployment}.sluice.control`;
}

/** Kafka: the compacted topic where every running process announces itself (roles, sources, sinks, partitions, lag), keyed by instance. */
export function instancesTopic(deployment: string): string {
  return `${deployment}.sluice.instances`;
}

/** Kafka: the one-partition topic whose consumer groups are the capture leases (kafka-lease.ts); never written. */
export function captureLeaseTopic(deployment: string): string {
  return `${deployment}.sluice.capture-lease`;
}

/** Kafka: the consumer group that leases the capture of a set of sources (`all`, or `capture.<names>`). */
export function captureLeaseGroup(deployment: string, captureSet: string): string {
  return `${deployment}.sluice.lease.${captureSet}`;
}

export function isInternalTopic(deployment: string, topic: string): boolean {
  return topic.startsWith(`${deployment}.sluice.`) || topic.startsWith(`${deployment}.dlq.`) || topic.startsWith("__");
}

/** Error code of a topic name the topic log cannot take (its characters, length, or, in Kafka, a name that collides with another). */
export const TOPIC_NAME_INVALID = "TOPIC_NAME_INVALID";

/** Why Kafka cannot take `name` as a topic name (1 to 249 characters of [A-Za-z0-9._-], not "." or ".."), or null. */
export function kafkaTopicNameProblem(name: string): string | null {
  if (name === "." || name === "..") return `Kafka topic names cannot be "." or ".."`;
  if (name.length === 0 || name.length > 249) return `Kafka topic names have 1 to 249 characters, it has ${name.length}`;
  const bad = /[^A-Za-z0-9._-]/u.exec(name);
  return bad === null ? null : `Kafka topic names hold only ASCII letters, digits, ".", "_" and "-", not ${JSON.stringify(bad[0])}`;
}
