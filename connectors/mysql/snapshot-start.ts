/**
 * Opens the snapshot: worker connections whose transactions are consistent snapshots, each with the
 * binlog position its snapshot corresponds to, and the table definitions at that point.
 *
 * MariaDB: START TRANSACTION WITH CONSISTENT SNAPSHOT and SHOW STATUS LIKE 'binlog_snapshot_%' give
 * each worker an exact binlog position without any lock. The workers' positions may differ (they
 * start one after the other); each table is read by one worker, and the stream later drops a table's
 * changes below the position of the snapshot that read it. The definitions are read before and after
 * the workers start; if a DDL slipped in between, everything is started again.
 *
 * MySQL (no binlog_snapshot_* status): FLUSH TABLES WITH READ LOCK -- or LOCK TABLES ... READ on the
 * captured tables where the user may not take the global lock -- held only while the workers start
 * their transactions and the position and definitions are read, then released. All workers share
 * one position.
 */
import type { Connection, ConnectionOptions } from "mysql2/promise";
import type { Logger } from "pino";
import { SluiceError } from "../errors.ts";
import type { ErrorContext } from "../errors.ts";
import { currentPosition, mariadbGtidAt, readDefinitions } from "./catalog.ts";
import type { BinlogCoordinates, GtidStateReader, Sql } from "./catalog.ts";
import { quoteIdentifier } from "./connection-settings.ts";
import { toSluiceError } from "./mysql-errors.ts";
import { binlogAt, binlogFileIndex } from "./positions.ts";
import type { Flavor } from "./resume-token.ts";
import type { TableName } from "./schema/ddl-parser.ts";
import { sameDefinition } from "./schema/table-definition.ts";
import type { TableDefinition } from "./schema/table-definition.ts";
import { closeQuietly, openConnection, sqlOf } from "./sql-connection.ts";

export type SnapshotLocking = "consistent-snapshot-status" | "global-read-lock" | "table-locks";

export interface SnapshotWorker {
  readonly connection: Connection;
  readonly position: BinlogCoordinates;
  /** binlogAt() of `position`. */
  readonly at: bigint;
}

export interface ConsistentSnapshot {
  readonly workers: readonly SnapshotWorker[];
  /** The earliest worker position, with its GTID state: where the stream starts. */
  readonly start: BinlogCoordinates;
  readonly startAt: bigint;
  readonly definitions: ReadonlyMap<string, TableDefinition>;
  readonly locking: SnapshotLocking;
}

export interface SnapshotStartOptions {
  readonly connection: ConnectionOptions;
  readonly catalog: Sql;
  readonly flavor: Flavor;
  readonly tables: readonly TableName[];
  readonly workers: number;
  /** The binlog history epoch positions are taken in (positions.ts). */
  readonly epoch: number;
  /** Force a locking method (tests); by default the server decides. */
  readonly locking?: SnapshotLocking;
  /** MariaDB: the GTID state at the start where BINLOG_GTID_POS gives null (past an event larger than max_allowed_packet). */
  readonly readGtidState?: GtidStateReader;
  readonly logger: Logger;
  readonly context: ErrorContext;
}

const ATTEMPTS = 5;

export async function startConsistentSnapshot(options: SnapshotStartOptions): Promise<ConsistentSnapshot> {
  const locking = options.locking ?? (options.flavor === "mariadb" ? "consistent-snapshot-status" : "global-read-lock");
  if (locking === "consistent-snapshot-status") return lockFree(options);
  return withLock(options, locking);
}

async function openWorkers(options: SnapshotStartOptions): Promise<Connection[]> {
  const connections: Connection[] = [];
  try {
    for (let i = 0; i < options.workers; i++) {
      const connection = await openConnection(options.connection);
      connections.push(connection);
      await connection.query("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ");
    }
  } catch (error) {
    await Promise.all(connections.map(closeQuietly));
    throw toSluiceError(error, "cannot open the snapshot connections", options.context);
  }
  return connections;
}

async function beginSnapshot(connection: Connection): Promise<void> {
  await connection.query("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY");
}

