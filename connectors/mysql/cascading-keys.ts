/**
 * Names the captured tables with a foreign key whose ON DELETE or ON UPDATE action changes their rows (CASCADE, SET
 * NULL, SET DEFAULT) when capture starts. The storage engine carries those actions out below the server's binlog: the
 * binlog holds the parent's row event alone (seen on MariaDB 10.11: a parent DELETE logs no row event of the child
 * rows it deleted or set to NULL), so no change reaches the child table's targets, which keep the rows as they were.
 */
import type { Logger } from "pino";
import type { Sql } from "./catalog.ts";
import type { TableName } from "./schema/ddl-parser.ts";

export interface CascadingKey {
  readonly table: string;
  readonly references: string;
  /** "ON DELETE CASCADE", "ON UPDATE SET NULL", ... */
  readonly actions: readonly string[];
}

const FOREIGN_KEY = /FOREIGN KEY\s*\([^)]*\)\s*REFERENCES\s*((?:`(?:[^`]|``)+`\.)?`(?:[^`]|``)+`)\s*\([^)]*\)((?:\s+ON\s+(?:DELETE|UPDATE)\s+(?:CASCADE|SET\s+NULL|SET\s+DEFAULT|RESTRICT|NO\s+ACTION))*)/gi;
const CHANGING = /ON\s+(DELETE|UPDATE)\s+(CASCADE|SET\s+NULL|SET\s+DEFAULT)/gi;

/** The foreign keys of a SHOW CREATE TABLE text whose actions change the table's rows (`table`: "db.name"). */
export function cascadingKeys(table: string, createTable: string): CascadingKey[] {
  const database = table.slice(0, table.lastIndexOf("."));
  const keys: CascadingKey[] = [];
  for (const match of createTable.matchAll(FOREIGN_KEY)) {
    const actions = [...match[2]!.matchAll(CHANGING)].map((a) => `ON ${a[1]!.toUpperCase()} ${a[2]!.toUpperCase().replace(/\s+/g, " ")}`);
    // SHOW CREATE TABLE leaves out the database of a referenced table in the same one.
    const references = match[1]!.startsWith("`") && match[1]!.includes("`.`") ? match[1]! : `\`${database}\`.${match[1]!}`;
    if (actions.length > 0) keys.push({ table, references: references.replaceAll("`", ""), actions });
  }
  return keys;
}

export async function warnCascadingKeys(sql: Sql, tables: readonly TableName[], logger: Logger): Promise<CascadingKey[]> {
  if (tables.length === 0) return [];
  // KEY_COLUMN_USAGE, not REFERENTIAL_CONSTRAINTS (which has the actions): MariaDB shows the latter only to a user with
  // a privilege on the table other than SELECT. Only the tables with a foreign key are read further, one by one.
  const referencing = await sql.rows(
    `SELECT DISTINCT TABLE_SCHEMA, TABLE_NAME FROM information_schema.KEY_COLUMN_USAGE
      WHERE REFERENCED_TABLE_NAME IS NOT NULL AND (TABLE_SCHEMA, TABLE_NAME) IN (${tables.map(() => "(?, ?)").join(", ")})`,
    tables.flatMap((t) => [t.database, t.table]),
  );
  const found: CascadingKey[] = [];
  for (const row of referencing) {
    const database = column(row, "TABLE_SCHEMA");
    const table = column(row, "TABLE_NAME");
    // A table dropped since the list was read has nothing to warn of; a warning is not worth failing the start for.
    const [create] = await sql.rows(`SHOW CREATE TABLE \`${database.replaceAll("`", "``")}\`.\`${table.replaceAll("`", "``")}\``).catch(() => []);
    if (create === undefined) continue;
    for (const key of cascadingKeys(`${database}.${table}`, column(create, "Create Table"))) {
      found.push(key);
      logger.warn(
        { table: key.table, references: key.references, actions: key.actions },
        `table ${key.table} has a foreign key to ${key.references} with ${key.actions.join(", ")}: MySQL and MariaDB do not log the changes such an action makes, so the rows it deletes or changes in ${key.table} stay in its targets as they were; delete or change the rows of ${key.table} in the statement itself before the parent's (then they are logged), or read it again with sluice snapshot --table ${key.table} --execute`,
      );
    }
  }
  return found;
}

/** information_schema columns come back upper or lower case, as text or bytes, depending on the server. */
function column(row: Record<string, unknown>, name: string): string {
  const value = row[name] ?? row[name.toLowerCase()];
  return Buffer.isBuffer(value) ? value.toString("utf8") : String(value);
}
