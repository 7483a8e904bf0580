/**
 * A private Kafka broker for tests that take Kafka down: its own free ports and state directory,
 * started and stopped with test/services/up and down (the shared broker other tests use is never
 * touched). `down()` stops it (SIGTERM, then SIGKILL), `up()` starts it again on the same ports
 * from the same data, `destroy()` stops it and deletes its directory.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { host } from "./ports.ts";

const SERVICES = dirname(fileURLToPath(import.meta.url));

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

export class PrivateKafka {
  readonly port: number;
  readonly controllerPort: number;
  readonly dir: string;
  /** Broker settings of its own, added to its server.properties (e.g. a static one such as socket.request.max.bytes). */
  readonly properties: Readonly<Record<string, string>>;

  private constructor(port: number, controllerPort: number, dir: string, properties: Readonly<Record<string, string>>) {
    this.port = port;
    this.controllerPort = controllerPort;
    this.dir = dir;
    this.properties = properties;
  }

  /** Starts a fresh broker; resolves once it answers a metadata request. */
  static async start(options: { properties?: Readonly<Record<string, string>> } = {}): Promise<PrivateKafka> {
    const kafka = new PrivateKafka(await freePort(), await freePort(), mkdtempSync("/var/tmp/sluice-private-kafka-"), options.properties ?? {});
    await kafka.up();
    return kafka;
  }

  get brokers(): string[] {
    return [`${host}:${this.port}`];
  }

  up(): Promise<void> {
    return this.run("up");
  }

  down(): Promise<void> {
    return this.run("down");
  }

  async destroy(): Promise<void> {
    await this.down().catch(() => undefined);
    rmSync(this.dir, { recursive: true, force: true });
  }

  private run(command: "up" | "down"): Promise<void> {
    const env = {
      ...process.env,
      SLUICE_SERVICES_DIR: this.dir,
      SLUICE_KAFKA_PORT: String(this.port),
      SLUICE_KAFKA_CONTROLLER_PORT: String(this.controllerPort),
      SLUICE_KAFKA_HEAP_OPTS: process.env["SLUICE_PRIVATE_KAFKA_HEAP_OPTS"] ?? "-Xms256m -Xmx256m",
      SLUICE_KAFKA_EXTRA_PROPERTIES: Object.entries(this.properties).map(([name, value]) => `${name}=${value}`).join("\n"),
    };
    return new Promise((resolve, reject) => {
      execFile("bash", [join(SERVICES, command), "kafka"], { env, timeout: 180_000 }, (error, stdout, stderr) => {
        if (error) reject(new Error(`test/services/${command} kafka (private broker in ${this.dir}) failed: ${stderr || stdout || error.message}`));
        else resolve();
      });
    });
  }
}
