/**
 * ChangeEvents to topic records and back, through the registry: the encoder registers a table's
 * key and envelope schemas (TopicNameStrategy subjects, compatibility checked by the registry) and
 * frames each event; the decoder rebuilds each event under the exact table schema it was written
 * with, found from the schema id in the record.
 */
import type { Type } from "avsc";
import type { ChangeEvent, Row, TableSchema } from "../connectors/contracts.ts";
import { SluiceError } from "../connectors/errors.ts";
import { createAvroType, REPEATED } from "./avro-runtime.ts";
import type { AvroRecordJson } from "./avro-schema.ts";
import { encodeEnvelope, fromEnvelope } from "./envelope-codec.ts";
import type { EnvelopeExtras, RecordHeaders } from "./envelope-codec.ts";
import { parseDbType } from "./db-type.ts";
import { EARLIER_TYPE_MODES } from "./postgres-types.ts";
import { FramedDecoder, NOT_YET } from "./framed-codec.ts";
import { subjectForTopic } from "./registry.ts";
import type { SchemaRegistry } from "./registry.ts";
import type { AvroRecordValue } from "./row-codec.ts";
import { AvroValueError } from "./schema-errors.ts";
import { tableSchemaFromAvro } from "./table-from-avro.ts";
import { mapTable } from "./table-mapping.ts";
import type { TableAvroMapping, TableMappingOptions } from "./table-mapping.ts";
import { encodeFramed, schemaIdIn, schemaIdOf } from "./wire-format.ts";
import { FastEventEncoder } from "./envelope-writer.ts";

export interface EncodedEvent {
  /** Null for tables without a key and for truncates. */
  readonly key: Buffer | null;
  readonly value: Buffer;
  /** Sluice's bookkeeping (Debezium layout) and Debezium's key-change headers; empty when none. */
  readonly headers: RecordHeaders;
}

/** Debezium's headers on the two events of a key change, each holding the other key (Confluent-framed Avro, as the record key). */
export const NEW_KEY_HEADER = "__debezium.newkey";
export const OLD_KEY_HEADER = "__debezium.oldkey";

export class ChangeEventEncoder {
  readonly topic: string;
  readonly mapping: TableAvroMapping;
  readonly keySchemaId: number | null;
  readonly valueSchemaId: number;
  private readonly keyType: Type | null;
  private readonly valueType: Type;
  /** Writers compiled from the schemas (envelope-writer.ts); null where only the general path applies. */
  readonly fast: FastEventEncoder | null;

  private constructor(topic: string, mapping: TableAvroMapping, keySchemaId: number | null, valueSchemaId: number) {
    this.topic = topic;
    this.mapping = mapping;
    this.keySchemaId = keySchemaId;
    this.valueSchemaId = valueSchemaId;
    this.keyType = mapping.keySchema ? createAvroType(mapping.keySchema) : null;
    this.valueType = createAvroType(mapping.envelopeSchema);
    this.fast = FastEventEncoder.create(mapping, this.keyType, keySchemaId, this.valueType, valueSchemaId);
  }

  /**
   * Registers the table's schemas under `<topic>-key` and `<topic>-value`; rejects with
   * IncompatibleSchemaError. A PostgreSQL table with array columns gets the nested array layout,
   * unless its subjects hold the one-dimensional layout of earlier versions under a level that
   * refuses the change (FORWARD, FULL): then it keeps that layout (see postgres-types.ts). Likewise
   * a table whose subject refuses the Debezium envelope keeps Sluice's earlier one (a subject of an
   * upgraded deployment under a level that refuses the change), rather than halting. Columns keep
   * the field names of the subject's latest schema (TableMappingOptions.fieldNames).
   */
  static async register(registry: SchemaRegistry, table: TableSchema, tableOptions: TableMappingOptions & { readonly topic: string }): Promise<ChangeEventEncoder> {
    const fieldNames = tableOptions.fieldNames ?? (await registeredFieldNames(registry, tableOptions.topic, table));
    const options = fieldNames === undefined ? tableOptions : { ...tableOptions, fieldNames };
    let mapping = mapTable(table, options);
    const alternatives: TableMappingOptions[] = [];
    if (options.arrayLayout === undefined && table.sourceKind === "postgres" && table.columns.some((c) => parseDbType(c.dbType, { postgresArrays: true }).isArray)) {
      alternatives.push({ ...options, arrayLayout: "flat" });
    }
    if (mapping.envelope === "debezium") {
      // Sluice's earlier types (an upgraded deployment whose subject refuses, e.g., timestamptz as text), then its earlier layout.
      const arrays = [options, ...alternatives];
      // First hstore as a map, interval, bit(1) and point as text (a subject registered before they took Debezium's forms).
      if (options.hstore !== "map" || options.interval !== "string" || options.bitBoolean !== false || options.pointRecord !== false) {
        alternatives.push(...arrays.map((o) => ({ ...o, hstore: "map" as const, interval: "string" as const, bitBoolean: false, pointRecord: false })));
      }
      alternatives.push(...arrays.map((o) => ({ ...o, ...EARLIER_TYPE_MODES })), ...arrays.map((o) => ({ ...o, envelope: "sluice" as const })));
    }
    if (alternatives.length > 0 && !(await compatible(registry, options.topic, mapping))) {
      for (const alternative of alternatives) {
        const candidate = mapTable(table, alternative);
        if (await compatible(registry, options.topic, candidate)) {
          mapping = candidate;
          break;
        }
      }
    }
    const keySchemaId = mapping.keySchema ? await registry.register(subjectForTopic(options.topic, "key"), mapping.keySchema) : null;
    const valueSchemaId = await registry.register(subjectForTopic(options.topic, "value"), mapping.envelopeSchema);
    return new ChangeEventEncoder(options.topic, mapping, keySchemaId, valueSchemaId);
  }

