/**
 * Applies a migration's steps, in order, to the captured tables' current schemas. Keeps, per
 * table, the schema before the migration and after it, and what could not be applied (a column
 * that does not exist, a table that is not known).
 */
import type { ColumnSchema, SourceKind, TableSchema } from "../../connectors/contracts.ts";
import { qualifiedName } from "./steps.ts";
import type { MigrationStep, QualifiedTable } from "./steps.ts";

export interface MigrationSource {
  readonly name: string;
  readonly kind: SourceKind;
  /** PostgreSQL database (MySQL: unused; the table's database is its schema). */
  readonly database: string;
  /** Is a table captured by this source? */
  readonly captures: (schema: string, table: string) => boolean;
}

export interface TableOutcome {
  readonly table: QualifiedTable;
  /** The schema before the migration; null when the table did not exist (or was not known). */
  readonly before: TableSchema | null;
  /** After it; null when dropped or renamed away. */
  after: TableSchema | null;
  /** The table was not known before the migration touched it (no registered schema). */
  unknown: boolean;
  /** Steps that could not be applied, as sentences. */
  readonly failures: string[];
  /** What happened, in order, for the report ("adds column x", "renamed to ..."). */
  readonly changes: string[];
  /** Columns each change touched, with the step that did it (for suggestions). */
  readonly touched: Map<string, MigrationStep["kind"]>;
}

