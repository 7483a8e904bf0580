import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { createServer as createTlsServer } from "node:https";
import type { Server as TlsServer } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import { redact } from "../config/redact.ts";
import { SluiceError } from "../connectors/errors.ts";
import type { AccessPolicy, Refusal } from "./admin-auth.ts";
import { BadRequestError, BodiesBusyError, BodyTooLargeError, DEFAULT_HELD_BODY_BYTES, DEFAULT_MAX_BODY_BYTES, RequestBody } from "./request-body.ts";
import type { BodyReader } from "./request-body.ts";
import { ByteBudget } from "./byte-budget.ts";
import type { Logger } from "../runtime/logger.ts";

// Not imported: Node's ES module view of node:http reads http.WebSocket, which loads its bundled undici (~30 ms of every start).
const { createServer } = process.getBuiltinModule("node:http");

/** `body` reads the request's body (only what an endpoint that takes one calls, once the request's credential was checked). */
export type RouteHandler = (req: IncomingMessage, res: ServerResponse, body: BodyReader) => void | Promise<void>;
/** A prefix handler's answer for a path it serves, but not with the request's method: the methods it takes there. */
export interface MethodsAllowed {
  readonly allow: readonly string[];
}

/**
 * Handles a whole path prefix (e.g. the schema registry); resolves true when it answered the request,
 * false when the path is not one of its, or the methods it takes when the path is its but the method is not.
 */
export type PrefixHandler = (req: IncomingMessage, res: ServerResponse, body: BodyReader) => Promise<boolean | MethodsAllowed>;

/** What a prefix handler resolves for a path of its that does not take the request's method. */
export function methodsAllowed(...allow: string[]): MethodsAllowed {
  return { allow };
}

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
  /** Time to receive a whole request, body included, from when its turn comes (not the handler's time) before the connection is cut (`http.request_timeout`, at least the headers timeout). */
  readonly requestTimeoutMs: number;
}

/** Requests one connection may have in progress at once (pipelined: sent before the answers to the earlier ones came); more cut the connection. */
const MAX_PIPELINED = 32;

/**
 * Bytes of request heads one connection may have waiting for their turn (pipelined behind a request
 * in progress); more cut the connection. Node parses ahead while nothing is written, and a head may be
 * 16 KiB (its maxHeaderSize): MAX_PIPELINED such heads on each of 512 connections held ~256 MiB
 * before any credential was checked; with this, 16 MiB at most.
 */
const MAX_WAITING_HEAD_BYTES = 32 * 1024;

/**
 * Requests in progress (received, not yet answered) on all connections together past which a
 * connection may have only one: a request sent ahead of its connection's answer cuts it.
 * MAX_PIPELINED on each of 512 connections is 16,384 requests parsed at once, ~50 MB of the main
 * thread's ~58 MiB heap: a flood of GET /metrics without a token (500 connections, 32 requests each)
 * ended the daemon with its heap out of memory when the requests were parsed faster than answered.
 * Not reading connections instead let clients that read no answers (their requests stay in progress)
 * stop every connection from being read, probes and the admin API included.
 */
export const DEFAULT_MAX_REQUESTS_IN_PROGRESS = 1024;

