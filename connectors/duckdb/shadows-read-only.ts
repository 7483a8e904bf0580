/**
 * The rebuild shadows a DuckDB file holds, read without opening the sink: the file opened
 * read-only and nothing made. Opening the sink makes the file and its `_sluice` catalog, which a
 * look (`sluice replay --abandon-rebuild` without --execute) must not do.
 */
import { existsSync } from "node:fs";
import type { DuckDBConnection } from "@duckdb/node-api";
import { SluiceError } from "../errors.ts";
import type { TableId } from "../contracts.ts";
import type { RebuildShadow } from "../sinks/contract.ts";
import { INTERNAL_SCHEMA } from "./config.ts";
import { LOCKED_DOWN_OPTIONS } from "./read-query.ts";
import { ident, literal } from "./sql.ts";

/** The file could not be opened read-only (locked by the process that runs the sink, unreadable, not DuckDB). */
export const SHADOWS_UNREADABLE = "SINK_SHADOWS_UNREADABLE";

/** The shadows in the DuckDB file at `path`; none when there is no file or Sluice never wrote its catalog into it. */
export async function readDuckDbShadows(path: string): Promise<RebuildShadow[]> {
  if (path === ":memory:" || !existsSync(path)) return [];
  const { DuckDBInstance } = await import("@duckdb/node-api");
  let instance;
  try {
    instance = await DuckDBInstance.create(path, { access_mode: "READ_ONLY", ...LOCKED_DOWN_OPTIONS });
  } catch (error) {
    throw new SluiceError(`cannot open DuckDB file ${path} read-only: ${(error as Error).message}`, {
      code: SHADOWS_UNREADABLE,
      cause: error,
      context: { component: "sink", path },
    });
  }
  try {
    const connection = await instance.connect();
    try {
      return await shadowsIn(connection);
    } finally {
      connection.closeSync();
    }
  } finally {
    instance.closeSync();
  }
}

async function shadowsIn(connection: DuckDBConnection): Promise<RebuildShadow[]> {
  const rows = async (sql: string) => (await connection.runAndReadAll(sql)).getRowObjectsJson();
  const catalog = new Set(
    (await rows(`SELECT table_name AS n FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = ${literal(INTERNAL_SCHEMA)}`)).map((row) => String(row["n"])),
  );
  if (!catalog.has("tables")) return [];
  const columns = new Set(
    (await rows(`SELECT column_name AS c FROM duckdb_columns() WHERE database_name = current_database() AND schema_name = ${literal(INTERNAL_SCHEMA)} AND table_name = 'tables'`)).map((row) =>
      String(row["c"]),
    ),
  );
  // Files written before Sluice recorded when a shadow was prepared, or whose targets' owners, lack those.
  const prepared = columns.has("created_at_ms") ? "created_at_ms" : "NULL";
  const shadows = await rows(`SELECT physical, target, ${prepared} AS prepared FROM ${ident(INTERNAL_SCHEMA)}.${ident("tables")} WHERE role = 'shadow' ORDER BY physical`);
  const owners = new Map<string, TableId>();
  if (catalog.has("targets")) {
    for (const row of await rows(`SELECT target, source, "database", "schema", "table" FROM ${ident(INTERNAL_SCHEMA)}.${ident("targets")}`)) {
      owners.set(String(row["target"]), { source: String(row["source"]), database: String(row["database"]), schema: String(row["schema"]), table: String(row["table"]) });
    }
  }
  return shadows.map((row) => ({
    table: owners.get(String(row["target"])) ?? null,
    target: String(row["target"]),
    physical: String(row["physical"]),
    preparedAtMs: row["prepared"] === null ? null : Number(row["prepared"]),
  }));
}
