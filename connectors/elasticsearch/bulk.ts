/**
 * Bulk requests: operations packed into NDJSON bodies of at most `bulk_bytes`, sent with
 * transient failures retried with jittered backoff (runtime/backoff.ts) -- whole requests
 * (connection errors, 429, 5xx) and single items (429, 5xx) alike -- and each item's outcome
 * sorted for the sink: applied, stale (409: the index holds this version or a newer one), still
 * failing after retries (retriable), refused by the target (a block, whatever its status, or an
 * index or alias no longer there), or rejected (any other error: poison).
 */
import type { Readable } from "node:stream";
import { unzipSync } from "node:zlib";
import { errors } from "@elastic/elasticsearch";
import type { Client, TransportResult } from "@elastic/elasticsearch";
import { backoffDelay, retry, sleep } from "../../runtime/backoff.ts";
import type { Logger } from "../../runtime/logger.ts";
import { describeTlsMessage } from "../common/tls-message.ts";
import { ConnectionError, SluiceError } from "../errors.ts";
import { AUTH_FAILED, errorMessage } from "../sinks/errors.ts";
import { decodeJson } from "./json.ts";
import type { NdjsonOperations } from "./ndjson-operations.ts";

export type ItemOutcome =
  | { readonly kind: "applied" }
  | { readonly kind: "stale" }
  | { readonly kind: "failed"; readonly retriable: boolean; readonly reason: string; readonly target?: TargetRefusal };

/**
 * The index itself refuses every write (a block), is closed (POST <index>/_close), is no longer there (deleted, or its alias
 * removed), its alias names more indices than one and none of them as its write index (an operator added another index
 * to it), or its alias sent the write to another index than the one expected (BulkOptions.expectIndex: the alias moved by hand): no
 * fault of the row.
 */
export type TargetRefusal = "blocked" | "closed" | "gone" | "ambiguous" | "moved";

export interface BulkOptions {
  readonly maxBytes: number;
  readonly refresh: boolean;
  /**
   * Every operation names an alias, and fails (404 index_not_found_exception) when it is not one:
   * Elasticsearch would otherwise create a missing index (action.auto_create_index) with a dynamic
   * mapping and no alias, and the write would succeed where no search sees it.
   */
  readonly requireAlias?: boolean;
  /**
   * The index or alias of the operations whose action line names none: the request goes to
   * `POST /<index>/_bulk` (require_alias applies to it too). Unset: `POST /_bulk`, every
   * operation names its index.
   */
  readonly index?: string;
  /**
   * The index an operation (by its position in the operations) must land in: the index behind the alias it names (a
   * rebuild's mirror names two aliases, each operation one of them). Elasticsearch sends a write through an alias to
   * whatever index the alias names now, without an error: one answered from another index (the alias moved by hand while
   * the sink ran) fails as "moved". Unset: not checked.
   */
  readonly expectIndex?: (operation: number) => string;
  readonly retry: { readonly initial: number; readonly max: number };
  /** Rounds of item retries before a 429/5xx item is reported as a retriable failure. */
  readonly itemAttempts?: number;
  /** The positions of the operations to send, ascending (default: all); the others' outcomes are "not sent". */
  readonly members?: readonly number[];
  readonly signal: AbortSignal;
  readonly logger: Logger;
  readonly sink: string;
}

interface BulkItemResult {
  readonly status: number;
  /** The index written (asked for with BulkOptions.expectIndex). */
  readonly _index?: string;
  readonly error?: { readonly type?: string; readonly reason?: string; readonly caused_by?: { readonly reason?: string } };
}

/** A bulk request's items in order; null: every one applied (the reply's `errors` is false). */
type BulkItems = readonly (BulkItemResult | undefined)[] | null;

/**
 * Groups operations (their positions in `operations`, or those of `among`) into bodies of at most
 * `maxBytes`, an operation larger than that alone. A write's bodies are as few as that allows and go
 * one at a time: Elasticsearch spreads a bulk request over an index's shards itself, while requests
 * side by side on one shard are indexed into separate in-memory segments, so each refresh writes
 * one small segment per request (more flushing and merging), and each request has its fixed cost (a
 * translog fsync per shard). Measured: docs/benchmarks.md, "Elasticsearch's own CPU per change".
 */
