/**
 * Helpers for the integration tests against the real MariaDB of test/services/: a random database
 * per test, a source config, an admin connection, reading until a condition, and cleanup.
 */
import { randomInt } from "node:crypto";
import mysql from "mysql2/promise";
import type { Connection, RowDataPacket } from "mysql2/promise";
import { mariadb } from "../../test/services/ports.ts";
import type { MysqlSourceConfig } from "../../config/schema.ts";
import type { ChangeEvent, ColumnValue, SourceBatch } from "../contracts.ts";
import { MysqlSource } from "./source.ts";
import type { MysqlSourceOptions } from "./source.ts";
import { connectError as sourceConnectError, randomName, readUntil, testLogger } from "../common/source-test-support.ts";
import type { Collected as SourceCollected } from "../common/source-test-support.ts";

// Run in a zone far from UTC so time-zone mistakes show.
process.env["TZ"] = "Pacific/Chatham";

export { randomName, readUntil, testLogger };

export function sourceConfig(overrides: Partial<MysqlSourceConfig> & Pick<MysqlSourceConfig, "tables">): MysqlSourceConfig {
  return {
    kind: "mysql",
    name: overrides.name ?? randomName("src"),
    host: mariadb.host,
    port: mariadb.port,
    user: mariadb.user,
    password: mariadb.password,
    tls: { mode: "disable" },
    snapshot: { mode: "initial", parallelism: 2, chunk_rows: 1000 },
    decimal_mode: "precise",
    envelope: "debezium",
    time_precision_mode: "adaptive",
    skipped_operations: ["t"],
    transaction_metadata: false,
    max_buffer_bytes: 8 * 2 ** 20,
    heartbeat_interval: 1000,
    server_id: randomInt(10_000, 2 ** 31),
    zero_dates: "null",
    partition_drops: "mirror",
    allow_public_key_retrieval: false,
    ...overrides,
  };
}

/** An admin connection on its own database (created), session in UTC. */
export async function adminConnection(database?: string): Promise<Connection> {
  const connection = await mysql.createConnection({ host: mariadb.host, port: mariadb.port, user: mariadb.user, password: mariadb.password, supportBigNumbers: true, bigNumberStrings: true, dateStrings: true, multipleStatements: true });
  connection.on("error", () => undefined);
  await connection.query("SET time_zone = '+00:00'");
  if (database !== undefined) {
    await connection.query(`CREATE DATABASE IF NOT EXISTS \`${database}\` CHARACTER SET utf8mb4`);
    await connection.query(`USE \`${database}\``);
  }
  return connection;
}

export function newSource(config: MysqlSourceConfig, options: Partial<MysqlSourceOptions> = {}): MysqlSource {
  return new MysqlSource(config, { logger: testLogger(), ...options });
}

/** The SluiceError a new source on `config` fails to connect with (the test fails when it connects). */
export function connectError(config: MysqlSourceConfig) {
  return sourceConnectError(newSource(config));
}

export type Collected = SourceCollected<SourceBatch>;

export const snapshotFinished = (c: Collected): boolean => c.batches.some((b) => !(b.checkpoint.position.resume ?? "").includes('"snapshot":"incomplete"'));

export function tableEvents(events: readonly ChangeEvent[], table: string): ChangeEvent[] {
  return events.filter((e) => e.source.table === table);
}

/** Rows by key after applying events in order (c/r/u set, d removes, t empties; a snapshot's reset is skipped, as docs/mysql.md tells consumers without versions). */
export function fold(events: readonly ChangeEvent[], keyOf: (row: Readonly<Record<string, ColumnValue>>) => string): Map<string, Readonly<Record<string, ColumnValue>>> {
  const rows = new Map<string, Readonly<Record<string, ColumnValue>>>();
  for (const event of events) {
    if (event.op === "d") rows.delete(keyOf(event.before!));
    else if (event.op === "t") {
      if (!event.source.snapshot) rows.clear();
    } else rows.set(keyOf(event.after!), event.after!);
  }
  return rows;
}

export async function dropDatabase(admin: Connection, database: string): Promise<void> {
  // A prepared XA transaction outlives its session and holds its locks, and DROP DATABASE waits for them for ever: one a
  // failed test left behind (the tests name theirs after their database) is rolled back, and a wait on anything else fails.
  const [prepared] = await admin.query<RowDataPacket[]>("XA RECOVER");
  for (const { data } of prepared) if (String(data).includes(database)) await admin.query(`XA ROLLBACK '${String(data)}'`);
  await admin.query("SET SESSION lock_wait_timeout = 120");
  await admin.query(`DROP DATABASE IF EXISTS \`${database}\``);
}
