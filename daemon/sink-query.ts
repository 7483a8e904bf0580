/**
 * Read-only SQL against a DuckDB sink: through the running daemon (which holds the file; DuckDB
 * lets no other process open it meanwhile), or straight from the file when no daemon runs.
 */
import { DuckDBInstance } from "@duckdb/node-api";
import type { IncomingMessage, ServerResponse } from "node:http";
import { SluiceError } from "../connectors/errors.ts";
import { sendJson } from "./http-server.ts";

const READ_ONLY = /^\s*(select|with|show|describe|summarize|explain|from|pragma\s+(table_info|show_tables|database_list))\b/i;

/** Only one read statement: the daemon's endpoint must not become a way to change the warehouse. */
export function checkReadOnly(sql: string): void {
  const body = sql.trim().replace(/;\s*$/, "");
  if (!READ_ONLY.test(body) || body.includes(";")) {
    throw new SluiceError("only one read-only statement is allowed (SELECT, WITH, FROM, SHOW, DESCRIBE, SUMMARIZE, EXPLAIN)", { code: "QUERY_NOT_READ_ONLY", context: { component: "query" } });
  }
}

export interface QueryableSink {
  query(sql: string): Promise<Record<string, unknown>[]>;
}

export function isQueryable(sink: unknown): sink is QueryableSink {
  return typeof (sink as Partial<QueryableSink>).query === "function";
}

/** POST /sinks/<name>/query with the SQL as the body: rows as JSON. */
export function queryHandler(sinks: ReadonlyMap<string, QueryableSink>) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<boolean> => {
    const match = /^\/sinks\/([^/]+)\/query$/.exec((req.url ?? "").split("?")[0]!);
    if (!match || req.method !== "POST") return false;
    const sink = sinks.get(decodeURIComponent(match[1]!));
    if (!sink) {
      sendJson(res, 404, { error: `no queryable sink "${match[1]}" (only DuckDB sinks answer SQL)` });
      return true;
    }
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const sql = Buffer.concat(chunks).toString("utf8");
    try {
      checkReadOnly(sql);
      sendJson(res, 200, { rows: await sink.query(sql) });
    } catch (error) {
      sendJson(res, 400, { error: error instanceof Error ? error.message : String(error) });
    }
    return true;
  };
}

/** Opens the DuckDB file read-only (no daemon holds it) and runs one read statement. */
export async function queryDuckDbFile(path: string, sql: string): Promise<Record<string, unknown>[]> {
  checkReadOnly(sql);
  const context = { component: "query", path };
  let instance: DuckDBInstance;
  try {
    instance = await DuckDBInstance.create(path, { access_mode: "READ_ONLY" });
  } catch (error) {
    throw new SluiceError(`cannot open DuckDB file ${path}: ${(error as Error).message}`, { code: "QUERY_FAILED", cause: error, context });
  }
  try {
    const connection = await instance.connect();
    try {
      return (await connection.runAndReadAll(sql)).getRowObjectsJson() as Record<string, unknown>[];
    } catch (error) {
      throw new SluiceError(`query failed: ${(error as Error).message}`, { code: "QUERY_FAILED", cause: error, context });
    } finally {
      connection.closeSync();
    }
  } finally {
    instance.closeSync();
  }
}

export function formatRows(rows: readonly Record<string, unknown>[]): string {
  if (rows.length === 0) return "(no rows)\n";
  const headers = Object.keys(rows[0]!);
  const cells = rows.map((row) => headers.map((h) => (row[h] === null ? "NULL" : typeof row[h] === "object" ? JSON.stringify(row[h]) : String(row[h]))));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]!.length)));
  const line = (values: string[]) => values.map((v, i) => v.padEnd(widths[i]!)).join("  ").trimEnd();
  return `${[line(headers), line(widths.map((w) => "-".repeat(w))), ...cells.map(line)].join("\n")}\n(${rows.length} row${rows.length === 1 ? "" : "s"})\n`;
}