export function planBodies(operations: NdjsonOperations, maxBytes: number, among?: readonly number[]): number[][] {
  const bodies: number[][] = [];
  let members: number[] = [];
  let size = 0;
  const count = among === undefined ? operations.length : among.length;
  for (let i = 0; i < count; i++) {
    const index = among === undefined ? i : (among[i] as number);
    const bytes = operations.sizeOf(index);
    if (members.length > 0 && size + bytes > maxBytes) {
      bodies.push(members);
      members = [];
      size = 0;
    }
    members.push(index);
    size += bytes;
  }
  if (members.length > 0) bodies.push(members);
  return bodies;
}

/** Packs operations into bodies of at most `maxBytes` (an operation larger than that goes alone), as the bytes sent. */
export function packBodies(operations: NdjsonOperations, maxBytes: number): { body: Buffer; members: number[] }[] {
  return planBodies(operations, maxBytes).map((members) => ({ body: operations.bytesOf(members), members }));
}

/**
 * Sends the operations and returns each one's outcome, a write's bodies one after the other (see
 * planBodies); a failed request is thrown and no further one starts. Items Elasticsearch asks to
 * retry are sent again together after every request of the round.
 */
export async function runBulk(client: Client, operations: NdjsonOperations, options: BulkOptions): Promise<ItemOutcome[]> {
  if (operations.length === 0) return [];
  const outcomes: ItemOutcome[] = new Array<ItemOutcome>(operations.length).fill(NOT_SENT);
  // The positions of the operations still to send; undefined: all of them.
  let pending: readonly number[] | undefined = options.members;
  const rounds = options.itemAttempts ?? 5;
  for (let round = 0; ; round++) {
    const again: number[] = [];
    for (const members of planBodies(operations, options.maxBytes, pending)) {
      const items = await sendBodyOrEach(client, operations, members, options);
      members.forEach((index, position) => {
        const outcome = items === null ? APPLIED : classify(items[position], options.expectIndex?.(index));
        outcomes[index] = outcome;
        if (outcome.kind === "failed" && outcome.retriable) again.push(index);
      });
    }
    if (again.length === 0 || round + 1 >= rounds) break;
    again.sort((a, b) => a - b);
    const delay = backoffDelay({ initialMs: options.retry.initial, maxMs: options.retry.max }, round);
    options.logger.warn({ items: again.length, round, delayMs: delay }, "Elasticsearch asked to retry bulk items (429/5xx); retrying");
    await sleep(delay, options.signal);
    pending = again;
  }
  return outcomes;
}

/** Shared by every item they describe (an outcome is never changed). */
const NOT_SENT: ItemOutcome = Object.freeze({ kind: "failed", retriable: true, reason: "not sent" });
const APPLIED: ItemOutcome = Object.freeze({ kind: "applied" });
const STALE: ItemOutcome = Object.freeze({ kind: "stale" });
const APPLIED_ITEM: BulkItemResult = Object.freeze({ status: 200 });

function classify(item: BulkItemResult | undefined, expectIndex?: string): ItemOutcome {
  if (item === undefined) return { kind: "failed", retriable: true, reason: "no result for this item in the bulk response" };
  if (expectIndex !== undefined && item._index !== undefined && item._index !== expectIndex && ((item.status >= 200 && item.status < 300) || item.status === 409)) {
    return { kind: "failed", retriable: false, reason: `written to index "${item._index}", not "${expectIndex}"`, target: "moved" };
  }
  if (item.status >= 200 && item.status < 300) return APPLIED;
  if (item.status === 409) return STALE;
  const reason = `${item.status} ${item.error?.type ?? "error"}: ${item.error?.reason ?? ""}${item.error?.caused_by?.reason ? ` (${item.error.caused_by.reason})` : ""}`;
  // index.blocks.write answers 403, the flood-stage read_only_allow_delete block 429: neither is the row's fault nor lifts in seconds.
  if (item.error?.type === "cluster_block_exception") return { kind: "failed", retriable: false, reason, target: "blocked" };
  // A closed index answers 400 for every write until it is opened again.
  if (item.error?.type === "index_closed_exception") return { kind: "failed", retriable: false, reason, target: "closed" };
  if (item.error?.type === "index_not_found_exception") return { kind: "failed", retriable: false, reason, target: "gone" };
  // Every write through such an alias fails this way (400 illegal_argument_exception), whatever the row.
  if (item.error?.type === "illegal_argument_exception" && item.error.reason?.startsWith("no write index is defined for alias")) return { kind: "failed", retriable: false, reason, target: "ambiguous" };
  return { kind: "failed", retriable: item.status === 429 || item.status >= 500, reason };
}

