/**
 * A table schema to its three Avro schemas -- key record, value record (a row), Debezium envelope --
 * named `<name>.<schema>.<table>.Key|Value|Envelope`, and the codecs that turn rows into those
 * records and back.
 */
import type { ColumnSchema, TableSchema } from "../connectors/contracts.ts";
import type { AvroFieldJson, AvroRecordJson, AvroSchemaJson } from "./avro-schema.ts";
import { assignUniqueNames, sanitizeNamespace } from "./avro-names.ts";
import { avroDefaultOf } from "./column-defaults.ts";
import type { ColumnAvroType, NamedTypeScope } from "./column-types.ts";
import { envelopeSchema } from "./envelope-schema.ts";
import { mysqlColumnType } from "./mysql-types.ts";
import { parseDbType } from "./db-type.ts";
import { isIntervalType, isSingleBit, isVaryingSingleBit, postgresBitsLength, postgresColumnType } from "./postgres-types.ts";
import { EARLIER_TYPE_MODES } from "./postgres-types.ts";
import type { ArrayLayout, NumericMode, TypeModes } from "./postgres-types.ts";
import type { TimePrecisionMode } from "./temporal-modes.ts";
import { RESERVED_FIELD_NAMES, RowCodec, SPECIAL_FIELD, UNCHANGED_FIELD } from "./row-codec.ts";
import type { ColumnBinding } from "./row-codec.ts";
import { InvalidSchemaError } from "./schema-errors.ts";

/** Field property: the column's database type. */
export const DB_TYPE_PROPERTY = "sluice.db.type";
/** Field property: the column name, when the Avro field name had to differ from it. */
export const ORIGINAL_NAME_PROPERTY = "sluice.original.name";
/** Record property on Key and Value records: where the table comes from and how it was mapped. */
export const TABLE_PROPERTY = "sluice.table";

export interface TableMappingOptions {
  /** First part of record names: the topic prefix (may contain dots). Defaults to the table's logical source name. */
  readonly name?: string;
  /** PostgreSQL numerics without a declared scale: "precise" (default), "double" or "string". */
  readonly numericMode?: NumericMode;
  /** PostgreSQL array columns: items nest up to 6 levels ("nested", default) or one level ("flat", see postgres-types.ts). */
  readonly arrayLayout?: ArrayLayout;
  /**
   * "debezium" (default): the Value record is exactly the columns, Sluice's bookkeeping travels in
   * record headers (see envelope-codec.ts). "sluice": Sluice's earlier layout, with the
   * `__sluice_unchanged` / `__sluice_special` fields in the Value record.
   */
  readonly envelope?: EnvelopeLayout;
  /** Debezium's time.precision.mode (temporal-modes.ts): default "adaptive"; "avro" with envelope "sluice". */
  readonly timePrecision?: TimePrecisionMode;
  /** Whether numericMode covers every numeric, as Debezium's decimal.handling.mode ("all", default), or only those without a scale ("unscaled", envelope "sluice"). */
  readonly decimals?: TypeModes["decimals"];
  /** PostgreSQL hstore: "json" (Debezium's default hstore.handling.mode; default here) or "map" (envelope "sluice", Sluice before 0.3). */
  readonly hstore?: TypeModes["hstore"];
  /** PostgreSQL uuid with Debezium's io.debezium.data.Uuid marker (default; not with envelope "sluice"). */
  readonly uuidMarker?: boolean;
  /** PostgreSQL interval: "numeric" (Debezium's default interval.handling.mode; default here) or "string" (envelope "sluice", Sluice before 0.3). */
  readonly interval?: TypeModes["interval"];
  /** The text of interval "string": Debezium's io.debezium.time.Interval ("debezium", default) or PostgreSQL's ("postgres", envelope "sluice"). */
  readonly intervalText?: TypeModes["intervalText"];
  /** PostgreSQL bit(1) as a boolean, as Debezium maps it (default; not with envelope "sluice"). */
  readonly bitBoolean?: boolean;
  /** PostgreSQL point as Debezium's Point record (default; not with envelope "sluice"). */
  readonly pointRecord?: boolean;
  /** Bit strings wider than one bit as Debezium's io.debezium.data.Bits (default; not with envelope "sluice"). */
  readonly bits?: boolean;
  /**
   * Column name -> Avro field name of the table's previous schema: a column still there keeps its
   * field name (avro-names.ts assignUniqueNames), so a column added before it or one dropped does
   * not move names between columns. Read back from a registered schema by tableSchemaFromAvro.
   */
  readonly fieldNames?: ReadonlyMap<string, string>;
}

