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

/** The daemon's one HTTP server: health, readiness, metrics, status and the schema registry API. */
export class HttpServer {
  private readonly routes = new Map<string, RouteHandler>();
  private readonly prefixes: { prefix: string; handler: PrefixHandler }[] = [];
  private server: Server | undefined;
  private closing: Server | undefined;
  private readonly logger: Logger;

  constructor(logger: Logger) {
    this.logger = logger.child({ component: "http" });
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
      this.logger.error({ err: error, path }, "HTTP handler failed");
      if (!res.headersSent) sendJson(res, 500, { error: error instanceof Error ? error.message : String(error) });
      else res.destroy();
    }
  }
}
