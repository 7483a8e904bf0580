/**
 * Request bodies of the daemon's HTTP API, read on the main thread only when an endpoint that
 * takes one asks for it (after the request's credential was checked). Each is at most
 * `http.max_body_bytes`, and all the bodies held at once share one budget: without it, each of
 * `http.max_connections` (512) connections could hold a 4 MiB body (200 clients sending 4 MiB
 * bodies slowly took a daemon from 185 MB to 983 MB resident, with a 365 MiB budget).
 */
import type { IncomingMessage } from "node:http";
import { SluiceError } from "../connectors/errors.ts";
import { jsonShapeProblem } from "../runtime/json-shape.ts";
import type { JsonShapeLimits } from "../runtime/json-shape.ts";
import type { ByteBudget } from "./byte-budget.ts";

const MiB = 2 ** 20;

/** The default of `http.max_body_bytes`. */
export const DEFAULT_MAX_BODY_BYTES = 4 * MiB;

/** Bytes of request bodies the server holds at once across its connections (or one body of `http.max_body_bytes` when that is larger). */
export const DEFAULT_HELD_BODY_BYTES = 16 * MiB;

/** A body of unknown length (chunked) starts with this much room and doubles as it comes. */
const FIRST_CAPACITY = 16 * 2 ** 10;

/** A request body larger than the server takes: answered 413 by HttpServer, the rest left unread. */
export class BodyTooLargeError extends SluiceError {
  /** The limit the body was refused at: the endpoint's own, or http.max_body_bytes. */
  readonly limit: number;
  /** `endpoint`: the limit is the endpoint's own, below http.max_body_bytes (e.g. 64 KiB for a snapshot request). */
  constructor(limit: number, declared?: number, endpoint = false) {
    super(`the request body${declared === undefined ? "" : ` (${declared} bytes)`} is larger than the ${limit} bytes ${endpoint ? "this endpoint takes" : "this server takes (http.max_body_bytes)"}`, {
      code: "HTTP_BODY_TOO_LARGE",
      context: { component: "http" },
    });
    this.limit = limit;
  }
}

/** The server already holds as many bytes of request bodies as it takes at once: answered 503 with Retry-After by HttpServer. */
export class BodiesBusyError extends SluiceError {
  constructor(limit: number) {
    super(`the server holds as many bytes of request bodies as it takes at once (${limit}, other requests still sending or being handled); try again`, {
      code: "HTTP_BODIES_BUSY",
      context: { component: "http" },
    });
  }
}

/** A request the server cannot take as sent (a body that is not the JSON the endpoint reads): answered 400 by HttpServer. */
export class BadRequestError extends SluiceError {
  constructor(message: string) {
    super(message, { code: "HTTP_BAD_REQUEST", context: { component: "http" } });
  }
}

const closedEarly = () => new BadRequestError("the client closed the connection before its request body ended");

/** Reads the request's whole body, at most `maxBytes` (never more than the server's `http.max_body_bytes`); read once, later calls get the same answer. */
export type BodyReader = (maxBytes?: number) => Promise<Buffer>;

/**
 * One request's body, read when its handler asks: copied into one buffer (a known length at once,
 * a chunked body growing by doubling) whose size is counted in the budget from when it is taken
 * until release() (the handler is done with it). A body the budget has no room for is refused
 * with BodiesBusyError before it is read.
 */
export class RequestBody {
  readonly read: BodyReader;
  readonly #req: IncomingMessage;
  readonly #budget: ByteBudget;
  #held = 0;
  #released = false;

