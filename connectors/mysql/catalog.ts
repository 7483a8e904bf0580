/**
 * Catalog queries: server settings, binlog files and the current position, collations, which
 * tables the configured patterns name, and table definitions from information_schema.
 */
import type { TableMatcher } from "../common/table-patterns.ts";
import { CatalogWaitError } from "./mysql-errors.ts";
import type { Flavor } from "./resume-token.ts";
import { quoteIdentifier } from "./connection-settings.ts";
import { normalizeColumnType } from "./schema/column-types.ts";
import { canonicalDefault, tableKey } from "./schema/table-definition.ts";
import type { ColumnDefinition, TableDefinition } from "./schema/table-definition.ts";
import type { TableName } from "./schema/ddl-parser.ts";

export type Row = Record<string, unknown>;

/** What catalog code needs of a connection: rows of a query, values as strings or null. */
export interface Sql {
  rows(sql: string, values?: readonly unknown[]): Promise<Row[]>;
}

function text(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  if (Buffer.isBuffer(value)) return value.toString("utf8");
  return String(value);
}

function field(row: Row, name: string): string | null {
  // information_schema column names come back upper or lower case depending on the server.
  return text(row[name] ?? row[name.toUpperCase()] ?? row[name.toLowerCase()]);
}

export async function serverVariables(sql: Sql, names: readonly string[]): Promise<Map<string, string>> {
  const rows = await sql.rows(`SHOW GLOBAL VARIABLES WHERE Variable_name IN (${names.map(() => "?").join(", ")})`, names);
  return new Map(rows.map((row) => [field(row, "Variable_name")!.toLowerCase(), field(row, "Value") ?? ""]));
}

export interface BinaryLog {
  readonly file: string;
  readonly size: number;
}

export async function binaryLogs(sql: Sql): Promise<BinaryLog[]> {
  const rows = await sql.rows("SHOW BINARY LOGS");
  return rows.map((row) => ({ file: field(row, "Log_name")!, size: Number(field(row, "File_size")) }));
}

export interface BinlogCoordinates {
  readonly file: string;
  readonly offset: number;
  /** GTID state of everything before file:offset; null when the server has no GTIDs. */
  readonly gtid: string | null;
}

/**
 * The GTID state before a binlog coordinate read another way than BINLOG_GTID_POS (gtid-state-dump.ts), for
 * its null past an event larger than max_allowed_packet; null when no event starts there.
 */
export type GtidStateReader = (file: string, offset: number) => Promise<string | null>;

/** The server's current binlog position with the GTID state there (`readState` where BINLOG_GTID_POS gives null). */
export async function currentPosition(sql: Sql, flavor: Flavor, readState?: GtidStateReader): Promise<BinlogCoordinates> {
  let rows: Row[];
  try {
    rows = await sql.rows(flavor === "mysql" ? "SHOW BINARY LOG STATUS" : "SHOW MASTER STATUS");
  } catch {
    rows = await sql.rows("SHOW MASTER STATUS");
  }
  const row = rows[0];
  if (row === undefined) throw new Error("SHOW MASTER STATUS returned nothing: binary logging is off");
  const file = field(row, "File")!;
  const offset = Number(field(row, "Position"));
  if (flavor === "mariadb") return { file, offset, gtid: await mariadbGtidAt(sql, file, offset, readState) };
  const executed = field(row, "Executed_Gtid_Set");
  return { file, offset, gtid: executed === null || executed.trim() === "" ? null : executed.replace(/\s+/g, "") };
}

/** MariaDB's GTID position of a binlog coordinate (BINLOG_GTID_POS, else `readState`); empty when neither tells. */
export async function mariadbGtidAt(sql: Sql, file: string, offset: number, readState?: GtidStateReader): Promise<string> {
  return (await mariadbGtidAtEvent(sql, file, offset)) ?? (readState === undefined ? null : await readState(file, offset)) ?? "";
}

/** BINLOG_GTID_POS as the server gives it: null when the file is missing or the offset is not where an event starts. */
export async function mariadbGtidAtEvent(sql: Sql, file: string, offset: number): Promise<string | null> {
  const rows = await sql.rows("SELECT BINLOG_GTID_POS(?, ?) AS gtid", [file, offset]);
  return field(rows[0] ?? {}, "gtid");
}

export async function collationRows(sql: Sql): Promise<{ id: number; charset: string }[]> {
  const rows = await sql.rows("SELECT ID, CHARACTER_SET_NAME FROM information_schema.COLLATIONS");
  return rows.map((row) => ({ id: Number(field(row, "ID")), charset: field(row, "CHARACTER_SET_NAME") ?? "binary" }));
}

export interface CapturedTableRef extends TableName {
  /** information_schema.TABLES.TABLE_ROWS: the engine's estimate. */
  readonly estimatedRows: number | null;
}

const SYSTEM_DATABASES = ["mysql", "information_schema", "performance_schema", "sys"];

