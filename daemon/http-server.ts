import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { createServer as createTlsServer } from "node:https";
import type { Server as TlsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { redact } from "../config/redact.ts";
import { SluiceError } from "../connectors/errors.ts";
import type { AccessPolicy, Refusal } from "./admin-auth.ts";
import type { Logger } from "../runtime/logger.ts";

// Not imported: Node's ES module view of node:http reads http.WebSocket, which loads its bundled undici (~30 ms of every start).
const { createServer } = process.getBuiltinModule("node:http");

export type RouteHandler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;
/** Handles a whole path prefix (e.g. the schema registry); resolves false when it did not handle the request. */
export type PrefixHandler = (req: IncomingMessage, res: ServerResponse) => Promise<boolean>;

/** Answers JSON; an error answer (4xx, 5xx), or any with `redactSecrets`, never carries a secret of the config in its texts. */
export function sendJson(res: ServerResponse, status: number, body: unknown, options: { redactSecrets?: boolean } = {}): void {
  const redacting = status >= 400 || options.redactSecrets === true;
  const text = JSON.stringify(body, (_key, value: unknown) => (typeof value === "bigint" ? value.toString() : redacting && typeof value === "string" ? redact(value) : value));
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

/** After a 413, how long the client may pause sending the refused body, and how much of it is read and dropped, before the connection is cut. */
const LINGER_IDLE_MS = 2_000;
const MAX_DROPPED_BYTES = 256 * 2 ** 20;

/** The default of `http.max_body_bytes`. */
export const DEFAULT_MAX_BODY_BYTES = 4 * 2 ** 20;

/**
 * What one client may hold of a listener, before any credential is checked. An idle connection
 * costs the main thread's heap about 2.5 KiB: a flood of ~15,000 (Node sets no limit, and cuts an
 * unfinished request head only after 60-90 s) ran the daemon's 52 MiB main heap out of memory.
 */
export interface ConnectionLimits {
  /** Open connections per listener (`http.max_connections`); more are closed as they arrive. */
  readonly maxConnections: number;
  /** Time to receive a request's head (a TLS handshake too) before the connection is cut (408; `http.headers_timeout`). */
  readonly headersTimeoutMs: number;
  /** Time to receive a whole request, body included (not the handler's time) before the connection is cut (`http.request_timeout`, at least the headers timeout). */
  readonly requestTimeoutMs: number;
}

/** The defaults of `http.max_connections`, `http.headers_timeout` and `http.request_timeout`. */
export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = { maxConnections: 512, headersTimeoutMs: 10_000, requestTimeoutMs: 60_000 };

/** A request body larger than the server takes: answered 413 by HttpServer, the rest left unread. */
export class BodyTooLargeError extends SluiceError {
  constructor(limit: number, declared?: number) {
    super(`the request body${declared === undefined ? "" : ` (${declared} bytes)`} is larger than the ${limit} bytes this server takes (http.max_body_bytes)`, {
      code: "HTTP_BODY_TOO_LARGE",
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

/** Reads a body that must be one JSON object (an empty body is `{}`); anything else rejects with BadRequestError naming the `expected` shape. */
export async function readJsonObject(req: IncomingMessage, maxBytes: number, expected: string): Promise<Record<string, unknown>> {
  const text = (await readBody(req, maxBytes)).toString("utf8");
  let parsed: unknown;
  try {
    parsed = text.trim() === "" ? {} : JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new BadRequestError(`the body must be a JSON object: ${expected}`);
  return parsed as Record<string, unknown>;
}

/**
 * Reads a request body of at most `maxBytes`; a longer one rejects with BodyTooLargeError as soon as
 * it passes the limit (what has arrived is dropped, and what follows is discarded as it comes).
 */
export function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const declared = Number(req.headers["content-length"] ?? 0);
  if (declared > maxBytes) return Promise.reject(new BodyTooLargeError(maxBytes, declared));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    const onData = (chunk: Buffer) => {
      length += chunk.length;
      if (length <= maxBytes) {
        chunks.push(chunk);
        return;
      }
      chunks.length = 0;
      req.off("data", onData);
      req.off("end", onEnd);
      req.resume();
      reject(new BodyTooLargeError(maxBytes));
    };
    const onEnd = () => resolve(Buffer.concat(chunks));
    req.on("data", onData);
    req.once("end", onEnd);
    req.once("error", reject);
  });
}

/** PEM certificate (with chain) and private key of an HTTPS listener. */
export interface TlsCredentials {
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
}

export interface ListenOptions {
  /** HTTPS with this certificate; plain HTTP without. */
  readonly tls?: TlsCredentials | undefined;
  /** Serve only the access policy's public endpoints (health, readiness, metrics) here. */
  readonly publicOnly?: boolean;
}

interface Listener {
  readonly server: Server | TlsServer;
  readonly publicOnly: boolean;
}

/** The daemon's HTTP server (on one or more addresses): health, readiness, metrics, status, the admin endpoints and the schema registry API. */
export class HttpServer {
  private readonly routes = new Map<string, RouteHandler>();
  private readonly prefixes: { prefix: string; handler: PrefixHandler }[] = [];
  private listeners: Listener[] = [];
  private closing: Listener[] = [];
  private readonly logger: Logger;
  private readonly access: AccessPolicy | undefined;
  /** Largest request body any endpoint takes (`http.max_body_bytes`). */
  readonly maxBodyBytes: number;
  private readonly limits: ConnectionLimits;

  /** Without an access policy every endpoint is open (tests of single handlers). */
  constructor(logger: Logger, options: { maxBodyBytes?: number; access?: AccessPolicy; connections?: Partial<ConnectionLimits> } = {}) {
    this.logger = logger.child({ component: "http" });
    this.maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    this.access = options.access;
    this.limits = { ...DEFAULT_CONNECTION_LIMITS, ...options.connections };
  }

  route(method: string, path: string, handler: RouteHandler): void {
    this.routes.set(`${method} ${path}`, handler);
  }

  mount(prefix: string, handler: PrefixHandler): void {
    this.prefixes.push({ prefix: prefix.replace(/\/$/, ""), handler });
  }

  async listen(host: string, port: number, options: ListenOptions = {}): Promise<AddressInfo> {
    const publicOnly = options.publicOnly === true;
    const onRequest = (req: IncomingMessage, res: ServerResponse) => void this.handle(req, res, publicOnly);
    const { maxConnections, headersTimeoutMs, requestTimeoutMs } = this.limits;
    const timeouts = {
      headersTimeout: headersTimeoutMs,
      requestTimeout: requestTimeoutMs,
      // How often the timeouts are checked (Node's 30 s default would let a stalled head live 40 s).
      connectionsCheckingInterval: Math.min(1_000, Math.ceil(headersTimeoutMs / 2)),
    };
    const server = options.tls
      ? createTlsServer({ cert: options.tls.cert, key: options.tls.key, handshakeTimeout: headersTimeoutMs, ...timeouts }, onRequest)
      : createServer(timeouts, onRequest);
    server.keepAliveTimeout = 5_000;
    server.maxConnections = maxConnections;
    let refusing = false;
    server.on("drop", () => {
      // Said once per flood, not per connection.
      if (refusing) return;
      refusing = true;
      this.logger.warn({ maxConnections, listen: `${host}:${port}` }, `the HTTP server holds ${maxConnections} open connections, its limit (http.max_connections): new connections are closed until some end`);
      setTimeout(() => (refusing = false), 60_000).unref();
    });
    await new Promise<void>((resolve, reject) => {
      const onError = (error: NodeJS.ErrnoException) => {
        const reason = error.code === "EADDRINUSE" ? "the address is already in use" : error.code === "EACCES" ? "permission denied" : error.message;
        reject(new SluiceError(`cannot listen on ${host}:${port}: ${reason}`, { code: "HTTP_LISTEN_FAILED", cause: error, context: { component: "http" } }));
      };
      server.once("error", onError);
      server.listen(port, host, () => {
        server.off("error", onError);
        resolve();
      });
    });
    this.listeners.push({ server, publicOnly });
    return server.address() as AddressInfo;
  }

  /** A new certificate for the HTTPS listeners (e.g. renewed, at SIGHUP); new connections use it. */
  setTlsCredentials(tls: TlsCredentials): void {
    for (const { server } of this.listeners) if ("setSecureContext" in server) server.setSecureContext({ cert: tls.cert, key: tls.key });
  }

  /** Drops every open connection at once (a client that never finishes its request would hold close() up). */
  dropConnections(): void {
    for (const { server } of [...this.closing, ...this.listeners]) server.closeAllConnections();
  }

  async close(): Promise<void> {
    const listeners = this.listeners;
    this.listeners = [];
    this.closing.push(...listeners);
    await Promise.all(
      listeners.map(
        ({ server }) =>
          new Promise<void>((resolve) => {
            server.close(() => resolve());
            server.closeIdleConnections();
          }),
      ),
    );
  }

  /** Null when the access policy lets the request through (always without a policy). */
  private refusal(req: IncomingMessage, path: string, publicOnly: boolean): Refusal | null {
    if (!this.access) return null;
    if (publicOnly && !this.access.isPublic(req.method, path)) {
      return { status: 404, message: `${req.method} ${path} is not served on this address: it serves /healthz, /readyz and the metrics path only (the admin API is on http.listen)`, headers: {} };
    }
    return this.access.check(req, path);
  }

  private async handle(req: IncomingMessage, res: ServerResponse, publicOnly: boolean): Promise<void> {
    const path = (req.url ?? "/").split("?")[0]!;
    const refusal = this.refusal(req, path, publicOnly);
    if (refusal) {
      // What was refused and from where; never the token.
      if (refusal.status !== 404) this.logger.warn({ method: req.method, path, status: refusal.status, peer: req.socket.remoteAddress }, refusal.message);
      for (const [name, value] of Object.entries(refusal.headers)) res.setHeader(name, value);
      // Confluent's error_code and message too, for registry clients.
      sendJson(res, refusal.status, { error: refusal.message, error_code: refusal.status, message: refusal.message });
      // A body is read and dropped, never handed to a handler.
      if (!req.readableEnded) req.resume();
      return;
    }
    const declared = Number(req.headers["content-length"] ?? 0);
    if (declared > this.maxBodyBytes) {
      // Refused before any handler reads it, whatever the endpoint.
      this.refuseBody(req, res, new BodyTooLargeError(this.maxBodyBytes, declared));
      return;
    }
    try {
      // HEAD is answered as GET (Node leaves the body out).
      const route = this.routes.get(`${req.method} ${path}`) ?? (req.method === "HEAD" ? this.routes.get(`GET ${path}`) : undefined);
      if (route) {
        await route(req, res);
        return;
      }
      for (const { prefix, handler } of this.prefixes) {
        if (path === prefix || path.startsWith(`${prefix}/`)) {
          if (await handler(req, res)) return;
        }
      }
      sendJson(res, 404, { error: `no such endpoint: ${req.method} ${path}` });
    } catch (error) {
      if (error instanceof BodyTooLargeError && !res.headersSent) {
        this.refuseBody(req, res, error);
        return;
      }
      // A URIError is a handler's decodeURIComponent of a path segment.
      if ((error instanceof BadRequestError || error instanceof URIError) && !res.headersSent) {
        sendJson(res, 400, { error: error instanceof BadRequestError ? error.message : `the path ${JSON.stringify(path)} holds a malformed percent-encoding`, code: "HTTP_BAD_REQUEST" });
        if (!req.readableEnded) req.resume();
        return;
      }
      this.logger.error({ err: error, path }, "HTTP handler failed");
      if (!res.headersSent) sendJson(res, 500, { error: error instanceof Error ? error.message : String(error) });
      else res.destroy();
    }
  }

  /**
   * Answers 413 (with Confluent's error_code and message too, for registry clients) once the rest of
   * the body has been read and dropped: answering and closing while the client still sends resets
   * the connection before it reads the answer. A client that stops sending for a while, or sends far
   * too much, gets the answer then and the connection is cut.
   */
  private refuseBody(req: IncomingMessage, res: ServerResponse, error: BodyTooLargeError): void {
    this.logger.warn({ code: error.code, limit: this.maxBodyBytes }, error.message);
    let answered = false;
    const answer = (cut: boolean) => {
      if (answered) return;
      answered = true;
      clearTimeout(idle);
      if (!res.headersSent) {
        if (cut) res.setHeader("connection", "close");
        sendJson(res, 413, { error: error.message, code: error.code, error_code: 413, message: error.message });
      }
      if (cut) res.once("finish", () => req.socket.destroy());
    };
    const idle = setTimeout(() => answer(true), LINGER_IDLE_MS);
    idle.unref();
    if (req.readableEnded) {
      answer(false);
      return;
    }
    let dropped = 0;
    req.on("data", (chunk: Buffer) => {
      dropped += chunk.length;
      if (dropped > MAX_DROPPED_BYTES) answer(true);
      else idle.refresh();
    });
    req.once("end", () => answer(false));
    req.once("error", () => answer(true));
    req.resume();
  }
}
