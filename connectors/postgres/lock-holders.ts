/**
 * Who holds up a statement that ran into the catalog connection's lock_timeout on some tables: the sessions holding a
 * lock on them that conflicts with SHARE UPDATE EXCLUSIVE (what CREATE/ALTER PUBLICATION ... TABLE takes), and those
 * queued ahead waiting for one, with what they wait behind. pg_locks is readable by any role; another role's session
 * shows its user and application name only to a member of pg_read_all_stats (its query text is never given here).
 */
import type pg from "pg";

type Queryable = Pick<pg.Client, "query">;

const CONFLICTING = ["ShareUpdateExclusiveLock", "ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock"];

interface LockRow {
  pid: number | string;
  mode: string;
  granted: boolean | string;
  usename: string | null;
  application_name: string | null;
  xact_seconds: number | string | null;
  relation: string;
  behind: string | number[] | null;
}

/** "pid 123 (user u, application "a", in a transaction for 45 s) holds ShareUpdateExclusiveLock on s.t; ..." or null when none is seen. */
export async function describeLockHolders(db: Queryable, relids: readonly number[]): Promise<string | null> {
  const result = await db.query<LockRow>(
    `SELECT l.pid, l.mode, l.granted, a.usename, a.application_name,
            floor(extract(epoch FROM now() - a.xact_start))::int8 AS xact_seconds,
            format('%s.%s', n.nspname, c.relname) AS relation,
            CASE WHEN l.granted THEN NULL ELSE pg_blocking_pids(l.pid) END AS behind
       FROM pg_locks l
       JOIN pg_class c ON c.oid = l.relation
       JOIN pg_namespace n ON n.oid = c.relnamespace
       LEFT JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'relation' AND l.relation = ANY($1::oid[]) AND l.pid <> pg_backend_pid() AND l.mode = ANY($2::text[])
      ORDER BY l.granted DESC, a.xact_start NULLS LAST
      LIMIT 5`,
    [relids, CONFLICTING],
  );
  if (result.rows.length === 0) return null;
  return result.rows
    .map((row) => {
      const who = [row.usename === null ? null : `user ${row.usename}`, row.application_name ? `application "${row.application_name}"` : null, row.xact_seconds === null ? null : `in a transaction for ${row.xact_seconds} s`].filter((part) => part !== null);
      const session = `pid ${row.pid}${who.length > 0 ? ` (${who.join(", ")})` : ""}`;
      const granted = row.granted === true || row.granted === "t";
      if (granted) return `${session} holds ${row.mode} on ${row.relation}`;
      const behind = blockingPids(row.behind);
      return `${session} waits for ${row.mode} on ${row.relation}${behind.length > 0 ? ` behind pid ${behind.join(", ")}` : ""}`;
    })
    .join("; ");
}

/** pg_blocking_pids as pg gives it: an int array, or its text form "{1,2}" with the text type parser. */
function blockingPids(value: LockRow["behind"]): string[] {
  if (value === null) return [];
  if (Array.isArray(value)) return value.map(String);
  return value.replace(/[{}]/g, "").split(",").filter((pid) => pid !== "");
}
