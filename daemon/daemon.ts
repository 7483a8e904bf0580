import type { SluiceConfig } from "../config/schema.ts";
import { HttpServer, sendJson } from "./http-server.ts";
import type { Logger } from "./logger.ts";
import { SluiceMetrics } from "./metrics.ts";
import { SLUICE_VERSION } from "./version.ts";

export function splitHostPort(listen: string): { host: string; port: number } {
  const colon = listen.lastIndexOf(":");
  return { host: listen.slice(0, colon).replace(/^\[(.*)\]$/, "$1"), port: Number(listen.slice(colon + 1)) };
}

/**
 * The running process: owns the HTTP server and (as later capabilities land) the sources, topic
 * log, registry and sinks, and starts and stops them in order.
 */
export class Daemon {
  readonly http: HttpServer;
  readonly metrics = new SluiceMetrics();
  private readonly config: SluiceConfig;
  private readonly logger: Logger;
  private started = false;

  constructor(config: SluiceConfig, logger: Logger) {
    this.config = config;
    this.logger = logger;
    this.http = new HttpServer(logger);
    this.http.route("GET", "/healthz", (_req, res) => sendJson(res, 200, { status: "ok", version: SLUICE_VERSION }));
    this.http.route("GET", "/readyz", (_req, res) => {
      const ready = this.started;
      sendJson(res, ready ? 200 : 503, { ready });
    });
    if (config.metrics.enabled) {
      this.http.route("GET", config.metrics.path, async (_req, res) => {
        const { contentType, body } = await this.metrics.render();
        res.writeHead(200, { "content-type": contentType });
        res.end(body);
      });
    }
  }

  /** Starts every stage; resolves with the HTTP address once the daemon is serving. */
  async start(): Promise<{ host: string; port: number }> {
    const { host, port } = splitHostPort(this.config.http.listen);
    const address = await this.http.listen(host, port);
    this.started = true;
    this.logger.info(
      { deployment: this.config.name, http: `${address.address}:${address.port}`, sources: this.config.sources.map((s) => s.name), sinks: this.config.sinks.map((s) => s.name) },
      "sluice started",
    );
    return { host: address.address, port: address.port };
  }

  /** Stops taking new work, drains what is in flight, and closes every connection. */
  async stop(reason: string): Promise<void> {
    this.logger.info({ reason }, "sluice stopping");
    this.started = false;
    await this.http.close();
    this.logger.info("sluice stopped");
  }
}
