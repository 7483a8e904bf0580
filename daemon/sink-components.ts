/**
 * What a sink's thread needs of the daemon's wiring: which topics a sink reads, its group and dead
 * letters, decoding stored records and creating the sink. Apart from daemon/components.ts (capture's
 * encoder, the schema registry, sources), which re-exports these: each sink thread loads only this,
 * not capture's modules nor the schema registry's stores, REST API and CLI (~1.2 MiB of heap per
 * sink thread, docs/benchmarks.md).
 */
import type { SinkConfig, SluiceConfig, SourceConfig } from "../config/schema.ts";
import type { ChangeEvent, Sink, StoredRecord, TopicLog } from "../connectors/contracts.ts";
import { someReading } from "../connectors/common/table-label.ts";
import { tableMatcher } from "../connectors/common/table-patterns.ts";
import { InPlaceRecord } from "../connectors/topics/in-place-record.ts";
import { controlTopic, dataTopicPrefix, sinkDeadLetterTopic, sinkGroup } from "../connectors/topics/names.ts";
import { ChangeEventDecoder } from "../schema-registry/event-codec.ts";
import type { SchemaRegistry } from "../schema-registry/registry.ts";
import type { Logger } from "../runtime/logger.ts";
import { CompactedRecordReader } from "./compacted-records.ts";
import { controlledTopic } from "./control-records.ts";
import { lazyKeyStore, PersonalDataDecryptor, personalTables } from "./governance/personal-data.ts";
import type { RecordDecoder } from "./sink-runner.ts";

export { dataTopicPrefix };

export function parseDataTopic(deployment: string, sources: readonly string[], topic: string): { source: string; schema: string; table: string } | null {
  for (const source of sources) {
    const prefix = `${dataTopicPrefix(deployment, source)}.`;
    if (!topic.startsWith(prefix)) continue;
    const rest = topic.slice(prefix.length);
    const dot = rest.indexOf(".");
    if (dot <= 0) return null;
    return { source, schema: rest.slice(0, dot), table: rest.slice(dot + 1) };
  }
  return null;
}

/** The data topics a sink reads: its sources' (all by default), filtered by its table patterns. */
export function sinkTopics(config: SluiceConfig, sink: SinkConfig, topics: readonly string[]): string[] {
  const sources = sink.sources ?? config.sources.map((s) => s.name);
  const matches = tableMatcher(sink.tables);
  const control = controlTopic(config.name);
  const data = topics
    .filter((topic) => {
      const parsed = parseDataTopic(config.name, sources, topic);
      // Matched as the label: a schema's name may hold a dot, and the topic name does not say which dot ends it.
      return parsed !== null && someReading(`${parsed.schema}.${parsed.table}`, matches);
    })
    .sort();
  // The control topic (truncates and snapshot resets) once a data topic is read and it exists.
  return data.length > 0 && topics.includes(control) ? [...data, control] : data;
}

export function sinkGroupName(config: SluiceConfig, sink: SinkConfig): string {
  return sinkGroup(config.name, sink.name);
}

export function deadLetterTopic(config: SluiceConfig, sink: SinkConfig): string {
  return sinkDeadLetterTopic(config.name, sink);
}

/**
 * Sluice's own topics (parked events of halted tables, dead letters). With the config, records
 * may be 4 × topics.max_record_bytes: a parked or dead-lettered change carries a row over the
 * limit as JSON, with its reason.
 */
export function internalTopicSpec(name: string, config?: SluiceConfig) {
  return {
    name,
    partitions: 1,
    retentionMs: null,
    retentionBytes: null,
    compacted: false,
    ...(config ? { maxRecordBytes: Math.min(4 * config.topics.max_record_bytes, 2 ** 31 - 1) } : {}),
  };
}

/**
 * The source's dead-letter topic <deployment>.dlq.<source> (data checks, rows of outbox tables): an internal topic, kept
 * for ever unless the operator sets sources[].dead_letter_retention (a dead letter there is the only copy of its change).
 */