export type EnvelopeLayout = "debezium" | "sluice";

export interface TableAvroMapping {
  readonly table: TableSchema;
  /** `<name>.<schema>.<table>`, each dot-separated part sanitised. */
  readonly namespace: string;
  /** Null when the table has no key. */
  readonly keySchema: AvroRecordJson | null;
  readonly valueSchema: AvroRecordJson;
  readonly envelopeSchema: AvroRecordJson;
  /** Column name -> Avro field name, for every column. */
  readonly fieldNames: ReadonlyMap<string, string>;
  readonly keyCodec: RowCodec | null;
  readonly valueCodec: RowCodec;
  readonly envelope: EnvelopeLayout;
}

export function columnAvroType(table: Pick<TableSchema, "sourceKind">, column: ColumnSchema, numericMode: NumericMode, arrayLayout: ArrayLayout = "nested", modes: TypeModes = EARLIER_TYPE_MODES): ColumnAvroType {
  return table.sourceKind === "postgres" ? postgresColumnType(column.dbType, numericMode, arrayLayout, modes) : mysqlColumnType(column.dbType, numericMode, modes);
}

/** A PostgreSQL column of the type or an array of it (its sluice.table property then names the type's mode). */
/** A bit string column that takes Debezium's Bits form, or bit varying(1) its boolean (its sluice.table property then says so). */
function isBitsColumn(table: Pick<TableSchema, "sourceKind">, column: ColumnSchema): boolean {
  const type = parseDbType(column.dbType, { postgresArrays: table.sourceKind === "postgres" });
  if (table.sourceKind === "postgres") return postgresBitsLength(type) !== null || isVaryingSingleBit(type);
  return type.name === "bit" && Number(type.args[0] ?? 1) > 1;
}

function isPostgresType(table: Pick<TableSchema, "sourceKind">, column: ColumnSchema, name: "hstore" | "interval" | "bit(1)" | "point"): boolean {
  if (table.sourceKind !== "postgres") return false;
  const type = parseDbType(column.dbType, { postgresArrays: true });
  if (name === "interval") return isIntervalType(type.name);
  if (name === "bit(1)") return isSingleBit(type);
  return type.name === name;
}

