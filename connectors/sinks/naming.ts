/**
 * Which tables a sink takes (its `sources` and `tables` globs) and the name each gets in the
 * target (its `target` template with {source}, {schema}, {table}). Physical tables and indexes
 * carry a generation suffix (`<target>__v<N>`) so a rebuild can build the next one beside the
 * live one; users query the natural name (a view or an alias).
 */
import { tableMatcher } from "../common/table-patterns.ts";
import type { TableId } from "../contracts.ts";

export interface SinkScope {
  readonly sources?: readonly string[] | undefined;
  readonly tables: readonly string[];
  readonly target: string;
}

/** A predicate over tables: the table's source is in `sources` (when given) and "schema.table" matches one of `tables`. */
export function tableFilter(scope: Pick<SinkScope, "sources" | "tables">): (table: TableId) => boolean {
  const matches = tableMatcher(scope.tables);
  const sources = scope.sources ? new Set(scope.sources) : null;
  return (table) => (sources === null || sources.has(table.source)) && matches(table.schema, table.table);
}

export function renderTarget(template: string, table: TableId): string {
  return template.replace(/\{(source|schema|table)\}/g, (_, name: "source" | "schema" | "table") => table[name]);
}

export function physicalName(target: string, generation: number): string {
  return `${target}__v${generation}`;
}

/** The generation of a physical name of `target`, or null when `name` is not one. */
export function generationOf(target: string, name: string): number | null {
  const prefix = `${target}__v`;
  if (!name.startsWith(prefix)) return null;
  const rest = name.slice(prefix.length);
  return /^[1-9]\d*$/.test(rest) ? Number(rest) : null;
}

/** "schema.table" of a table, as errors and logs name it. */
export function tableLabel(table: TableId): string {
  return `${table.source}.${table.schema}.${table.table}`;
}
