/**
 * The operations a publication publishes (pg_publication.pubinsert ... pubtruncate). Sluice creates its publication
 * with all four; `ALTER PUBLICATION ... SET (publish = 'insert')` (by hand, by a migration tool) makes pgoutput drop
 * every update and delete from then on without a word, so the sinks keep rows the source changed or deleted.
 */
import { quoteIdent } from "./connection-settings.ts";

export const PUBLISHED_ACTIONS = ["insert", "update", "delete", "truncate"] as const;
export type PublishedAction = (typeof PUBLISHED_ACTIONS)[number];

interface Queryable {
  query<Row extends Record<string, unknown>>(text: string, values?: unknown[]): Promise<{ rows: Row[] }>;
}

/** The operations `publication` does not publish, in PUBLISHED_ACTIONS order; null when there is no such publication. */
export async function unpublishedActions(db: Queryable, publication: string): Promise<PublishedAction[] | null> {
  const result = await db.query<Record<string, boolean | string>>(
    "SELECT pubinsert AS insert, pubupdate AS update, pubdelete AS delete, pubtruncate AS truncate FROM pg_publication WHERE pubname = $1",
    [publication],
  );
  const row = result.rows[0];
  if (row === undefined) return null;
  return PUBLISHED_ACTIONS.filter((action) => row[action] !== true && row[action] !== "t");
}

/** Makes `publication` publish every operation again, as Sluice creates it. */
export function publishAllStatement(publication: string): string {
  return `ALTER PUBLICATION ${quoteIdent(publication)} SET (publish = '${PUBLISHED_ACTIONS.join(", ")}')`;
}
