/**
 * Checks at start that the user Sluice logs in as can do what capture needs, and says exactly
 * which grant is missing on what: REPLICATION CLIENT (binlog positions: SHOW MASTER STATUS /
 * SHOW BINARY LOGS; BINLOG MONITOR on MariaDB 10.5+), REPLICATION SLAVE (the binlog dump) and
 * SELECT on the captured tables (snapshot, table definitions). A table without any privilege is
 * invisible in information_schema, so SELECT is probed for each database and table that the
 * configured patterns name literally.
 */
import { SluiceError } from "../errors.ts";
import type { ErrorContext } from "../errors.ts";
import type { Row, Sql } from "./catalog.ts";
import { includingPatterns, tableMatcher } from "../common/table-patterns.ts";
import { quoteIdentifier } from "./connection-settings.ts";
import type { Flavor } from "./resume-token.ts";

/** Server error numbers of a missing privilege. */
const ACCESS_DENIED = new Set([1044, 1142, 1143, 1227]);

function errno(error: unknown): number | undefined {
  const value = (error as { errno?: unknown } | null)?.errno;
  return typeof value === "number" ? value : undefined;
}

function firstValue(row: Row | undefined): string {
  return row === undefined ? "" : String(Object.values(row)[0] ?? "");
}

export async function checkPrivileges(sql: Sql, patterns: readonly string[], flavor: Flavor, context: ErrorContext): Promise<void> {
  const current = firstValue((await sql.rows("SELECT CURRENT_USER()"))[0]);
  const at = current.lastIndexOf("@");
  const account = at < 0 ? `'${current}'` : `'${current.slice(0, at)}'@'${current.slice(at + 1)}'`;
  const missing = (message: string, grant: string, on: string, cause?: unknown): SluiceError =>
    new SluiceError(`user ${account} ${message}: GRANT ${grant} ON ${on} TO ${account}`, {
      code: "MYSQL_PRIVILEGE_MISSING",
      retriable: false,
      cause,
      context: { ...context, user: current, grant, on },
    });

  try {
    await sql.rows(flavor === "mysql" ? "SHOW BINARY LOGS" : "SHOW MASTER STATUS");
  } catch (error) {
    if (!ACCESS_DENIED.has(errno(error) ?? 0)) throw error;
    const alias = flavor === "mariadb" ? " (BINLOG MONITOR on MariaDB 10.5+)" : "";
    throw missing(`lacks REPLICATION CLIENT${alias}, needed to read binlog positions`, "REPLICATION CLIENT", "*.*", error);
  }

  if (!(await mayReplicate(sql))) throw missing("lacks REPLICATION SLAVE, needed to read the binlog", "REPLICATION SLAVE", "*.*");

  const captured = tableMatcher(patterns);
  for (const pattern of includingPatterns(patterns)) {
    const dot = pattern.indexOf(".");
    const database = pattern.slice(0, dot);
    const table = pattern.slice(dot + 1);
    if (/[*?]/.test(database)) continue;
    const literalTable = !/[*?]/.test(table);
    // Any table name serves to probe the database: privileges are checked before existence.
    const probe = `${quoteIdentifier(database)}.${quoteIdentifier(literalTable ? table : "sluice_select_check")}`;
    const denied = await selectDenied(sql, probe);
    if (denied === null) continue;
    if (literalTable) throw missing(`lacks SELECT on captured table ${probe}`, "SELECT", probe, denied);
    // Grants table by table: the database-wide probe fails, so check each table the user can see.
    const visible = await sql.rows("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?", [database]);
    const tables = visible.map(firstValue).filter((name) => tableMatcher([pattern])(database, name) && captured(database, name));
    if (tables.length === 0) {
      const on = `${quoteIdentifier(database)}.*`;
      throw missing(`lacks SELECT on the captured database ${on}`, "SELECT", on, denied);
    }
    for (const name of tables) {
      const target = `${quoteIdentifier(database)}.${quoteIdentifier(name)}`;
      const refused = await selectDenied(sql, target);
      if (refused !== null) throw missing(`lacks SELECT on captured table ${target}`, "SELECT", target, refused);
    }
  }
}

/** The server's refusal of SELECT on `target`, or null when allowed or when it does not exist (yet). */
async function selectDenied(sql: Sql, target: string): Promise<unknown> {
  try {
    await sql.rows(`SELECT 1 FROM ${target} LIMIT 0`);
    return null;
  } catch (error) {
    if (!ACCESS_DENIED.has(errno(error) ?? 0)) return null;
    return error;
  }
}

/**
 * Whether SHOW GRANTS gives the current user REPLICATION SLAVE (or ALL PRIVILEGES) on *.*. No
 * harmless statement needs exactly that privilege; when roles are granted, their privileges may not
 * all show, so the answer is yes and the binlog connection reports a missing grant itself.
 */
async function mayReplicate(sql: Sql): Promise<boolean> {
  let grants: string[];
  try {
    grants = (await sql.rows("SHOW GRANTS")).map(firstValue);
  } catch {
    return true;
  }
  if (grants.some((g) => !/^GRANT .* ON /i.test(g) && /^GRANT /i.test(g))) return true; // a role is granted
  return grants.some((g) => /^GRANT (.*) ON \*\.\* TO/i.test(g) && /\b(ALL PRIVILEGES|REPLICATION SLAVE)\b/i.test(/^GRANT (.*) ON \*\.\* TO/i.exec(g)![1]!));
}
