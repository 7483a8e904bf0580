/**
 * Read-only SQL against a DuckDB sink: through the running daemon (which holds the file; DuckDB
 * lets no other process open it meanwhile), or straight from the file when no daemon runs. Both
 * go through connectors/duckdb/read-query.ts: one SELECT, no file access, bounded answers.
 */
import type { DuckDBInstance } from "@duckdb/node-api";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { ReadQueryLimits, ReadQueryResult } from "../connectors/duckdb/read-query.ts";
import { SluiceError } from "../connectors/errors.ts";
import { formatSize } from "../config/units.ts";
import { ByteBudget } from "./byte-budget.ts";
import { methodsAllowed, sendJson } from "./http-server.ts";
import type { MethodsAllowed } from "./http-server.ts";
import type { BodyReader } from "./request-body.ts";
import { oneLine } from "./terminal-text.ts";

export type { ReadQueryLimits, ReadQueryResult };

export interface QueryableSink {
  /** The answer of one read-only SELECT as the JSON text of a ReadQueryResult, in UTF-8, in an ArrayBuffer of its own (freed once sent). */
  readQueryJson(sql: string): Promise<Uint8Array>;
}

export function isQueryable(sink: unknown): sink is QueryableSink {
  return typeof (sink as Partial<QueryableSink>).readQueryJson === "function";
}

/**
 * Each answer can be query.max_bytes of JSON (16 MiB by default), held by the process until the
 * client has read it: queries of a sink in progress at once, from the request until the answer is
 * read, are bounded, the bytes of answers held for their clients at once too (all sinks together),
 * and an answer the client does not read is dropped with its connection. Without these, clients
 * that sent queries and read nothing held their answers for as long as they kept the connection
 * (24 of them took the daemon from 157 MB to ~700 MB resident, with a 365 MiB budget).
 */
export interface QueryConcurrency {
  /** Queries of one sink in progress at once; more are answered 429. */
  readonly maxInProgress: number;
  /** How long a client may leave an answer unread before its connection is cut. */
  readonly unreadAnswerMs: number;
  /** Bytes of answers held for their clients at once, all sinks together; an answer past it is dropped and answered 503 (one answer always goes). */
  readonly maxAnswerBytes: number;
}

export const DEFAULT_QUERY_CONCURRENCY: QueryConcurrency = { maxInProgress: 4, unreadAnswerMs: 30_000, maxAnswerBytes: 32 * 2 ** 20 };

/** POST /sinks/<name>/query with the SQL as the body: `{columns, rows, truncated}` as JSON. */
export function queryHandler(
  sinks: ReadonlyMap<string, QueryableSink>,
  concurrency: QueryConcurrency = DEFAULT_QUERY_CONCURRENCY,
  /** Why a sink this process does not run is not here (daemon/sink-elsewhere.ts); null for one it runs. */
  elsewhere: (name: string) => Promise<string | null> = async () => null,
) {
  const inProgress = new Map<string, number>();
  const answers = new ByteBudget(concurrency.maxAnswerBytes);
  return async (req: IncomingMessage, res: ServerResponse, body: BodyReader): Promise<boolean | MethodsAllowed> => {
    const match = /^\/sinks\/([^/]+)\/query$/.exec((req.url ?? "").split("?")[0]!);
    if (!match) return false;
    if (req.method !== "POST") return methodsAllowed("POST");
    const name = decodeURIComponent(match[1]!);
    const sink = sinks.get(name);
    if (!sink) {
      sendJson(res, 404, { error: (await elsewhere(name)) ?? `no queryable sink "${name}" (only DuckDB sinks answer SQL)` });
      return true;
    }
    // Read before a slot is taken: a body that never comes (the client gone) holds none.
    const sql = (await body()).toString("utf8");
    const running = inProgress.get(name) ?? 0;
    if (running >= concurrency.maxInProgress) {
      res.setHeader("retry-after", "1");
      sendJson(res, 429, { error: `sink "${name}" has ${running} queries in progress, as many as it takes at once (their answers made or not yet read); try again`, code: "QUERY_BUSY" });
      return true;
    }
    inProgress.set(name, running + 1);
    let unread: NodeJS.Timeout | undefined;
    // Until the answer is read (finish) or the connection is gone (close): both may come, the slot and the answer's bytes are given back once.
    let released = false;
    let held = 0;
    const release = () => {
      if (released) return;
      released = true;
      clearTimeout(unread);
      inProgress.set(name, (inProgress.get(name) ?? 1) - 1);
      answers.give(held);
    };
    res.once("finish", release);
    res.once("close", release);
    try {
      const answer = await sink.readQueryJson(sql);
      if (released) return true;
      // What the answer holds is its whole ArrayBuffer (freed with it), which may be larger than the text.
      const bytes = answer.buffer.byteLength;
      if (!answers.take(bytes)) {
        res.setHeader("retry-after", "1");
        sendJson(res, 503, { error: `the daemon holds ${(answers.heldBytes / 2 ** 20).toFixed(1)}MiB of query answers their clients have not read yet, as much as it holds at once (${formatSize(answers.limit)}); try again`, code: "QUERY_ANSWERS_BUSY" });
        return true;
      }
      held = bytes;
      // Its memory given back once the socket has taken it all, not when a collection of this heap comes (V8 lets tens of MiB wait).
      res.once("finish", () => (answer.buffer as ArrayBuffer).transfer(0));
      res.writeHead(200, { "content-type": "application/json", "content-length": answer.byteLength });
      res.end(Buffer.from(answer.buffer, answer.byteOffset, answer.byteLength));
    } catch (error) {
      const code = error instanceof SluiceError ? error.code : undefined;
      sendJson(res, code === "QUERY_TIMEOUT" ? 504 : 400, { error: error instanceof Error ? error.message : String(error), ...(code ? { code } : {}) });
    }
    if (!res.writableFinished && !released) unread = setTimeout(() => res.destroy(), concurrency.unreadAnswerMs).unref();
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
  const keys = Object.keys(rows[0]!);
  // Values and column names are anyone's who can write to the database: each cell stays on its line, escaped.
  const headers = keys.map(oneLine);
  const cells = rows.map((row) => keys.map((h) => oneLine(row[h] === null ? "NULL" : typeof row[h] === "object" ? JSON.stringify(row[h]) : String(row[h]))));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]!.length)));
  const line = (values: string[]) => values.map((v, i) => v.padEnd(widths[i]!)).join("  ").trimEnd();
  return `${[line(headers), line(widths.map((w) => "-".repeat(w))), ...cells.map(line)].join("\n")}\n(${rows.length} row${rows.length === 1 ? "" : "s"})\n`;
}
