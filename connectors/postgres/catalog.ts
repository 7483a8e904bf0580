/**
 * Catalog queries: which tables the configured patterns name, their columns and keys, the
 * publication and the replication slot.
 */
import type pg from "pg";
import { parseLsn } from "./lsn.ts";
import { quoteIdent } from "./connection-settings.ts";
import { READABLE_DIRECTLY_SQL } from "./privileges.ts";
import type { TableMatcher } from "../common/table-patterns.ts";
import { TYPE_CATALOG_SQL, TypeCatalog, typeRowFromSql } from "./values/type-catalog.ts";
import type { TypeNameTarget } from "./values/type-catalog.ts";

type Queryable = Pick<pg.Client, "query">;

export interface TableRef {
  readonly relid: number;
  readonly schema: string;
  readonly table: string;
  /** "r" table, "p" partitioned table. */
  readonly kind: string;
  /** pg_class.reltuples: the planner's row estimate, -1 when never analysed. */
  readonly estimatedRows: number;
}

export interface LeafPartition {
  readonly relid: number;
  /** pg_class.relfilenode: a TRUNCATE of the partition (or a rewrite, VACUUM FULL, CLUSTER) gives it a new one. */
  readonly filenode: number;
  /**
   * The sum of the xmins of the pg_inherits rows from the root down to it: a partition (or a partitioned partition
   * above it) detached and attached again has a new row, its filenode unchanged (also DETACH CONCURRENTLY's first step).
   */
  readonly attachment: number;
}

/** The leaf partitions of each partitioned table given, by its relation id (pg_inherits, which PostgreSQL 10 has). */
export async function leafPartitions(db: Queryable, roots: readonly TableRef[]): Promise<Map<number, LeafPartition[]>> {
  const partitioned = roots.filter((t) => t.kind === "p");
  const leaves = new Map<number, LeafPartition[]>(partitioned.map((t) => [t.relid, []]));
  if (partitioned.length === 0) return leaves;
  const result = await db.query<{ root: string; leaf: string; filenode: string; attachment: string }>(
    `WITH RECURSIVE tree(root, relid, attachment) AS (
       SELECT r.relid, r.relid, 0::int8 FROM unnest($1::oid[]) AS r(relid)
       UNION ALL
       SELECT tree.root, i.inhrelid, tree.attachment + i.xmin::text::int8 FROM tree JOIN pg_inherits i ON i.inhparent = tree.relid
     )
     SELECT tree.root::int8 AS root, tree.relid::int8 AS leaf, c.relfilenode::int8 AS filenode, tree.attachment AS attachment FROM tree JOIN pg_class c ON c.oid = tree.relid
      WHERE tree.relid <> tree.root AND c.relkind <> 'p'`,
    [partitioned.map((t) => t.relid)],
  );
  for (const row of result.rows) leaves.get(Number(row.root))?.push({ relid: Number(row.leaf), filenode: Number(row.filenode), attachment: Number(row.attachment) });
  return leaves;
}

export interface AttachedLeaves {
  /** Readable by Sluice's role, holding a row now (probed), with their quoted names. */
  readonly held: { relid: number; name: string }[];
  /**
   * Not readable directly by Sluice's role (no SELECT on the partition, or no USAGE on its schema): PostgreSQL checks a
   * partition's own grants when it is named, those of the root when read through it. Not probed: read through the root.
   */
  readonly unreadable: { relid: number; name: string }[];
}

/**
 * Partitions probed per statement. A statement keeps a lock on every partition it names until it ends: one statement
 * for thousands of partitions ran out of the server's shared lock table (`out of shared memory`, which other sessions
 * on the source then meet too) at ~7,000 on PostgreSQL 15 with its defaults, and past its stack depth at ~8,000.
 */
export const PARTITION_PROBE_CHUNK = 150;