  constructor(req: IncomingMessage, maxBytes: number, budget: ByteBudget) {
    this.#req = req;
    this.#budget = budget;
    let reading: Promise<Buffer> | undefined;
    this.read = (limit = maxBytes) => (reading ??= this.#read(Math.min(limit, maxBytes), limit < maxBytes));
  }

  /** Gives back what the body held; a read still going on is stopped. */
  release(): void {
    this.#released = true;
    this.#budget.give(this.#held);
    this.#held = 0;
  }

  /** Holds `bytes` in all (more than held so far); false when the budget has no room. */
  #hold(bytes: number): boolean {
    if (this.#released || !this.#budget.take(bytes - this.#held)) return false;
    this.#held = bytes;
    return true;
  }

  #read(limit: number, endpoint: boolean): Promise<Buffer> {
    const req = this.#req;
    const header = req.headers["content-length"];
    const declared = header === undefined ? undefined : Number(header);
    if (declared !== undefined && declared > limit) return Promise.reject(new BodyTooLargeError(limit, declared, endpoint));
    if (req.readableEnded) return Promise.resolve(Buffer.alloc(0));
    // Its 'close' has come and gone (the client left while the request waited for its turn): nothing more will.
    if (req.destroyed) return Promise.reject(closedEarly());
    if (declared !== undefined && !this.#hold(declared)) return Promise.reject(new BodiesBusyError(this.#budget.limit));
    return new Promise((resolve, reject) => {
      let buffer = Buffer.alloc(0);
      let length = 0;
      const stop = (error: Error) => {
        req.off("data", onData);
        req.off("end", onEnd);
        req.off("close", onClose);
        // What still comes is dropped as it arrives (HttpServer answers a refusal once the client has sent it).
        req.resume();
        reject(error);
      };
      const onData = (chunk: Buffer) => {
        const needed = length + chunk.length;
        if (needed > limit) return stop(new BodyTooLargeError(limit, undefined, endpoint));
        if (needed > buffer.length) {
          const capacity = declared ?? Math.min(limit, Math.max(needed, 2 * buffer.length, FIRST_CAPACITY));
          if (!this.#hold(capacity)) return stop(new BodiesBusyError(this.#budget.limit));
          const grown = Buffer.allocUnsafe(capacity);
          buffer.copy(grown, 0, 0, length);
          buffer = grown;
        }
        chunk.copy(buffer, length);
        length = needed;
      };
      const onEnd = () => {
        req.off("close", onClose);
        resolve(buffer.subarray(0, length));
      };
      const onClose = () => stop(closedEarly());
      req.on("data", onData);
      req.once("end", onEnd);
      req.once("close", onClose);
      // An aborted request emits error, then close; kept after the end so a late error is not unhandled.
      req.once("error", onClose);
    });
  }
}

/** An admin endpoint's body is a small object (a list of tables at most): far more would cost the main thread's heap many times its bytes to parse (json-shape.ts). */
const ADMIN_BODY_SHAPE: JsonShapeLimits = { maxDepth: 8, maxValues: 100_000 };

/**
 * Reads a body that must be one JSON object (an empty body is `{}`) holding no field but `fields`;
 * anything else rejects with BadRequestError naming the `expected` shape. A field the endpoint does
 * not know is refused rather than ignored: {"table": [...]} given to rebuild (which reads "tables")
 * rebuilt every table, and {"dry_run": true} did too.
 */
export async function readJsonObject(body: BodyReader, expected: string, fields: readonly string[], maxBytes?: number): Promise<Record<string, unknown>> {
  const text = (await body(maxBytes)).toString("utf8");
  const shape = jsonShapeProblem(text, ADMIN_BODY_SHAPE);
  if (shape !== null) throw new BadRequestError(`the body is refused unread: ${shape}; expected ${expected}`);
  let parsed: unknown;
  try {
    parsed = text.trim() === "" ? {} : JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new BadRequestError(`the body must be a JSON object: ${expected}`);
  const unknown = Object.keys(parsed).filter((key) => !fields.includes(key));
  if (unknown.length > 0) {
    throw new BadRequestError(`the body has ${unknown.length === 1 ? "a field" : "fields"} this endpoint does not take (${unknown.map((key) => JSON.stringify(key)).join(", ")}; it takes ${fields.map((key) => JSON.stringify(key)).join(", ")}): ${expected}`);
  }
  return parsed as Record<string, unknown>;
}

/**
 * The optional flag `field` (e.g. "execute") of a body read by readJsonObject: false when absent. Anything
 * but a JSON boolean is refused: "execute": "true" (or 1) was taken for a dry run, answered 200, and a
 * script that sent it took the skip, abandon or snapshot for done.
 */
export function optionalFlag(body: Record<string, unknown>, field: string): boolean {
  const value = body[field];
  if (value === undefined) return false;
  if (typeof value !== "boolean") throw new BadRequestError(`"${field}" must be true or false (a JSON boolean), not ${JSON.stringify(value)}`);
  return value;
}

/**
 * The optional list `field` of a body read by readJsonObject: undefined when the field is absent
 * (which the endpoint reads as every table). An empty list is refused: it names no table, and read
 * as "every table" it rebuilt them all (`sluice replay --rebuild` before this change sent [] for
 * every table; it now leaves the field out).
 */
export function optionalNameList(body: Record<string, unknown>, field: string, what: string): readonly string[] | undefined {
  const value = body[field];
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || !value.every((name) => typeof name === "string")) throw new BadRequestError(`"${field}" must be a list of ${what}`);
  if (value.length === 0) {
    throw new BadRequestError(`"${field}" is an empty list, which names no table: leave "${field}" out for every table (a sluice command older than this daemon sends [] for every table: use this version's)`);
  }
  return value as string[];
}
