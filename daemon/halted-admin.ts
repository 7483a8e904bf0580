/**
 * The admin endpoints behind `sluice halted retry|skip`: POST /sinks/<sink>/halted/<retry|skip>
 * (a sink's halted table) and POST /sources/<source>/halted/<retry|skip> (a table halted at
 * capture), with the JSON body {"table": "...", "execute": true|false}, for a sink's retry "force": true
 * (sluice halted retry --force: the sink takes its target as it is, Sink.acceptTargetAsIs), and, for a skip, "through":
 * "<offset>" or "pending" (sluice halted skip --through / --all-pending; a sink's record offset on the
 * halted record's partition, a source's parking topic offset). Answers the release report
 * (what was done, or what --execute would do); 404 when the sink, source or halted table is unknown.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { SluiceError } from "../connectors/errors.ts";
import { HALT_FORCE_INVALID, NOT_HALTED } from "./halted.ts";
import type { CaptureReleaseReport, CaptureSkipThrough, HaltAction, HaltReleaseReport } from "./halted.ts";
import { methodsAllowed, sendJson } from "./http-server.ts";
import type { MethodsAllowed } from "./http-server.ts";
import { optionalFlag, readJsonObject } from "./request-body.ts";
import type { BodyReader } from "./request-body.ts";

export interface ReleasableSink {
  release(table: string, action: HaltAction, execute: boolean, through?: string | null, force?: boolean): Promise<HaltReleaseReport>;
}

const MAX_BODY_BYTES = 64 * 1024;

/** Refusals of what the request asked (answered 4xx), as opposed to the release failing. */
const REQUEST_ERRORS = new Map([
  [NOT_HALTED, 404],
  // --through before the record (or parked change) that halted the table.
  ["HALT_SKIP_THROUGH_INVALID", 400],
  // --force on a halt the sink has nothing to overrule for.
  [HALT_FORCE_INVALID, 400],
]);

export interface ReleasableCapture {
  release(table: string, action: HaltAction, execute: boolean, through?: CaptureSkipThrough | null): Promise<CaptureReleaseReport>;
}

export function haltedHandler(
  sinks: ReadonlyMap<string, ReleasableSink>,
  sources: ReadonlyMap<string, ReleasableCapture> = new Map(),
  /** Why a sink this process does not run is not here (daemon/sink-elsewhere.ts); null for one it runs. */
  sinkElsewhere: (name: string) => Promise<string | null> = async () => null,
) {
  return async (req: IncomingMessage, res: ServerResponse, body: BodyReader): Promise<boolean | MethodsAllowed> => {
    const match = /^\/(sinks|sources)\/([^/]+)\/halted\/(retry|skip)$/.exec((req.url ?? "").split("?")[0]!);
    if (!match) return false;
    if (req.method !== "POST") return methodsAllowed("POST");
    const kind = match[1] === "sinks" ? "sink" : "source";
    const name = decodeURIComponent(match[2]!);
    const known: ReadonlyMap<string, ReleasableSink | ReleasableCapture> = kind === "sink" ? sinks : sources;
    const sink = known.get(name);
    if (!sink) {
      const elsewhere = kind === "sink" ? await sinkElsewhere(name) : null;
      sendJson(res, 404, { error: elsewhere ?? `no ${kind} "${name}" runs here; ${kind}s: ${[...known.keys()].join(", ") || "(none)"}` });
      return true;
    }
    const request: { table?: unknown; execute?: unknown; through?: unknown; force?: unknown } = await readJsonObject(body, '{"table": "schema.table", "execute": false}', ["table", "execute", "through", "force"], MAX_BODY_BYTES);
    if (typeof request.table !== "string" || request.table === "") {
      sendJson(res, 400, { error: 'the body needs "table": the halted table (schema.table) or its topic' });
      return true;
    }
    if (request.force !== undefined && (request.force !== true || kind !== "sink" || match[3] !== "retry")) {
      sendJson(res, 400, { error: '"force" is for a sink\'s retry only, and only true: it takes the target as it is (sluice halted retry --force)' });
      return true;
    }
    const force = request.force === true;
    const through = request.through ?? null;
    if (through !== null && (match[3] !== "skip" || typeof through !== "string" || !/^(pending|\d{1,20})$/.test(through))) {
      sendJson(res, 400, { error: '"through" is for a skip only: "pending" or an offset (decimal text: a sink\'s record offset, a source\'s parking topic offset)' });
      return true;
    }
    const execute = optionalFlag(request, "execute");
    try {
      const action = match[3] as HaltAction;
      sendJson(
        res,
        200,
        kind === "sink"
          ? await (sink as ReleasableSink).release(request.table, action, execute, through, force)
          : await (sink as ReleasableCapture).release(request.table, action, execute, through === null ? null : through === "pending" ? "pending" : BigInt(through)),
      );
    } catch (error) {
      const code = error instanceof SluiceError ? error.code : undefined;
      sendJson(res, code === undefined ? 500 : (REQUEST_ERRORS.get(code) ?? 500), { error: error instanceof Error ? error.message : String(error), ...(error instanceof SluiceError ? { code: error.code } : {}) });
    }
    return true;
  };
}