/** The probe statements for these readable partitions, at most `chunk` per statement: each returns the relids of those holding a row. */
export function partitionProbes(readable: readonly { relid: number; name: string }[], chunk: number = PARTITION_PROBE_CHUNK): string[] {
  if (!Number.isInteger(chunk) || chunk < 1) throw new RangeError(`partition probe chunk must be a positive integer, got ${chunk}`);
  const statements: string[] = [];
  for (let start = 0; start < readable.length; start += chunk) {
    statements.push(
      readable
        .slice(start, start + chunk)
        .map((leaf) => `SELECT ${leaf.relid}::int8 AS relid WHERE EXISTS (SELECT 1 FROM ONLY ${leaf.name})`)
        .join(" UNION ALL "),
    );
  }
  return statements;
}

/**
 * Of the leaf partitions given (gone ones left out), those readable directly that hold a row, and those not readable
 * directly. One catalog query, then one probe per `probeChunk` readable partitions (each statement its own
 * transaction on an autocommit connection, so its locks end with it).
 */
export async function attachedLeaves(db: Queryable, leaves: readonly number[], probeChunk: number = PARTITION_PROBE_CHUNK): Promise<AttachedLeaves> {
  const readable: { relid: number; name: string }[] = [];
  const unreadable: { relid: number; name: string }[] = [];
  if (leaves.length === 0) return { held: [], unreadable };
  const found = await db.query<{ relid: string; schema: string; name: string; readable: string }>(
    `SELECT c.oid::int8 AS relid, n.nspname AS schema, c.relname AS name, ${READABLE_DIRECTLY_SQL} AS readable
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = ANY($1::oid[])`,
    [leaves],
  );
  const byRelid = new Map(found.rows.map((row) => [Number(row.relid), row]));
  for (const relid of leaves) {
    const row = byRelid.get(relid);
    if (row === undefined) continue;
    const leaf = { relid, name: `${quoteIdent(row.schema)}.${quoteIdent(row.name)}` };
    (row.readable === "true" ? readable : unreadable).push(leaf);
  }
  if (readable.length === 0) return { held: [], unreadable };
  const holding = new Set<number>();
  for (const statement of partitionProbes(readable, probeChunk)) {
    const probe = await db.query<{ relid: string }>(statement);
    for (const row of probe.rows) holding.add(Number(row.relid));
  }
  return { held: readable.filter((leaf) => holding.has(leaf.relid)), unreadable };
}

export async function listTables(db: Queryable, matches: TableMatcher): Promise<TableRef[]> {
  const result = await db.query<Record<string, string>>(`
    SELECT c.oid::int8 AS relid, n.nspname AS schema, c.relname AS table, c.relkind AS kind, c.reltuples::float8 AS estimated_rows
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
       AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'
     ORDER BY n.nspname, c.relname`);
  return result.rows
    .filter((row) => matches(row["schema"]!, row["table"]!))
    .map((row) => ({
      relid: Number(row["relid"]),
      schema: row["schema"]!,
      table: row["table"]!,
      kind: row["kind"]!,
      estimatedRows: Number(row["estimated_rows"]),
    }));
}

export interface RelationInfo {
  readonly schema: string;
  readonly table: string;
  readonly kind: string;
  readonly replicaIdentity: string;
  readonly estimatedRows: number;
  /** Attribute numbers of the primary key, in key order. */
  readonly primaryKey: readonly number[] | null;
  /** Attribute numbers of the replica identity index (REPLICA IDENTITY USING INDEX). */
  readonly identityIndex: readonly number[] | null;
}

function attnums(indkey: string | null | undefined): number[] | null {
  return indkey == null ? null : indkey.trim().split(/\s+/).map(Number);
}