/**
 * Sends a body; when Elasticsearch refuses it whole for its size (413, beyond
 * `http.max_content_length`), sends its operations one by one, so only a document too large on its
 * own fails, as its item (permanently: retrying cannot shrink it) and not as the whole write.
 */
async function sendBodyOrEach(client: Client, operations: NdjsonOperations, members: readonly number[], options: BulkOptions): Promise<BulkItems> {
  const body = operations.bytesOf(members);
  const expected = options.expectIndex === undefined ? undefined : members.map(options.expectIndex);
  try {
    return await sendBody(client, body, members.length, options, expected);
  } catch (error) {
    if (!tooLarge(error)) throw error;
  }
  if (members.length > 1) options.logger.warn({ items: members.length, bytes: body.length }, "Elasticsearch refused a bulk request as too large (413); sending its documents one by one");
  const items: (BulkItemResult | undefined)[] = [];
  for (const [position, member] of members.entries()) {
    const alone = operations.bytesOf([member]);
    try {
      items.push(...((await sendBody(client, alone, 1, options, expected?.slice(position, position + 1))) ?? [APPLIED_ITEM]));
    } catch (error) {
      if (!tooLarge(error)) throw error;
      const bytes = alone.length;
      items.push({
        status: 413,
        error: { type: "request_entity_too_large", reason: `the document's bulk request is ${bytes} bytes, more than Elasticsearch accepts in one request (http.max_content_length)` },
      });
    }
  }
  return items;
}

function tooLarge(error: unknown): boolean {
  const cause = (error as { cause?: unknown } | null)?.cause ?? error;
  return (cause as { meta?: { statusCode?: number } } | null)?.meta?.statusCode === 413;
}

/** `expected`: the index each of the body's operations must land in, in order (BulkOptions.expectIndex). */
async function sendBody(client: Client, body: Buffer, count: number, options: BulkOptions, expected?: readonly string[]): Promise<BulkItems> {
  return retry(
    async () => {
      let result: TransportResult<Readable>;
      try {
        result = await client.transport.request<Readable>(
          // Only what the outcomes need: the full per-item response is several times larger to send and parse.
          { method: "POST", path: options.index === undefined ? "/_bulk" : `/${encodeURIComponent(options.index)}/_bulk`, bulkBody: body, querystring: { filter_path: expected === undefined ? "errors,items.*.status,items.*.error" : "errors,items.*.status,items.*.error,items.*._index", ...(options.refresh ? { refresh: "true" } : {}), ...(options.requireAlias ? { require_alias: "true" } : {}) } },
          // The bytes as they are (as text they were copied twice more, the text itself into the old generation):
          // an error's redaction "replace" would copy the request's parameters and walk the body byte by byte
          // (a 1 MiB body took more heap than a sink thread has); "remove" drops the headers and the connection instead.
          // The reply as a stream: readReply decodes only what is needed.
          { signal: options.signal, maxRetries: 0, redaction: { type: "remove" }, asStream: true, meta: true },
        );
      } catch (error) {
        throw requestError(error, options.sink, "bulk request", poolNodes(client));
      }
      try {
        return await readReply(client, result, count, options.signal, expected);
      } catch (error) {
        throw requestError(error, options.sink, "bulk request", poolNodes(client));
      }
    },
    {
      initialMs: options.retry.initial,
      maxMs: options.retry.max,
      maxAttempts: 4,
      signal: options.signal,
      onRetry: (error, attempt, delayMs) => options.logger.warn({ error: errorMessage(error), attempt, delayMs }, "Elasticsearch bulk request failed; retrying"),
    },
  );
}

