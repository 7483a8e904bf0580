/**
 * Checks at start that the role Sluice logs in as can do what capture needs, and says exactly
 * which grant is missing on what: the REPLICATION attribute (replication connection, slot),
 * USAGE on each captured table's schema and SELECT on each captured table (snapshot, re-reading
 * unchanged TOAST values). Creating the publication needs more; see ensurePublication.
 */
import type pg from "pg";
import { SluiceError } from "../errors.ts";
import type { ErrorContext } from "../errors.ts";
import type { TableRef } from "./catalog.ts";
import { quoteIdent } from "./connection-settings.ts";

type Queryable = Pick<pg.Client, "query">;

/** SQL over pg_class `c`: whether Sluice's role has USAGE on c's schema, and SELECT on c. */
const SCHEMA_USAGE_SQL = "has_schema_privilege(c.relnamespace, 'USAGE')";
const TABLE_SELECT_SQL = "has_table_privilege(c.oid, 'SELECT')";

/**
 * SQL over pg_class `c`, 'true' or 'false' as text whatever the client's type parsers: whether Sluice's role may read c
 * directly (PostgreSQL checks a partition's own grants when it is named, those of the root when read through it).
 */
export const READABLE_DIRECTLY_SQL = `(${SCHEMA_USAGE_SQL} AND ${TABLE_SELECT_SQL})::text`;

export async function checkPrivileges(db: Queryable, tables: readonly TableRef[], context: ErrorContext): Promise<void> {
  // Sluice's connections read every value as text: booleans are "t" / "f".
  const role = await db.query<{ name: string; superuser: string; replication: string }>(
    "SELECT rolname AS name, rolsuper AS superuser, rolreplication AS replication FROM pg_roles WHERE rolname = current_user",
  );
  const row = role.rows[0];
  const name = row?.name ?? "?";
  const superuser = row?.superuser === "t";
  const replication = row?.replication === "t";
  const roleIdent = quoteIdent(name);
  if (!superuser && !replication) {
    throw missing(`role ${roleIdent} lacks the REPLICATION attribute, needed for the replication connection and its slot: ALTER ROLE ${roleIdent} REPLICATION`, { ...context, role: name, grant: "REPLICATION" });
  }
  if (superuser || tables.length === 0) return;
  const rows = await db.query<{ relid: string; usage: string; select: string }>(
    `SELECT c.oid::int8::text AS relid, ${SCHEMA_USAGE_SQL} AS usage, ${TABLE_SELECT_SQL} AS select FROM pg_class c WHERE c.oid = ANY($1::oid[])`,
    [tables.map((t) => t.relid)],
  );
  const byRelid = new Map(rows.rows.map((r) => [Number(r.relid), r]));
  const noUsage = [...new Set(tables.filter((t) => byRelid.get(t.relid)?.usage === "f").map((t) => t.schema))];
  if (noUsage.length > 0) {
    const schemas = noUsage.map(quoteIdent).join(", ");
    throw missing(`role ${roleIdent} lacks USAGE on schema ${schemas} of captured tables: GRANT USAGE ON SCHEMA ${schemas} TO ${roleIdent}`, {
      ...context,
      role: name,
      grant: "USAGE",
      schema: noUsage.join(", "),
    });
  }
  const noSelect = tables.filter((t) => byRelid.get(t.relid)?.select === "f").map((t) => `${quoteIdent(t.schema)}.${quoteIdent(t.table)}`);
  if (noSelect.length > 0) {
    throw missing(`role ${roleIdent} lacks SELECT on captured table${noSelect.length > 1 ? "s" : ""} ${noSelect.join(", ")}: GRANT SELECT ON ${noSelect.join(", ")} TO ${roleIdent}`, {
      ...context,
      role: name,
      grant: "SELECT",
      table: noSelect.join(", "),
    });
  }
}

function missing(message: string, context: ErrorContext): SluiceError {
  return new SluiceError(message, { code: "PG_PRIVILEGE_MISSING", retriable: false, context });
}
