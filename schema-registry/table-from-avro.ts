/**
 * The way back from a registered schema to the table it was made from, so a consumer holding only
 * a schema (fetched by id) can rebuild the row codecs with mapTable.
 */
import type { Type, types } from "avsc";
import type { ColumnSchema, Row, SourceKind, TableSchema } from "../connectors/contracts.ts";
import { UNCHANGED } from "../connectors/contracts.ts";
import { createAvroType } from "./avro-runtime.ts";
import type { AvroSchemaJson } from "./avro-schema.ts";
import { EARLIER_TYPE_MODES } from "./postgres-types.ts";
import type { NumericMode, TypeModes } from "./postgres-types.ts";
import type { TimePrecisionMode } from "./temporal-modes.ts";
import { RESERVED_FIELD_NAMES, UNCHANGED_FIELD } from "./row-codec.ts";
import { InvalidSchemaError } from "./schema-errors.ts";
import { DB_TYPE_PROPERTY, mapTable, ORIGINAL_NAME_PROPERTY, TABLE_PROPERTY } from "./table-mapping.ts";
import type { TableMappingOptions } from "./table-mapping.ts";

interface TableProperty {
  readonly source: string;
  readonly database: string;
  readonly schema: string;
  readonly table: string;
  readonly kind: SourceKind;
  readonly numericMode: NumericMode;
  readonly key: readonly string[];
  readonly wholeRowKey?: boolean;
  /** Absent in schemas of earlier versions: EARLIER_TYPE_MODES. */
  readonly timePrecision?: TimePrecisionMode;
  readonly decimals?: TypeModes["decimals"];
  /** Absent in schemas of Sluice before 0.3 and of tables without hstore columns: "map". */
  readonly hstore?: TypeModes["hstore"];
  /** Absent in schemas of Sluice before 0.3 and of tables without interval columns: "string". */
  readonly interval?: TypeModes["interval"];
  /** Absent in schemas of Sluice before 0.3, of tables without interval columns and of the numeric mode: "postgres". */
  readonly intervalText?: TypeModes["intervalText"];
  /** Absent in schemas of Sluice before 0.3 and of tables without bit(1) columns: false. */
  readonly bitBoolean?: boolean;
  /** Absent in schemas of Sluice before 0.3 and of tables without point columns: false. */
  readonly pointRecord?: boolean;
  /** Absent in schemas of Sluice before 0.3 and of tables without bit strings wider than one bit: false. */
  readonly bits?: boolean;
}

type JsonObject = Record<string, unknown>;

/** Reads a Sluice Envelope, Value or Key schema (JSON or its text). Throws when it is not one. */
export function tableSchemaFromAvro(schema: AvroSchemaJson | string): { table: TableSchema; options: TableMappingOptions } {
  const json: unknown = typeof schema === "string" ? JSON.parse(schema) : schema;
  const record = rowRecordOf(json);
  const property = record[TABLE_PROPERTY] as TableProperty;
  const allFields = record.fields as JsonObject[];
  const fields = allFields.filter((field) => !RESERVED_FIELD_NAMES.has(field.name as string));
  // Value records of Sluice's earlier layout carry the bookkeeping field; Debezium-layout ones (and every Key record) do not.
  const envelope = allFields.some((field) => field.name === UNCHANGED_FIELD) ? "sluice" : "debezium";
  const fieldNames = new Map<string, string>();
  const columns = fields.map((field): ColumnSchema => {
    const dbType = field[DB_TYPE_PROPERTY];
    if (typeof dbType !== "string") throw new InvalidSchemaError(`field "${String(field.name)}" has no ${DB_TYPE_PROPERTY} property`);
    const name = typeof field[ORIGINAL_NAME_PROPERTY] === "string" ? (field[ORIGINAL_NAME_PROPERTY] as string) : (field.name as string);
    fieldNames.set(name, field.name as string);
    const keyIndex = property.key.indexOf(name);
    return {
      name,
      dbType,
      nullable: Array.isArray(field.type) && field.type.includes("null"),
      ...(keyIndex >= 0 ? { primaryKeyIndex: keyIndex + 1 } : {}),
    };
  });
  const recordName = String(record.name);
  const namespace = recordName.includes(".") ? recordName.slice(0, recordName.lastIndexOf(".")) : typeof record.namespace === "string" ? record.namespace : "";
  const table: TableSchema = {
    source: property.source,
    database: property.database,
    schema: property.schema,
    table: property.table,
    sourceKind: property.kind,
    columns,
    key: property.key,
    ...(property.wholeRowKey === true ? { keyIsWholeRow: true } : {}),
  };
  // The namespace is `<name>.<schema>.<table>`; schema and table are single sanitised parts.
  const name = namespace.split(".").slice(0, -2).join(".");
  const options: TableMappingOptions = {
      name: name === "" ? property.source : name,
      numericMode: property.numericMode,
      envelope,
      timePrecision: property.timePrecision ?? EARLIER_TYPE_MODES.timePrecision,
      decimals: property.decimals ?? EARLIER_TYPE_MODES.decimals,
      hstore: property.hstore ?? EARLIER_TYPE_MODES.hstore,
      interval: property.interval ?? EARLIER_TYPE_MODES.interval,
      intervalText: property.intervalText ?? "postgres",
      bitBoolean: property.bitBoolean ?? false,
      pointRecord: property.pointRecord ?? false,
      bits: property.bits ?? false,
      // The schema's own names: they need not follow column order (a column added before one whose name it shares).
      fieldNames,
  };
  return { table: withDefaultValues(table, json, options), options };
}