async function lockFree(options: SnapshotStartOptions): Promise<ConsistentSnapshot> {
  const connections = await openWorkers(options);
  try {
    for (let attempt = 1; ; attempt++) {
      const before = await readDefinitions(options.catalog, options.tables);
      const workers: SnapshotWorker[] = [];
      for (const connection of connections) {
        await beginSnapshot(connection);
        const status = await sqlOf(connection).rows("SHOW STATUS LIKE 'binlog_snapshot_%'");
        const value = (name: string) => String(status.find((row) => String(row["Variable_name"]).toLowerCase() === name)?.["Value"] ?? "");
        const file = value("binlog_snapshot_file");
        const offset = Number(value("binlog_snapshot_position"));
        if (file === "") throw new SluiceError("the server reports no binlog_snapshot_file: is binary logging on?", { code: "MYSQL_SETTINGS", context: options.context });
        workers.push({ connection, position: { file, offset, gtid: null }, at: binlogAt(binlogFileIndex(file, options.epoch), offset) });
      }
      const after = await readDefinitions(options.catalog, options.tables);
      if (sameDefinitions(before, after)) {
        const first = workers.reduce((a, b) => (b.at < a.at ? b : a));
        const start = { ...first.position, gtid: await mariadbGtidAt(options.catalog, first.position.file, first.position.offset, options.readGtidState) };
        options.logger.info({ locking: "consistent-snapshot-status", start: `${start.file}:${start.offset}`, gtid: start.gtid, workers: workers.length }, "snapshot transactions started");
        return { workers, start, startAt: first.at, definitions: after, locking: "consistent-snapshot-status" };
      }
      for (const connection of connections) await connection.query("ROLLBACK");
      if (attempt === ATTEMPTS) throw new SluiceError(`captured tables kept changing their definitions while the snapshot started (${ATTEMPTS} attempts)`, { code: "MYSQL_SNAPSHOT_DDL", retriable: true, context: options.context });
      options.logger.warn({ attempt }, "a table definition changed while the snapshot started; starting it again");
    }
  } catch (error) {
    await Promise.all(connections.map(closeQuietly));
    throw toSluiceError(error, "cannot start the snapshot", options.context);
  }
}

async function withLock(options: SnapshotStartOptions, locking: "global-read-lock" | "table-locks"): Promise<ConsistentSnapshot> {
  const connections = await openWorkers(options);
  const { catalog, logger, context } = options;
  let method = locking;
  try {
    await catalog.rows("SET SESSION lock_wait_timeout = 60");
    if (method === "global-read-lock") {
      try {
        await catalog.rows("FLUSH TABLES WITH READ LOCK");
      } catch (error) {
        const errno = (error as { errno?: unknown }).errno;
        if (errno !== 1227 && errno !== 1045) throw error;
        logger.warn({ err: (error as Error).message }, "FLUSH TABLES WITH READ LOCK is not allowed; locking the captured tables instead");
        method = "table-locks";
      }
    }
    if (method === "table-locks") {
      if (options.tables.length === 0) throw new SluiceError("no captured table to lock", { code: "MYSQL_NO_TABLES", context });
      await catalog.rows(`LOCK TABLES ${options.tables.map((t) => `${quoteIdentifier(t.database)}.${quoteIdentifier(t.table)} READ`).join(", ")}`);
    }
    const lockedAt = Date.now();
    let position: BinlogCoordinates;
    let definitions: Map<string, TableDefinition>;
    try {
      for (const connection of connections) await beginSnapshot(connection);
      position = await currentPosition(catalog, options.flavor);
      definitions = await readDefinitions(catalog, options.tables);
    } finally {
      await catalog.rows("UNLOCK TABLES");
    }
    // Read here, not under the lock: BINLOG_GTID_POS's null past a large event is answered by a binlog dump of the file.
    if (options.flavor === "mariadb" && position.gtid === "" && options.readGtidState !== undefined) {
      position = { ...position, gtid: await mariadbGtidAt(catalog, position.file, position.offset, options.readGtidState) };
    }
    logger.info({ locking: method, lockedMs: Date.now() - lockedAt, start: `${position.file}:${position.offset}`, gtid: position.gtid, workers: connections.length }, "snapshot transactions started");
    const at = binlogAt(binlogFileIndex(position.file, options.epoch), position.offset);
    return { workers: connections.map((connection) => ({ connection, position, at })), start: position, startAt: at, definitions, locking: method };
  } catch (error) {
    await Promise.all(connections.map(closeQuietly));
    throw toSluiceError(error, "cannot start the snapshot", context);
  }
}

function sameDefinitions(a: ReadonlyMap<string, TableDefinition>, b: ReadonlyMap<string, TableDefinition>): boolean {
  if (a.size !== b.size) return false;
  for (const [key, definition] of a) {
    const other = b.get(key);
    if (other === undefined || !sameDefinition(definition, other)) return false;
  }
  return true;
}
