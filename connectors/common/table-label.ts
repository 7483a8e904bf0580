/**
 * A table's "schema.table" label (MySQL: "database.table"), as requests, checkpoints, commands and log lines
 * name it, taken apart again. A schema or database name may itself hold a dot (a quoted identifier), so the
 * label alone does not say which dot ends it: "a.b.c" is schema "a", table "b.c" or schema "a.b", table "c".
 * Callers keep the readings that name a table their source captures and exists.
 */
import { SluiceError } from "../errors.ts";
import type { ErrorContext } from "../errors.ts";

export interface TableParts {
  readonly schema: string;
  readonly table: string;
}

/** Every way to read `label` as schema and table, each part non-empty, the shortest schema first. */
export function tableReadings(label: string): TableParts[] {
  const readings: TableParts[] = [];
  for (let dot = label.indexOf("."); dot !== -1; dot = label.indexOf(".", dot + 1)) {
    if (dot > 0 && dot < label.length - 1) readings.push({ schema: label.slice(0, dot), table: label.slice(dot + 1) });
  }
  return readings;
}

/** Refuses a label that names more than one existing table (SNAPSHOT_TABLE_AMBIGUOUS: the request does not say which; both exist). */
export function ambiguousLabel(label: string, tables: readonly TableParts[], context: ErrorContext): SluiceError {
  const named = tables.map((t) => `schema ${JSON.stringify(t.schema)}, table ${JSON.stringify(t.table)}`).join(" and ");
  return new SluiceError(`"${label}" names more than one table (${named}), whose changes share one topic: rename one of them`, {
    code: "SNAPSHOT_TABLE_AMBIGUOUS",
    context: { ...context, table: label },
  });
}

/** Whether some reading of `label` matches (a tableMatcher, or any test of schema and table). */
export function someReading(label: string, matches: (schema: string, table: string) => boolean): boolean {
  return tableReadings(label).some((r) => matches(r.schema, r.table));
}