/**
 * A bulk reply taken as a stream, handled as the client handles one it reads itself (an error
 * status thrown as its ResponseError, the node marked dead on 502-504 and alive otherwise), but
 * decoded only as far as needed: a reply of thousands of items whose `errors` is false is not
 * parsed at all (as text and objects it was ~60 bytes of heap a change that outlived scavenges,
 * a tenth of what the sink thread promoted: docs/benchmarks.md).
 */
async function readReply(client: Client, result: TransportResult<Readable>, count: number, signal: AbortSignal, expected?: readonly string[]): Promise<BulkItems> {
  const { statusCode, headers, meta } = result;
  let bytes: Buffer;
  try {
    const chunks: Buffer[] = [];
    for await (const chunk of result.body) chunks.push(chunk as Buffer);
    bytes = Buffer.concat(chunks);
    const encoding = String(headers["content-encoding"] ?? "");
    if (encoding.includes("gzip") || encoding.includes("deflate")) bytes = unzipSync(bytes);
  } catch (error) {
    if (signal.aborted) throw new errors.RequestAbortedError("Request aborted");
    throw new errors.ConnectionError(errorMessage(error));
  }
  if (meta.connection !== null) {
    if (statusCode === 502 || statusCode === 503 || statusCode === 504) client.connectionPool.markDead(meta.connection);
    else client.connectionPool.markAlive(meta.connection);
  }
  if (statusCode === null || statusCode >= 400) {
    const text = bytes.toString();
    let reply: unknown = text;
    try {
      if (String(headers["content-type"] ?? "").includes("json") && text !== "") reply = decodeJson(text);
    } catch {
      // not JSON after all: the text as it is
    }
    throw new errors.ResponseError({ ...result, body: reply }, { redaction: { type: "remove" } });
  }
  if (allApplied(bytes, count) && (expected === undefined || landedAsExpected(bytes, expected))) return null;
  const reply = decodeJson(bytes.toString()) as { items?: Record<string, BulkItemResult>[] };
  return (reply.items ?? []).map(firstValue);
}

const ERRORS_FALSE = Buffer.from('"errors":false');
const ITEMS = Buffer.from('"items":[');
const STATUS = Buffer.from('"status":');

/**
 * Whether a bulk reply (filtered as sendBody asks) says `errors: false` before its items and has
 * an item for each of the `count` operations sent (each item has one status, and nothing else
 * of a reply without errors does). Anything else, such as the reply in another layout, is parsed.
 */
function allApplied(bytes: Buffer, count: number): boolean {
  const items = bytes.indexOf(ITEMS);
  const flag = bytes.indexOf(ERRORS_FALSE);
  if (items < 0 || flag < 0 || flag > items) return false;
  let statuses = 0;
  for (let at = bytes.indexOf(STATUS, items); at >= 0; at = bytes.indexOf(STATUS, at + STATUS.length)) statuses++;
  return statuses === count;
}

const INDEX = Buffer.from('"_index":"');

/**
 * Whether the reply's items, in order, name the indexes `expected` names at their positions (a scan of its bytes for each
 * `"_index":"..."`, nothing parsed). Only a reply without errors is scanned: one `_index` an item, in the items' order.
 */
function landedAsExpected(bytes: Buffer, expected: readonly string[]): boolean {
  // A few distinct names (the live index, a rebuild's shadow): their bytes made once, not a string an item.
  const names = new Map<string, Buffer>();
  let position = 0;
  for (let at = bytes.indexOf(INDEX); at >= 0; at = bytes.indexOf(INDEX, at + INDEX.length), position++) {
    const start = at + INDEX.length;
    const end = bytes.indexOf(0x22, start);
    const expectedName = expected[position];
    if (expectedName === undefined) return false;
    let name = names.get(expectedName);
    if (name === undefined) names.set(expectedName, (name = Buffer.from(expectedName)));
    if (name.length !== end - start || bytes.compare(name, 0, name.length, start, end) !== 0) return false;
  }
  return position === expected.length;
}

