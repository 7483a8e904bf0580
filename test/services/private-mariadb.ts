/**
 * A throwaway MariaDB 10.11 for tests that need server settings the shared one must keep (global
 * variables such as log_bin_compress change what every session writes): own directory under
 * /var/tmp, own free port, the shared server's row binlog with GTIDs, plus `settings` lines for
 * [mysqld]. `stop()` stops it and deletes its directory. The shared server is never touched.
 */
import { execFile, spawn } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { host } from "./ports.ts";
import { asServiceUser, chownTree, freePort, mariadbRoot, serviceIds, waitForPort } from "./tls.ts";

const run = promisify(execFile);

export interface PrivateMariadb {
  readonly host: string;
  readonly port: number;
  /** A user with every privilege (replication included), over TCP. */
  readonly admin: { readonly user: string; readonly password: string };
  stop(): Promise<void>;
}

export async function startPrivateMariadb(settings: readonly string[] = []): Promise<PrivateMariadb> {
  const dir = mkdtempSync("/var/tmp/sluice-private-mariadb-");
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
      "server_id = 9",
      "log_bin = mariadb-bin",
      "binlog_format = ROW",
      "binlog_row_image = FULL",
      "binlog_row_metadata = FULL",
      "gtid_strict_mode = ON",
      ...settings,
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
