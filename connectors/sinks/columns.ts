/**
 * Schema evolution, decided once for every sink: the columns a target table holds (with their
 * logical types, recorded in the target) against the TableSchema of an incoming change. New
 * columns are added, types are widened to the join of old and new (logical-type.ts), older
 * narrower schemas change nothing, nor do numbers arriving at a column that is text (written as
 * their text: convertsTo); anything else is SINK_SCHEMA_UNSUPPORTED. Dropped source
 * columns stay in the target (NULL in rows written after the drop). Each sink then checks that
 * it can carry out the plan on its target type (e.g. Elasticsearch cannot change a mapping).
 */
import type { ColumnValue, TableSchema } from "../contracts.ts";
import { schemaUnsupported } from "./errors.ts";
import { convertsTo, describeType, joinTypes, logicalType, sameType } from "./logical-type.ts";
import type { LogicalType } from "./logical-type.ts";

export const VERSION_COLUMN = "_sluice_version";
export const DELETED_COLUMN = "_sluice_deleted";
const RESERVED_PREFIX = "_sluice_";

export interface TargetColumn {
  readonly name: string;
  readonly type: LogicalType;
  readonly key: boolean;
  /**
   * What the column holds in rows whose last change predates it: the literal default of the
   * column's Avro field (ColumnSchema.defaultValue) when the target got the column, as JSON
   * (storedDefault). Absent: NULL (no default, or an expression default such as now()).
   */
  readonly default?: StoredDefault;
  /** With `default`: the version (decimal text) of a change that had the column; changes below it predate the column. */
  readonly since?: string;
}

/** A default as the targets record it with their columns (JSON): bigints and bytes tagged. */
export type StoredDefault = string | number | boolean | { readonly bigint: string } | { readonly bytes: string };

/** The JSON form of a column default; undefined for values without one (lists). */
export function storedDefault(value: ColumnValue | undefined): StoredDefault | undefined {
  if (typeof value === "string" || typeof value === "boolean") return value;
  if (typeof value === "number") return Number.isFinite(value) ? value : undefined;
  if (typeof value === "bigint") return { bigint: value.toString() };
  if (value instanceof Uint8Array) return { bytes: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("base64") };
  return undefined;
}

/** The value rows whose change predates `column` hold in it (null when it has no default). */
export function defaultOf(column: TargetColumn): ColumnValue {
  const stored = column.default;
  if (stored === undefined) return null;
  if (typeof stored !== "object") return stored;
  return "bigint" in stored ? BigInt(stored.bigint) : new Uint8Array(Buffer.from(stored.bytes, "base64"));
}

/** Whether a change at `version` whose schema lacks `column` was written before the column existed (and so holds its default). */
export function predatesColumn(column: TargetColumn, version: bigint): boolean {
  return column.default !== undefined && (column.since === undefined || version < BigInt(column.since));
}

/**
 * For planColumns: the lowest version of `rows` whose schema has the column. Any change that has
 * the column comes after the statement that added it, so every change without it below that
 * version predates the column, and a change without it above it comes after the column was dropped.
 */
export function firstVersionWith(rows: readonly { readonly version: bigint; readonly schema: TableSchema }[]): SinceOf {
  return (column) => {
    let first: bigint | undefined;
    let schema: TableSchema | null = null;
    let has = false;
    for (const row of rows) {
      if (row.schema !== schema) {
        schema = row.schema;
        has = schema.columns.some((c) => c.name === column);
      }
      if (has && (first === undefined || row.version < first)) first = row.version;
    }
    return first;
  };
}

export interface ColumnChange {
  readonly name: string;
  readonly from: LogicalType;
  readonly to: LogicalType;
  readonly key: boolean;
}

/**
 * Sinks apply changes by key and version. Without a key, identical rows cannot be told apart (a
 * whole-row key collapses them into one) and a replayed change cannot be recognised, so the
 * target could not equal the source: such tables are refused, not approximated.
 */
export const KEYLESS_REFUSED =
  "the table has no primary key, so sinks cannot keep identical rows apart or apply its changes exactly once; " +
  "add a primary key (PostgreSQL: or REPLICA IDENTITY USING INDEX on a unique index, or a key_columns entry for the source), " +
  "or leave the table out of this sink's tables";

export interface ColumnPlan {
  /** Every column after the plan, existing ones first, in their order. */
  readonly columns: readonly TargetColumn[];
  readonly added: readonly TargetColumn[];
  readonly changed: readonly ColumnChange[];
}

