/**
 * Read-only SQL against a DuckDB sink: through the running daemon (which holds the file; DuckDB
 * lets no other process open it meanwhile), or straight from the file when no daemon runs. Both
 * go through connectors/duckdb/read-query.ts: one SELECT, no file access, bounded answers.
 */
import type { DuckDBInstance } from "@duckdb/node-api";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { ReadQueryLimits, ReadQueryResult } from "../connectors/duckdb/read-query.ts";
import { SluiceError } from "../connectors/errors.ts";
import { readBody, sendJson } from "./http-server.ts";

export type { ReadQueryLimits, ReadQueryResult };

export interface QueryableSink {
  readQuery(sql: string): Promise<ReadQueryResult>;
}

export function isQueryable(sink: unknown): sink is QueryableSink {
  return typeof (sink as Partial<QueryableSink>).readQuery === "function";
}

/** POST /sinks/<name>/query with the SQL as the body: `{columns, rows, truncated}` as JSON. */
export function queryHandler(sinks: ReadonlyMap<string, QueryableSink>, maxBodyBytes: number) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<boolean> => {
    const match = /^\/sinks\/([^/]+)\/query$/.exec((req.url ?? "").split("?")[0]!);
    if (!match || req.method !== "POST") return false;
    const sink = sinks.get(decodeURIComponent(match[1]!));
    if (!sink) {
      sendJson(res, 404, { error: `no queryable sink "${match[1]}" (only DuckDB sinks answer SQL)` });
      return true;
    }
    const sql = (await readBody(req, maxBodyBytes)).toString("utf8");
    try {
      sendJson(res, 200, await sink.readQuery(sql));
    } catch (error) {
      const code = error instanceof SluiceError ? error.code : undefined;
      sendJson(res, code === "QUERY_TIMEOUT" ? 504 : 400, { error: error instanceof Error ? error.message : String(error), ...(code ? { code } : {}) });
    }
    return true;
  };
}

/** Opens the DuckDB file read-only (no daemon holds it), locked down like the daemon's, and runs one SELECT. */
export async function queryDuckDbFile(path: string, sql: string, limits: ReadQueryLimits): Promise<ReadQueryResult> {
  const context = { component: "query", path };
  // Loaded here: DuckDB's native library costs a daemon that has no DuckDB sink ~0.1 CPU-second at start.
  const [{ DuckDBInstance }, { LOCKED_DOWN_OPTIONS, runReadQuery }] = await Promise.all([import("@duckdb/node-api"), import("../connectors/duckdb/read-query.ts")]);
  let instance: DuckDBInstance;
  try {
    instance = await DuckDBInstance.create(path, { access_mode: "READ_ONLY", ...LOCKED_DOWN_OPTIONS });
  } catch (error) {
    throw new SluiceError(`cannot open DuckDB file ${path}: ${(error as Error).message}`, { code: "QUERY_FAILED", cause: error, context });
  }
  try {
    return await runReadQuery(instance, sql, limits, context);
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
