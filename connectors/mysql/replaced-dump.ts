/**
 * A new binlog stream ends the dump thread it replaces (the same server_id) when that thread cannot
 * end by itself.
 *
 * MariaDB marks the dump thread of a replica killed when another replica with the same server_id
 * asks for the binlog, and the new dump waits (state "starting") until the old thread has exited.
 * A thread blocked writing to a replica that reads nothing (a frozen or cut-off capture leader whose
 * socket is full) sees the mark only when its write times out, after the server's net_write_timeout
 * (60 s by default): a standby that took the capture lease from such a leader sent nothing for that
 * long. KILL CONNECTION shuts the thread's socket down, which ends the blocked write at once. Only
 * the user's own dump threads are looked at (a user may always end its own connections), and only
 * those that were dumps before the new stream asked and are marked killed once it has.
 */
import type { Logger } from "pino";
import { sleep } from "../../runtime/backoff.ts";
import type { Sql } from "./catalog.ts";

/** How often the new stream looks for the thread it replaced, until its first event arrives. */
const CHECK_INTERVAL_MS = 200;
/** A dump the server has not marked killed by then was not replaced by this stream. */
const MAX_CHECKS = 50;

/**
 * The binlog dump threads of this session's user now: the ones a stream asking after this may
 * replace. Those already marked killed without a statement are dumps too (a killed query shows its
 * text): one that an earlier attempt of this capture replaced before it failed still holds the next.
 */
export async function userDumpThreads(sql: Sql): Promise<number[]> {
  const rows = await sql.rows(
    "SELECT ID AS id FROM information_schema.PROCESSLIST WHERE (COMMAND = 'Binlog Dump' OR (COMMAND = 'Killed' AND INFO IS NULL)) AND USER = SUBSTRING_INDEX(USER(), '@', 1) AND ID <> CONNECTION_ID()",
  );
  return rows.map((row) => Number(row["id"]));
}

export interface ReplacedDumpWatch {
  readonly sql: Sql;
  /** What userDumpThreads returned before the stream asked for the binlog. */
  readonly before: readonly number[];
  /** True once the new stream receives events (the server started its dump), or it ended. */
  readonly done: () => boolean;
  readonly logger: Logger;
  readonly serverId: number;
}

/**
 * Ends the threads of `before` that the server marked killed for the new stream, until that stream
 * receives its first event or a bounded number of checks found none; returns the ids ended. Failing
 * queries are left alone: the old thread still ends by itself at its write timeout.
 */
export async function endReplacedDumps(watch: ReplacedDumpWatch): Promise<number[]> {
  const { sql, before, done, logger, serverId } = watch;
  if (before.length === 0) return [];
  const ended: number[] = [];
  try {
    for (let check = 0; check < MAX_CHECKS && !done(); check++) {
      const rows = await sql.rows(`SELECT ID AS id, STATE AS state FROM information_schema.PROCESSLIST WHERE COMMAND = 'Killed' AND ID IN (${before.map(Number).join(", ")})`);
      for (const row of rows) {
        const id = Number(row["id"]);
        if (ended.includes(id)) continue;
        await sql.rows(`KILL CONNECTION ${id}`).catch(() => undefined);
        ended.push(id);
        logger.warn(
          { thread: id, state: row["state"], serverId },
          "ended the binlog dump thread this stream replaces (same server_id): it could not end by itself (a former capture leader that reads nothing, e.g. frozen or cut off), and the server starts the new dump only once it has",
        );
      }
      if (ended.length === before.length) break;
      await sleep(CHECK_INTERVAL_MS);
    }
  } catch (error) {
    logger.warn({ err: error instanceof Error ? error.message : String(error), serverId }, "could not look for the binlog dump thread this stream replaces; the server ends it at its write timeout");
  }
  return ended;
}
