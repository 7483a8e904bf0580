/**
 * What capture writes to a compacted data topic beyond plain row changes, so that replaying the
 * topic from its beginning after compaction still yields the table's current state:
 *
 * - A truncate written to the data topic (only when the source's skipped_operations leaves truncates
 *   in, or with envelope sluice; every truncate also goes to the control topic, control-records.ts,
 *   which is what sinks rely on) gets a key: Kafka refuses keyless records in a compacted topic.
 *   The key is the same for every truncate of the table (Confluent-framed Avro of the record
 *   `io.sluice.TruncateKey {table}`, registered under the subject `sluice-truncate-key`, so Avro
 *   consumers can read it by its id), so compaction keeps the newest one only. Earlier Sluice
 *   versions wrote every truncate so; sinks still read and apply such records.
 * - A delete's tombstone carries the delete's envelope in the `sluice.delete` header: compaction
 *   removes the delete record itself (the tombstone has the same key), so a sink that reads the
 *   partition later than min.compaction.lag.ms after the delete sees only the tombstone, and
 *   applies it as that delete.
 *
 * An update that lacks a column's value (PostgreSQL's unchanged TOAST under REPLICA IDENTITY
 * DEFAULT: the record says "unchanged") cannot be made whole here: once compaction removes the
 * record that carried the value, a replay from the beginning no longer has it. `onPartialRow` is
 * told, so the operator can set REPLICA IDENTITY FULL (then the value is copied from `before`).
 */
import type { ChangeEvent, ProducedRecord, StoredRecord } from "../connectors/contracts.ts";
import { UNCHANGED } from "../connectors/contracts.ts";
import { ABSENT, InPlaceRecord } from "../connectors/topics/in-place-record.ts";
import type { SchemaRegistry } from "../schema-registry/index.ts";
import { createAvroType } from "../schema-registry/avro-runtime.ts";
import { encodeFramed, HEADER_LENGTH, MAGIC_BYTE } from "../schema-registry/wire-format.ts";

export const DELETE_HEADER = "sluice.delete";

export const TRUNCATE_KEY_SUBJECT = "sluice-truncate-key";
const TRUNCATE_KEY_SCHEMA = { type: "record" as const, name: "TruncateKey", namespace: "io.sluice", fields: [{ name: "table", type: "string" as const }] };
const truncateKeyType = createAvroType(TRUNCATE_KEY_SCHEMA);

/** Rewrites one event's records for a compacted topic (see above). */
export class CompactedRecords {
  private readonly registry: Pick<SchemaRegistry, "register">;
  private readonly onPartialRow: (event: ChangeEvent, columns: readonly string[]) => void;
  private keySchemaId: Promise<number> | null = null;

  constructor(registry: Pick<SchemaRegistry, "register">, onPartialRow: (event: ChangeEvent, columns: readonly string[]) => void = () => undefined) {
    this.registry = registry;
    this.onPartialRow = onPartialRow;
  }

  async rewrite(event: ChangeEvent, records: ProducedRecord[]): Promise<ProducedRecord[]> {
    if (event.op !== "t") return this.rewriteNow(event, records);
    const out: ProducedRecord[] = [];
    for (const record of records) {
      if (record.key !== null) {
        out.push(record);
        continue;
      }
      const key = encodeFramed(await this.truncateKeySchemaId(), truncateKeyType, { table: `${event.schema.schema}.${event.schema.table}` });
      out.push({ ...record, key });
    }
    return out;
  }

  /** `rewrite` of any change but a truncate (the one that may wait for a schema registration). */
  rewriteNow(event: ChangeEvent, records: ProducedRecord[]): ProducedRecord[] {
    if (event.op === "t") throw new Error("a truncate's records are rewritten by rewrite()");
    if (event.op === "d") return withDeleteHeader(records);
    if (event.op === "u" && event.after !== null) {
      // Every update passes here: no list unless a column is missing.
      const { after, before } = event;
      let missing: string[] | undefined;
      for (const c in after) if (after[c] === UNCHANGED && (before?.[c] === undefined || before[c] === UNCHANGED)) (missing ??= []).push(c);
      if (missing) this.onPartialRow(event, missing);
    }
    return records;
  }

  private truncateKeySchemaId(): Promise<number> {
    if (!this.keySchemaId) {
      this.keySchemaId = this.registry.register(TRUNCATE_KEY_SUBJECT, TRUNCATE_KEY_SCHEMA);
      this.keySchemaId.catch(() => (this.keySchemaId = null));
    }
    return this.keySchemaId;
  }
}