/** An item's one entry (keyed by its action, `index` or `delete`), without listing its values. */
function firstValue(entry: Record<string, BulkItemResult>): BulkItemResult | undefined {
  for (const action in entry) return entry[action];
  return undefined;
}

/** Sorts a client error: unreachable, 429 and 5xx are ConnectionErrors (retriable); other statuses are not. */
export function requestError(error: unknown, sink: string, what: string, nodes?: string): Error {
  if (error instanceof SluiceError) return error;
  const context = { component: "sink", sink };
  const name = (error as { name?: string } | null)?.name ?? "";
  const status = (error as { meta?: { statusCode?: number } } | null)?.meta?.statusCode;
  if (name === "RequestAbortedError") return error as Error;
  const node = nodeOf(error) ?? nodes ?? "(node unknown)";
  const tlsFailure = name === "ConnectionError" ? describeTlsMessage(errorMessage(error)) : undefined;
  if (tlsFailure !== undefined) return tlsError(node, tlsFailure, sink, what, error);
  if (status === 401) {
    return new SluiceError(`Elasticsearch ${node} refused the sink's credentials (401) during ${what}: ${errorMessage(error)}; check username/password or api_key`, {
      code: AUTH_FAILED,
      context: { ...context, node },
      cause: error,
    });
  }
  // A role or API key's privileges narrowed: the user is known but may not do this. Other 403s (a cluster block) are not the login's.
  if (status === 403 && errorType(error) === "security_exception") {
    return new SluiceError(`Elasticsearch ${node} refused the sink's user the right to run ${what} (403): ${errorMessage(error)}; check the privileges of the sink's user or api_key`, {
      code: AUTH_FAILED,
      context: { ...context, node },
      cause: error,
    });
  }
  if (name === "ConnectionError" || name === "TimeoutError" || name === "NoLivingConnectionsError" || status === 429 || (status !== undefined && status >= 500)) {
    return new ConnectionError(`Elasticsearch ${what} failed: ${errorMessage(error)}`, { code: "SINK_UNAVAILABLE", context, cause: error });
  }
  return new SluiceError(`Elasticsearch ${what} failed: ${errorMessage(error)}`, { code: "SINK_REQUEST_FAILED", context, cause: error });
}

/** The `error.type` of Elasticsearch's answer in a client error (security_exception, cluster_block_exception...). */
function errorType(error: unknown): string | undefined {
  const body = (error as { meta?: { body?: unknown } } | null)?.meta?.body;
  const type = (body as { error?: { type?: unknown } } | null)?.error?.type;
  return typeof type === "string" ? type : undefined;
}

/** The node a client error came from, for messages (the transport keeps it in meta.meta.connection unless its redaction removed it). */
function nodeOf(error: unknown): string | undefined {
  const url = (error as { meta?: { meta?: { connection?: { url?: unknown } | null } } } | null)?.meta?.meta?.connection?.url;
  try {
    // The origin only: a node URL may carry credentials.
    return url ? new URL(String(url)).origin : undefined;
  } catch {
    return undefined;
  }
}

/** The client's nodes, for the message of an error whose node was removed with its connection. */
function poolNodes(client: Client): string | undefined {
  const origins = client.connectionPool.connections.map((connection) => connection.url.origin);
  return origins.length > 0 ? origins.join(", ") : undefined;
}

/** A failed certificate check or TLS handshake with a node: permanent, retrying cannot heal it. */
export function tlsError(node: string, failure: string, sink: string, what: string, cause: unknown): SluiceError {
  return new SluiceError(
    `Elasticsearch ${node}: ${failure} during ${what}; check the sink's tls.ca_file (the CA that signed Elasticsearch's HTTP certificate), tls.cert_file/key_file when Elasticsearch requires a client certificate, and that the node URL's host is in its certificate`,
    { code: "SINK_TLS_FAILED", context: { component: "sink", sink, node }, cause },
  );
}
