/**
 * A TLS handshake on its own, to tell why an HTTPS client saw only a closed connection: with TLS
 * 1.3 a server that refuses the client's certificate says so in an alert after the handshake, and
 * HTTP clients that read the close first (undici: "other side closed") lose the reason.
 */
import { connect } from "node:tls";
import type { ConnectionOptions } from "node:tls";
import { describeTlsFailure } from "./tls-errors.ts";

/** "TLS handshake failed: ..." / "certificate verify failed: ..." when the server refuses us at the TLS level; undefined when TLS works or the server cannot be reached. */
export function probeTls(url: URL, options: ConnectionOptions, timeoutMs = 3_000): Promise<string | undefined> {
  return new Promise((resolve) => {
    const port = Number(url.port || 443);
    const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
    const socket = connect({ ...options, host, port, servername: /^[\d.:]+$/.test(host) ? "" : host });
    let settled = false;
    const finish = (result: string | undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => finish(undefined), timeoutMs);
    socket.once("secureConnect", () => socket.write(`HEAD / HTTP/1.1\r\nHost: ${url.host}\r\nConnection: close\r\n\r\n`));
    socket.once("data", () => finish(undefined));
    socket.once("error", (error) => finish(describeTlsFailure(error)));
    socket.once("end", () => finish(undefined));
  });
}
