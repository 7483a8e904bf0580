/** mysql2/promise connections with the session Sluice expects, and the small query surface catalog code uses. */
import mysql from "mysql2/promise";
import type { Connection, ConnectionOptions } from "mysql2/promise";
import type { Row, Sql } from "./catalog.ts";
import { SESSION_SETTINGS_SQL, verifyIpIdentity } from "./connection-settings.ts";

export async function openConnection(options: ConnectionOptions): Promise<Connection> {
  const connection = await mysql.createConnection(options);
  // An idle connection that the server drops must not crash the process: the next query fails instead.
  connection.on("error", () => undefined);
  try {
    verifyIpIdentity(options, (connection as unknown as { connection?: { stream?: unknown } }).connection?.stream);
  } catch (error) {
    connection.destroy();
    throw error;
  }
  await connection.query(SESSION_SETTINGS_SQL);
  return connection;
}

export function sqlOf(connection: Connection): Sql {
  return {
    rows: async (sql, values) => {
      const [rows] = await connection.query(sql, values === undefined ? undefined : [...values]);
      return Array.isArray(rows) ? (rows as Row[]) : [];
    },
  };
}

export async function closeQuietly(connection: Connection | null): Promise<void> {
  if (connection === null) return;
  await connection.end().catch(() => connection.destroy());
}