export async function relationInfo(db: Queryable, relid: number): Promise<RelationInfo | null> {
  const result = await db.query<Record<string, string | null>>(
    `SELECT n.nspname AS schema, c.relname AS table, c.relkind AS kind, c.relreplident AS replica_identity,
            c.reltuples::float8 AS estimated_rows,
            (SELECT i.indkey::text FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary LIMIT 1) AS primary_key,
            (SELECT i.indkey::text FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident LIMIT 1) AS identity_index
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.oid = $1`,
    [relid],
  );
  const row = result.rows[0];
  if (row === undefined) return null;
  return {
    schema: row["schema"]!,
    table: row["table"]!,
    kind: row["kind"]!,
    replicaIdentity: row["replica_identity"]!,
    estimatedRows: Number(row["estimated_rows"]),
    primaryKey: attnums(row["primary_key"]),
    identityIndex: attnums(row["identity_index"]),
  };
}

export interface AttributeInfo {
  readonly number: number;
  readonly name: string;
  readonly typeOid: number;
  readonly typeModifier: number;
  readonly notNull: boolean;
  readonly defaultExpression: string | null;
  readonly generated: boolean;
  /** An identity column (GENERATED ... AS IDENTITY): added to a table, it fills the rows already there from its sequence, with no default entry. */
  readonly identity?: boolean;
  /** format_type of the declared type: usable in casts. */
  readonly sqlType: string;
}

/**
 * A catalog read lock_timeout ended (55P03), naming the table: another session holds or waits for a lock on it. Keeps
 * the SQLSTATE, so that it is retried as an outage (pg-errors.ts).
 */
export class CatalogLockTimeout extends Error {
  readonly code = "55P03";

  constructor(what: string, table: string, cause: Error) {
    super(
      `${what} ${table}: ${cause.message}: another session holds or waits for a lock on the table, e.g. an ALTER TABLE waiting behind a long transaction (pg_stat_activity: wait_event_type 'Lock'); tried again`,
      { cause },
    );
  }
}

async function namingLockTimeout(db: Queryable, error: unknown, relid: number, what: string): Promise<unknown> {
  if ((error as { code?: unknown } | null)?.code !== "55P03" || !(error instanceof Error)) return error;
  // regclass output reads the catalog only: it takes no lock on the table.
  const named = await db.query<{ name: string }>("SELECT $1::oid::regclass::text AS name", [relid]).then(
    (r) => r.rows[0]?.name,
    () => undefined,
  );
  return new CatalogLockTimeout(what, named ?? `relation ${relid}`, error);
}

export async function attributes(db: Queryable, relid: number): Promise<AttributeInfo[]> {
  const result = await db.query<Record<string, string | null>>(
    `SELECT a.attnum AS number, a.attname AS name, a.atttypid::int8 AS type_oid, a.atttypmod AS type_modifier,
            a.attnotnull AS not_null, pg_get_expr(d.adbin, d.adrelid) AS default_expression,
            a.attgenerated <> '' AS generated, a.attidentity <> '' AS identity, format_type(a.atttypid, a.atttypmod) AS sql_type
       FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
      WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
      ORDER BY a.attnum`,
    [relid],
  ).catch(async (error: unknown) => {
    throw await namingLockTimeout(db, error, relid, "reading the columns of");
  });
  return result.rows.map((row) => ({
    number: Number(row["number"]),
    name: row["name"]!,
    typeOid: Number(row["type_oid"]),
    typeModifier: Number(row["type_modifier"]),
    notNull: row["not_null"] === "t",
    defaultExpression: row["default_expression"] ?? null,
    generated: row["generated"] === "t",
    identity: row["identity"] === "t",
    sqlType: row["sql_type"]!,
  }));
}

/** Resolves TypeCatalog name targets to format_type() strings in one round trip. */
/** Relations' names and columns (attnum, name, type as pgoutput sends them), with where the server's WAL was when they were read. */
export interface RelationsNow {
  /** At or past the commit of every change the read saw (the replay position on a standby). */
  readonly lsn: bigint;
  readonly relations: ReadonlyMap<number, { readonly schema: string; readonly table: string; readonly columns: { readonly number: number; readonly name: string; readonly typeOid: number; readonly typeModifier: number }[] }>;
}

