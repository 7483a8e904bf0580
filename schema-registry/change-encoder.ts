/**
 * Capture's encode step: each change becomes the topic records that carry it — Avro key and
 * envelope framed with registered schema ids, and after a delete a tombstone (null value) so
 * compacted topics forget the row. A table's schemas are registered the first time it is seen and
 * again whenever its table schema changes; an incompatible change rejects with
 * IncompatibleSchemaError (code SCHEMA_INCOMPATIBLE), which halts that table only.
 */
import type { ChangeEvent, ProducedRecord, TableSchema } from "../connectors/contracts.ts";
import { ChangeEventEncoder } from "./event-codec.ts";
import type { NumericMode } from "./postgres-types.ts";
import type { SchemaRegistry } from "./registry.ts";

export interface AvroChangeEncoderOptions {
  readonly registry: SchemaRegistry;
  /** A source's topic prefix, e.g. `<deployment>.<source>`; topics are `<prefix>.<schema>.<table>` and record names follow them. */
  readonly topicPrefix: (source: string) => string;
  readonly numericMode?: NumericMode;
}

export class AvroChangeEncoder {
  private readonly options: AvroChangeEncoderOptions;
  /** Per table schema object, then per table schema content (sources may rebuild equal objects). */
  private readonly bySchemaObject = new WeakMap<TableSchema, Promise<ChangeEventEncoder>>();
  private readonly bySchemaText = new Map<string, Promise<ChangeEventEncoder>>();

  constructor(options: AvroChangeEncoderOptions) {
    this.options = options;
  }

  async encode(event: ChangeEvent): Promise<ProducedRecord[]> {
    const encoder = await this.encoderFor(event.schema);
    const { key, value } = encoder.encode(event);
    const record: ProducedRecord = { topic: encoder.topic, key, value, timestamp: event.source.commitTimeMs };
    return event.op === "d" ? [record, { ...record, value: null }] : [record];
  }

  private encoderFor(table: TableSchema): Promise<ChangeEventEncoder> {
    const known = this.bySchemaObject.get(table);
    if (known) return known;
    const text = JSON.stringify(table);
    let encoder = this.bySchemaText.get(text);
    if (!encoder) {
      const prefix = this.options.topicPrefix(table.source);
      encoder = ChangeEventEncoder.register(this.options.registry, table, {
        topic: `${prefix}.${table.schema}.${table.table}`,
        name: prefix,
        ...(this.options.numericMode === undefined ? {} : { numericMode: this.options.numericMode }),
      });
      this.bySchemaText.set(text, encoder);
      // A failed registration (registry down, incompatible change) is tried again with the next event.
      encoder.catch(() => this.bySchemaText.delete(text));
    }
    this.bySchemaObject.set(table, encoder);
    encoder.catch(() => this.bySchemaObject.delete(table));
    return encoder;
  }
}
