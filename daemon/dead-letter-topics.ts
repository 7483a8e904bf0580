/**
 * A source's dead-letter topics, declared at capture start with the source's retention (as the parking topic is): one
 * that exists gets the retention the config now gives (the embedded log applies it and logs the change; Kafka keeps an
 * existing topic's and warns), and the ones the source's outbox may write are made. Otherwise a changed retention would
 * be applied only at the next dead letter, whenever that came.
 */
import type { SourceConfig } from "../config/schema.ts";
import type { TopicLog, TopicSpec } from "../connectors/contracts.ts";

/** `changes` is `<deployment>.dlq.<source>` (data checks, rows of outbox tables), `messages` its logical messages' topic. */
export async function declareDeadLetterTopics(log: TopicLog, source: SourceConfig, [changes, messages]: readonly [string, string], spec: (topic: string) => TopicSpec): Promise<void> {
  const existing = new Set((await log.listTopics([changes, messages])).map((topic) => topic.name));
  const outbox = source.outbox?.on_invalid === "dead-letter" ? source.outbox : undefined;
  const wanted = [
    ...(existing.has(changes) || (outbox !== undefined && outbox.tables.length > 0) ? [changes] : []),
    ...(existing.has(messages) || (outbox !== undefined && source.kind === "postgres" && source.outbox?.message_prefix !== undefined) ? [messages] : []),
  ];
  for (const topic of wanted) await log.createTopic(spec(topic));
}
