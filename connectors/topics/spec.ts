import type { TopicsConfig } from "../../config/schema.ts";
import { SluiceError } from "../errors.ts";
import type { ProducedRecord, TopicSpec } from "./contract.ts";

/** The spec of a topic Sluice creates, from the deployment's `topics` config. */
export function topicSpecFromConfig(name: string, config: TopicsConfig, options: { compacted?: boolean; partitions?: number } = {}): TopicSpec {
  return {
    name,
    partitions: options.partitions ?? config.partitions,
    retentionMs: config.retention.max_age === 0 ? null : config.retention.max_age,
    retentionBytes: config.retention.max_bytes ?? null,
    compacted: options.compacted ?? false,
  };
}

export function validateSpec(spec: TopicSpec): void {
  if (!Number.isInteger(spec.partitions) || spec.partitions < 1) {
    throw new SluiceError(`topic "${spec.name}": partitions must be a positive integer, got ${spec.partitions}`, { code: "TOPIC_SPEC_INVALID", context: { component: "topics", topic: spec.name } });
  }
  if (spec.name.length === 0 || spec.name.length > 249) {
    throw new SluiceError(`topic name must have 1 to 249 characters, got "${spec.name}"`, { code: "TOPIC_SPEC_INVALID", context: { component: "topics", topic: spec.name } });
  }
}

/**
 * An existing topic must have the configured partition count and cleanup policy: both change which records a reader sees.
 * `howToMatch` says what to do instead of the general advice (e.g. the command that sets a cleanup policy back).
 */
export function assertSameLayout(configured: TopicSpec, existing: Pick<TopicSpec, "partitions" | "compacted">, howToMatch?: string): void {
  const differences: string[] = [];
  if (configured.partitions !== existing.partitions) differences.push(`${existing.partitions} partitions exist, ${configured.partitions} configured`);
  const legacy = configured.compacted && !existing.compacted && configured.acceptUncompacted === true;
  if (configured.compacted !== existing.compacted && !legacy) differences.push(`it is ${existing.compacted ? "compacted" : "not compacted"}, configured ${configured.compacted ? "compacted" : "not compacted"}`);
  if (differences.length === 0) return;
  throw new SluiceError(`topic "${configured.name}" exists with a different layout: ${differences.join("; ")}. ${howToMatch ?? "Delete the topic or change the configuration to match."}`, {
    code: "TOPIC_MISMATCH",
    context: { component: "topics", topic: configured.name, existingPartitions: existing.partitions, configuredPartitions: configured.partitions },
  });
}

/** Error code of a record over a topic's size limit (config `topics.max_record_bytes`). */
export const RECORD_TOO_LARGE = "RECORD_TOO_LARGE";

/**
 * What a record costs against a size limit such as Kafka's `max.message.bytes`: key, value and
 * headers, plus the framing of a record batch holding it alone (batch header 61 bytes, record
 * varints and attributes, rounded up), so a record within the limit is accepted by the broker.
 */
export function recordBytes(record: ProducedRecord): number {
  let size = 128 + (record.key?.length ?? 0) + (record.value?.length ?? 0);
  if (record.headers) for (const name in record.headers) size += Buffer.byteLength(name) + record.headers[name]!.length + 10;
  return size;
}