  encode(event: ChangeEvent, extras?: EnvelopeExtras): EncodedEvent {
    if (this.fast) {
      try {
        return this.fastEncode(this.fast, event, extras);
      } catch {
        // The general path below gives the error with its context (or, were the fast path stricter than avsc, the record).
      }
    }
    return this.generalEncode(event, extras);
  }

  /** The fast path: the same records as generalEncode, written by the compiled writers. */
  fastEncode(fast: FastEventEncoder, event: ChangeEvent, extras?: EnvelopeExtras): EncodedEvent {
    const encoded = fast.encode(event, extras);
    const moved = event.keyChange;
    if (!moved) return encoded;
    const other = "newKey" in moved ? fast.encodeKey(moved.newKey) : fast.encodeKey(moved.oldKey);
    // The encoder's headers may be its shared empty ones: a copy takes the key's.
    return other === null ? encoded : { ...encoded, headers: { ...encoded.headers, ["newKey" in moved ? NEW_KEY_HEADER : OLD_KEY_HEADER]: other } };
  }

  /** The general path: envelope and row objects (envelope-codec.ts) encoded by avsc. */
  generalEncode(event: ChangeEvent, extras?: EnvelopeExtras): EncodedEvent {
    try {
      const key = event.op !== "t" ? this.encodeKey(event.key) : null;
      const { value, headers } = encodeEnvelope(event, this.mapping, extras);
      const moved = event.keyChange;
      if (moved && this.mapping.envelope === "debezium") {
        const other = "newKey" in moved ? this.encodeKey(moved.newKey) : this.encodeKey(moved.oldKey);
        if (other !== null) headers["newKey" in moved ? NEW_KEY_HEADER : OLD_KEY_HEADER] = other;
      }
      return { key, value: encodeFramed(this.valueSchemaId, this.valueType, value), headers };
    } catch (error) {
      if (error instanceof SluiceError) throw error;
      // avsc refusing a value the column converters let through: still this event's problem, not the process's.
      const table = `${this.mapping.table.schema}.${this.mapping.table.table}`;
      throw new AvroValueError(`table ${table}: the change cannot be encoded in its Avro schema: ${error instanceof Error ? error.message : String(error)}`, { table, source: this.mapping.table.source }, error);
    }
  }

  private encodeKey(key: Row): Buffer | null {
    const keyCodec = this.mapping.keyCodec;
    return keyCodec && this.keyType && this.keySchemaId !== null ? encodeFramed(this.keySchemaId, this.keyType, keyCodec.toAvro(key)) : null;
  }
}

/** Column name -> field name in the latest value schema of the topic, when it is this table's. */
async function registeredFieldNames(registry: SchemaRegistry, topic: string, table: TableSchema): Promise<ReadonlyMap<string, string> | undefined> {
  const latest = await registry.getLatest(subjectForTopic(topic, "value"));
  if (latest === null) return undefined;
  let registered: ReturnType<typeof tableSchemaFromAvro>;
  try {
    registered = tableSchemaFromAvro(latest.schema);
  } catch {
    return undefined; // not a Sluice table schema: nothing to keep
  }
  const same = registered.table.schema === table.schema && registered.table.table === table.table;
  return same ? registered.options.fieldNames : undefined;
}