export interface PlanContext {
  readonly sink: string;
  readonly table: string;
}

/** The lowest version of the batch's changes that have a column (firstVersionWith): a new column's `since`. */
export type SinceOf = (column: string) => bigint | undefined;

/** Columns for a new target table from `schema`. */
export function initialColumns(schema: TableSchema, context: PlanContext, since?: SinceOf): TargetColumn[] {
  return [...planColumns(null, schema, context, since).columns];
}

export function planColumns(current: readonly TargetColumn[] | null, schema: TableSchema, context: PlanContext, since?: SinceOf): ColumnPlan {
  if (schema.key.length === 0 || schema.keyIsWholeRow === true) throw schemaUnsupported(KEYLESS_REFUSED, context);
  const byName = new Map(schema.columns.map((c) => [c.name, c]));
  for (const column of schema.key) {
    if (!byName.has(column)) throw schemaUnsupported(`key column "${column}" is not among the table's columns`, { ...context, column });
  }
  if (current !== null) {
    const currentKey = current.filter((c) => c.key).map((c) => c.name);
    if (currentKey.join("\u0000") !== schema.key.join("\u0000")) {
      const column = schema.key.find((c, i) => currentKey[i] !== c) ?? currentKey.find((c) => !schema.key.includes(c)) ?? schema.key[0];
      throw schemaUnsupported(
        `the key changed from (${currentKey.join(", ")}) to (${schema.key.join(", ")}); re-snapshot the table, then rebuild the target (sluice replay --rebuild): ` +
          "changes under the old key cannot be given the new one (docs/operations.md, \"Type and key changes a sink cannot take\")",
        { ...context, column },
      );
    }
  }
  const existing = new Map((current ?? []).map((c) => [c.name, c]));
  const columns: TargetColumn[] = [...(current ?? [])];
  const added: TargetColumn[] = [];
  const changed: ColumnChange[] = [];
  for (const column of schema.columns) {
    if (column.name.startsWith(RESERVED_PREFIX)) {
      throw schemaUnsupported(`column names starting with "${RESERVED_PREFIX}" are reserved for Sluice's own columns`, { ...context, column: column.name });
    }
    const type = logicalType(column.dbType, schema.sourceKind);
    const key = schema.key.includes(column.name);
    const old = existing.get(column.name);
    if (!old) {
      const next = { name: column.name, type, key, ...defaultOfNew(column.defaultValue, since?.(column.name)) };
      columns.push(next);
      added.push(next);
      continue;
    }
    const joined = joinTypes(old.type, type);
    if (joined === null) {
      // Written before the column became text (e.g. a rebuild's generation made from the newest schema): the values go in as their text.
      if (convertsTo(type, old.type) && !(old.key && schema.key.length > 1 && holdsNumbers(type))) continue;
      throw schemaUnsupported(`cannot change type from ${describeType(old.type)} to ${describeType(type)} (${column.dbType})`, { ...context, column: column.name });
    }
    if (!sameType(joined, old.type)) {
      changed.push({ name: column.name, from: old.type, to: joined, key: old.key });
      columns[columns.indexOf(old)] = { ...old, type: joined };
    }
  }
  // Keep the schema's key order for new tables.
  if (current === null) columns.sort((a, b) => keyRank(schema, a) - keyRank(schema, b));
  return { columns, added: current === null ? columns : added, changed };
}

/**
 * Values that are numbers, not text: in a key of several columns their text is written bare, a
 * string's quoted (keys.ts), so converting one would give the row another key text (Elasticsearch
 * document id) than its newer changes. Decimals arrive as text already.
 */
function holdsNumbers(type: LogicalType): boolean {
  return type.kind === "integer" || (type.kind === "array" && holdsNumbers(type.element));
}

function defaultOfNew(value: ColumnValue | undefined, since: bigint | undefined): Pick<TargetColumn, "default" | "since"> {
  const stored = storedDefault(value);
  if (stored === undefined) return {};
  return since === undefined ? { default: stored } : { default: stored, since: since.toString() };
}

function keyRank(schema: TableSchema, column: TargetColumn): number {
  const rank = schema.key.indexOf(column.name);
  return rank < 0 ? schema.key.length : rank;
}

export function keyColumns(columns: readonly TargetColumn[]): TargetColumn[] {
  return columns.filter((c) => c.key);
}
