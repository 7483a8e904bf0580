/**
 * What Sluice knows of a captured table at a point of the binlog: its columns in binlog order,
 * their declared types in one normal form, their charsets, and the key. Kept in the schema
 * history; turned into the TableSchema events carry.
 */
import type { ColumnSchema, TableSchema } from "../../contracts.ts";

export interface ColumnDefinition {
  readonly name: string;
  /** Declared type in normal form (see normalizeColumnType): "int unsigned", "varchar(20)", "enum('a','b')". */
  readonly dbType: string;
  readonly nullable: boolean;
  /** MySQL charset of text columns ("utf8mb4", "latin1", "binary" for binary strings); null for other types. */
  readonly charset: string | null;
  /** A literal default as information_schema spells it (`'x'`, `0`); absent for none or an expression. */
  readonly default?: string;
}

export interface TableDefinition {
  readonly database: string;
  readonly table: string;
  readonly columns: readonly ColumnDefinition[];
  /** Primary key in key order (a unique key never stands in for it: information_schema's PRIMARY index, the DDL's PRIMARY KEY); empty when none. */
  readonly key: readonly string[];
  /** The table's default charset, for columns added later without one. */
  readonly defaultCharset: string | null;
  /**
   * MariaDB's hidden hash columns (DB_ROW_HASH_n) of UNIQUE keys too long to index (on TEXT/BLOB):
   * the binlog logs them after every other column; they are read past, never delivered.
   */
  readonly hiddenColumns?: number;
}

const INTEGER_TYPES = new Set(["tinyint", "smallint", "mediumint", "int", "integer", "bigint"]);
const TEXT_TYPES = new Set(["char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set"]);

/**
 * A column's literal default in the one form both the DDL parser and information_schema yield,
 * so definitions from either compare equal: integer columns the integer (`5`), text columns the
 * quoted string as MariaDB reports it (`'basic'`). MySQL reports string defaults unquoted, like
 * expressions, so it gives none for text columns; other types (decimals the server reformats,
 * dates, expressions) give none. Only used for Avro defaults of added columns.
 */
export function canonicalDefault(dbType: string, literal: { readonly text: string; readonly quoted: boolean } | null): string | undefined {
  if (literal === null) return undefined;
  const base = dbType.replace(/[( ].*$/, "");
  if (INTEGER_TYPES.has(base)) return /^-?\d+$/.test(literal.text) ? literal.text : undefined;
  if (TEXT_TYPES.has(base) && literal.quoted) return `'${literal.text.replaceAll("'", "''")}'`;
  return undefined;
}

export function tableKey(database: string, table: string): string {
  return `${database}.${table}`;
}

export function toTableSchema(sourceName: string, definition: TableDefinition): TableSchema {
  const columns: ColumnSchema[] = definition.columns.map((column) => {
    const keyIndex = definition.key.indexOf(column.name);
    const base = { name: column.name, dbType: column.dbType, nullable: column.nullable, ...(column.default === undefined ? {} : { default: column.default }) };
    return keyIndex < 0 ? base : { ...base, primaryKeyIndex: keyIndex + 1 };
  });
  return {
    source: sourceName,
    database: definition.database,
    schema: definition.database,
    table: definition.table,
    sourceKind: "mysql",
    columns,
    key: definition.key,
  };
}

export function sameDefinition(a: TableDefinition, b: TableDefinition): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