/** One statement: the WAL position is taken after its snapshot, so no change it saw committed above it. */
export async function relationsNow(db: Queryable, relids: readonly number[], serverVersion: number): Promise<RelationsNow> {
  const generated = serverVersion >= 120000 ? "AND a.attgenerated = ''" : "";
  const result = await db.query<Record<string, string | null>>(
    `SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text AS lsn,
            c.oid::int8::text AS relid, n.nspname AS schema, c.relname AS table,
            a.attnum::text AS number, a.attname AS name, a.atttypid::int8::text AS type_oid, a.atttypmod::text AS type_modifier
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ${generated}
      WHERE c.oid = ANY($1::oid[])
      ORDER BY c.oid, a.attnum`,
    [relids.map(String)],
  );
  const relations = new Map<number, { schema: string; table: string; columns: { number: number; name: string; typeOid: number; typeModifier: number }[] }>();
  for (const row of result.rows) {
    const relid = Number(row["relid"]);
    let relation = relations.get(relid);
    if (relation === undefined) {
      relation = { schema: row["schema"]!, table: row["table"]!, columns: [] };
      relations.set(relid, relation);
    }
    if (row["number"] != null) relation.columns.push({ number: Number(row["number"]), name: row["name"]!, typeOid: Number(row["type_oid"]), typeModifier: Number(row["type_modifier"]) });
  }
  const lsn = result.rows[0]?.["lsn"];
  return { lsn: lsn == null ? 0n : parseLsn(lsn), relations };
}

export async function typeNames(db: Queryable, targets: readonly TypeNameTarget[]): Promise<string[]> {
  const formatted = targets.filter((t): t is Extract<TypeNameTarget, { format: unknown }> => "format" in t);
  let names: string[] = [];
  if (formatted.length > 0) {
    const result = await db.query<{ name: string }>(
      "SELECT format_type(u.t, u.m) AS name FROM unnest($1::oid[], $2::int4[]) WITH ORDINALITY AS u(t, m, i) ORDER BY u.i",
      [formatted.map((t) => t.format.oid), formatted.map((t) => t.format.modifier)],
    );
    names = result.rows.map((row) => row.name);
  }
  let next = 0;
  return targets.map((target) => ("fixed" in target ? target.fixed : `${names[next++]!}${target.suffix}`));
}

export async function loadTypeCatalog(db: Queryable): Promise<TypeCatalog> {
  const result = await db.query<Record<string, unknown>>(TYPE_CATALOG_SQL);
  return new TypeCatalog(result.rows.map(typeRowFromSql));
}

export interface PublicationInfo {
  readonly allTables: boolean;
  readonly viaRoot: boolean;
}

export async function publicationInfo(db: Queryable, name: string): Promise<PublicationInfo | null> {
  const result = await db.query<Record<string, string>>(
    "SELECT puballtables AS all_tables, pubviaroot AS via_root FROM pg_publication WHERE pubname = $1",
    [name],
  );
  const row = result.rows[0];
  return row === undefined ? null : { allTables: row["all_tables"] === "t", viaRoot: row["via_root"] === "t" };
}

export interface PublishedTable {
  readonly schema: string;
  readonly table: string;
  /** Published columns when the publication has a column list (PostgreSQL 15+). */
  readonly columns: readonly string[] | null;
  /** The publication's row filter (PostgreSQL 15+). */
  readonly rowFilter: string | null;
}

export async function publishedTables(db: Queryable, publication: string, serverVersion: number): Promise<PublishedTable[]> {
  const extra = serverVersion >= 150000 ? ", attnames::text[] AS columns, rowfilter AS row_filter" : ", NULL::text[] AS columns, NULL AS row_filter";
  const result = await db.query<Record<string, string | null>>(
    `SELECT schemaname AS schema, tablename AS table${extra} FROM pg_publication_tables WHERE pubname = $1`,
    [publication],
  );
  return result.rows.map((row) => ({
    schema: row["schema"]!,
    table: row["table"]!,
    columns: row["columns"] == null ? null : parsePgTextArray(row["columns"]),
    rowFilter: row["row_filter"] ?? null,
  }));
}