export function applyMigration(source: MigrationSource, current: ReadonlyMap<string, TableSchema>, steps: readonly MigrationStep[]): Map<string, TableOutcome> {
  const outcomes = new Map<string, TableOutcome>();
  const caseless = source.kind === "mysql";
  const sameName = (a: string, b: string) => (caseless ? a.toLowerCase() === b.toLowerCase() : a === b);
  const outcome = (table: QualifiedTable): TableOutcome => {
    const id = qualifiedName(table);
    let found = outcomes.get(id);
    if (!found) {
      const before = current.get(id) ?? null;
      found = { table, before, after: before, unknown: before === null, failures: [], changes: [], touched: new Map() };
      outcomes.set(id, found);
    }
    return found;
  };
  const tableSchema = (table: QualifiedTable, columns: readonly ColumnSchema[], key: readonly string[]): TableSchema => ({
    source: source.name,
    database: source.kind === "postgres" ? source.database : table.schema,
    schema: table.schema,
    table: table.table,
    sourceKind: source.kind,
    columns: withKey(columns, key),
    key,
  });

  for (const step of steps) {
    if (!source.captures(step.table.schema, step.table.table) && !(step.kind === "rename-table" && source.captures(step.to.schema, step.to.table))) continue;
    const target = outcome(step.table);
    const schema = target.after;
    const fail = (message: string) => target.failures.push(message);
    const columnIndex = (name: string) => (schema === null ? -1 : schema.columns.findIndex((c) => sameName(c.name, name)));
    switch (step.kind) {
      case "create-table":
        if (schema !== null) {
          if (!step.ifNotExists) fail(`table ${qualifiedName(step.table)} exists already`);
          break;
        }
        target.after = tableSchema(step.table, step.columns, step.key);
        target.changes.push("created");
        for (const column of step.columns) target.touched.set(column.name, step.kind);
        break;
      case "create-table-like": {
        const like = outcomes.get(qualifiedName(step.like))?.after ?? current.get(qualifiedName(step.like)) ?? null;
        if (schema !== null && step.ifNotExists) break;
        if (like === null) {
          fail(`CREATE TABLE ... LIKE ${qualifiedName(step.like)}: that table's schema is not known`);
          break;
        }
        target.after = tableSchema(step.table, like.columns, like.key);
        target.changes.push(`created like ${qualifiedName(step.like)}`);
        break;
      }
      case "drop-table":
        if (schema === null && !target.unknown) {
          if (!step.ifExists) fail(`no table ${qualifiedName(step.table)} to drop`);
          break;
        }
        target.after = null;
        target.changes.push("dropped");
        break;
      case "rename-table": {
        const renamed = outcome(step.to);
        if (schema === null && !target.unknown) {
          fail(`no table ${qualifiedName(step.table)} to rename`);
          break;
        }
        if (schema !== null && source.captures(step.to.schema, step.to.table)) {
          renamed.after = tableSchema(step.to, schema.columns, schema.key);
          renamed.changes.push(`renamed from ${qualifiedName(step.table)}`);
          for (const column of schema.columns) renamed.touched.set(column.name, "create-table");
        } else if (schema === null) {
          renamed.unknown = true;
        }
        target.after = null;
        target.changes.push(`renamed to ${qualifiedName(step.to)}`);
        break;
      }
      default: {
        if (schema === null) {
          if (!target.unknown) fail(`no table ${qualifiedName(step.table)} (dropped earlier in the migration)`);
          break;
        }
        const columns = [...schema.columns];
        let key = [...schema.key];
        switch (step.kind) {
          case "add-column": {
            if (columnIndex(step.column.name) >= 0) {
              if (!step.ifNotExists) fail(`column ${step.column.name} exists already`);
              break;
            }
            let at = columns.length;
            if (step.position !== undefined && "first" in step.position) at = 0;
            else if (step.position !== undefined) {
              at = columnIndex(step.position.after) + 1;
              if (at === 0) {
                fail(`no column ${step.position.after} to add ${step.column.name} after`);
                break;
              }
            }
            columns.splice(at, 0, step.column);
            target.changes.push(`adds column ${step.column.name} ${step.column.dbType}${step.column.nullable ? "" : " NOT NULL"}`);
            target.touched.set(step.column.name, step.kind);
            break;
          }
          case "drop-column": {
            const index = columnIndex(step.column);
            if (index < 0) {
              if (!step.ifExists) fail(`no column ${step.column} to drop`);
              break;
            }
            columns.splice(index, 1);
            key = key.filter((k) => !sameName(k, step.column));
            target.changes.push(`drops column ${step.column}`);
            target.touched.set(step.column, step.kind);
            break;
          }
          case "replace-column": {
            const index = columnIndex(step.from);
            if (index < 0) {
              fail(`no column ${step.from} to change`);
              break;
            }
            columns.splice(index, 1);
            const at = step.position === undefined ? index : "first" in step.position ? 0 : columns.findIndex((c) => sameName(c.name, (step.position as { after: string }).after)) + 1;
            columns.splice(at, 0, step.column);
            key = key.map((k) => (sameName(k, step.from) ? step.column.name : k));
            target.changes.push(`changes column ${step.from} to ${step.column.name} ${step.column.dbType}${step.column.nullable ? "" : " NOT NULL"}`);
            target.touched.set(step.column.name, sameName(step.from, step.column.name) ? "alter-column" : "rename-column");
            if (!sameName(step.from, step.column.name)) target.touched.set(step.from, "rename-column");
            break;
          }
          case "rename-column": {
            const index = columnIndex(step.from);
            if (index < 0) {
              fail(`no column ${step.from} to rename`);
              break;
            }
            columns[index] = { ...columns[index]!, name: step.to };
            key = key.map((k) => (sameName(k, step.from) ? step.to : k));
            target.changes.push(`renames column ${step.from} to ${step.to}`);
            target.touched.set(step.from, step.kind);
            target.touched.set(step.to, step.kind);
            break;
          }
          case "alter-column": {
            const index = columnIndex(step.column);
            if (index < 0) {
              fail(`no column ${step.column} to alter`);
              break;
            }
            const before = columns[index]!;
            columns[index] = {
              ...before,
              ...(step.dbType === undefined ? {} : { dbType: step.dbType }),
              ...(step.nullable === undefined ? {} : { nullable: step.nullable }),
              ...(step.default === undefined ? {} : { default: step.default }),
            };
            if (step.dbType !== undefined) target.changes.push(`changes column ${step.column} from ${before.dbType} to ${step.dbType}`);
            if (step.nullable !== undefined) target.changes.push(`makes column ${step.column} ${step.nullable ? "nullable" : "NOT NULL"}`);
            if (step.default !== undefined) target.changes.push(step.default === null ? `drops the default of ${step.column}` : `sets the default of ${step.column}`);
            target.touched.set(step.column, step.kind);
            break;
          }
          case "set-key": {
            const missing = step.key.filter((name) => columnIndex(name) < 0 && !columns.some((c) => sameName(c.name, name)));
            if (missing.length > 0) {
              fail(`key column ${missing.join(", ")} is not a column`);
              break;
            }
            key = step.key.map((name) => columns.find((c) => sameName(c.name, name))!.name);
            for (let i = 0; i < columns.length; i++) if (key.includes(columns[i]!.name)) columns[i] = { ...columns[i]!, nullable: false };
            target.changes.push(key.length === 0 ? "drops the primary key" : `sets the primary key to (${key.join(", ")})`);
            for (const name of key) target.touched.set(name, step.kind);
            break;
          }
        }
        target.after = tableSchema(step.table, columns, key);
      }
    }
  }
  return outcomes;
}

function withKey(columns: readonly ColumnSchema[], key: readonly string[]): ColumnSchema[] {
  return columns.map((column) => {
    const { primaryKeyIndex: _dropped, ...rest } = column;
    const index = key.indexOf(column.name);
    return index < 0 ? rest : { ...rest, primaryKeyIndex: index + 1 };
  });
}
