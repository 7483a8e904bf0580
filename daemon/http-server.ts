import { createServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { SluiceError } from "../connectors/errors.ts";
import type { Logger } from "./logger.ts";

export type RouteHandler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;
/** Handles a whole path prefix (e.g. the schema registry); resolves false when it did not handle the request. */
export type PrefixHandler = (req: IncomingMessage, res: ServerResponse) => Promise<boolean>;

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, (_key, value: unknown) => (typeof value === "bigint" ? value.toString() : value));
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

/** After a 413, how long the client may pause sending the refused body, and how much of it is read and dropped, before the connection is cut. */
const LINGER_IDLE_MS = 2_000;
const MAX_DROPPED_BYTES = 256 * 2 ** 20;

/** The default of `http.max_body_bytes`. */
export const DEFAULT_MAX_BODY_BYTES = 4 * 2 ** 20;

/** A request body larger than the server takes: answered 413 by HttpServer, the rest left unread. */
export class BodyTooLargeError extends SluiceError {
  constructor(limit: number, declared?: number) {
    super(`the request body${declared === undefined ? "" : ` (${declared} bytes)`} is larger than the ${limit} bytes this server takes (http.max_body_bytes)`, {
      code: "HTTP_BODY_TOO_LARGE",
      context: { component: "http" },
    });
  }
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

/** The daemon's one HTTP server: health, readiness, metrics, status and the schema registry API. */
export class HttpServer {
  private readonly routes = new Map<string, RouteHandler>();
  private readonly prefixes: { prefix: string; handler: PrefixHandler }[] = [];
  private server: Server | undefined;
  private closing: Server | undefined;
  private readonly logger: Logger;
  /** Largest request body any endpoint takes (`http.max_body_bytes`). */
  readonly maxBodyBytes: number;

  constructor(logger: Logger, options: { maxBodyBytes?: number } = {}) {
    this.logger = logger.child({ component: "http" });
    this.maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  }

  route(method: string, path: string, handler: RouteHandler): void {
    this.routes.set(`${method} ${path}`, handler);
  }

  mount(prefix: string, handler: PrefixHandler): void {
    this.prefixes.push({ prefix: prefix.replace(/\/$/, ""), handler });
  }

  async listen(host: string, port: number): Promise<AddressInfo> {
    const server = createServer((req, res) => void this.handle(req, res));
    server.keepAliveTimeout = 5_000;
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
    this.server = server;
    return server.address() as AddressInfo;
  }

  /** Drops every open connection at once (a client that never finishes its request would hold close() up). */
  dropConnections(): void {
    this.closing?.closeAllConnections();
    this.server?.closeAllConnections();
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    this.closing = server;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? "/").split("?")[0]!;
    const declared = Number(req.headers["content-length"] ?? 0);
    if (declared > this.maxBodyBytes) {
      // Refused before any handler reads it, whatever the endpoint.
      this.refuseBody(req, res, new BodyTooLargeError(this.maxBodyBytes, declared));
      return;
    }
    try {
      const route = this.routes.get(`${req.method} ${path}`);
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
