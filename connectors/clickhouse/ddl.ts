/**
 * The SQL the ClickHouse sink sends, in the dialect ClickHouse 18.16 already understands (no
 * CREATE OR REPLACE, no EXCHANGE, no query parameters): versioned tables, the views users query,
 * and Sluice's bookkeeping tables. Pure functions, unit-tested in ddl.test.ts.
 */
import { defaultOf, DELETED_COLUMN, VERSION_COLUMN } from "../sinks/columns.ts";
import { keyLiteral } from "./codec.ts";
import type { TargetColumn } from "../sinks/columns.ts";
import { sqlString, unescapeField } from "./tsv.ts";
import { clickhouseType } from "./types.ts";
import type { Dialect } from "./types.ts";

export const TABLES_TABLE = "_sluice_tables";
export const TRUNCATES_TABLE = "_sluice_truncates";
export const OFFSETS_TABLE = "_sluice_offsets";
export const TARGETS_TABLE = "_sluice_targets";

export function ident(name: string): string {
  return `\`${name.replace(/\\/g, "\\\\").replace(/`/g, "\\`")}\``;
}

export function qualified(database: string, name: string): string {
  return `${ident(database)}.${ident(name)}`;
}

export function columnDefinition(column: TargetColumn, dialect: Dialect): string {
  const type = clickhouseType(column.type, dialect, !column.key);
  return `${ident(column.name)} ${type}${defaultClause(column, type, dialect)}`;
}

/** ` DEFAULT <the column's default>` (what rows written before the column read), or "" when it has none. */
function defaultClause(column: TargetColumn, type: string, dialect: Dialect): string {
  if (column.default === undefined) return "";
  let literal: string;
  try {
    literal = keyLiteral(column.type, dialect, defaultOf(column));
  } catch {
    return ""; // a default the column's type cannot hold: as if it had none
  }
  return ` DEFAULT CAST(${literal} AS ${type})`;
}

/**
 * A versioned table: ReplacingMergeTree keeps, per key (the ORDER BY), the row with the highest
 * `_sluice_version`; deletes are rows with `_sluice_deleted = 1` (tombstones). With native deletes
 * (23.2+) the engine knows the flag too, and FINAL leaves deleted rows out by itself.
 */
export function createTableSql(database: string, physical: string, columns: readonly TargetColumn[], dialect: Dialect): string {
  const definitions = columns.map((c) => columnDefinition(c, dialect));
  const keys = columns.filter((c) => c.key).map((c) => ident(c.name));
  const engine = dialect.nativeDeletes
    ? `ReplacingMergeTree(${ident(VERSION_COLUMN)}, ${ident(DELETED_COLUMN)})`
    : `ReplacingMergeTree(${ident(VERSION_COLUMN)})`;
  return (
    `CREATE TABLE IF NOT EXISTS ${qualified(database, physical)} (${definitions.join(", ")}, ` +
    `${ident(VERSION_COLUMN)} UInt64, ${ident(DELETED_COLUMN)} UInt8) ENGINE = ${engine} ORDER BY (${keys.join(", ")})`
  );
}

export function addColumnSql(database: string, physical: string, column: TargetColumn, dialect: Dialect): string {
  return `ALTER TABLE ${qualified(database, physical)} ADD COLUMN ${columnDefinition(column, dialect)}`;
}

export function modifyColumnSql(database: string, physical: string, column: TargetColumn, dialect: Dialect): string {
  return `ALTER TABLE ${qualified(database, physical)} MODIFY COLUMN ${columnDefinition(column, dialect)}`;
}

/**
 * The view of current rows: FINAL picks the newest version per key, then tombstones and rows
 * older than the newest truncate are left out. The filter sits in WHERE (applied after FINAL),
 * never PREWHERE (applied before it, which would let an older version of a deleted row through).
 */
/** The table's current rows: newest version per key (FINAL), no tombstones, nothing at or below the newest truncate. */
function currentRows(database: string, physical: string, list: string): string {
  return (
    `SELECT ${list} FROM ${qualified(database, physical)} FINAL ` +
    `WHERE ${ident(DELETED_COLUMN)} = 0 AND ${ident(VERSION_COLUMN)} > ` +
    `(SELECT max(version) FROM ${qualified(database, TRUNCATES_TABLE)} WHERE physical = ${sqlString(physical)})`
  );
}

export function createViewSql(database: string, view: string, physical: string, columns: readonly TargetColumn[]): string {
  return `CREATE VIEW ${qualified(database, view)} AS ${currentRows(database, physical, columns.map((c) => ident(c.name)).join(", "))}`;
}

/** The definition (`create_table_query`) of the view `<target>`, one TabSeparated row, or no row when there is no such table. */
export function viewDefinitionSql(database: string, view: string): string {
  return `SELECT create_table_query FROM system.tables WHERE database = ${sqlString(database)} AND name = ${sqlString(view)} FORMAT TabSeparated`;
}

const TRUNCATE_FILTER = Buffer.from("physical = '");
const QUOTE = 0x27;
const BACKSLASH = 0x5c;

/**
 * The physical table a view of `createViewSql` reads, from its definition as the server prints it
 * (`create_table_query`): the string literal of its truncate filter, the last `physical = '...'` in
 * it (a column name can hold that text only before it). Null for a definition of another form.
 */
export function viewSource(definition: Buffer): string | null {
  const start = definition.lastIndexOf(TRUNCATE_FILTER);
  if (start < 0) return null;
  const from = start + TRUNCATE_FILTER.length;
  for (let i = from; i < definition.length; i++) {
    const byte = definition[i];
    if (byte === BACKSLASH) i++;
    else if (byte === QUOTE) return unescapeField(definition.subarray(from, i)).toString("utf8");
  }
  return null;
}

export function countCurrentRowsSql(database: string, physical: string): string {
  return `${currentRows(database, physical, "count()")} FORMAT TabSeparated`;
}

/** How many of the rows users see meet `condition` on `columns`: tested on the rows FINAL leaves, never on older versions. */
export function countCurrentRowsMeetingSql(database: string, physical: string, columns: readonly string[], condition: string): string {
  return `SELECT count() FROM (${currentRows(database, physical, columns.map(ident).join(", "))}) WHERE ${condition} FORMAT TabSeparated`;
}

export function bookkeepingSql(database: string): string[] {
  return [
    `CREATE TABLE IF NOT EXISTS ${qualified(database, TABLES_TABLE)} (target String, physical String, role String, generation UInt32, ` +
      `columns String, dropped UInt8, _seq UInt64) ENGINE = ReplacingMergeTree(_seq) ORDER BY (target, physical)`,
    `CREATE TABLE IF NOT EXISTS ${qualified(database, TRUNCATES_TABLE)} (physical String, version UInt64) ` +
      `ENGINE = ReplacingMergeTree(version) ORDER BY physical`,
    `CREATE TABLE IF NOT EXISTS ${qualified(database, OFFSETS_TABLE)} (sink String, topic String, \`partition\` UInt32, \`offset\` Int64, topic_id String DEFAULT '', _seq UInt64) ` +
      "ENGINE = ReplacingMergeTree(_seq) ORDER BY (sink, topic, `partition`)",
    // The source table each target was first written for (the row with the lowest _seq): another table rendered to its name is refused.
    `CREATE TABLE IF NOT EXISTS ${qualified(database, TARGETS_TABLE)} (target String, source String, \`database\` String, \`schema\` String, \`table\` String, _seq UInt64) ` +
      "ENGINE = MergeTree ORDER BY target",
  ];
}
