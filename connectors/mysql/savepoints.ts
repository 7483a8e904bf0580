/**
 * A transaction's savepoints as the binlog shows them: SAVEPOINT, ROLLBACK TO and RELEASE SAVEPOINT query events
 * inside it. MariaDB and MySQL log them only when the transaction also wrote a non-transactional table (otherwise
 * a ROLLBACK TO cuts the changes it undoes from the transaction's binlog cache); then the changes the ROLLBACK TO
 * undid stay in the binlog before it, and only a replica's replay undoes them again.
 */

export interface Savepoint {
  /** Lower case: savepoint names are not case-sensitive. */
  readonly name: string;
  /** The captured tables ("db.table") changed since it was set. */
  readonly tables: Set<string>;
}

export type SavepointStatement = { readonly kind: "set" | "rollback" | "release"; readonly name: string };

const NAME = "(`(?:[^`]|``)+`|[^\\s;`]+)";
const SET = new RegExp(`^SAVEPOINT\\s+${NAME}\\s*;?\\s*$`, "i");
const ROLLBACK = new RegExp(`^ROLLBACK\\s+(?:WORK\\s+)?TO\\s+(?:SAVEPOINT\\s+)?${NAME}\\s*;?\\s*$`, "i");
const RELEASE = new RegExp(`^RELEASE\\s+SAVEPOINT\\s+${NAME}\\s*;?\\s*$`, "i");

function unquoted(name: string): string {
  return (name.startsWith("`") ? name.slice(1, -1).replaceAll("``", "`") : name).toLowerCase();
}

/** The savepoint statement a query event holds, or null for any other. */
export function savepointStatement(statement: string): SavepointStatement | null {
  const text = statement.replace(/\/\*.*?\*\//gs, " ").trim();
  for (const [kind, pattern] of [["set", SET], ["rollback", ROLLBACK], ["release", RELEASE]] as const) {
    const match = pattern.exec(text);
    if (match !== null) return { kind, name: unquoted(match[1]!) };
  }
  return null;
}

/** SAVEPOINT (a name set again moves to the end) and RELEASE SAVEPOINT (it and every later one go). */
export function applySavepoint(savepoints: Savepoint[], statement: SavepointStatement): void {
  const index = savepoints.findIndex((s) => s.name === statement.name);
  if (statement.kind === "set") {
    if (index >= 0) savepoints.splice(index, 1);
    savepoints.push({ name: statement.name, tables: new Set() });
  } else if (statement.kind === "release" && index >= 0) savepoints.splice(index);
}

/**
 * ROLLBACK TO: the captured tables changed since the savepoint, which stays (with nothing changed since) while every
 * later one goes. A savepoint not known (set before decoding began in this transaction) counts every table the
 * transaction changed (`changed`).
 */
export function rollBackToSavepoint(savepoints: Savepoint[], name: string, changed: readonly string[]): string[] {
  const index = savepoints.findIndex((s) => s.name === name);
  if (index < 0) return [...changed];
  const tables = [...savepoints[index]!.tables];
  savepoints.splice(index + 1);
  savepoints[index] = { name, tables: new Set() };
  return tables;
}
