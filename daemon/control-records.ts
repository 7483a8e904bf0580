/**
 * Control records: every truncate (a real TRUNCATE, or the reset that closes a table's snapshot,
 * connectors/common/snapshot-reset.ts) goes to the deployment's control topic
 * (`<deployment>.sluice.control`), written by capture with the table's other records, in the same
 * write (one Kafka transaction), so exactly-once holds for it as for rows.
 *
 * Why a topic of its own: data topics are compacted (a keyless record is refused there and a
 * tombstone is compacted away, bringing truncated rows back on replay), and a Debezium consumer
 * fails on op "t" records. The control topic is compacted and keyed by source, table and kind
 * (truncate or snapshot reset), so compaction keeps each table's newest truncate and newest reset
 * -- enough, since sinks drop every row at or below a truncate's version and within a kind the
 * newest has the highest. Not one key per table: an online snapshot's closing reset is written
 * after truncates streamed during the snapshot, with a version below theirs. Its value is the op-t envelope,
 * framed with the table's registered value schema; the `sluice.topic` header names the data topic.
 *
 * Sinks read it beside their data topics and hold each record until every partition of the data
 * topic is applied up to where it stood when the record was read (daemon/snapshot-reset-gate.ts).
 */
import type { ChangeEvent, ProducedRecord, StoredRecord, TopicSpec } from "../connectors/contracts.ts";

/** The header naming the data topic of the table a control record truncates. */
export const CONTROL_TOPIC_HEADER = "sluice.topic";

/** The control record of a truncate whose envelope (framed Avro) is `envelope`, for the table written to `dataTopic`. */
export function controlRecord(topic: string, event: ChangeEvent, dataTopic: string, envelope: Uint8Array): ProducedRecord {
  return {
    topic,
    key: Buffer.from(`${event.schema.source}\u0000${event.schema.schema}.${event.schema.table}\u0000${event.source.snapshot ? "reset" : "truncate"}`),
    value: envelope,
    headers: { [CONTROL_TOPIC_HEADER]: Buffer.from(dataTopic) },
    timestamp: event.source.commitTimeMs,
  };
}

/** The data topic a control record truncates, or null for any other record. */
export function controlledTopic(record: Pick<StoredRecord, "headers">): string | null {
  const header = record.headers?.[CONTROL_TOPIC_HEADER];
  return header === undefined ? null : Buffer.from(header.buffer, header.byteOffset, header.byteLength).toString("utf8");
}

/** Always compacted, whatever the data topics' policy: it holds one small record per table. */
export function controlTopicSpec(name: string, retention: { readonly tombstones: number; readonly min_compaction_lag: number }, maxRecordBytes: number): TopicSpec {
  return {
    name,
    partitions: 1,
    retentionMs: null,
    retentionBytes: null,
    compacted: true,
    tombstoneRetentionMs: retention.tombstones,
    minCompactionLagMs: retention.min_compaction_lag,
    maxRecordBytes,
  };
}
