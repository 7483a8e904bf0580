/**
 * The transaction-metadata topic (`<name>.transaction`, config transaction_metadata) in Debezium's
 * Avro layout: key `io.debezium.connector.common.TransactionMetadataKey {id}`, value
 * `...TransactionMetadataValue {status, id, event_count, data_collections, ts_ms}`, with subjects
 * `<topic>-key` / `<topic>-value` registered like any table's, so a Confluent AvroDeserializer
 * reads it. BEGIN records have null `event_count` and `data_collections`, as Debezium's.
 */
import type { Type } from "avsc";
import type { ProducedRecord } from "../connectors/contracts.ts";
import { createAvroType } from "./avro-runtime.ts";
import type { AvroRecordJson } from "./avro-schema.ts";
import { subjectForTopic } from "./registry.ts";
import type { SchemaRegistry } from "./registry.ts";
import { encodeFramed } from "./wire-format.ts";

const NAMESPACE = "io.debezium.connector.common";

export const TRANSACTION_KEY_SCHEMA: AvroRecordJson = {
  type: "record",
  name: "TransactionMetadataKey",
  namespace: NAMESPACE,
  fields: [{ name: "id", type: "string" }],
  "connect.name": `${NAMESPACE}.TransactionMetadataKey`,
};

export const TRANSACTION_VALUE_SCHEMA: AvroRecordJson = {
  type: "record",
  name: "TransactionMetadataValue",
  namespace: NAMESPACE,
  fields: [
    { name: "status", type: "string" },
    { name: "id", type: "string" },
    { name: "event_count", type: ["null", "long"], default: null },
    {
      name: "data_collections",
      type: [
        "null",
        {
          type: "array",
          // Debezium's struct has no name; Confluent's converter names it ConnectDefault.
          items: {
            type: "record",
            name: "ConnectDefault",
            namespace: "io.confluent.connect.avro",
            fields: [
              { name: "data_collection", type: "string" },
              { name: "event_count", type: "long" },
            ],
          },
        },
      ],
      default: null,
    },
    { name: "ts_ms", type: "long" },
  ],
  "connect.name": `${NAMESPACE}.TransactionMetadataValue`,
};

/** A transaction boundary as sources report it (config transaction_metadata). */
export interface TransactionBoundary {
  readonly status: "BEGIN" | "END";
  readonly txId: string;
  readonly commitTimeMs: number;
  readonly eventCount?: number;
  /** Events per table ("schema.table"), for END. */
  readonly tableEventCounts?: Readonly<Record<string, number>>;
}

export class TransactionMetadataEncoder {
  readonly topic: string;
  private readonly keyId: number;
  private readonly valueId: number;
  private readonly keyType: Type = createAvroType(TRANSACTION_KEY_SCHEMA);
  private readonly valueType: Type = createAvroType(TRANSACTION_VALUE_SCHEMA);

  private constructor(topic: string, keyId: number, valueId: number) {
    this.topic = topic;
    this.keyId = keyId;
    this.valueId = valueId;
  }

  static async register(registry: Pick<SchemaRegistry, "register">, topic: string): Promise<TransactionMetadataEncoder> {
    const keyId = await registry.register(subjectForTopic(topic, "key"), TRANSACTION_KEY_SCHEMA);
    const valueId = await registry.register(subjectForTopic(topic, "value"), TRANSACTION_VALUE_SCHEMA);
    return new TransactionMetadataEncoder(topic, keyId, valueId);
  }

  encode(marker: TransactionBoundary): ProducedRecord {
    const end = marker.status === "END";
    const counts = end && marker.tableEventCounts ? Object.entries(marker.tableEventCounts) : null;
    return {
      topic: this.topic,
      key: encodeFramed(this.keyId, this.keyType, { id: marker.txId }),
      value: encodeFramed(this.valueId, this.valueType, {
        status: marker.status,
        id: marker.txId,
        event_count: end && marker.eventCount !== undefined ? marker.eventCount : null,
        data_collections: counts ? counts.map(([data_collection, event_count]) => ({ data_collection, event_count })) : null,
        ts_ms: marker.commitTimeMs,
      }),
      timestamp: marker.commitTimeMs,
    };
  }
}
