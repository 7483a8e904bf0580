/**
 * Whether the server's binlog at a checkpoint's coordinate is still the binlog the checkpoint was
 * taken on. A binlog reset (RESET MASTER) numbers files from 1 again and, on MariaDB, GTIDs from
 * the domain's start: once the new binlog has grown past the checkpoint's file and GTID sequence,
 * the coordinate and the GTID both exist again, in another history, and resuming there would skip
 * the new binlog's first transactions without a word. MariaDB tells: BINLOG_GTID_POS of the
 * coordinate is the GTID state before it, which must be the checkpoint's (null when no event
 * starts there). MySQL has no such function; there only a file beyond the server's newest tells.
 */
import { mariadbGtidAtEvent } from "./catalog.ts";
import type { Sql } from "./catalog.ts";
import { MariadbGtidPosition } from "./gtid.ts";
import type { ResumeToken } from "./resume-token.ts";

/**
 * Why the binlog at the token's coordinate is another history than the token's, or null when it is
 * the same (or cannot be told). `readState`: the GTID state before a coordinate read another way, for
 * a null of BINLOG_GTID_POS, which the server also gives past an event larger than max_allowed_packet
 * (gtid-state-dump.ts).
 */
export async function binlogResetProblem(
  sql: Sql,
  token: Pick<ResumeToken, "flavor" | "file" | "offset" | "gtid">,
  readState?: (file: string, offset: number) => Promise<string | null>,
): Promise<string | null> {
  if (token.flavor !== "mariadb" || token.gtid === null || token.gtid === "") return null;
  const there = (await mariadbGtidAtEvent(sql, token.file, token.offset)) ?? (readState === undefined ? null : await readState(token.file, token.offset));
  const at = `${token.file}:${token.offset}`;
  if (there === null) return `no event of the server's binlog starts at ${at}, where the checkpoint resumes (GTID ${token.gtid})`;
  const expected = MariadbGtidPosition.parse(token.gtid).toString();
  const found = MariadbGtidPosition.parse(there).toString();
  return found === expected ? null : `the server's binlog at ${at} follows GTID ${found || "(none)"}, the checkpoint's followed GTID ${expected}`;
}