function withDeleteHeader(records: ProducedRecord[]): ProducedRecord[] {
  const deleted = records.find((r) => r.value !== null);
  if (!deleted) return records;
  return records.map((r) => (r.value === null && r.key !== null ? { ...r, headers: { ...r.headers, [DELETE_HEADER]: deleted.value! } } : r));
}

/**
 * The record as the change decoder takes it: a tombstone with a delete's envelope becomes that
 * delete, and a truncate's own key is dropped (the decoder would read it as a row key).
 */
/** A record's key and value as the decoder reads them. */
export interface Normalized {
  readonly key: Uint8Array | null;
  readonly value: Uint8Array | null;
}

export class CompactedRecordReader {
  private readonly registry: Pick<SchemaRegistry, "getById">;
  private readonly truncateKeyIds = new Map<number, Promise<boolean>>();
  /** The answers of truncateKeyIds once known: read without a promise per record. */
  private readonly truncateKeyAnswers = new Map<number, boolean>();
  /** Per topic and partition, the record read last (records of one partition are read in order). */
  private readonly previous = new Map<string, Map<number, StoredRecord>>();

  constructor(registry: Pick<SchemaRegistry, "getById">) {
    this.registry = registry;
  }

  /** A promise only while a key schema's kind is being fetched (a sink normalizes every record it reads). */
  normalize(record: StoredRecord): Normalized | Promise<Normalized> {
    let partitions = this.previous.get(record.topic);
    if (partitions === undefined) {
      partitions = new Map();
      this.previous.set(record.topic, partitions);
    }
    const before = partitions.get(record.partition);
    partitions.set(record.partition, record);
    const carried = isTombstone(record) ? record.headers?.[DELETE_HEADER] : undefined;
    if (carried !== undefined) {
      // The delete itself was the record just before: the tombstone adds nothing (applying it again would only count twice).
      const beforeValue = before !== undefined && before.offset === record.offset - 1n ? before.value : null;
      if (beforeValue !== null && Buffer.compare(beforeValue, carried) === 0) return { key: record.key, value: null };
      const key = record.key;
      return key === null ? { key, value: carried } : this.withoutTruncateKey(keySchemaId(key, 0, key.length), { key, value: carried });
    }
    // The record itself is its normalized form (nearly every record): no object per record, and its key and value
    // are read where they are (in-place-record.ts).
    if (isTombstone(record)) return record;
    let id: number | null;
    if (record instanceof InPlaceRecord) {
      const keyStart = record.keyStart;
      id = keyStart === ABSENT ? null : keySchemaId(record.bytes, keyStart, record.keyEnd);
    } else id = record.key === null ? null : keySchemaId(record.key, 0, record.key.length);
    return this.withoutTruncateKey(id, record);
  }

  /** `normalized` without its key when that key is a truncate's (`id`: the key's schema id, null when it has none). */
  private withoutTruncateKey(id: number | null, normalized: Normalized): Normalized | Promise<Normalized> {
    if (id === null) return normalized;
    const truncate = this.truncateKeyAnswers.get(id);
    if (truncate !== undefined) return truncate ? { key: null, value: normalized.value } : normalized;
    return this.isTruncateKey(id).then((known) => (known ? { key: null, value: normalized.value } : normalized));
  }

  private isTruncateKey(id: number): Promise<boolean> {
    let known = this.truncateKeyIds.get(id);
    if (!known) {
      known = this.registry.getById(id).then((text) => {
        const schema = JSON.parse(text) as { name?: unknown; namespace?: unknown };
        const name = typeof schema.namespace === "string" && schema.namespace !== "" ? `${schema.namespace}.${String(schema.name)}` : schema.name;
        const truncate = name === "io.sluice.TruncateKey";
        this.truncateKeyAnswers.set(id, truncate);
        return truncate;
      });
      this.truncateKeyIds.set(id, known);
      known.catch(() => this.truncateKeyIds.delete(id));
    }
    return known;
  }
}

function isTombstone(record: StoredRecord): boolean {
  return record instanceof InPlaceRecord ? record.valueStart === ABSENT : record.value === null;
}

/** The schema id of a framed key at `start` to `end` of `bytes` (bytes 1-4, big-endian), read without a view; null when it is not framed. */
function keySchemaId(bytes: Uint8Array, start: number, end: number): number | null {
  if (end - start < HEADER_LENGTH || bytes[start] !== MAGIC_BYTE) return null;
  return ((bytes[start + 1]! << 24) >>> 0) + (bytes[start + 2]! << 16) + (bytes[start + 3]! << 8) + bytes[start + 4]!;
}
