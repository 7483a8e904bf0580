/**
 * The admin endpoints behind `sluice snapshot`: POST /sources/<source>/snapshots with the JSON body
 * {"table": "schema.table", "where": "...", "execute": true|false} checks the table (captured,
 * published, keyed) and answers the plan (rows, chunks, whether a reset ends it); with execute it
 * also queues the online snapshot. GET /sources/<source>/snapshots lists the queued, running and
 * failed ones. 404 for an unknown source, 409 when the source cannot take one now, 400 for a
 * table or condition it refuses.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { SluiceError } from "../connectors/errors.ts";
import type { OnlineSnapshotting } from "../connectors/common/incremental-snapshot-state.ts";
import { methodsAllowed, sendJson } from "./http-server.ts";
import type { MethodsAllowed } from "./http-server.ts";
import { optionalFlag, readJsonObject } from "./request-body.ts";
import type { BodyReader } from "./request-body.ts";

const MAX_BODY_BYTES = 64 * 1024;

/**
 * The source's online snapshots, or why it has none (not captured by this process, or a kind without them).
 * `waiting`: what the source waits for while not ready (its server away), told with a refusal to take one now.
 * `server`: the database's host:port, named when it does not answer.
 */
export type SnapshotTarget = { readonly snapshots: OnlineSnapshotting; readonly waiting?: () => string | null; readonly server?: string } | { readonly unsupported: string };

/** How long a request waits for the source's database: a healthy catalog answers well within it. */
export const SNAPSHOT_ANSWER_MS = 5_000;

const REFUSED = new Set(["SNAPSHOT_NO_CHUNK_KEY", "SNAPSHOT_TABLE_NOT_CAPTURED", "SNAPSHOT_TABLE_UNKNOWN", "SNAPSHOT_TABLE_AMBIGUOUS", "SNAPSHOT_TABLE_UNPUBLISHED", "SNAPSHOT_WHERE_INVALID", "SNAPSHOT_NO_WATERMARK_TABLE", "SNAPSHOT_WATERMARK_TABLE", "SNAPSHOT_SERVER_SETTING"]);

export function snapshotHandler(lookup: (source: string) => SnapshotTarget | undefined, sourceNames: () => readonly string[], answerMs = SNAPSHOT_ANSWER_MS) {
  return async (req: IncomingMessage, res: ServerResponse, body: BodyReader): Promise<boolean | MethodsAllowed> => {
    const match = /^\/sources\/([^/]+)\/snapshots$/.exec((req.url ?? "").split("?")[0]!);
    if (!match) return false;
    if (req.method !== "POST" && req.method !== "GET") return methodsAllowed("GET", "POST");
    const name = decodeURIComponent(match[1]!);
    const target = lookup(name);
    if (target === undefined) {
      sendJson(res, 404, { error: `no source "${name}" is captured here; sources: ${sourceNames().join(", ") || "(none)"}` });
      return true;
    }
    if ("unsupported" in target) {
      sendJson(res, 409, { error: target.unsupported, code: "SNAPSHOT_UNSUPPORTED" });
      return true;
    }
    if (req.method === "GET") {
      const waiting = target.waiting?.() ?? null;
      sendJson(res, 200, { source: name, ...target.snapshots.list(), ...(waiting === null ? {} : { waiting }) });
      return true;
    }
    const request: { table?: unknown; where?: unknown; execute?: unknown } = await readJsonObject(body, '{"table": "schema.table", "where": "id > 100", "execute": false}', ["table", "where", "execute"], MAX_BODY_BYTES);
    if (typeof request.table !== "string" || request.table === "") {
      sendJson(res, 400, { error: 'the body needs "table": the table to snapshot (schema.table)' });
      return true;
    }
    if (request.where !== undefined && request.where !== null && typeof request.where !== "string") {
      sendJson(res, 400, { error: '"where" is an SQL condition (a string)' });
      return true;
    }
    const where = typeof request.where === "string" ? request.where : null;
    const execute = optionalFlag(request, "execute");
    try {
      const server = target.server === undefined ? "" : ` ${target.server}`;
      const late = `the database server${server} of source "${name}" did not answer within ${answerMs / 1000} s: is it up and reachable?`;
      if (!execute) {
        sendJson(res, 200, { executed: false, plan: await answeredWithin(target.snapshots.plan(request.table, where), answerMs, `${late} Ask again once it answers.`) });
        return true;
      }
      const requested = target.snapshots.request(request.table, where, "cli");
      const { plan, task } = await answeredWithin(requested, answerMs, `${late} The request stands: it is queued if the server answers ("sluice snapshot list" shows it).`);
      sendJson(res, 200, { executed: true, plan, task });
    } catch (error) {
      const code = error instanceof SluiceError ? error.code : undefined;
      const status = code !== undefined && REFUSED.has(code) ? 400 : error instanceof SluiceError && error.retriable ? 409 : 500;
      const message = error instanceof Error ? error.message : String(error);
      const waiting = status === 409 ? (target.waiting?.() ?? null) : null;
      const told = waiting === null ? message : `${message}; source "${name}" is waiting: ${waiting}`;
      sendJson(res, status, { error: told, ...(code === undefined ? {} : { code }) });
    }
    return true;
  };
}


/**
 * A server that stopped answering without closing its connections (paused, partitioned) holds a catalog query for
 * ever, and with it the operator's command: the answer says so after `ms`. The work goes on (its connection gets it
 * back when the server answers).
 */
async function answeredWithin<T>(work: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new SluiceError(message, { code: "SOURCE_NOT_ANSWERING", retriable: true })), ms);
  });
  work.catch(() => undefined);
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}
