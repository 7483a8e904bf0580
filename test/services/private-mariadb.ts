/**
 * A throwaway MariaDB 10.11 for tests that need server settings the shared one must keep (global
 * variables such as log_bin_compress change what every session writes): own directory under
 * /var/tmp, own free port, the shared server's row binlog with GTIDs, plus `settings` lines for
 * [mysqld]. `stop()` stops it and deletes its directory. The shared server is never touched.
 */
import { startOwnMariadb } from "./tls.ts";

export interface PrivateMariadb {
  readonly host: string;
  readonly port: number;
  /** A user with every privilege (replication included), over TCP. */
  readonly admin: { readonly user: string; readonly password: string };
  stop(): Promise<void>;
}

export async function startPrivateMariadb(settings: readonly string[] = []): Promise<PrivateMariadb> {
  const server = await startOwnMariadb("/var/tmp/sluice-private-mariadb-", 9, () => settings);
  return { host: server.host, port: server.port, admin: server.admin, stop: server.stop };
}