export function mapTable(table: TableSchema, options: TableMappingOptions = {}): TableAvroMapping {
  const name = options.name ?? table.source;
  const numericMode = options.numericMode ?? "precise";
  const envelope = options.envelope ?? "debezium";
  const earlier = envelope === "sluice" ? EARLIER_TYPE_MODES : undefined;
  const modes: TypeModes = {
    timePrecision: options.timePrecision ?? earlier?.timePrecision ?? "adaptive",
    decimals: options.decimals ?? earlier?.decimals ?? "all",
    hstore: options.hstore ?? earlier?.hstore ?? "json",
    uuidMarker: options.uuidMarker ?? earlier?.uuidMarker ?? true,
    interval: options.interval ?? earlier?.interval ?? "numeric",
    intervalText: options.intervalText ?? earlier?.intervalText ?? "debezium",
    bitBoolean: options.bitBoolean ?? earlier?.bitBoolean ?? true,
    pointRecord: options.pointRecord ?? earlier?.pointRecord ?? true,
    bits: options.bits ?? earlier?.bits ?? true,
  };
  const namespace = sanitizeNamespace([...name.split("."), table.schema, table.table]);
  const fieldNameList = assignUniqueNames(
    table.columns.map((column) => column.name),
    RESERVED_FIELD_NAMES,
    options.fieldNames,
  );
  const fieldNames = new Map(table.columns.map((column, index) => [column.name, fieldNameList[index] as string]));
  const bindings = table.columns.map(
    (column): ColumnBinding => ({
      column: column.name,
      field: fieldNames.get(column.name) as string,
      type: columnAvroType(table, column, numericMode, options.arrayLayout, modes),
      nullable: column.nullable,
    }),
  );
  const byColumn = new Map(bindings.map((binding) => [binding.column, binding]));
  const keyBindings = table.key.map((columnName) => {
    const binding = byColumn.get(columnName);
    if (!binding) throw new InvalidSchemaError(`table ${table.schema}.${table.table}: key column \`${columnName}\` is not a column`, { table: `${table.schema}.${table.table}` });
    return binding;
  });
  const columnsByName = new Map(table.columns.map((column) => [column.name, column]));
  const tableProperty = {
    source: table.source,
    database: table.database,
    schema: table.schema,
    table: table.table,
    kind: table.sourceKind,
    numericMode,
    key: table.key,
    ...(table.keyIsWholeRow === true ? { wholeRowKey: true } : {}),
    // Absent in schemas of earlier versions, which used EARLIER_TYPE_MODES.
    ...(modes.timePrecision === EARLIER_TYPE_MODES.timePrecision ? {} : { timePrecision: modes.timePrecision }),
    ...(modes.decimals === EARLIER_TYPE_MODES.decimals ? {} : { decimals: modes.decimals }),
    ...(modes.hstore === EARLIER_TYPE_MODES.hstore || !table.columns.some((column) => isPostgresType(table, column, "hstore")) ? {} : { hstore: modes.hstore }),
    ...(modes.interval === EARLIER_TYPE_MODES.interval || !table.columns.some((column) => isPostgresType(table, column, "interval")) ? {} : { interval: modes.interval }),
    ...(modes.interval !== "string" || modes.intervalText !== "debezium" || !table.columns.some((column) => isPostgresType(table, column, "interval")) ? {} : { intervalText: "debezium" }),
    ...(modes.bitBoolean !== true || !table.columns.some((column) => isPostgresType(table, column, "bit(1)")) ? {} : { bitBoolean: true }),
    ...(modes.pointRecord !== true || !table.columns.some((column) => isPostgresType(table, column, "point")) ? {} : { pointRecord: true }),
    ...(modes.bits !== true || !table.columns.some((column) => isBitsColumn(table, column)) ? {} : { bits: true }),
  };
  const recordSchema = (recordName: "Key" | "Value", recordBindings: readonly ColumnBinding[], withUnchanged: boolean): AvroRecordJson => {
    const scope = namedTypeScope();
    const fields: AvroFieldJson[] = recordBindings.map((binding) => fieldSchema(binding, columnsByName.get(binding.column) as ColumnSchema, scope, envelope));
    if (envelope === "debezium") return { type: "record", name: recordName, namespace, fields, "connect.name": `${namespace}.${recordName}`, [TABLE_PROPERTY]: tableProperty };
    if (withUnchanged) fields.push({ name: UNCHANGED_FIELD, type: { type: "array", items: "string" }, default: [] });
    if (recordBindings.some((binding) => binding.type.mayBeSpecial)) {
      fields.push({ name: SPECIAL_FIELD, type: { type: "map", values: "string" }, default: {} });
    }
    return { type: "record", name: recordName, namespace, fields, "connect.name": `${namespace}.${recordName}`, [TABLE_PROPERTY]: tableProperty };
  };
  const errorContext = { table: `${table.schema}.${table.table}`, source: table.source };
  const keyColumns = new Set(table.key);
  const valueSchema = recordSchema("Value", bindings, true);
  const hasKey = keyBindings.length > 0;
  return {
    table,
    namespace,
    keySchema: hasKey ? recordSchema("Key", keyBindings, false) : null,
    valueSchema,
    envelopeSchema: envelopeSchema(table.sourceKind, namespace, valueSchema),
    fieldNames,
    keyCodec: hasKey ? new RowCodec(keyBindings, { unchangedField: false, context: errorContext, keyColumns }) : null,
    valueCodec: new RowCodec(bindings, { unchangedField: true, sideFields: envelope === "debezium" ? "headers" : "record", context: errorContext, keyColumns }),
    envelope,
  };
}

function fieldSchema(binding: ColumnBinding, column: ColumnSchema, scope: NamedTypeScope, envelope: EnvelopeLayout): AvroFieldJson {
  const type = binding.type.schema(scope);
  const properties: Record<string, unknown> = { [DB_TYPE_PROPERTY]: column.dbType };
  if (binding.field !== binding.column) properties[ORIGINAL_NAME_PROPERTY] = binding.column;
  const avroDefault = avroDefaultOf(column.default, binding.type);
  if (binding.nullable) {
    // As Debezium (Confluent's AvroData): a nullable column with a literal default puts the type first, so
    // the default can be the literal and records written before the column was added read as it.
    if (envelope === "debezium" && avroDefault !== undefined) return { name: binding.field, type: [type, "null"], default: avroDefault, ...properties };
    return { name: binding.field, type: ["null", type], default: null, ...properties };
  }
  return { name: binding.field, type, ...(avroDefault === undefined ? {} : { default: avroDefault }), ...properties };
}

function namedTypeScope(): NamedTypeScope {
  const defined = new Set<string>();
  return {
    define(fullName: string, definition: () => AvroSchemaJson): AvroSchemaJson {
      if (defined.has(fullName)) return fullName;
      defined.add(fullName);
      return definition();
    },
  };
}