/**
 * The base tables `matches` selects. Names come first, from the directory alone: a table's type and row estimate
 * open it, and waited for any exclusive metadata lock on the server (a DDL in another database held up the start).
 * They are read for the matching names only, per database (TABLE_SCHEMA = ? AND TABLE_NAME IN (...), which opens
 * those tables only: a DDL on a table not captured in the same database does not hold up the start either).
 */
export async function listTables(catalog: Sql, matches: TableMatcher): Promise<CapturedTableRef[]> {
  return (await listCatalog(catalog, matches)).tables;
}

/** listTables, with the MariaDB sequences `matches` selects (TABLE_TYPE 'SEQUENCE'; read in the same statements). */
export async function listCatalog(catalog: Sql, matches: TableMatcher): Promise<{ tables: CapturedTableRef[]; sequences: TableName[] }> {
  const names = await naming(catalog, "listing the tables").rows(
    `SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA NOT IN (${SYSTEM_DATABASES.map(() => "?").join(", ")})`,
    SYSTEM_DATABASES,
  );
  const matched = new Map<string, string[]>();
  for (const row of names) {
    const database = field(row, "TABLE_SCHEMA")!;
    const table = field(row, "TABLE_NAME")!;
    if (matches(database, table)) matched.set(database, [...(matched.get(database) ?? []), table]);
  }
  const tables: CapturedTableRef[] = [];
  const sequences: TableName[] = [];
  for (const database of [...matched.keys()].sort()) {
    const names = matched.get(database)!;
    const sql = naming(catalog, `listing the tables ${tableList(names.map((table) => ({ database, table })))}`);
    const rows = await sql.rows(
      `SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_ROWS, TABLE_TYPE FROM information_schema.TABLES
        WHERE TABLE_SCHEMA = ? AND TABLE_NAME IN (${names.map(() => "?").join(", ")}) AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED', 'SEQUENCE') ORDER BY TABLE_NAME`,
      [database, ...names],
    );
    for (const row of rows) {
      if (field(row, "TABLE_TYPE") === "SEQUENCE") {
        sequences.push({ database: field(row, "TABLE_SCHEMA")!, table: field(row, "TABLE_NAME")! });
        continue;
      }
      const table = { database: field(row, "TABLE_SCHEMA")!, table: field(row, "TABLE_NAME")!, estimatedRows: field(row, "TABLE_ROWS") === null ? null : Number(field(row, "TABLE_ROWS")) };
      if (matches(table.database, table.table)) tables.push(table);
    }
  }
  return { tables, sequences };
}

const BINARY_TYPE = /^(binary|varbinary|tinyblob|blob|mediumblob|longblob)\b/;

/** COLUMN_DEFAULT as a literal: quoted strings unquoted (MariaDB), anything else as it stands; null for none. */
function columnDefaultLiteral(text: string | null | undefined): { text: string; quoted: boolean } | null {
  if (text === null || text === undefined || text === "NULL") return null;
  const quoted = /^'((?:[^']|'')*)'$/s.exec(text);
  return quoted ? { text: quoted[1]!.replaceAll("''", "'"), quoted: true } : { text, quoted: false };
}


/** `sql` whose statements the catalog session's limits ended fail with a CatalogWaitError saying what was read. */
function naming(sql: Sql, what: string): Sql {
  return {
    rows: (text, values) =>
      sql.rows(text, values).catch((error: unknown) => {
        throw CatalogWaitError.of(error, what) ?? error;
      }),
  };
}

/** "a.t1, a.t2 and 3 more tables", for messages. */
function tableList(tables: readonly TableName[]): string {
  const shown = tables.slice(0, 5).map((t) => `${t.database}.${t.table}`).join(", ");
  return tables.length > 5 ? `${shown} and ${tables.length - 5} more tables` : shown;
}

