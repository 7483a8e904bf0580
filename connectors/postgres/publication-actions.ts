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
 * The tables added to `publication` by name (pg_publication_rel). A partitioned table's membership is read here: when
 * the publication does not publish via the root, pg_publication_tables lists its partitions instead of it.
 */
export async function publicationMembers(db: Queryable, publication: string): Promise<Set<number>> {
  const result = await db.query<{ relid: number | string }>(
    "SELECT pr.prrelid::int8 AS relid FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid WHERE p.pubname = $1",
    [publication],
  );
  return new Set(result.rows.map((row) => Number(row.relid)));
}
