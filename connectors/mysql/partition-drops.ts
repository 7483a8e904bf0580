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
 * skip-history: only history rows of a system-versioned table went (MariaDB PARTITION BY SYSTEM_TIME), nothing is read;
 * keep: nothing is read, the targets keep the rows (partition_drops: keep); keep-versioned: rows left a system-versioned
 * table (or one the catalog could not say of) and nothing is read, as a read's reset would remove every history row;
 * read-added: the table is read whole with no reset (rows that entered are added, the targets keep the rest);
 * read-all: read whole, its reset removes the rows the table no longer has.
 */
export type PartitionRowsPlan = "skip-history" | "keep" | "keep-versioned" | "read-added" | "read-all";

/** A MariaDB table WITH SYSTEM VERSIONING or not; `current`: its CURRENT partition's name when partitioned BY SYSTEM_TIME. */
export interface TableVersioning {
  readonly versioned: boolean;
  readonly current: string | null;
}

/**
 * `versioning` null: the catalog could not say (the table left out of information_schema): taken as versioned. A
 * snapshot reads current rows only, so on a versioned table its closing reset would remove every history row the
 * binlog brought while the server still has them: no plan for such a table resets, whatever the setting.
 */
export function partitionRowsPlan(change: RowsChange, mode: PartitionDrops, versioning: TableVersioning | null): PartitionRowsPlan {
  const removesOnly = change.what === "DROP PARTITION" || change.what === "TRUNCATE PARTITION" || change.what === "CONVERT PARTITION";
  if (versioning === null || versioning.versioned) {
    if (change.partitioned && versioning?.current != null && touchesHistoryOnly(change, versioning.current)) return "skip-history";
    if (change.partitioned && removesOnly) return mode === "keep" ? "keep" : "keep-versioned";
    return "read-added";
  }
  // The table exchanged with or converted to is not partitioned: it is read as any table whose rows were replaced.
  // ALTER IGNORE TABLE is no partition operation: partition_drops does not keep the rows it drops.
  if (!change.partitioned || mode === "mirror" || change.what === "ALTER IGNORE TABLE") return "read-all";
  return removesOnly ? "keep" : "read-added";
}

/** MariaDB refuses to drop the CURRENT partition; a truncate names it, or ALL (null) takes it too. */
function touchesHistoryOnly(change: RowsChange, currentPartition: string): boolean {
  if (change.what === "DROP PARTITION") return true;
  if (change.what !== "TRUNCATE PARTITION" || change.partitions === null) return false;
  const current = currentPartition.toLowerCase();
  return change.partitions.every((name) => name.toLowerCase() !== current);
}

/**
 * What the catalog says of a table's versioning, asked when capture reaches the statement. Null: the table is not
 * listed. A failed read throws, and so does a table listed with no engine (information_schema lists a table it could
 * not open, behind a metadata lock, so: the next statement of a maintenance script holds it): the caller must not
 * take either for "not versioned", nor for a lasting answer.
 */
export async function tableVersioning(sql: Sql, database: string, table: string): Promise<TableVersioning | null> {
  const [row] = await sql.rows("SELECT TABLE_TYPE AS type, ENGINE AS engine FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", [database, table]);
  if (row === undefined) return null;
  if (text(row["engine"]) === null) throw new Error("the catalog lists the table with no engine: it could not open it (a metadata lock another statement holds?)");
  if (text(row["type"]) !== "SYSTEM VERSIONED") return { versioned: false, current: null };
  // Partition names are compared case-insensitively by the server, as in touchesHistoryOnly.
  const partitions = await sql.rows(
    "SELECT PARTITION_NAME AS name FROM information_schema.PARTITIONS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND PARTITION_METHOD = 'SYSTEM_TIME' AND PARTITION_DESCRIPTION = 'CURRENT'",
    [database, table],
  );
  return { versioned: true, current: text(partitions[0]?.["name"]) };
}

/**
 * The catalog's answer, or when it has none (the table not listed: dropped or renamed since the statement) the tracked
 * key: catalog.ts keys a versioned table by row_end too. The catalog outweighs the key: a plain table may have a real
 * row_end column in its key (a slowly changing dimension), and the tracker keeps row_end in the key after
 * DROP SYSTEM VERSIONING, which it does not follow. Null: neither can say (taken as versioned by the plans).
 */
export function versioningOf(catalog: TableVersioning | null, trackedKey: readonly string[] | null): TableVersioning | null {
  if (catalog !== null) return catalog;
  return trackedKey?.includes("row_end") === true ? { versioned: true, current: null } : null;
}

function text(value: unknown): string | null {
  if (value === undefined || value === null) return null;
  return Buffer.isBuffer(value) ? value.toString("utf8") : String(value);
}
