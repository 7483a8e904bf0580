/**
 * Sluice's catalog (`_sluice_tables`) against the server's `system.columns`. RowBinary carries no
 * column names or types on 18.16, so a catalog that disagrees with a table would misalign rows
 * silently. The sink snapshots `system.columns` when it opens (and after creating or altering a
 * table), compares each physical table at its first write, and reads the columns of a batch's
 * tables again before its inserts, comparing a table again when they changed (sameColumns):
 * - the catalog's columns, as the sink writes them (same RowBinary bytes; see `writesAs`), or at a
 *   type the batch's own schema evolution is about to give them: consistent; the evolution then
 *   adopts what the server already has instead of altering again (a crash between `ALTER TABLE`
 *   and saving the catalog leaves exactly that);
 * - server columns the catalog lacks: adopted by the evolution when the batch's schema adds them
 *   at that type, else left alone (inserts name their columns, so they get their defaults);
 * - anything else (a column missing, another type, MATERIALIZED/ALIAS, a different sorting key):
 *   `CatalogMismatch`, and the sink halts the table.
 * Server-side column order never matters: inserts and reads name their columns.
 */
import type { TableSchema } from "../contracts.ts";
import { SluiceError } from "../errors.ts";
import { DELETED_COLUMN, planColumns, VERSION_COLUMN } from "../sinks/columns.ts";
import type { PlanContext, TargetColumn } from "../sinks/columns.ts";
import { CATALOG_MISMATCH, SCHEMA_UNSUPPORTED } from "../sinks/errors.ts";
import { describeType } from "../sinks/logical-type.ts";
import { parseTsv, sqlString, unescapeField } from "./tsv.ts";
import { clickhouseType } from "./types.ts";
import type { Dialect } from "./types.ts";

export interface ServerColumn {
  readonly name: string;
  readonly type: string;
  /** "", DEFAULT, MATERIALIZED or ALIAS: only the first two can be inserted into. */
  readonly defaultKind: string;
  readonly sortingKey: boolean;
}

/** Server columns per table, each in the server's order. */
export type ServerTables = Map<string, ServerColumn[]>;

export interface MismatchContext {
  readonly sink: string;
  readonly table: string;
  readonly database: string;
  readonly physical: string;
  readonly column?: string;
  readonly catalogType: string;
  readonly serverType: string;
}

/** A ClickHouse table that no longer matches Sluice's catalog: the sink halts the table rather than write misaligned rows. */
export class CatalogMismatch extends SluiceError {
  readonly physical: string;

  constructor(problem: string, context: MismatchContext, remedy = "restore the column or rebuild the target (sluice replay --rebuild)") {
    const column = context.column === undefined ? "" : `, column "${context.column}"`;
    super(
      `sink "${context.sink}", table ${context.table}${column}: ${problem} (catalog: ${context.catalogType}; server: ${context.serverType}). ` +
        `The ClickHouse table ${context.database}.${context.physical} does not match Sluice's catalog (_sluice_tables), so the sink stops writing this table ` +
        `rather than insert misaligned rows; ${remedy}`,
      { code: CATALOG_MISMATCH, retriable: false, context: { component: "sink", ...context } },
    );
    this.physical = context.physical;
  }
}

/** Whether two readings of a table's server columns are the same (order aside: inserts name their columns). */
export function sameColumns(a: readonly ServerColumn[], b: readonly ServerColumn[]): boolean {
  if (a.length !== b.length) return false;
  const text = (c: ServerColumn) => `${c.name}\t${normalized(c.type)}\t${c.defaultKind}\t${c.sortingKey}`;
  const seen = new Set(a.map(text));
  return b.every((c) => seen.has(text(c)));
}

export function systemColumnsSql(database: string, table?: string | readonly string[]): string {
  const only = table === undefined ? "" : typeof table === "string" ? ` AND table = ${sqlString(table)}` : ` AND table IN (${table.map(sqlString).join(", ")})`;
  return `SELECT table, name, type, default_kind, is_in_sorting_key FROM system.columns WHERE database = ${sqlString(database)}${only} FORMAT TabSeparated`;
}

export function parseServerColumns(body: Buffer): ServerTables {
  const out: ServerTables = new Map();
  for (const fields of parseTsv(body)) {
    const [table, name, type, defaultKind, sortingKey] = fields.map((f) => unescapeField(f).toString("utf8"));
    const columns = out.get(table ?? "") ?? [];
    columns.push({ name: name ?? "", type: type ?? "", defaultKind: defaultKind ?? "", sortingKey: sortingKey === "1" });
    out.set(table ?? "", columns);
  }
  return out;
}

// The dialect picks between types of the same RowBinary bytes (Int64 / DateTime64(6, 'UTC'),
// Int32 / Date32), so a table created before a server upgrade still takes the same rows.
const DIALECTS: readonly Dialect[] = [false, true].flatMap((dateTime64) => [false, true].map((date32) => ({ dateTime64, date32, nativeDeletes: false })));

/** Whether the sink's rows for `column` fit a server column of `serverType`. */
export function writesAs(serverType: string, column: TargetColumn): boolean {
  const server = normalized(serverType);
  return DIALECTS.some((dialect) => normalized(clickhouseType(column.type, dialect, !column.key)) === server);
}