/**
 * Whether both subjects of the topic would accept the mapping's schemas now. A registry that
 * cannot say (an error) counts as accepting: registration then gives the real answer.
 */
async function compatible(registry: SchemaRegistry, topic: string, mapping: TableAvroMapping): Promise<boolean> {
  const accepts = (subject: string, schema: AvroRecordJson) => registry.checkCompatibility(subject, schema).then((report) => report.compatible, () => true);
  if (mapping.keySchema && !(await accepts(subjectForTopic(topic, "key"), mapping.keySchema))) return false;
  return accepts(subjectForTopic(topic, "value"), mapping.envelopeSchema);
}

/**
 * Record header of a truncate kept from Debezium consumers by earlier Sluice versions (on data
 * topics with cleanup_policy delete): a keyless tombstone, which they skip, carrying the envelope
 * Sluice's sinks apply. Truncates go to the control topic now (daemon/control-records.ts); records
 * written before an upgrade are still read.
 */
export const TRUNCATE_HEADER = "sluice.truncate";

export class ChangeEventDecoder {
  private readonly registry: Pick<SchemaRegistry, "getById">;
  private readonly framed: FramedDecoder;
  private readonly mappings = new Map<number, Promise<DecodingPlan>>();
  /** The plans of `mappings` once fetched. */
  private readonly plans = new Map<number, DecodingPlan>();

  constructor(registry: Pick<SchemaRegistry, "getById">) {
    this.registry = registry;
    this.framed = new FramedDecoder(registry);
  }

  /**
   * The event of a topic record, or null for a tombstone. A truncate Debezium consumers must not
   * see (skipped_operations) is a tombstone carrying its envelope in the TRUNCATE_HEADER header.
   * Decoded at once, without a promise, when the record's schemas are here (they are, but for a
   * table's first records; a sink decodes every change it reads); else a promise.
   */
  decode(key: Uint8Array | null, value: Uint8Array | null, headers?: Readonly<Record<string, Uint8Array>>): ChangeEvent | null | Promise<ChangeEvent | null> {
    const envelope = value ?? headers?.[TRUNCATE_HEADER] ?? null;
    if (envelope === null) return null;
    const plan = this.plans.get(schemaIdOf(envelope));
    if (plan !== undefined) {
      const record = this.framed.valueNow(envelope, plan.reader ?? undefined);
      const keyRecord = key !== null && plan.mapping.keyCodec ? this.framed.valueNow(key) : null;
      if (record !== NOT_YET && keyRecord !== NOT_YET) {
        const keyRow = keyRecord === null ? undefined : plan.mapping.keyCodec!.fromAvro(keyRecord as AvroRecordValue);
        return fromEnvelope(record as AvroRecordValue, plan.mapping, keyRow, headers);
      }
    }
    return this.decodeLater(key, envelope, headers);
  }

  /**
   * decode() of a record whose key and value lie in `bytes` (a record read in place,
   * connectors/topics/in-place-record.ts; a start of -1: null), read there without a view.
   */
  decodeIn(bytes: Buffer, keyStart: number, keyEnd: number, valueStart: number, valueEnd: number, headers?: Readonly<Record<string, Uint8Array>>): ChangeEvent | null | Promise<ChangeEvent | null> {
    const hasKey = keyStart >= 0;
    if (valueStart >= 0) {
      const plan = this.plans.get(schemaIdIn(bytes, valueStart, valueEnd));
      if (plan !== undefined) {
        const record = this.framed.valueIn(bytes, valueStart, valueEnd, plan.reader ?? undefined);
        const keyRecord = hasKey && plan.mapping.keyCodec ? this.framed.valueIn(bytes, keyStart, keyEnd) : null;
        if (record !== NOT_YET && keyRecord !== NOT_YET) {
          const keyRow = keyRecord === null ? undefined : plan.mapping.keyCodec!.fromAvro(keyRecord as AvroRecordValue);
          return fromEnvelope(record as AvroRecordValue, plan.mapping, keyRow, headers);
        }
      }
    }
    // A table's first records (its schemas fetched), tombstones: through views.
    return this.decode(hasKey ? bytes.subarray(keyStart, keyEnd) : null, valueStart < 0 ? null : bytes.subarray(valueStart, valueEnd), headers);
  }

