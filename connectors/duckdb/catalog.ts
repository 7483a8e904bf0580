/**
 * Sluice's bookkeeping inside the DuckDB file, in schema `_sluice`, written in the same
 * transactions as the data it describes:
 * - `_sluice.tables`: one row per physical table (`<target>__v<N>`): its role (live: behind the
 *   view users query; shadow: being rebuilt), the version of the newest truncate applied to it,
 *   and its columns with their logical types (what schema evolution compares against);
 * - `_sluice.targets`: the source table each target was first written for, so another table rendered to the same
 *   name is refused after a restart too (sinks/target-claims.ts);
 * - `_sluice.offsets`: per sink, the next topic offset to read per partition, and the identity of
 *   the topic it was read from (null in files written before Sluice recorded it).
 */
import type { DuckDBConnection } from "@duckdb/node-api";
import type { TableId, TopicPartitionOffset } from "../contracts.ts";
import type { StoredSinkOffset } from "../sinks/contract.ts";
import type { TargetColumn } from "../sinks/columns.ts";
import { INTERNAL_SCHEMA } from "./config.ts";
import { ident, literal } from "./sql.ts";

export type Role = "live" | "shadow";

export interface PhysicalTable {
  readonly physical: string;
  readonly target: string;
  role: Role;
  readonly generation: number;
  truncateVersion: bigint;
  /** Empty while the table is not created yet (a shadow prepared before any schema was known). */
  columns: readonly TargetColumn[];
  /** When it was first saved (ms since the epoch); absent for tables saved before Sluice recorded it. */
  readonly createdAtMs?: number;
}

const TABLES = `${ident(INTERNAL_SCHEMA)}.${ident("tables")}`;
const TARGETS = `${ident(INTERNAL_SCHEMA)}.${ident("targets")}`;
const OFFSETS = `${ident(INTERNAL_SCHEMA)}.${ident("offsets")}`;

export async function bootstrapCatalog(connection: DuckDBConnection): Promise<void> {
  await connection.run(`CREATE SCHEMA IF NOT EXISTS ${ident(INTERNAL_SCHEMA)}`);
  await connection.run(
    `CREATE TABLE IF NOT EXISTS ${TABLES} (physical VARCHAR PRIMARY KEY, target VARCHAR NOT NULL, role VARCHAR NOT NULL, ` +
      `generation INTEGER NOT NULL, truncate_version UBIGINT NOT NULL, columns VARCHAR NOT NULL)`,
  );
  await connection.run(
    `CREATE TABLE IF NOT EXISTS ${OFFSETS} (sink VARCHAR NOT NULL, topic VARCHAR NOT NULL, "partition" INTEGER NOT NULL, ` +
      `"offset" BIGINT NOT NULL, PRIMARY KEY (sink, topic, "partition"))`,
  );
  await connection.run(`ALTER TABLE ${OFFSETS} ADD COLUMN IF NOT EXISTS topic_id VARCHAR`);
  // When a rebuild's shadow was prepared, for the warning about one a stopped process left behind.
  await connection.run(`ALTER TABLE ${TABLES} ADD COLUMN IF NOT EXISTS created_at_ms BIGINT`);
  await connection.run(
    `CREATE TABLE IF NOT EXISTS ${TARGETS} (target VARCHAR PRIMARY KEY, source VARCHAR NOT NULL, "database" VARCHAR NOT NULL, "schema" VARCHAR NOT NULL, "table" VARCHAR NOT NULL)`,
  );
}

/** The source table each target was first written for (files written before Sluice recorded it have none for their targets). */
export async function loadTargetOwners(connection: DuckDBConnection): Promise<Map<string, TableId>> {
  const reader = await connection.runAndReadAll(`SELECT target, source, "database", "schema", "table" FROM ${TARGETS}`);
  return new Map(
    reader.getRowObjectsJson().map((row) => [String(row["target"]), { source: String(row["source"]), database: String(row["database"]), schema: String(row["schema"]), table: String(row["table"]) }]),
  );
}

export async function saveTargetOwner(connection: DuckDBConnection, target: string, table: TableId): Promise<void> {
  await connection.run(
    `INSERT INTO ${TARGETS} VALUES (${literal(target)}, ${literal(table.source)}, ${literal(table.database)}, ${literal(table.schema)}, ${literal(table.table)}) ON CONFLICT (target) DO NOTHING`,
  );
}

export async function loadTables(connection: DuckDBConnection): Promise<PhysicalTable[]> {
  const reader = await connection.runAndReadAll(`SELECT physical, target, role, generation, truncate_version::VARCHAR AS tv, columns, created_at_ms FROM ${TABLES}`);
  return reader.getRowObjectsJson().map((row) => ({
    physical: String(row["physical"]),
    target: String(row["target"]),
    role: row["role"] === "shadow" ? "shadow" : "live",
    generation: Number(row["generation"]),
    truncateVersion: BigInt(String(row["tv"])),
    columns: JSON.parse(String(row["columns"])) as TargetColumn[],
    ...(row["created_at_ms"] === null ? {} : { createdAtMs: Number(row["created_at_ms"]) }),
  }));
}

export async function saveTable(connection: DuckDBConnection, table: PhysicalTable): Promise<void> {
  await connection.run(
    `INSERT INTO ${TABLES} (physical, target, role, generation, truncate_version, columns, created_at_ms) VALUES (${literal(table.physical)}, ${literal(table.target)}, ` +
      `${literal(table.role)}, ${table.generation}, ${table.truncateVersion}, ${literal(JSON.stringify(table.columns))}, ${table.createdAtMs ?? Date.now()}) ON CONFLICT (physical) DO UPDATE SET ` +
      `role = excluded.role, truncate_version = excluded.truncate_version, columns = excluded.columns`,
  );
}

export async function forgetTable(connection: DuckDBConnection, physical: string): Promise<void> {
  await connection.run(`DELETE FROM ${TABLES} WHERE physical = ${literal(physical)}`);
}

export async function readOffsets(connection: DuckDBConnection, sink: string): Promise<StoredSinkOffset[]> {
  const reader = await connection.runAndReadAll(`SELECT topic, "partition", "offset"::VARCHAR AS o, topic_id FROM ${OFFSETS} WHERE sink = ${literal(sink)} ORDER BY topic, "partition"`);
  return reader.getRowObjectsJson().map((row) => ({
    topic: String(row["topic"]),
    partition: Number(row["partition"]),
    offset: BigInt(String(row["o"])),
    topicId: row["topic_id"] === null ? null : String(row["topic_id"]),
  }));
}

/** Stores each offset with its topic's identity from `topicIds` (null when it has none). */
export async function writeOffsets(connection: DuckDBConnection, sink: string, offsets: readonly TopicPartitionOffset[], topicIds: ReadonlyMap<string, string>): Promise<void> {
  if (offsets.length === 0) return;
  const id = (topic: string) => (topicIds.has(topic) ? literal(topicIds.get(topic)!) : "NULL");
  const values = offsets.map((o) => `(${literal(sink)}, ${literal(o.topic)}, ${o.partition}, ${o.offset}, ${id(o.topic)})`).join(", ");
  await connection.run(
    `INSERT INTO ${OFFSETS} (sink, topic, "partition", "offset", topic_id) VALUES ${values} ` +
      `ON CONFLICT (sink, topic, "partition") DO UPDATE SET "offset" = excluded."offset", topic_id = excluded.topic_id`,
  );
}