/** The defaults of `http.max_connections`, `http.headers_timeout` and `http.request_timeout`. */
export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = { maxConnections: 512, headersTimeoutMs: 10_000, requestTimeoutMs: 60_000 };

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
  private readonly maxBodyBytes: number;
  /** Bytes of request bodies held at once, all listeners together. */
  private readonly bodies: ByteBudget;
  private bodiesBusyLogged = false;
  private pipelinedLogged = false;
  /** Requests of each connection received and not yet answered (pipelined ones too). */
  private readonly inProgress = new WeakMap<Socket, number>();
  /** Requests received and not yet answered, all connections of all listeners together. */
  private requestsInProgress = 0;
  private readonly maxRequestsInProgress: number;
  /** Bytes of the heads of each connection's requests waiting for their turn. */
  private readonly waitingHeads = new WeakMap<Socket, number>();
  /** Settles once the last request received on each connection has been answered (or the connection closed). */
  private readonly answered = new WeakMap<Socket, Promise<void>>();
  private readonly limits: ConnectionLimits;

  /**
   * Without an access policy every endpoint is open (tests of single handlers). `heldBodyBytes`: the
   * bytes of request bodies held at once (DEFAULT_HELD_BODY_BYTES, at least one body of `maxBodyBytes`).
   */
  constructor(logger: Logger, options: { maxBodyBytes?: number; heldBodyBytes?: number; access?: AccessPolicy; connections?: Partial<ConnectionLimits>; maxRequestsInProgress?: number } = {}) {
    this.logger = logger.child({ component: "http" });
    this.maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    this.bodies = new ByteBudget(Math.max(options.heldBodyBytes ?? DEFAULT_HELD_BODY_BYTES, this.maxBodyBytes));
    this.access = options.access;
    this.limits = { ...DEFAULT_CONNECTION_LIMITS, ...options.connections };
    this.maxRequestsInProgress = Math.max(MAX_PIPELINED, options.maxRequestsInProgress ?? DEFAULT_MAX_REQUESTS_IN_PROGRESS);
  }

  /** Requests received and not yet answered, all connections together. */
  get inProgressCount(): number {
    return this.requestsInProgress;
  }

  route(method: string, path: string, handler: RouteHandler): void {
    this.routes.set(`${method} ${path}`, handler);
  }

  mount(prefix: string, handler: PrefixHandler): void {
    this.prefixes.push({ prefix: prefix.replace(/\/$/, ""), handler });
  }

  async listen(host: string, port: number, options: ListenOptions = {}): Promise<AddressInfo> {
    const publicOnly = options.publicOnly === true;
    const onRequest = (req: IncomingMessage, res: ServerResponse) => {
      if (this.pipelinedPastLimit(req, res)) return;
      // A connection's requests are handled one after the other, each once the answer before it has been sent:
      // a client that reads nothing holds one answer, not one per request it sent ahead.
      const socket = req.socket;
      const before = this.answered.get(socket);
      let done!: () => void;
      this.answered.set(socket, new Promise<void>((resolve) => (done = resolve)));
      res.once("close", () => done());
      if (before === undefined) {
        this.timeRequest(req, res);
        void this.handle(req, res, publicOnly);
        return;
      }
      const giveBack = this.deferHead(req);
      void before.then(() => {
        giveBack();
        // The connection went away while the request waited: Node destroyed it, and its answer, never
        // given the socket, will never close. Handled, it would wait for a body that does not come.
        if (req.destroyed || socket.destroyed) {
          done();
          res.destroy();
          return;
        }
        this.timeRequest(req, res);
        void this.handle(req, res, publicOnly);
      });
    };
    const { maxConnections, headersTimeoutMs } = this.limits;
    const timeouts = {
      headersTimeout: headersTimeoutMs,
      // Node's runs from a request's first byte: see timeRequest.
      requestTimeout: 0,
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

  /**
   * Whether the request's connection already has MAX_PIPELINED requests in progress (received,
   * their answers not yet sent), or one while maxRequestsInProgress are: it is then cut. Node reads
   * pipelined requests ahead of the answers; 50 connections that sent 1 MB of GET /healthz each and
   * read nothing ran the main thread's heap out of memory when they closed (every request left was
   * handled at once).
   */
  private pipelinedPastLimit(req: IncomingMessage, res: ServerResponse): boolean {
    const socket = req.socket;
    const count = (this.inProgress.get(socket) ?? 0) + 1;
    const pressed = this.requestsInProgress >= this.maxRequestsInProgress;
    const limit = pressed ? 1 : MAX_PIPELINED;
    if (count > limit) {
      // Said once a minute under a flood, not per connection.
      if (!socket.destroyed && !this.pipelinedLogged) {
        this.pipelinedLogged = true;
        setTimeout(() => (this.pipelinedLogged = false), 60_000).unref();
        this.logger.warn(
          { peer: socket.remoteAddress, limit, inProgress: this.requestsInProgress },
          pressed
            ? `the HTTP server holds ${this.maxRequestsInProgress} requests not yet answered: a connection that sends a request ahead of its answer is cut until fewer are`
            : `a client sent more than ${MAX_PIPELINED} requests ahead of their answers on one connection: such connections are cut`,
        );
      }
      socket.destroy();
      return true;
    }
    this.inProgress.set(socket, count);
    this.requestsInProgress++;
    res.once("close", () => {
      this.inProgress.set(socket, (this.inProgress.get(socket) ?? 1) - 1);
      this.requestsInProgress--;
    });
    return false;
  }

  /**
   * Cuts the connection (408 when nothing of the answer was sent) if the request has not been
   * received whole `requestTimeoutMs` after its turn came. Node's own request timeout runs from the
   * request's first byte, and a request pipelined behind another has its body read only at its
   * turn: a large body sent behind a slow request (a rebuild) was cut, and the slow request's answer
   * with the connection.
   */
  private timeRequest(req: IncomingMessage, res: ServerResponse): void {
    const timer = setTimeout(() => {
      const socket = req.socket;
      if (req.complete || socket.destroyed) return;
      // As Node answers its own timeouts.
      if (!res.headersSent && socket.writable) socket.write("HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n");
      socket.destroy();
    }, this.limits.requestTimeoutMs);
    timer.unref();
    // Not at the answer: a body the handler did not read is still received (and dropped) after it.
    const received = () => clearTimeout(timer);
    req.once("end", received);
    req.once("close", received);
  }

  /**
   * Counts the head of a request that waits for its turn, against MAX_WAITING_HEAD_BYTES of its
   * connection (cut past it); returns what gives it back, when its turn comes.
   */
  private deferHead(req: IncomingMessage): () => void {
    const socket = req.socket;
    let bytes = (req.method?.length ?? 0) + (req.url?.length ?? 0) + 12;
    for (const field of req.rawHeaders) bytes += field.length + 2;
    const waiting = (this.waitingHeads.get(socket) ?? 0) + bytes;
    this.waitingHeads.set(socket, waiting);
    if (waiting > MAX_WAITING_HEAD_BYTES) {
      if (!socket.destroyed && !this.pipelinedLogged) {
        this.pipelinedLogged = true;
        setTimeout(() => (this.pipelinedLogged = false), 60_000).unref();
        this.logger.warn({ peer: socket.remoteAddress, limit: MAX_WAITING_HEAD_BYTES }, `a client sent more than ${MAX_WAITING_HEAD_BYTES} bytes of request heads ahead of their answers on one connection: such connections are cut`);
      }
      socket.destroy();
    }
    let given = false;
    return () => {
      if (given) return;
      given = true;
      this.waitingHeads.set(socket, (this.waitingHeads.get(socket) ?? bytes) - bytes);
    };
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

  /** The methods of the exact routes of `path`. */
  private routeMethods(path: string): string[] {
    const methods: string[] = [];
    for (const key of this.routes.keys()) {
      const space = key.indexOf(" ");
      if (key.slice(space + 1) === path) methods.push(key.slice(0, space));
    }
    return methods;
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
    // A public path (health, readiness, metrics) is anyone's to know, and its other methods do nothing: told without a credential, on every listener.
    if (this.access?.isPublic("GET", path) === true && !this.access.isPublic(req.method, path)) {
      answerOtherMethod(req, res, path, new Set(this.routeMethods(path)));
      return;
    }
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
      const error = new BodyTooLargeError(this.maxBodyBytes, declared);
      this.logger.warn({ code: error.code, limit: error.limit }, error.message);
      this.refuseBody(req, res, 413, error);
      return;
    }
    const body = new RequestBody(req, this.maxBodyBytes, this.bodies);
    const method = req.method ?? "";
    try {
      // HEAD is answered as GET: Node leaves the body out of the answer to a HEAD (decided when the request came).
      const asGet = method === "HEAD";
      const route = this.routes.get(`${asGet ? "GET" : method} ${path}`);
      if (route) {
        await route(req, res, body.read);
        return;
      }
      const allowed = new Set(this.routeMethods(path));
      // The prefix handlers read req.method.
      if (asGet) req.method = "GET";
      try {
        for (const { prefix, handler } of this.prefixes) {
          if (path === prefix || path.startsWith(`${prefix}/`)) {
            const outcome = await handler(req, res, body.read);
            if (outcome === true) return;
            if (outcome !== false) for (const other of outcome.allow) allowed.add(other);
          }
        }
      } finally {
        req.method = method;
      }
      if (allowed.size > 0) {
        answerOtherMethod(req, res, path, allowed);
        return;
      }
      sendJson(res, 404, { error: `no such endpoint: ${method} ${path}` });
    } catch (error) {
      if (error instanceof BodyTooLargeError && !res.headersSent) {
        this.logger.warn({ code: error.code, limit: error.limit }, error.message);
        this.refuseBody(req, res, 413, error);
        return;
      }
      if (error instanceof BodiesBusyError && !res.headersSent) {
        // Said once a minute under a flood, not per request.
        if (!this.bodiesBusyLogged) {
          this.bodiesBusyLogged = true;
          setTimeout(() => (this.bodiesBusyLogged = false), 60_000).unref();
          this.logger.warn({ code: error.code, limit: this.bodies.limit }, `${error.message}: requests with a body are answered 503 until some are done`);
        }
        res.setHeader("retry-after", "1");
        this.refuseBody(req, res, 503, error);
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
    } finally {
      body.release();
    }
  }

  /**
   * Answers a refused body (413, 503; with Confluent's error_code and message too, for registry
   * clients) once the rest of it has been read and dropped: answering and closing while the client
   * still sends resets the connection before it reads the answer. A client that stops sending for a
   * while, or sends far too much, gets the answer then and the connection is cut.
   */
  private refuseBody(req: IncomingMessage, res: ServerResponse, status: 413 | 503, error: SluiceError): void {
    let answered = false;
    const answer = (cut: boolean) => {
      if (answered) return;
      answered = true;
      clearTimeout(idle);
      if (!res.headersSent) {
        if (cut) res.setHeader("connection", "close");
        sendJson(res, status, { error: error.message, code: error.code, error_code: status, message: error.message });
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

/**
 * A path served with other methods than the request's: OPTIONS is answered 204, any other method 405,
 * both with the methods the path takes in Allow (HEAD wherever GET is; OPTIONS everywhere). A request's
 * body is left unread (Node drops it once the answer is sent).
 */
function answerOtherMethod(req: IncomingMessage, res: ServerResponse, path: string, methods: ReadonlySet<string>): void {
  const allow = [...new Set([...methods, ...(methods.has("GET") ? ["HEAD"] : []), "OPTIONS"])].sort().join(", ");
  res.setHeader("allow", allow);
  if (req.method === "OPTIONS") {
    res.writeHead(204);
    res.end();
    return;
  }
  sendJson(res, 405, { error: `${req.method} is not a method of ${path}: it takes ${allow}`, code: "HTTP_METHOD_NOT_ALLOWED" });
}
