/**
 * What a partition operation that moves rows with no row event (ALTER TABLE ... TRUNCATE, DROP, EXCHANGE, CONVERT
 * PARTITION, IMPORT TABLESPACE) asks of a captured table's targets, by the source's `partition_drops` setting:
 * mirror: the table is read again whole, and the read's closing reset removes the rows the server no longer has;
 * keep: rows that only left (a partition dropped, truncated or converted to a table) stay in the sinks, as a
 * warehouse kept as the archive of a table whose old partitions are dropped on a schedule wants.
 */
import type { Sql } from "./catalog.ts";
import type { RowsChange } from "./schema/schema-tracker.ts";

export type PartitionDrops = "mirror" | "keep";

/**
 * skip-history: only history rows of a system-versioned table went (MariaDB PARTITION BY SYSTEM_TIME): a read gives
 * the current rows alone, and its reset would remove every history row the binlog brought, so none is made; keep: nothing is read; read-added: the table is read whole with no reset (rows that entered are added,
 * the targets keep the rest); read-all: read whole, its reset removes the rows the table no longer has.
 */
export type PartitionRowsPlan = "skip-history" | "keep" | "read-added" | "read-all";

/** A table partitioned BY SYSTEM_TIME: the name of its CURRENT partition. */
export interface SystemTimePartitions {
  readonly current: string;
}

export function partitionRowsPlan(change: RowsChange, mode: PartitionDrops, versioned: SystemTimePartitions | null): PartitionRowsPlan {
  // The table exchanged with or converted to is not partitioned: it is read as any table whose rows were replaced.
  if (!change.partitioned) return "read-all";
  const removesOnly = change.what === "DROP PARTITION" || change.what === "TRUNCATE PARTITION" || change.what === "CONVERT PARTITION";
  if (versioned !== null && touchesHistoryOnly(change, versioned)) return "skip-history";
  if (mode === "mirror") return "read-all";
  return removesOnly ? "keep" : "read-added";
}

/** MariaDB refuses to drop the CURRENT partition; a truncate names it, or ALL (null) takes it too. */
function touchesHistoryOnly(change: RowsChange, versioned: SystemTimePartitions): boolean {
  if (change.what === "DROP PARTITION") return true;
  if (change.what !== "TRUNCATE PARTITION" || change.partitions === null) return false;
  const current = versioned.current.toLowerCase();
  return change.partitions.every((name) => name.toLowerCase() !== current);
}

/** Partition names are compared case-insensitively by the server, as here. Null: not partitioned BY SYSTEM_TIME. */
export async function systemTimePartitions(sql: Sql, database: string, table: string): Promise<SystemTimePartitions | null> {
  const rows = await sql.rows(
    "SELECT PARTITION_NAME AS name FROM information_schema.PARTITIONS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND PARTITION_METHOD = 'SYSTEM_TIME' AND PARTITION_DESCRIPTION = 'CURRENT'",
    [database, table],
  );
  const name = rows[0]?.["name"];
  return name === undefined || name === null ? null : { current: Buffer.isBuffer(name) ? name.toString("utf8") : String(name) };
}
