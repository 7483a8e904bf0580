/**
 * The Debezium change-event envelope in Avro: {before, after, source, op, ts_ms, ts_us, ts_ns,
 * transaction}, with Debezium's source block for each connector and its transaction block, so
 * consumers of Debezium topics read Sluice topics unchanged.
 */
import type { SourceKind } from "../connectors/contracts.ts";
import type { AvroFieldJson, AvroRecordJson, AvroSchemaJson } from "./avro-schema.ts";

export const SOURCE_RECORD_NAMES: Readonly<Record<SourceKind, string>> = {
  postgres: "io.debezium.connector.postgresql.Source",
  mysql: "io.debezium.connector.mysql.Source",
};

/** Debezium's `connector` value for each source kind. */
export const DEBEZIUM_CONNECTOR_NAMES: Readonly<Record<SourceKind, string>> = {
  postgres: "postgresql",
  mysql: "mysql",
};

const TRANSACTION_BLOCK = "event.block";
const SNAPSHOT_VALUES = "true,first,first_in_data_collection,last_in_data_collection,last,false,incremental";

function optional(name: string, type: AvroSchemaJson): AvroFieldJson {
  return { name, type: ["null", type], default: null };
}

function commonSourceFields(): AvroFieldJson[] {
  return [
    { name: "version", type: "string" },
    { name: "connector", type: "string" },
    { name: "name", type: "string" },
    { name: "ts_ms", type: "long" },
    {
      name: "snapshot",
      type: [{ type: "string", "connect.name": "io.debezium.data.Enum", "connect.parameters": { allowed: SNAPSHOT_VALUES }, "connect.default": "false" }, "null"],
      default: "false",
    },
    { name: "db", type: "string" },
    optional("sequence", "string"),
    optional("ts_us", "long"),
    optional("ts_ns", "long"),
  ];
}

export function sourceSchema(kind: SourceKind): AvroRecordJson {
  const specific: AvroFieldJson[] =
    kind === "postgres"
      ? [{ name: "schema", type: "string" }, { name: "table", type: "string" }, optional("txId", "long"), optional("lsn", "long"), optional("xmin", "long")]
      : [
          optional("table", "string"),
          { name: "server_id", type: "long" },
          optional("gtid", "string"),
          { name: "file", type: "string" },
          { name: "pos", type: "long" },
          { name: "row", type: "int" },
          optional("thread", "long"),
          optional("query", "string"),
        ];
  return { type: "record", name: SOURCE_RECORD_NAMES[kind], fields: [...commonSourceFields(), ...specific], "connect.name": SOURCE_RECORD_NAMES[kind] };
}

export function transactionBlockSchema(): AvroRecordJson {
  return {
    type: "record",
    name: TRANSACTION_BLOCK,
    fields: [
      { name: "id", type: "string" },
      { name: "total_order", type: "long" },
      { name: "data_collection_order", type: "long" },
    ],
    "connect.name": TRANSACTION_BLOCK,
  };
}

/** The envelope record `<namespace>.Envelope` around a row record (defined in `before`, referenced in `after`). */
export function envelopeSchema(kind: SourceKind, namespace: string, valueSchema: AvroRecordJson): AvroRecordJson {
  const valueName = `${namespace}.Value`;
  return {
    type: "record",
    name: "Envelope",
    namespace,
    fields: [
      optional("before", valueSchema),
      optional("after", valueName),
      { name: "source", type: sourceSchema(kind) },
      { name: "op", type: "string" },
      optional("ts_ms", "long"),
      optional("ts_us", "long"),
      optional("ts_ns", "long"),
      optional("transaction", transactionBlockSchema()),
    ],
    "connect.name": `${namespace}.Envelope`,
  };
}
