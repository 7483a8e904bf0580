/**
 * Names the captured tables without a primary key when capture starts: sinks refuse them
 * (connectors/sinks/columns.ts), so the operator hears about it before the first change does.
 */
import type { Logger } from "pino";
import type { Sql } from "./catalog.ts";
import type { TableName } from "./schema/ddl-parser.ts";

export async function warnKeylessTables(sql: Sql, tables: readonly TableName[], logger: Logger): Promise<string[]> {
  if (tables.length === 0) return [];
  // STATISTICS, not TABLE_CONSTRAINTS: MariaDB shows a table's constraints only to a user with a
  // privilege on it other than SELECT, so with the least privileges every table looked keyless.
  const keyed = await sql.rows(
    `SELECT DISTINCT TABLE_SCHEMA, TABLE_NAME FROM information_schema.STATISTICS
      WHERE INDEX_NAME = 'PRIMARY' AND (TABLE_SCHEMA, TABLE_NAME) IN (${tables.map(() => "(?, ?)").join(", ")})`,
    tables.flatMap((t) => [t.database, t.table]),
  );
  const withKey = new Set(keyed.map((row) => `${column(row, "TABLE_SCHEMA")}.${column(row, "TABLE_NAME")}`));
  const keyless = tables.map((t) => `${t.database}.${t.table}`).filter((name) => !withKey.has(name));
  for (const table of keyless) {
    logger.warn({ table }, "table has no primary key: its records have no key, and sinks refuse it (identical rows cannot be told apart); add a primary key");
  }
  return keyless;
}

/** information_schema columns come back upper or lower case, as text or bytes, depending on the server. */
function column(row: Record<string, unknown>, name: string): string {
  const value = row[name] ?? row[name.toLowerCase()];
  return Buffer.isBuffer(value) ? value.toString("utf8") : String(value);
}