export function sourceDeadLetterTopicSpec(name: string, config: SluiceConfig, source: Pick<SourceConfig, "dead_letter_retention">) {
  const retention = source.dead_letter_retention;
  return { ...internalTopicSpec(name, config), retentionMs: retention === undefined || retention.max_age === 0 ? null : retention.max_age, retentionBytes: retention?.max_bytes ?? null };
}

/** outbox.message_dead_letter_retention when it is not set (a config read before it existed): 1 GiB, no age limit. */
export const MESSAGE_DEAD_LETTER_RETENTION = { max_age: 0, max_bytes: 2 ** 30 } as const;

/**
 * <deployment>.dlq.<source>.messages, where logical messages that are no event go: anyone connected may emit them, so it
 * is bounded by outbox.message_dead_letter_retention (1 GiB by default).
 */
export function messageDeadLetterTopicSpec(name: string, config: SluiceConfig, source: SourceConfig) {
  const outbox = source.kind === "postgres" ? source.outbox : undefined;
  const { max_age, max_bytes } = outbox?.message_dead_letter_retention ?? MESSAGE_DEAD_LETTER_RETENTION;
  return { ...internalTopicSpec(name, config), retentionMs: max_age === 0 ? null : max_age, retentionBytes: max_bytes };
}

/** Decodes stored records; with `personal`, personal columns come out decrypted (null once their subject is forgotten). */
export function recordDecoder(registry: Pick<SchemaRegistry, "getById">, personal?: PersonalDataDecryptor | null): RecordDecoder {
  const decoder = new ChangeEventDecoder(registry);
  const compacted = new CompactedRecordReader(registry);
  // No promise per record once the schemas are known: a sink decodes every change it reads.
  const decode = (record: StoredRecord): ChangeEvent | null | Promise<ChangeEvent | null> => {
    // A control record's key names its table, not a row.
    if (controlledTopic(record) !== null) return decoder.decode(null, record.value, record.headers);
    const normalized = compacted.normalize(record);
    if (normalized instanceof Promise) return normalized.then(({ key, value }) => decoder.decode(key, value, record.headers));
    // Nearly every record is its own normalized form: one the Kafka consumer made is read in place, without views.
    if (normalized instanceof InPlaceRecord) return decoder.decodeIn(normalized.bytes, normalized.keyStart, normalized.keyEnd, normalized.valueStart, normalized.valueEnd, record.headers);
    return decoder.decode(normalized.key, normalized.value, record.headers);
  };
  if (!personal) return { decode };
  return {
    decode: async (record: StoredRecord) => {
      const event = await decode(record);
      return event === null ? null : personal.apply(event);
    },
  };
}

/** The decryption of personal columns for a sink's process, or null when no source of the deployment has any. */
export function personalDecryptor(config: SluiceConfig, log: TopicLog): PersonalDataDecryptor | null {
  return config.sources.some((s) => personalTables(s).size > 0) ? new PersonalDataDecryptor(config, lazyKeyStore(config, log, { create: true })) : null;
}

export async function createSink(config: SinkConfig, logger: Logger): Promise<Sink> {
  switch (config.kind) {
    case "duckdb": {
      const { createDuckDbSink } = await import("../connectors/duckdb/duckdb-sink.ts");
      return createDuckDbSink(config, { logger });
    }
    case "clickhouse": {
      const { createClickHouseSink } = await import("../connectors/clickhouse/index.ts");
      return createClickHouseSink(config, { logger });
    }
    case "elasticsearch": {
      // Before the client's modules load: they import only the parts of undici and OpenTelemetry the client uses.
      const { importLessForElasticsearch } = await import("../connectors/elasticsearch/transport-imports.ts");
      importLessForElasticsearch();
      const { createElasticsearchSink } = await import("../connectors/elasticsearch/index.ts");
      return createElasticsearchSink(config, { logger });
    }
  }
}