/**
 * Each column whose field has a literal default gets it as `defaultValue`, decoded as a record's
 * value would be: what Avro's schema resolution gives a record written before the column existed
 * when it is read with this schema (a nullable field's default is its type's only when the type
 * comes first in the union: as Debezium writes a nullable column with a literal default).
 */
function withDefaultValues(table: TableSchema, json: unknown, options: TableMappingOptions): TableSchema {
  const record = rowRecordOf(json);
  const withDefault = (record.fields as JsonObject[]).filter((field) => field.default !== undefined && field.default !== null && !RESERVED_FIELD_NAMES.has(field.name as string));
  if (withDefault.length === 0) return table;
  const registry: Record<string, Type> = {};
  createAvroType(json as AvroSchemaJson, registry);
  const recordType = registry[fullNameOf(record)] as types.RecordType | undefined;
  if (recordType === undefined) return table;
  const defaults: Record<string, unknown> = {};
  for (const field of recordType.fields) {
    if (withDefault.some((f) => f.name === field.name)) defaults[field.name] = field.defaultValue();
  }
  let row: Row;
  try {
    row = mapTable(table, options).valueCodec.fromAvro(defaults);
  } catch {
    return table; // a default the column's type cannot read: as if it had none
  }
  const columns = table.columns.map((column) => {
    const value = row[column.name];
    return value === undefined || value === null || value === UNCHANGED ? column : { ...column, defaultValue: value };
  });
  return { ...table, columns };
}

/** The schema and table a registered Sluice schema (JSON text) was made from, or null when it is no Sluice table schema. */
export function registeredTableOf(schemaText: string): { schema: string; table: string } | null {
  try {
    const property: unknown = rowRecordOf(JSON.parse(schemaText))[TABLE_PROPERTY];
    if (!isObject(property) || typeof property.schema !== "string" || typeof property.table !== "string") return null;
    return { schema: property.schema, table: property.table };
  } catch {
    return null;
  }
}

function fullNameOf(record: JsonObject): string {
  const name = String(record.name);
  return name.includes(".") || typeof record.namespace !== "string" || record.namespace === "" ? name : `${record.namespace}.${name}`;
}

function rowRecordOf(json: unknown): JsonObject {
  if (isObject(json) && isObject(json[TABLE_PROPERTY]) && Array.isArray(json.fields)) return json;
  if (isObject(json) && Array.isArray(json.fields)) {
    const before = (json.fields as unknown[]).find((field) => isObject(field) && field.name === "before");
    const branches = isObject(before) && Array.isArray(before.type) ? before.type : [];
    const row = branches.find((branch: unknown) => isObject(branch) && isObject(branch[TABLE_PROPERTY]));
    if (isObject(row)) return row;
  }
  throw new InvalidSchemaError(`not a Sluice table schema (no record with a ${TABLE_PROPERTY} property)`);
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