function normalized(type: string): string {
  return type.replace(/\s+/g, "");
}

/** Every column the evolution of `schemas` adds or widens, at each type it goes through, by name. */
export function evolutionSteps(columns: readonly TargetColumn[], schemas: readonly TableSchema[], context: PlanContext): Map<string, TargetColumn[]> {
  const steps = new Map<string, TargetColumn[]>();
  const push = (column: TargetColumn) => steps.set(column.name, [...(steps.get(column.name) ?? []), column]);
  let current = columns;
  for (const schema of schemas) {
    let plan: ReturnType<typeof planColumns>;
    try {
      plan = planColumns(current, schema, context);
    } catch (error) {
      // the evolution itself reports this schema
      if (error instanceof SluiceError && error.code === SCHEMA_UNSUPPORTED) break;
      throw error;
    }
    for (const column of plan.added) push(column);
    for (const change of plan.changed) push({ name: change.name, type: change.to, key: change.key });
    current = plan.columns;
  }
  return steps;
}

/** A catalog column as the sink writes it, for messages: `Nullable(Int64) (int64)`. */
export function describeColumn(column: TargetColumn, dialect: Dialect): string {
  return `${clickhouseType(column.type, dialect, !column.key)} (${describeType(column.type)}${column.key ? ", key" : ""})`;
}

export function describeServerColumn(column: ServerColumn | undefined): string {
  if (column === undefined) return "missing";
  return `${column.type}${insertable(column) ? "" : ` ${column.defaultKind}`}${column.sortingKey ? " (sorting key)" : ""}`;
}

function insertable(column: ServerColumn): boolean {
  return column.defaultKind === "" || column.defaultKind === "DEFAULT";
}

const META: readonly { readonly name: string; readonly type: string }[] = [
  { name: VERSION_COLUMN, type: "UInt64" },
  { name: DELETED_COLUMN, type: "UInt8" },
];

/** Whether the sink can write `column` into the server's `found` as it is. */
export function takes(found: ServerColumn, column: TargetColumn): boolean {
  return insertable(found) && found.sortingKey === column.key && writesAs(found.type, column);
}

/**
 * Throws CatalogMismatch unless the server table can take the sink's rows for `catalog` once the
 * evolution `steps` (evolutionSteps) has run. Returns the server columns the sink leaves alone.
 */
export function checkTable(
  catalog: readonly TargetColumn[],
  server: readonly ServerColumn[],
  steps: ReadonlyMap<string, readonly TargetColumn[]>,
  dialect: Dialect,
  context: Omit<MismatchContext, "column" | "catalogType" | "serverType">,
): ServerColumn[] {
  if (server.length === 0) {
    throw new CatalogMismatch(
      "the table is missing on the server",
      { ...context, catalogType: `${catalog.length} columns`, serverType: "no such table" },
      "dropped or renamed by hand: if renamed, rename it back (RENAME TABLE) and run sluice halted retry; if dropped, its rows went with it: fill it again from the topics (sluice replay --sink NAME --from-beginning --rebuild --table T --execute), then sluice halted retry",
    );
  }
  const byName = new Map(server.map((c) => [c.name, c]));
  for (const meta of META) {
    const found = byName.get(meta.name);
    if (!found || !insertable(found) || normalized(found.type) !== meta.type) {
      throw new CatalogMismatch("Sluice's own column is missing or changed", { ...context, column: meta.name, catalogType: meta.type, serverType: describeServerColumn(found) });
    }
  }
  for (const column of catalog) {
    const found = byName.get(column.name);
    const mismatch = (problem: string) =>
      new CatalogMismatch(problem, { ...context, column: column.name, catalogType: describeColumn(column, dialect), serverType: describeServerColumn(found) });
    if (!found) throw mismatch("the column is missing on the server");
    if (!insertable(found)) throw mismatch("the column cannot be inserted into");
    if (found.sortingKey !== column.key) throw mismatch(column.key ? "a key column is not in the server's sorting key" : "the server sorts by a column that is not a key");
    if (![column, ...(steps.get(column.name) ?? [])].some((next) => writesAs(found.type, next))) throw mismatch("the column has another type on the server");
  }
  const known = new Set([...catalog.map((c) => c.name), ...META.map((m) => m.name)]);
  const unknown: ServerColumn[] = [];
  for (const found of server) {
    if (known.has(found.name)) continue;
    const pending = steps.get(found.name);
    if (pending === undefined) unknown.push(found);
    else if (!pending.some((next) => takes(found, next))) throw addedMismatch(found, pending[0] as TargetColumn, dialect, context);
  }
  return unknown;
}

/** A column a schema change adds that the server has already, in a form the sink cannot write. */
export function addedMismatch(found: ServerColumn, planned: TargetColumn, dialect: Dialect, context: Omit<MismatchContext, "column" | "catalogType" | "serverType">): CatalogMismatch {
  return new CatalogMismatch("the schema adds a column the server already has in another form", {
    ...context,
    column: found.name,
    catalogType: `none yet, the schema adds ${describeColumn(planned, dialect)}`,
    serverType: describeServerColumn(found),
  });
}
