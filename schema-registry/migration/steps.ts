/**
 * What a migration does to table schemas, in a form both dialects' parsers produce and one
 * function applies: column additions, drops, type and nullability changes, renames, keys, new and
 * dropped tables. Each statement of the migration gets one report: the steps it stands for, that it
 * does not change captured schemas, or that it is not understood (never silently passed).
 */
import type { ColumnSchema } from "../../connectors/contracts.ts";

export interface QualifiedTable {
  /** PostgreSQL schema; MySQL database. */
  readonly schema: string;
  readonly table: string;
}

export type MigrationStep =
  | { readonly kind: "create-table"; readonly table: QualifiedTable; readonly columns: readonly ColumnSchema[]; readonly key: readonly string[]; readonly ifNotExists: boolean }
  | { readonly kind: "create-table-like"; readonly table: QualifiedTable; readonly like: QualifiedTable; readonly ifNotExists: boolean }
  | { readonly kind: "drop-table"; readonly table: QualifiedTable; readonly ifExists: boolean }
  | { readonly kind: "rename-table"; readonly table: QualifiedTable; readonly to: QualifiedTable }
  | { readonly kind: "add-column"; readonly table: QualifiedTable; readonly column: ColumnSchema; readonly ifNotExists: boolean; readonly position?: { readonly first: true } | { readonly after: string } }
  | { readonly kind: "drop-column"; readonly table: QualifiedTable; readonly column: string; readonly ifExists: boolean }
  /** MySQL MODIFY / CHANGE: the column is replaced whole (type, nullability, name). */
  | { readonly kind: "replace-column"; readonly table: QualifiedTable; readonly from: string; readonly column: ColumnSchema; readonly position?: { readonly first: true } | { readonly after: string } }
  | { readonly kind: "rename-column"; readonly table: QualifiedTable; readonly from: string; readonly to: string }
  /** PostgreSQL ALTER COLUMN: only what is given changes. */
  | { readonly kind: "alter-column"; readonly table: QualifiedTable; readonly column: string; readonly dbType?: string; readonly nullable?: boolean; readonly default?: string | null }
  | { readonly kind: "set-key"; readonly table: QualifiedTable; readonly key: readonly string[] };

export type StatementEffect =
  | { readonly kind: "steps"; readonly steps: readonly MigrationStep[] }
  /** Understood, and changes no captured table's columns or key (indexes, grants, comments, DML...). */
  | { readonly kind: "no-schema-change"; readonly what: string }
  | { readonly kind: "not-understood"; readonly reason: string; readonly tables: readonly QualifiedTable[] };

export interface StatementReport {
  /** Which migration file. */
  readonly file: string;
  /** 1-based line of the statement's start in its file. */
  readonly line: number;
  /** The statement's text, shortened for reports. */
  readonly text: string;
  readonly effect: StatementEffect;
  /** Assumptions made while reading it (e.g. an unknown type taken as text). */
  readonly notes: readonly string[];
}

/** A migration file that could not be parsed at all. */
export class MigrationParseError extends Error {
  readonly file: string;
  readonly line: number;
  constructor(file: string, line: number, message: string) {
    super(`${file}:${line}: ${message}`);
    this.name = "MigrationParseError";
    this.file = file;
    this.line = line;
  }
}

export function shortText(sql: string): string {
  const oneLine = sql.replace(/\s+/g, " ").trim();
  return oneLine.length > 160 ? `${oneLine.slice(0, 157)}...` : oneLine;
}

export function lineAt(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

export function qualifiedName(table: QualifiedTable): string {
  return `${table.schema}.${table.table}`;
}
