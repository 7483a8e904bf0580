/**
 * Throwaway TLS servers for tests: a CA made with openssl at test time, and private PostgreSQL and
 * MariaDB instances (own temp directory, own free port) that only accept TLS. The shared servers
 * of test/services/up are never touched. Each `stop()` stops its server and deletes its directory.
 */
import { execFile, spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, connect } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import { host } from "./ports.ts";

const run = promisify(execFile);
const PG_BIN = process.env["SLUICE_PG_BIN"] || "/usr/lib/postgresql/15/bin";
/** PostgreSQL and MariaDB refuse to run as root: as root, servers run as the services' user. */
const SERVICE_USER = process.env["SLUICE_SERVICES_USER"] || "sluice";
const isRoot = process.getuid?.() === 0;

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

export async function serviceIds(): Promise<{ uid: number; gid: number } | null> {
  if (!isRoot) return null;
  const [uid, gid] = await Promise.all([run("id", ["-u", SERVICE_USER]), run("id", ["-g", SERVICE_USER])]);
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

/** argv prefixed so the command runs as the service user when we are root. */
export function asServiceUser(argv: string[]): [string, string[]] {
  if (!isRoot) return [argv[0]!, argv.slice(1)];
  return ["setpriv", [`--reuid=${SERVICE_USER}`, `--regid=${SERVICE_USER}`, "--init-groups", ...argv]];
}

export function chownTree(dir: string, ids: { uid: number; gid: number } | null): Promise<unknown> {
  return ids === null ? Promise.resolve() : run("chown", ["-R", `${ids.uid}:${ids.gid}`, dir]);
}

export function waitForPort(port: number, timeoutMs: number, child: ChildProcess | null): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = (): void => {
      if (child !== null && child.exitCode !== null) return reject(new Error(`server exited with code ${child.exitCode} before listening on ${port}`));
      const socket = connect(port, host);
      socket.once("connect", () => {
        socket.destroy();
        resolve();
      });
      socket.once("error", () => {
        socket.destroy();
        if (Date.now() > deadline) reject(new Error(`nothing listens on ${host}:${port} after ${timeoutMs} ms`));
        else setTimeout(attempt, 100);
      });
    };
    attempt();
  });
}

/** A CA and what it signed, as PEM files in `dir`. */
export interface TestCa {
  readonly dir: string;
  /** The CA certificate: what tls.ca_file names. */
  readonly caFile: string;
  /** Server certificate for the IP address 127.0.0.1 only (so "localhost" is a name it does not carry), and its key. */
  readonly serverCert: string;
  readonly serverKey: string;
  /** Signs a client certificate with the given CN; returns its cert and key files. */
  clientCert(commonName: string): Promise<{ certFile: string; keyFile: string }>;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  await run("openssl", args, { cwd });
}

/** A fresh CA (EC P-256, one day) with a server certificate for 127.0.0.1. */
export async function makeCa(dir: string, name = "ca"): Promise<TestCa> {
  const key = (file: string) => ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", file];
  await openssl(key(`${name}.key`), dir);
  await openssl(["req", "-x509", "-new", "-key", `${name}.key`, "-days", "1", "-subj", `/CN=sluice test ${name}`, "-out", `${name}.crt`], dir);
  const sign = async (base: string, cn: string, extensions: string): Promise<void> => {
    await openssl(key(`${base}.key`), dir);
    await openssl(["req", "-new", "-key", `${base}.key`, "-subj", `/CN=${cn}`, "-out", `${base}.csr`], dir);
    writeFileSync(join(dir, `${base}.ext`), extensions);
    await openssl(
      ["x509", "-req", "-in", `${base}.csr`, "-CA", `${name}.crt`, "-CAkey", `${name}.key`, "-CAcreateserial", "-days", "1", "-extfile", `${base}.ext`, "-out", `${base}.crt`],
      dir,
    );
  };
  await sign(`${name}-server`, "127.0.0.1", "subjectAltName = IP:127.0.0.1\nextendedKeyUsage = serverAuth\n");
  return {
    dir,
    caFile: join(dir, `${name}.crt`),
    serverCert: join(dir, `${name}-server.crt`),
    serverKey: join(dir, `${name}-server.key`),
    async clientCert(commonName: string) {
      const base = `${name}-client-${commonName}`;
      await sign(base, commonName, "extendedKeyUsage = clientAuth\n");
      return { certFile: join(dir, `${base}.crt`), keyFile: join(dir, `${base}.key`) };
    },
  };
}

