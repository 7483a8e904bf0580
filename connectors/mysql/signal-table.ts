/**
 * The signal table on MySQL/MariaDB (config snapshot.signal_table, "database.table"): the reads and
 * deletes behind common/snapshot-signals.ts, on a connection of its own.
 */
import type { Connection, ConnectionOptions } from "mysql2/promise";
import type { SignalRow, SignalStore } from "../common/snapshot-signals.ts";
import { quoteIdentifier } from "./connection-settings.ts";
import { closeQuietly, openConnection } from "./sql-connection.ts";

export const SIGNAL_TABLE_SETUP = "create it (id VARCHAR(64) PRIMARY KEY, type VARCHAR(32) NOT NULL, data TEXT) and grant Sluice's user SELECT and DELETE on it";

export class MysqlSignalStore implements SignalStore {
  private readonly options: ConnectionOptions;
  private readonly name: string;
  private connection: Connection | null = null;

  /** `table`: "database.table". */
  constructor(options: ConnectionOptions, table: string) {
    this.options = options;
    const dot = table.indexOf(".");
    this.name = `${quoteIdentifier(table.slice(0, dot))}.${quoteIdentifier(table.slice(dot + 1))}`;
  }

  async read(limit: number): Promise<SignalRow[]> {
    const connection = await this.open();
    const [rows] = await connection.query(`SELECT CAST(id AS CHAR) AS id, CAST(type AS CHAR) AS type, CAST(data AS CHAR) AS data FROM ${this.name} ORDER BY id LIMIT ${Math.floor(limit)}`);
    return (rows as Record<string, unknown>[]).map((row) => ({ id: String(row["id"]), type: text(row["type"]), data: text(row["data"]) }));
  }

  async delete(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    const connection = await this.open();
    await connection.query(`DELETE FROM ${this.name} WHERE CAST(id AS CHAR) IN (${ids.map(() => "?").join(", ")})`, [...ids]);
  }

  async close(): Promise<void> {
    const connection = this.connection;
    this.connection = null;
    await closeQuietly(connection);
  }

  private async open(): Promise<Connection> {
    this.connection ??= await openConnection(this.options);
    return this.connection;
  }
}

function text(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  return Buffer.isBuffer(value) ? value.toString("utf8") : String(value);
}