/** Definitions of the given tables as information_schema shows them now; tables that do not exist are left out. */
export async function readDefinitions(catalog: Sql, tables: readonly TableName[]): Promise<Map<string, TableDefinition>> {
  const result = new Map<string, TableDefinition>();
  if (tables.length === 0) return result;
  const sql = naming(catalog, `reading the definition of ${tableList(tables)}`);
  const pairs = tables.map(() => "(?, ?)").join(", ");
  const values = tables.flatMap((t) => [t.database, t.table]);
  const columns = await sql.rows(
    `SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, CHARACTER_SET_NAME, COLUMN_DEFAULT
       FROM information_schema.COLUMNS WHERE (TABLE_SCHEMA, TABLE_NAME) IN (${pairs})
      ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION`,
    values,
  );
  const keys = await sql.rows(
    `SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME FROM information_schema.STATISTICS
      WHERE INDEX_NAME = 'PRIMARY' AND (TABLE_SCHEMA, TABLE_NAME) IN (${pairs})
      ORDER BY TABLE_SCHEMA, TABLE_NAME, SEQ_IN_INDEX`,
    values,
  );
  const charsets = await sql.rows(
    `SELECT t.TABLE_SCHEMA, t.TABLE_NAME, t.TABLE_TYPE, c.CHARACTER_SET_NAME FROM information_schema.TABLES t
       LEFT JOIN information_schema.COLLATIONS c ON c.COLLATION_NAME = t.TABLE_COLLATION
      WHERE (t.TABLE_SCHEMA, t.TABLE_NAME) IN (${pairs})`,
    values,
  );
  // MariaDB indexes a UNIQUE key too long for its engine (on TEXT/BLOB) by a hidden hash column per key, which the binlog logs.
  // Both information_schema tables are named by the constant list: a join condition alone opens every table of the
  // server for TABLES.ENGINE, and waits for any exclusive metadata lock there (a DDL in another database).
  const hashKeys = await sql.rows(
    `SELECT s.TABLE_SCHEMA, s.TABLE_NAME, COUNT(DISTINCT s.INDEX_NAME) AS HIDDEN FROM information_schema.STATISTICS s
       JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = s.TABLE_SCHEMA AND t.TABLE_NAME = s.TABLE_NAME
      WHERE s.INDEX_TYPE = 'HASH' AND s.NON_UNIQUE = 0 AND t.ENGINE NOT IN ('MEMORY', 'HEAP') AND (s.TABLE_SCHEMA, s.TABLE_NAME) IN (${pairs})
        AND (t.TABLE_SCHEMA, t.TABLE_NAME) IN (${pairs})
      GROUP BY s.TABLE_SCHEMA, s.TABLE_NAME`,
    [...values, ...values],
  );
  const hiddenColumns = new Map(hashKeys.map((row) => [tableKey(field(row, "TABLE_SCHEMA")!, field(row, "TABLE_NAME")!), Number(field(row, "HIDDEN"))]));
  const byTable = new Map<string, ColumnDefinition[]>();
  for (const row of columns) {
    const key = tableKey(field(row, "TABLE_SCHEMA")!, field(row, "TABLE_NAME")!);
    const dbType = normalizeColumnType(field(row, "COLUMN_TYPE")!);
    const charset = BINARY_TYPE.test(dbType) ? "binary" : field(row, "CHARACTER_SET_NAME");
    const list = byTable.get(key) ?? [];
    const literal = canonicalDefault(dbType, columnDefaultLiteral(field(row, "COLUMN_DEFAULT")));
    list.push({ name: field(row, "COLUMN_NAME")!, dbType, nullable: field(row, "IS_NULLABLE") === "YES", charset: charset?.toLowerCase() ?? null, ...(literal === undefined ? {} : { default: literal }) });
    byTable.set(key, list);
  }
  const keyColumns = new Map<string, string[]>();
  for (const row of keys) {
    const key = tableKey(field(row, "TABLE_SCHEMA")!, field(row, "TABLE_NAME")!);
    keyColumns.set(key, [...(keyColumns.get(key) ?? []), field(row, "COLUMN_NAME")!]);
  }
  const defaultCharsets = new Map(charsets.map((row) => [tableKey(field(row, "TABLE_SCHEMA")!, field(row, "TABLE_NAME")!), field(row, "CHARACTER_SET_NAME")?.toLowerCase() ?? null]));
  // A MariaDB table WITH SYSTEM VERSIONING and no period columns of its own has hidden ones that
  // information_schema.COLUMNS leaves out, while the binlog logs them (and its key ends with row_end).
  for (const row of charsets) {
    const key = tableKey(field(row, "TABLE_SCHEMA")!, field(row, "TABLE_NAME")!);
    const list = byTable.get(key);
    if (field(row, "TABLE_TYPE") !== "SYSTEM VERSIONED" || list === undefined) continue;
    const [create] = await sql.rows(`SHOW CREATE TABLE ${quoteIdentifier(field(row, "TABLE_SCHEMA")!)}.${quoteIdentifier(field(row, "TABLE_NAME")!)}`);
    if (/\bAS ROW START\b/i.test(field(create ?? {}, "Create Table") ?? "")) continue;
    for (const name of ["row_start", "row_end"]) list.push({ name, dbType: "timestamp(6)", nullable: false, charset: null });
    const keyList = keyColumns.get(key);
    if (keyList !== undefined && !keyList.includes("row_end")) keyList.push("row_end");
  }
  for (const table of tables) {
    const key = tableKey(table.database, table.table);
    const list = byTable.get(key);
    if (list === undefined) continue;
    const hidden = hiddenColumns.get(key) ?? 0;
    result.set(key, { database: table.database, table: table.table, columns: list, key: keyColumns.get(key) ?? [], defaultCharset: defaultCharsets.get(key) ?? null, ...(hidden > 0 ? { hiddenColumns: hidden } : {}) });
  }
  return result;
}

export async function databaseCharset(sql: Sql, database: string): Promise<string | null> {
  const rows = await sql.rows("SELECT DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", [database]);
  return field(rows[0] ?? {}, "DEFAULT_CHARACTER_SET_NAME")?.toLowerCase() ?? null;
}