export interface TlsServer {
  readonly host: string;
  readonly port: number;
  readonly ca: TestCa;
  /** The administrator (superuser / root) and its password, connecting over TLS. */
  readonly admin: { readonly user: string; readonly password: string };
  stop(): Promise<void>;
}

/**
 * PostgreSQL 15 with ssl=on, a certificate for 127.0.0.1 signed by a fresh CA, wal_level=logical,
 * and pg_hba allowing only `hostssl`: `cert` (client certificate, CN = user name) for `certUsers`,
 * scram-sha-256 for everyone else.
 */
export async function startTlsPostgres(options: { certUsers?: readonly string[] } = {}): Promise<TlsServer> {
  const dir = mkdtempSync("/var/tmp/sluice-tls-pg-");
  chmodSync(dir, 0o755);
  const ids = await serviceIds();
  const data = join(dir, "data");
  const port = await freePort();
  const ca = await makeCa(dir);
  const admin = { user: "sluice_admin", password: "admin-secret" };
  writeFileSync(join(dir, "pw"), `${admin.password}\n`);
  await chownTree(dir, ids);
  const [initdb, initArgs] = asServiceUser([
    join(PG_BIN, "initdb"),
    "-D",
    data,
    "-U",
    admin.user,
    `--pwfile=${join(dir, "pw")}`,
    "--encoding=UTF8",
    "--no-locale",
    "--auth-local=trust",
    "--auth-host=scram-sha-256",
    "--no-sync",
  ]);
  await run(initdb, initArgs);
  writeFileSync(
    join(data, "postgresql.auto.conf"),
    [
      `listen_addresses = '${host}'`,
      `port = ${port}`,
      `unix_socket_directories = '${dir}'`,
      "wal_level = logical",
      "max_replication_slots = 8",
      "max_wal_senders = 8",
      "max_connections = 30",
      "shared_buffers = 16MB",
      "fsync = off",
      "ssl = on",
      `ssl_cert_file = '${ca.serverCert}'`,
      `ssl_key_file = '${ca.serverKey}'`,
      `ssl_ca_file = '${ca.caFile}'`,
      "password_encryption = 'scram-sha-256'",
      "",
    ].join("\n"),
  );
  writeFileSync(
    join(data, "pg_hba.conf"),
    [
      "local all all trust",
      "local replication all trust",
      ...(options.certUsers ?? []).flatMap((user) => [`hostssl all ${user} ${host}/32 cert`, `hostssl replication ${user} ${host}/32 cert`]),
      `hostssl all all ${host}/32 scram-sha-256`,
      `hostssl replication all ${host}/32 scram-sha-256`,
      "",
    ].join("\n"),
  );
  chmodSync(ca.serverKey, 0o600);
  await chownTree(dir, ids);
  const [pgCtl, ctlArgs] = asServiceUser([join(PG_BIN, "pg_ctl"), "start", "-D", data, "-l", join(dir, "server.log"), "-w", "-s", "-t", "60"]);
  await run(pgCtl, ctlArgs);
  return {
    host,
    port,
    ca,
    admin,
    async stop() {
      const [stopCmd, stopArgs] = asServiceUser([join(PG_BIN, "pg_ctl"), "stop", "-D", data, "-m", "immediate", "-w", "-s"]);
      await run(stopCmd, stopArgs).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Runs SQL as root (no password, socket only) over the private MariaDB's unix socket; tab-separated rows. */
export async function mariadbRoot(socket: string, sql: string): Promise<string> {
  const { stdout } = await run("mariadb", ["--no-defaults", "--protocol=socket", `--socket=${socket}`, "-uroot", "-N", "-B", "-e", sql]);
  return stdout;
}

/**
 * MariaDB 10.11 with TLS (certificate for 127.0.0.1 signed by a fresh CA), require_secure_transport=ON,
 * a row binlog with GTIDs as the shared server has, and an admin user with every privilege.
 */
export async function startTlsMariadb(): Promise<TlsServer & { readonly socket: string }> {
  let ca: TestCa | null = null;
  const server = await startOwnMariadb("/var/tmp/sluice-tls-mariadb-", 7, async (dir) => {
    ca = await makeCa(dir);
    return [`ssl_ca = ${ca.caFile}`, `ssl_cert = ${ca.serverCert}`, `ssl_key = ${ca.serverKey}`, "require_secure_transport = ON"];
  });
  return { host: server.host, port: server.port, ca: ca!, admin: server.admin, socket: server.socket, stop: server.stop };
}

/** A MariaDB server started here and the user with every privilege made on it; `stop()` also deletes its directory. */
export interface OwnMariadb {
  readonly host: string;
  readonly port: number;
  readonly socket: string;
  readonly admin: { readonly user: string; readonly password: string };
  stop(): Promise<void>;
}

/**
 * A MariaDB 10.11 of its own (a directory under `dirPrefix`, a free port) with the shared server's
 * row binlog and GTIDs, plus the [mysqld] lines `settings` gives for its directory.
 */
export async function startOwnMariadb(dirPrefix: string, serverId: number, settings: (dir: string) => Promise<readonly string[]> | readonly string[]): Promise<OwnMariadb> {
  const dir = mkdtempSync(dirPrefix);
  chmodSync(dir, 0o755);
  const ids = await serviceIds();
  const port = await freePort();
  const socket = join(dir, "mariadb.sock");
  const cnf = join(dir, "my.cnf");
  writeFileSync(
    cnf,
    [
      "[mysqld]",
      `datadir = ${join(dir, "db")}`,
      `tmpdir = ${dir}`,
      `socket = ${socket}`,
      `pid-file = ${join(dir, "mariadb.pid")}`,
      `port = ${port}`,
      `bind-address = ${host}`,
      "skip-name-resolve",
      "character-set-server = utf8mb4",
      "default-time-zone = '+00:00'",
      "innodb_buffer_pool_size = 16M",
      "innodb_log_file_size = 8M",
      "innodb_flush_log_at_trx_commit = 0",
      "sync_binlog = 0",
      "performance_schema = OFF",
      `server_id = ${serverId}`,
      "log_bin = mariadb-bin",
      "binlog_format = ROW",
      "binlog_row_image = FULL",
      "binlog_row_metadata = FULL",
      "gtid_strict_mode = ON",
      ...(await settings(dir)),
      "",
    ].join("\n"),
  );
  await chownTree(dir, ids);
  const [install, installArgs] = asServiceUser(["mariadb-install-db", `--defaults-file=${cnf}`, "--auth-root-authentication-method=normal", "--skip-test-db"]);
  await run(install, installArgs);
  const [server, serverArgs] = asServiceUser(["/usr/sbin/mariadbd", `--defaults-file=${cnf}`]);
  const child = spawn(server, serverArgs, { stdio: "ignore", detached: true });
  child.unref();
  try {
    await waitForPort(port, 60_000, child);
  } catch (error) {
    child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  const admin = { user: "sluice_admin", password: "admin-secret" };
  await mariadbRoot(socket, `CREATE USER '${admin.user}'@'%' IDENTIFIED BY '${admin.password}'; GRANT ALL ON *.* TO '${admin.user}'@'%' WITH GRANT OPTION;`);
  return {
    host,
    port,
    socket,
    admin,
    async stop() {
      if (child.exitCode === null && child.pid !== undefined) {
        child.kill("SIGTERM");
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            child.kill("SIGKILL");
            resolve();
          }, 10_000);
          child.once("exit", () => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
