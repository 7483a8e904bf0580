/**
 * Who a new logical replication slot waits for. CREATE_REPLICATION_SLOT returns only once every transaction that had a
 * transaction id when it began has ended: a session left idle in a transaction that wrote, or a prepared transaction
 * nobody committed (two-phase commit of a transaction manager that died), holds it, and the start with it, for as long
 * as it lasts. The server says nothing about it; these are the transactions an operator has to end.
 */
import type pg from "pg";

type Queryable = Pick<pg.Client, "query">;

interface SessionRow {
  pid: number | string;
  usename: string | null;
  application_name: string | null;
  state: string | null;
  xact_seconds: number | string | null;
}

interface PreparedRow {
  gid: string;
  owner: string | null;
  database: string | null;
  prepared_seconds: number | string | null;
}

/** How many of each kind are named: the oldest ones, which are the ones the slot waits for longest. */
const LISTED = 5;

/**
 * "pid 123 (user u, application "psql", idle in transaction, in a transaction for 45 s); prepared transaction "gid"
 * (owner u, database d, prepared 300 s ago)", oldest first, or null when none is seen: sessions with a transaction id
 * whose transaction began before the slot's creation did (`waitedSeconds` ago), and every prepared transaction (its
 * id may predate the creation though it was prepared after). Sessions of other roles show their user and application
 * only to a member of pg_read_all_stats; a prepared transaction shows in every database of the server.
 */
export async function describeSlotWaits(db: Queryable, waitedSeconds: number): Promise<string | null> {
  const sessions = await db.query<SessionRow>(
    `SELECT pid, usename, application_name, state, floor(extract(epoch FROM now() - xact_start))::int8 AS xact_seconds
       FROM pg_stat_activity
      WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid() AND backend_type = 'client backend'
        AND xact_start <= now() - make_interval(secs => $1)
      ORDER BY xact_start
      LIMIT ${LISTED}`,
    [waitedSeconds],
  );
  const prepared = await db.query<PreparedRow>(
    `SELECT gid, owner::text AS owner, database::text AS database, floor(extract(epoch FROM now() - prepared))::int8 AS prepared_seconds
       FROM pg_prepared_xacts
      ORDER BY prepared
      LIMIT ${LISTED}`,
  );
  const described = [
    ...sessions.rows.map((row) => {
      const parts = [
        row.usename === null ? null : `user ${row.usename}`,
        row.application_name ? `application "${row.application_name}"` : null,
        row.state,
        row.xact_seconds === null ? null : `in a transaction for ${row.xact_seconds} s`,
      ].filter((part) => part !== null);
      return `pid ${row.pid}${parts.length > 0 ? ` (${parts.join(", ")})` : ""}`;
    }),
    ...prepared.rows.map((row) => {
      const parts = [row.owner === null ? null : `owner ${row.owner}`, row.database === null ? null : `database ${row.database}`, row.prepared_seconds === null ? null : `prepared ${row.prepared_seconds} s ago`].filter(
        (part) => part !== null,
      );
      return `prepared transaction ${JSON.stringify(row.gid)}${parts.length > 0 ? ` (${parts.join(", ")})` : ""}`;
    }),
  ];
  return described.length === 0 ? null : described.join("; ");
}
