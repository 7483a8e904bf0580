/**
 * Capture's encode step: each change becomes the topic records that carry it -- Avro key and
 * envelope framed with registered schema ids, and after a delete a tombstone (null value) so
 * compacted topics forget the row. A table's schemas are registered the first time it is seen and
 * again whenever its table schema changes; an incompatible change rejects with
 * IncompatibleSchemaError (code SCHEMA_INCOMPATIBLE), which halts that table only.
 */
import type { ChangeEvent, Op, ProducedRecord, TableSchema } from "../connectors/contracts.ts";
import { tableName } from "../connectors/contracts.ts";
import { SluiceError } from "../connectors/errors.ts";
import type { EnvelopeExtras } from "./envelope-codec.ts";
import { ChangeEventEncoder } from "./event-codec.ts";
import type { NumericMode } from "./postgres-types.ts";
import { subjectForTopic } from "./registry.ts";
import type { SchemaRegistry } from "./registry.ts";
import { registeredTableOf } from "./table-from-avro.ts";
import type { EnvelopeLayout } from "./table-mapping.ts";
import type { TimePrecisionMode } from "./temporal-modes.ts";
import type { HstoreMode, IntervalMode } from "./postgres-types.ts";

/** Operations Debezium's `skipped.operations` can leave out (its default: `t`). */
export type SkippableOp = "c" | "u" | "d" | "t";

export interface AvroChangeEncoderOptions {
  readonly registry: SchemaRegistry;
  /** A source's topic prefix, e.g. `<deployment>.<source>`; topics are `<prefix>.<schema>.<table>` and record names follow them. */
  readonly topicPrefix: (source: string) => string;
  readonly numericMode?: NumericMode;
  /** "debezium" (default) or Sluice's earlier "sluice" layout (table-mapping.ts). */
  readonly envelope?: EnvelopeLayout;
  /** Debezium's time.precision.mode (temporal-modes.ts); default "adaptive" ("avro" with envelope "sluice"). */
  readonly timePrecision?: TimePrecisionMode;
  /** PostgreSQL hstore: "json" (default, Debezium's hstore.handling.mode) or "map" (envelope "sluice"). */
  readonly hstore?: HstoreMode;
  /** PostgreSQL interval: "numeric" (default, Debezium's interval.handling.mode) or "string" (envelope "sluice"). */
  readonly interval?: IntervalMode;
  /**
   * Operations Debezium consumers do not get: a skipped create, update or delete is not written
   * at all (Sluice's sinks do not see it either). Truncates are always encoded: capture sends them
   * to the control topic, and to the data topic only when not skipped (daemon/components.ts).
   * Default: none; the source config's default is `["t"]`.
   */
  readonly skippedOperations?: readonly SkippableOp[];
  /** Fill each event's `transaction` block {id, total_order, data_collection_order} (config transaction_metadata). */
  readonly transactionMetadata?: boolean;
}

export class AvroChangeEncoder {
  private readonly options: AvroChangeEncoderOptions;
  private readonly skipped: ReadonlySet<Op>;
  /** Per table schema object, then per table schema content (sources may rebuild equal objects). */
  private readonly bySchemaObject = new WeakMap<TableSchema, Promise<ChangeEventEncoder>>();
  private readonly bySchemaText = new Map<string, Promise<ChangeEventEncoder>>();
  /** The encoders of bySchemaObject that are registered. */
  private readonly ready = new WeakMap<TableSchema, ChangeEventEncoder>();
  /** The transaction being encoded: events of one transaction arrive together and in order. */
  private transaction: { id: string; total: number; perTable: Map<string, number> } | null = null;
  /** Topic -> the table writing it, e.g. "a.b"."c" and "a"."b.c" both name the topic `<prefix>.a.b.c`: the second is refused. */
  private readonly topicOwners = new Map<string, TableSchema>();

  constructor(options: AvroChangeEncoderOptions) {
    this.options = options;
    this.skipped = new Set(options.envelope === "sluice" ? [] : (options.skippedOperations ?? []));
  }

  async encode(event: ChangeEvent): Promise<ProducedRecord[]> {
    if (this.skipped.has(event.op) && event.op !== "t") return [];
    // A registered table's encoder without awaiting its promise again (one change after another).
    return this.encodeWith(this.ready.get(event.schema) ?? (await this.encoderFor(event.schema)), event);
  }

  /** The topic of a table whose schemas are registered (encodeNow takes its changes), or undefined. */
  readyTopic(table: TableSchema): string | undefined {
    return this.ready.get(table)?.topic;
  }

  /**
   * The topic `encode` writes a change to, known before the table's schemas are registered (so its
   * creation can overlap their registration); undefined for an operation left out.
   */
  topicOf(event: ChangeEvent): string | undefined {
    if (this.skipped.has(event.op)) return undefined;
    return this.ready.get(event.schema)?.topic ?? this.topicName(event.schema);
  }

  /** The table's topic, claimed for it; throws SCHEMA_UNSUPPORTED (which halts only that table) when it cannot have one. */
  private topicName(table: TableSchema): string {
    const topic = `${this.options.topicPrefix(table.source)}.${table.schema}.${table.table}`;
    const owner = this.topicOwners.get(topic);
    if (owner !== undefined && sameTable(owner, table)) return topic;
    if (CONTROL_CHARACTER.test(topic)) {
      throw unnamable(table, topic, "its name holds a control character, which topic names and schema registry subjects cannot: rename the table or leave it out of the source's tables");
    }
    if (owner !== undefined) throw topicTaken(table, topic, owner.schema, owner.table);
    this.topicOwners.set(topic, table);
    return topic;
  }

