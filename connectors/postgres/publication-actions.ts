/**
 * What a publication publishes besides its tables: the operations (pg_publication.pubinsert ... pubtruncate) and
 * whether partitions' changes go out under their root's name (pubviaroot). Sluice creates its publication with all
 * four operations, via the root. `ALTER PUBLICATION ... SET (publish = 'insert')` (by hand, by a migration tool) makes
 * pgoutput drop every update and delete from then on without a word; `SET (publish_via_partition_root = false)` sends
 * a partitioned table's changes under its partitions' names, which are not captured. Either way the sinks keep rows
 * the source changed or deleted.
 */
import { quoteIdent } from "./connection-settings.ts";

export const PUBLISHED_ACTIONS = ["insert", "update", "delete", "truncate"] as const;
export type PublishedAction = (typeof PUBLISHED_ACTIONS)[number];

interface Queryable {
  query<Row extends Record<string, unknown>>(text: string, values?: unknown[]): Promise<{ rows: Row[] }>;
}

export interface PublicationOptions {
  /** The operations it does not publish, in PUBLISHED_ACTIONS order. */
  readonly unpublished: readonly PublishedAction[];
  readonly viaRoot: boolean;
}

const isTrue = (value: unknown) => value === true || value === "t";

/** Null when there is no such publication. */
export async function publicationOptions(db: Queryable, publication: string): Promise<PublicationOptions | null> {
  const result = await db.query<Record<string, boolean | string>>(
    "SELECT pubinsert AS insert, pubupdate AS update, pubdelete AS delete, pubtruncate AS truncate, pubviaroot AS via_root FROM pg_publication WHERE pubname = $1",
    [publication],
  );
  const row = result.rows[0];
  if (row === undefined) return null;
  return { unpublished: PUBLISHED_ACTIONS.filter((action) => !isTrue(row[action])), viaRoot: isTrue(row["via_root"]) };
}

/** Makes `publication` publish every operation again (and via the root, with `viaRoot`), as Sluice creates it. */
export function restoreOptionsStatement(publication: string, viaRoot: boolean): string {
  return `ALTER PUBLICATION ${quoteIdent(publication)} SET (publish = '${PUBLISHED_ACTIONS.join(", ")}'${viaRoot ? ", publish_via_partition_root = true" : ""})`;
}

/**
 * What the publication's options keep from the stream: the operations it leaves out (every captured table's), and,
 * when it does not publish via the partition root (PostgreSQL 13+), the partitioned tables' changes, which then come
 * under their partitions' names. Null when it captures everything.
 */
export interface PublicationGap {
  readonly unpublished: readonly PublishedAction[];
  readonly viaRoot: boolean;
  /** The captured tables whose changes are (partly) not captured. */
  readonly tables: readonly string[];
}

interface CapturedTable {
  readonly schema: string;
  readonly table: string;
  /** pg_class.relkind: "p" for a partitioned table. */
  readonly kind?: string;
}

export function publicationGap(options: PublicationOptions, known: readonly CapturedTable[], serverVersion: number): PublicationGap | null {
  const partitioned = known.filter((t) => t.kind === "p");
  const rootOff = !options.viaRoot && partitioned.length > 0 && serverVersion >= 130000;
  if (options.unpublished.length === 0 && !rootOff) return null;
  const affected = options.unpublished.length > 0 ? known : partitioned;
  return { unpublished: options.unpublished, viaRoot: !rootOff, tables: affected.map((t) => `${t.schema}.${t.table}`) };
}

/** The same gap, as text: a look warns once for each. */
export function gapKey(gap: PublicationGap | null): string {
  return gap === null ? "" : JSON.stringify(gap);
}

/**
 * The warning for a gap: which changes are not captured, that it may be deliberate, and what to run when it is not.
 * Sluice does not change the publication: leaving out deletes or truncates is often meant (purged rows kept in a
 * warehouse), a DBA's tool may own its definition, a native subscriber may need it not via the root.
 */
const TABLES_NAMED = 5;

export function gapWarning(publication: string, gap: PublicationGap): string {
  const what = [
    ...(gap.unpublished.length > 0 ? [`does not publish ${gap.unpublished.join(", ")} (those changes of every captured table are not captured)`] : []),
    ...(gap.viaRoot ? [] : ["does not publish via the partition root (the partitioned tables' changes arrive under their partitions' names, which are not captured)"]),
  ].join(" and ");
  const named = gap.tables.slice(0, TABLES_NAMED).map((t) => `sluice snapshot -c CONFIG --table ${t} --execute`).join("; ");
  const snapshots = gap.tables.length > TABLES_NAMED ? `${named}; and so on for each of the ${gap.tables.length} tables (field tables)` : named;
  return (
    `publication "${publication}" ${what}: the sinks keep rows those changes would have updated or deleted. Sluice does not change the publication. ` +
    `If this is intended, nothing to do. If not, run ${restoreOptionsStatement(publication, !gap.viaRoot)}, then read the tables again: ${snapshots}`
  );
}

/**
 * The tables added to `publication` by name (pg_publication_rel). A partitioned table's membership is read here: when
 * the publication does not publish via the root, pg_publication_tables lists its partitions instead of it.
 */
/**
 * The publication's oid and, by relation id, the pg_publication_rel row that names each table in it. ALTER PUBLICATION
 * ... DROP TABLE then ADD TABLE gives the table a new row: between two looks that saw it in the publication, a changed
 * row means it was taken out and put back meanwhile, its changes in between never streamed.
 */
export async function publicationMemberships(db: Queryable, publication: string): Promise<{ publication: number; members: Map<number, number> } | null> {
  const result = await db.query<{ pub: number | string; relid: number | string | null; member: number | string | null }>(
    `SELECT p.oid::int8 AS pub, pr.prrelid::int8 AS relid, pr.oid::int8 AS member
       FROM pg_publication p LEFT JOIN pg_publication_rel pr ON pr.prpubid = p.oid
      WHERE p.pubname = $1`,
    [publication],
  );
  const first = result.rows[0];
  if (first === undefined) return null;
  const members = new Map<number, number>();
  for (const row of result.rows) if (row.relid !== null && row.member !== null) members.set(Number(row.relid), Number(row.member));
  return { publication: Number(first.pub), members };
}

export async function publicationMembers(db: Queryable, publication: string): Promise<Set<number>> {
  const result = await db.query<{ relid: number | string }>(
    "SELECT pr.prrelid::int8 AS relid FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid WHERE p.pubname = $1",
    [publication],
  );
  return new Set(result.rows.map((row) => Number(row.relid)));
}
