/**
 * A throwaway PostgreSQL 15 for tests that stop and start the server (the shared one on
 * test/services/up is never touched): own directory under /var/tmp, own port below the kernel's
 * ephemeral range (so no client socket holds it while the server is down), wal_level=logical,
 * trust for local and 127.0.0.1 connections. `destroy()` stops it and deletes its directory.
 */
import { execFile } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import { host } from "./ports.ts";
import { asServiceUser, chownTree, serviceIds } from "./tls.ts";

const run = promisify(execFile);
const PG_BIN = process.env["SLUICE_PG_BIN"] || "/usr/lib/postgresql/15/bin";

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

/** A free port in 20000–29999: below the ephemeral range, so it stays free while the server is stopped. */
async function lowFreePort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 10_000);
    if (await portIsFree(port)) return port;
  }
  throw new Error("no free port in 20000-29999");
}

export interface PgCtlResult {
  readonly ok: boolean;
  readonly output: string;
}

export class PrivatePostgres {
  readonly host = host;
  readonly port: number;
  readonly user = "postgres";
  readonly database = "postgres";
  readonly dir: string;
  private readonly data: string;

  private constructor(dir: string, port: number) {
    this.dir = dir;
    this.port = port;
    this.data = join(dir, "data");
  }

  static async start(): Promise<PrivatePostgres> {
    const dir = mkdtempSync("/var/tmp/sluice-private-pg-");
    chmodSync(dir, 0o755);
    const server = new PrivatePostgres(dir, await lowFreePort());
    const ids = await serviceIds();
    await chownTree(dir, ids);
    const [initdb, args] = asServiceUser([join(PG_BIN, "initdb"), "-D", server.data, "-U", server.user, "--encoding=UTF8", "--no-locale", "--auth=trust", "--no-sync"]);
    await run(initdb, args);
    writeFileSync(
      join(server.data, "postgresql.auto.conf"),
      [
        `listen_addresses = '${host}'`,
        `port = ${server.port}`,
        `unix_socket_directories = '${dir}'`,
        "wal_level = logical",
        "max_replication_slots = 8",
        "max_wal_senders = 8",
        "max_connections = 30",
        "shared_buffers = 16MB",
        "fsync = off",
        "",
      ].join("\n"),
    );
    await chownTree(dir, ids);
    const started = await server.pgCtl(["start", "-l", join(dir, "server.log"), "-t", "60"]);
    if (!started.ok) throw new Error(`private PostgreSQL did not start: ${started.output}`);
    return server;
  }

  /** Connection settings for pg.Client and for a Sluice source. */
  get connection(): { host: string; port: number; user: string; password: string; database: string } {
    return { host: this.host, port: this.port, user: this.user, password: "", database: this.database };
  }

  /** `pg_ctl start`, waiting up to 60 s for the server to accept connections. */
  async restart(): Promise<void> {
    const started = await this.pgCtl(["start", "-l", join(this.dir, "server.log"), "-t", "60"]);
    if (!started.ok) throw new Error(`private PostgreSQL did not start again: ${started.output}`);
  }

  /** `pg_ctl stop -m <mode> -t <seconds>`: ok is false when the server was still running after `seconds`. */
  stop(mode: "fast" | "immediate", seconds: number): Promise<PgCtlResult> {
    return this.pgCtl(["stop", "-m", mode, "-t", String(seconds)]);
  }

  async destroy(): Promise<void> {
    await this.stop("immediate", 60);
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async pgCtl(args: string[]): Promise<PgCtlResult> {
    const [command, argv] = asServiceUser([join(PG_BIN, "pg_ctl"), "-D", this.data, "-w", ...args]);
    try {
      const { stdout, stderr } = await run(command, argv);
      return { ok: true, output: `${stdout}${stderr}` };
    } catch (error) {
      const failed = error as { stdout?: string; stderr?: string; message: string };
      return { ok: false, output: `${failed.stdout ?? ""}${failed.stderr ?? failed.message}` };
    }
  }
}