  /** A topic whose subject names another table in the registry (written by an earlier run) is that table's. */
  private async assertTopicOwned(table: TableSchema, topic: string): Promise<void> {
    const latest = await this.options.registry.getLatest(subjectForTopic(topic, "value"));
    const registered = latest === null ? null : registeredTableOf(latest.schema);
    if (registered !== null && (registered.schema !== table.schema || registered.table !== table.table)) throw topicTaken(table, topic, registered.schema, registered.table);
  }

  /** What `encode` gives, without a promise, for a table whose schemas are registered; undefined (nothing done) otherwise. */
  encodeNow(event: ChangeEvent): ProducedRecord[] | undefined {
    const encoder = this.ready.get(event.schema);
    if (encoder === undefined) return undefined;
    if (this.skipped.has(event.op) && event.op !== "t") return [];
    return this.encodeWith(encoder, event);
  }

  private encodeWith(encoder: ChangeEventEncoder, event: ChangeEvent): ProducedRecord[] {
    const { key, value, headers } = encoder.encode(event, this.extrasOf(event));
    const timestamp = event.source.commitTimeMs;
    const record: ProducedRecord = hasAny(headers) ? { topic: encoder.topic, key, value, headers, timestamp } : { topic: encoder.topic, key, value, timestamp };
    return event.op === "d" ? [record, { topic: encoder.topic, key, value: null, timestamp }] : [record];
  }

  /** Debezium's transaction block: the event's place in its transaction, overall and within its table, from 1. */
  private extrasOf(event: ChangeEvent): EnvelopeExtras | undefined {
    const id = event.source.txId;
    // An operation the data topics leave out (a truncate, by default) is no event of its transaction, as in Debezium.
    if (!this.options.transactionMetadata || id === null || event.source.snapshot || this.skipped.has(event.op)) return undefined;
    // The source's numbering counts what a resume skipped; counting here is for sources without it.
    const order = event.source.transactionOrder;
    if (order !== undefined) return { transaction: { totalOrder: order.total, dataCollectionOrder: order.inTable } };
    if (this.transaction?.id !== id) this.transaction = { id, total: 0, perTable: new Map() };
    const table = tableName(event.schema);
    const inTable = (this.transaction.perTable.get(table) ?? 0) + 1;
    this.transaction.perTable.set(table, inTable);
    return { transaction: { totalOrder: ++this.transaction.total, dataCollectionOrder: inTable } };
  }

  private encoderFor(table: TableSchema): Promise<ChangeEventEncoder> {
    const known = this.bySchemaObject.get(table);
    if (known) return known;
    const text = JSON.stringify(table);
    let encoder = this.bySchemaText.get(text);
    if (!encoder) {
      const prefix = this.options.topicPrefix(table.source);
      const topic = this.topicName(table);
      // Rows are JavaScript objects: assigning a property named __proto__ sets the prototype, so that column's values would be lost.
      if (table.columns.some((column) => column.name === "__proto__")) {
        throw unnamable(table, topic, 'its column "__proto__" is a name Sluice cannot carry (rows are JavaScript objects, where it names the prototype): rename the column or leave the table out of the source\'s tables');
      }
      encoder = this.assertTopicOwned(table, topic).then(() => ChangeEventEncoder.register(this.options.registry, table, {
        topic,
        name: prefix,
        ...(this.options.numericMode === undefined ? {} : { numericMode: this.options.numericMode }),
        ...(this.options.envelope === undefined ? {} : { envelope: this.options.envelope }),
        ...(this.options.timePrecision === undefined ? {} : { timePrecision: this.options.timePrecision }),
        ...(this.options.hstore === undefined ? {} : { hstore: this.options.hstore }),
        ...(this.options.interval === undefined ? {} : { interval: this.options.interval }),
      }));
      this.bySchemaText.set(text, encoder);
      // A failed registration (registry down, incompatible change) is tried again with the next event.
      encoder.catch(() => this.bySchemaText.delete(text));
    }
    this.bySchemaObject.set(table, encoder);
    encoder.then(
      (ready) => this.ready.set(table, ready),
      () => this.bySchemaObject.delete(table),
    );
    return encoder;
  }
}

const CONTROL_CHARACTER = /[\u0000-\u001f\u007f]/;

function sameTable(a: TableSchema, b: TableSchema): boolean {
  return a.source === b.source && a.schema === b.schema && a.table === b.table;
}

function unnamable(table: TableSchema, topic: string, reason: string): SluiceError {
  const name = JSON.stringify(`${table.schema}.${table.table}`);
  return new SluiceError(`table ${name} cannot be captured: ${reason}`, { code: "SCHEMA_UNSUPPORTED", context: { component: "capture", source: table.source, table: `${table.schema}.${table.table}`, topic } });
}

function topicTaken(table: TableSchema, topic: string, ownerSchema: string, ownerTable: string): SluiceError {
  return unnamable(
    table,
    topic,
    `its topic ${JSON.stringify(topic)} is the topic of table ${JSON.stringify(ownerSchema)}.${JSON.stringify(ownerTable)} (schema ${JSON.stringify(table.schema)}, table ${JSON.stringify(table.table)} join with a dot into the same name): rename one of them or leave this one out of the source's tables`,
  );
}

function hasAny(headers: Readonly<Record<string, unknown>>): boolean {
  for (const _name in headers) return true;
  return false;
}
