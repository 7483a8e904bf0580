/** HTTP plumbing of the registry's REST API: request bodies, responses, errors, auth. */
import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { MAX_SCHEMA_BYTES } from "./local-registry.ts";
import { jsonShapeProblem } from "../runtime/json-shape.ts";
import { REGISTRY_JSON_SHAPE } from "./avro-parse.ts";
import { RegistryError } from "./registry-errors.ts";

/** How much of a too-large body is read and dropped so the client gets its 413; beyond that the connection is cut. */
const MAX_DRAINED_BYTES = 256 * 1024 * 1024;

export const REGISTRY_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json";

const ACCEPTED_CONTENT_TYPES = new Set([
  "application/vnd.schemaregistry.v1+json",
  "application/vnd.schemaregistry+json",
  "application/json",
  "application/octet-stream",
]);

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": REGISTRY_CONTENT_TYPE, "content-length": Buffer.byteLength(text) });
  res.end(text);
}

/** Confluent's error body: `{error_code, message}`. */
export function sendError(res: ServerResponse, error: unknown): void {
  const registryError =
    error instanceof RegistryError ? error : new RegistryError("INTERNAL", `Internal Server Error: ${(error as Error)?.message ?? String(error)}`, { cause: error });
  if (registryError.httpStatus === 401) res.setHeader("www-authenticate", 'Bearer realm="sluice-schema-registry"');
  sendJson(res, registryError.httpStatus, { error_code: registryError.errorCode, message: registryError.message });
}

/** Reads (through `read` when given, else at most `maxBytes` itself) and parses a JSON object body. */
export async function readJsonObject(req: IncomingMessage, maxBytes: number, read?: () => Promise<Buffer>): Promise<Record<string, unknown>> {
  const contentType = (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
  if (contentType !== "" && !ACCEPTED_CONTENT_TYPES.has(contentType)) {
    throw new RegistryError("UNSUPPORTED_MEDIA_TYPE", `HTTP 415 Unsupported Media Type: ${contentType}`);
  }
  const text = (read ? await read() : await readBounded(req, maxBytes)).toString("utf8");
  const shape = jsonShapeProblem(text, REGISTRY_JSON_SHAPE);
  if (shape !== null) throw new RegistryError("BAD_REQUEST", `Unexpected request body: refused unread, ${shape}`);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (error) {
    throw new RegistryError("BAD_REQUEST", `Unexpected request body: not JSON (${(error as Error).message})`);
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new RegistryError("UNPROCESSABLE_ENTITY", "Unrecognized request body: expected a JSON object");
  }
  return body as Record<string, unknown>;
}

async function readBounded(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let length = 0;
  // Leaving the loop early would destroy the request and reset the connection before the client reads
  // the 413: past the limit the rest is read and dropped (memory stays bounded), up to a point.
  for await (const chunk of req as AsyncIterable<Buffer>) {
    length += chunk.length;
    if (length <= maxBytes) chunks.push(chunk);
    else if (length > maxBytes + MAX_DRAINED_BYTES) break;
    else chunks.length = 0;
  }
  if (length > maxBytes) {
    throw new RegistryError("PAYLOAD_TOO_LARGE", `Request body exceeds ${maxBytes} bytes (a schema may have at most ${MAX_SCHEMA_BYTES} bytes)`);
  }
  return Buffer.concat(chunks);
}

/** Accepts `Bearer <token>`, or Basic auth whose password is the token (for clients that only speak Basic). */
export function isAuthorized(req: IncomingMessage, token: string): boolean {
  const header = req.headers.authorization ?? "";
  const [scheme, credentials = ""] = header.split(" ", 2);
  let presented: string | undefined;
  if (scheme?.toLowerCase() === "bearer") presented = credentials.trim();
  else if (scheme?.toLowerCase() === "basic") {
    const decoded = Buffer.from(credentials.trim(), "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    presented = colon < 0 ? undefined : decoded.slice(colon + 1);
  }
  if (presented === undefined) return false;
  // Digests have one length, so the comparison takes the same time whatever the length of either token.
  const digest = (text: string) => createHash("sha256").update(text, "utf8").digest();
  return timingSafeEqual(digest(token), digest(presented));
}
