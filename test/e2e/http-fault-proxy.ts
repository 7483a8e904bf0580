/**
 * An HTTP proxy on loopback in front of a real server (Elasticsearch, ClickHouse's HTTP port), for
 * faults of one request without touching the server other tests share. Each request is read
 * whole and handed to `decide`: forwarded as it is, cut before it reaches the server (the client
 * sees its connection closed), forwarded and its reply cut (the server applied it, the client
 * never hears so), or forwarded with another body and its reply rewritten.
 */
import { createServer, request as httpRequest } from "node:http";
import type { IncomingHttpHeaders, Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface ProxiedRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

export type FaultDecision =
  | { readonly kind: "forward" }
  | { readonly kind: "cut-before" }
  | { readonly kind: "cut-after" }
  | { readonly kind: "rewrite"; readonly body: Buffer; readonly reply: (status: number, body: Buffer) => Buffer }
  | { readonly kind: "answer"; readonly status: number; readonly body: Buffer; readonly headers?: Record<string, string> };

export class HttpFaultProxy {
  readonly #server: Server;
  readonly url: string;
  /** Every request seen, in order. */
  readonly seen: readonly ProxiedRequest[];

  private constructor(server: Server, url: string, seen: readonly ProxiedRequest[]) {
    this.#server = server;
    this.url = url;
    this.seen = seen;
  }

  static async start(target: string, decide: (request: ProxiedRequest) => FaultDecision): Promise<HttpFaultProxy> {
    const seen: ProxiedRequest[] = [];
    const server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on("data", (chunk: Buffer) => chunks.push(chunk));
      request.on("end", () => {
        // Replies as plain bytes, so that one can be read and rewritten.
        const headers = { ...request.headers };
        delete headers["accept-encoding"];
        const proxied: ProxiedRequest = { method: request.method ?? "GET", url: request.url ?? "/", headers, body: Buffer.concat(chunks) };
        seen.push(proxied);
        const decision = decide(proxied);
        if (decision.kind === "cut-before") {
          response.socket?.destroy();
          return;
        }
        if (decision.kind === "answer") {
          response.writeHead(decision.status, { "content-type": "application/json", ...decision.headers });
          response.end(decision.body);
          return;
        }
        const body = decision.kind === "rewrite" ? decision.body : proxied.body;
        headers["content-length"] = String(body.length);
        delete headers["transfer-encoding"];
        // A connection of its own for each request: a pooled one the server closed while idle would fail the request (ECONNRESET), a fault no test asked for.
        const upstream = httpRequest(`${target}${proxied.url}`, { method: proxied.method, headers, agent: false }, (reply) => {
          const replyChunks: Buffer[] = [];
          reply.on("data", (chunk: Buffer) => replyChunks.push(chunk));
          reply.on("end", () => {
            if (decision.kind === "cut-after") {
              response.socket?.destroy();
              return;
            }
            let replyBody: Buffer = Buffer.concat(replyChunks);
            if (decision.kind === "rewrite") replyBody = decision.reply(reply.statusCode ?? 502, replyBody);
            const replyHeaders = { ...reply.headers, "content-length": String(replyBody.length) };
            delete replyHeaders["transfer-encoding"];
            response.writeHead(reply.statusCode ?? 502, replyHeaders);
            response.end(replyBody);
          });
        });
        upstream.on("error", () => response.socket?.destroy());
        upstream.end(body);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return new HttpFaultProxy(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen);
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