function parsePgTextArray(text: string): string[] {
  const inner = text.slice(1, -1);
  if (inner === "") return [];
  const items: string[] = [];
  const pattern = /"((?:[^"\\]|\\.)*)"|([^,]+)/g;
  for (const match of inner.matchAll(pattern)) items.push(match[1] !== undefined ? match[1].replace(/\\(.)/g, "$1") : match[2]!);
  return items;
}

export interface SlotInfo {
  readonly plugin: string | null;
  readonly slotType: string;
  readonly database: string | null;
  readonly active: boolean;
  readonly activePid: number | null;
  readonly restartLsn: bigint | null;
  readonly confirmedFlushLsn: bigint | null;
  /** reserved, extended, unreserved or lost (PostgreSQL 13+). */
  readonly walStatus: string | null;
}

export async function slotInfo(db: Queryable, slot: string): Promise<SlotInfo | null> {
  const result = await db.query<Record<string, string | null>>(
    `SELECT plugin, slot_type, database, active, active_pid, restart_lsn::text AS restart_lsn,
            confirmed_flush_lsn::text AS confirmed_flush_lsn, wal_status
       FROM pg_replication_slots WHERE slot_name = $1`,
    [slot],
  );
  const row = result.rows[0];
  if (row === undefined) return null;
  return {
    plugin: row["plugin"] ?? null,
    slotType: row["slot_type"]!,
    database: row["database"] ?? null,
    active: row["active"] === "t",
    activePid: row["active_pid"] == null ? null : Number(row["active_pid"]),
    restartLsn: row["restart_lsn"] == null ? null : parseLsn(row["restart_lsn"]),
    confirmedFlushLsn: row["confirmed_flush_lsn"] == null ? null : parseLsn(row["confirmed_flush_lsn"]),
    walStatus: row["wal_status"] ?? null,
  };
}

export interface ServerInfo {
  readonly version: number;
  readonly walLevel: string;
  readonly database: string;
  /** wal_sender_timeout in milliseconds; 0 disables it. */
  readonly walSenderTimeoutMs: number;
}

export async function serverInfo(db: Queryable): Promise<ServerInfo> {
  const result = await db.query<Record<string, string>>(
    `SELECT current_setting('server_version_num') AS version, current_setting('wal_level') AS wal_level, current_database() AS database,
            (SELECT setting FROM pg_settings WHERE name = 'wal_sender_timeout') AS wal_sender_timeout`,
  );
  const row = result.rows[0]!;
  return {
    version: Number(row["version"]),
    walLevel: row["wal_level"]!,
    database: row["database"]!,
    walSenderTimeoutMs: Number(row["wal_sender_timeout"] ?? 60_000),
  };
}

export interface SlotLag {
  /** Current WAL position minus the slot's confirmed_flush_lsn. */
  readonly lagBytes: number;
  /** Current WAL position minus the slot's restart_lsn: WAL the slot keeps on the server. */
  readonly retainedBytes: number;
}

export async function slotLag(db: Queryable, slot: string): Promise<SlotLag | null> {
  const result = await db.query<Record<string, string | null>>(
    `SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::int8 AS lag,
            pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::int8 AS retained
       FROM pg_replication_slots WHERE slot_name = $1`,
    [slot],
  );
  const row = result.rows[0];
  if (row === undefined || row["lag"] == null || row["retained"] == null) return null;
  // confirmed_flush_lsn is one past the last commit, so an idle slot would read -1.
  return { lagBytes: Math.max(0, Number(row["lag"])), retainedBytes: Math.max(0, Number(row["retained"])) };
}
