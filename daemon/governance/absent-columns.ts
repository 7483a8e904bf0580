/**
 * Governed columns (personal, transformed) that a table's schema lacks. The config names columns: one renamed at the
 * source (or misspelt in the config, or differing in case) is another column to capture, which would be published in
 * clear, so capture halts the table instead (SCHEMA_UNSUPPORTED, its changes parked).
 */

/** The names among `governed` that `columns` does not have. */
export function absentColumns(governed: readonly string[], columns: readonly { readonly name: string }[]): string[] {
  return governed.filter((name) => !columns.some((c) => c.name === name));
}

/** Why the table halts, and what to do. `key`: where the config names the columns. */
export function absentGoverned(table: string, source: string, absent: readonly string[], what: "personal" | "transformed", key: "personal.columns" | "transforms"): string {
  const one = absent.length === 1;
  return (
    `${what} column${one ? "" : "s"} ${absent.join(", ")} ${one ? "is not a column" : "are not columns"} of the table (renamed or dropped at the source, or misspelt in the config): ` +
    `its changes are parked rather than published with that data unprotected under another name. Name the columns as the table has them now in ` +
    `governance.tables.${table}.${key} (take a dropped one out), restart, then run "sluice halted retry --source ${source} --table ${table}"`
  );
}
