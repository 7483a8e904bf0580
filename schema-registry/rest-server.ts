/** A standalone HTTP server for the registry's REST API (tests, and the daemon when it runs one). */
import type { AddressInfo } from "node:net";
import { SluiceError } from "../connectors/errors.ts";
import { LocalRegistry } from "./local-registry.ts";
import { createRegistryHandler } from "./rest-handler.ts";
import { sendJson } from "./rest-http.ts";
import type { SchemaStore } from "./store.ts";
import type { CompatibilityLevel } from "./compatibility-levels.ts";

// Not imported: Node's ES module view of node:http reads http.WebSocket, which loads its bundled undici (~30 ms of every start).
const { createServer } = process.getBuiltinModule("node:http");

export interface RegistryServerOptions {
  /** Defaults to 127.0.0.1 (loopback only). */
  readonly host?: string;
  /** 0 picks a free port. */
  readonly port: number;
  readonly store: SchemaStore;
  readonly authToken?: string;
  /** The global compatibility level until one is set through the API. Default BACKWARD. */
  readonly compatibility?: CompatibilityLevel;
}

export interface RegistryServer {
  /** Base URL, e.g. http://127.0.0.1:8081 */
  readonly url: string;
  readonly port: number;
  readonly registry: LocalRegistry;
  /** Stops accepting connections and closes open ones. Does not close the store. */
  close(): Promise<void>;
}

export async function startRegistryServer(options: RegistryServerOptions): Promise<RegistryServer> {
  const host = options.host ?? "127.0.0.1";
  const registry = new LocalRegistry(options.store, options.compatibility === undefined ? {} : { defaultCompatibility: options.compatibility });
  const handle = createRegistryHandler({ registry, ...(options.authToken === undefined ? {} : { authToken: options.authToken }) });
  const server = createServer((req, res) => {
    handle(req, res).then(
      (handled) => {
        if (!handled) sendJson(res, 404, { error_code: 404, message: "HTTP 404 Not Found" });
      },
      (error: unknown) => {
        if (!res.headersSent) sendJson(res, 500, { error_code: 500, message: (error as Error).message });
        else res.destroy();
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (error) =>
      reject(
        new SluiceError(`schema registry cannot listen on ${host}:${options.port}: ${error.message}`, {
          code: "SCHEMA_REGISTRY_LISTEN_FAILED",
          cause: error,
          context: { component: "schema-registry" },
        }),
      ),
    );
    server.listen(options.port, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = host.includes(":") ? `[${host}]` : host;
  return {
    url: `http://${urlHost}:${port}`,
    port,
    registry,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      }),
  };
}
