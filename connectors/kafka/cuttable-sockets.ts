/**
 * For tests: kafkajs's socket factory with switches that act as Kafka going away, for the clients
 * given it (the rest of the test's clients keep their connections): cut(true) resets every
 * connection and refuses new ones until cut(false); cutAtRequest(api key) resets the connection
 * that sends the next request of that kind instead of sending it (a join or a look at a group that
 * fails, as on a restarted broker whose group coordinator is not ready yet).
 */
import { isIP, Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import type { ConnectionOptions } from "node:tls";
import type { ISocketFactory } from "kafkajs";

/** Kafka's api keys (the int16 after a request's 4-byte size) of the requests a test may cut. */
export const JOIN_GROUP = 11;
export const DESCRIBE_GROUPS = 15;

export interface CuttableSockets {
  readonly factory: ISocketFactory;
  cut(on: boolean): void;
  cutAtRequest(apiKey: number): void;
}

function socketError(message: string, code: string): Error {
  return Object.assign(new Error(`${message} (cut by the test)`), { code });
}

export function cuttableSockets(): CuttableSockets {
  const open = new Set<Socket>();
  let cut = false;
  let cutAt: number | null = null;
  const factory: ISocketFactory = ({ host, port, ssl, onConnect }) => {
    if (cut) {
      const socket = new Socket();
      setImmediate(() => socket.destroy(socketError(`connect ECONNREFUSED ${host}:${port}`, "ECONNREFUSED")));
      return socket;
    }
    // With TLS (topics.tls) as kafkajs's own factory connects: the host name checked unless it is an address.
    const socket: Socket = ssl ? tlsConnect({ host, port, ...(isIP(host) ? {} : { servername: host }), ...(ssl as ConnectionOptions) }, onConnect) : new Socket();
    open.add(socket);
    socket.once("close", () => open.delete(socket));
    socket.setKeepAlive(true, 60_000);
    // Wrapped after connect(), which puts the prototype's write back.
    if (!ssl) socket.connect({ host, port }, onConnect);
    const write = socket.write.bind(socket) as (chunk: unknown, ...rest: unknown[]) => boolean;
    socket.write = ((chunk: unknown, ...rest: unknown[]) => {
      if (cutAt !== null && Buffer.isBuffer(chunk) && chunk.length >= 6 && chunk.readInt16BE(4) === cutAt) {
        cutAt = null;
        // With an error: kafkajs fails a connection's requests on its error, not on its close.
        setImmediate(() => socket.destroy(socketError("read ECONNRESET", "ECONNRESET")));
        return true;
      }
      return write(chunk, ...rest);
    }) as typeof socket.write;
    return socket;
  };
  return {
    factory,
    cut: (on) => {
      cut = on;
      if (on) for (const socket of open) socket.destroy(socketError("read ECONNRESET", "ECONNRESET"));
    },
    cutAtRequest: (apiKey) => {
      cutAt = apiKey;
    },
  };
}