  private async decodeLater(key: Uint8Array | null, envelope: Uint8Array, headers?: Readonly<Record<string, Uint8Array>>): Promise<ChangeEvent | null> {
    const schemaId = schemaIdOf(envelope);
    const { mapping, reader } = this.plans.get(schemaId) ?? (await this.mappingFor(schemaId));
    const { value: record } = this.framed.decodeNow(envelope, reader ?? undefined) ?? (await this.framed.decode(envelope, reader ?? undefined));
    let keyRow: Row | undefined;
    if (key !== null && mapping.keyCodec) keyRow = mapping.keyCodec.fromAvro((this.framed.decodeNow(key) ?? (await this.framed.decode(key))).value as AvroRecordValue);
    return fromEnvelope(record as AvroRecordValue, mapping, keyRow, headers);
  }

  private mappingFor(schemaId: number): Promise<DecodingPlan> {
    let mapping = this.mappings.get(schemaId);
    if (!mapping) {
      mapping = this.registry.getById(schemaId).then((text) => {
        const { table, options } = tableSchemaFromAvro(text);
        const plan = { mapping: mapTable(table, options), reader: envelopeReader(text) };
        this.plans.set(schemaId, plan);
        return plan;
      });
      this.mappings.set(schemaId, mapping);
      mapping.catch(() => this.mappings.delete(schemaId));
    }
    return mapping;
  }
}

interface DecodingPlan {
  readonly mapping: TableAvroMapping;
  /** The envelope without the fields fromEnvelope does not read (avsc skips them unread), or null to read the writer's schema whole. */
  readonly reader: Type | null;
}

/** Fields of the envelope, its source block and its transaction block that fromEnvelope never reads (envelope-schema.ts). */
/** Fields of the source and transaction blocks whose value mostly repeats from change to change (avro-runtime.ts REPEATED). */
const REPEATED_FIELDS: ReadonlySet<string> = new Set(["name", "db", "schema", "table", "snapshot", "id", "gtid", "file", "ts_ms", "txId", "server_id"]);

/** A field's type with its string or long branch marked REPEATED. */
function repeated(type: unknown): unknown {
  if (type === "string" || type === "long") return { type, [REPEATED]: true };
  if (Array.isArray(type)) return type.map(repeated);
  const inner = typeof type === "object" && type !== null ? (type as { type?: unknown }).type : undefined;
  if (inner === "string" || inner === "long") return { ...(type as object), [REPEATED]: true };
  return type;
}

const UNREAD_FIELDS: Readonly<Record<string, ReadonlySet<string>>> = {
  envelope: new Set(["ts_ms", "ts_us", "ts_ns"]),
  source: new Set(["version", "connector", "ts_us", "ts_ns", "xmin", "query"]),
  transaction: new Set(["total_order", "data_collection_order"]),
};

interface FieldJson {
  readonly name: string;
  readonly type: unknown;
}

/**
 * A reader schema for a writer's envelope that leaves out what a sink never reads: avsc resolves
 * the writer's schema against it and skips those fields without building their values (strings,
 * bigints; most of a change's fields besides its rows). Null where the schema is not an envelope
 * of records, so the writer's schema is read whole.
 */
function envelopeReader(text: string): Type | null {
  try {
    const schema = JSON.parse(text) as { type?: unknown; fields?: readonly FieldJson[] };
    if (schema.type !== "record" || !Array.isArray(schema.fields)) return null;
    const recordOf = (type: unknown): { fields: readonly FieldJson[] } | null => {
      const record = Array.isArray(type) ? type.find((branch) => typeof branch === "object" && branch !== null && (branch as { type?: unknown }).type === "record") : type;
      return typeof record === "object" && record !== null && Array.isArray((record as { fields?: unknown }).fields) ? (record as { fields: readonly FieldJson[] }) : null;
    };
    const without = (fields: readonly FieldJson[], unread: ReadonlySet<string>) =>
      fields.filter((field) => !unread.has(field.name)).map((field) => (REPEATED_FIELDS.has(field.name) ? { ...field, type: repeated(field.type) } : field));
    const project = (type: unknown, unread: ReadonlySet<string>): unknown => {
      const record = recordOf(type);
      if (record === null) return type;
      const projected = { ...record, fields: without(record.fields, unread) };
      return Array.isArray(type) ? type.map((branch) => (branch === record ? projected : branch)) : projected;
    };
    const fields = without(schema.fields, UNREAD_FIELDS.envelope!).map((field) =>
      field.name === "source" ? { ...field, type: project(field.type, UNREAD_FIELDS.source!) } : field.name === "transaction" ? { ...field, type: project(field.type, UNREAD_FIELDS.transaction!) } : field,
    );
    const reader = createAvroType({ ...schema, fields } as unknown as AvroRecordJson);
    // A schema avsc cannot resolve against the projection keeps the whole read (FramedDecoder builds its own resolver).
    reader.createResolver(createAvroType(text));
    return reader;
  } catch {
    return null;
  }
}
