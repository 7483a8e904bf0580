/**
 * Keeps the definitions of the captured tables current along the binlog: restores them from the
 * schema history at the resume position, follows the DDL statements of QUERY events, re-reads a
 * table from the server when a statement is not understood, and binds every TABLE_MAP event to a
 * definition that fits it (binlog column metadata wins when the binlog carries it). Every change is
 * appended to the schema history before the events after it are handed on.
 */
import type { Logger } from "pino";
import { SluiceError } from "../../errors.ts";
import type { ErrorContext } from "../../errors.ts";
import type { TableMatcher } from "../../common/table-patterns.ts";
import { formatAt } from "../positions.ts";
import { charsetNamed } from "../values/charsets.ts";
import type { TableMap } from "../protocol/table-map.ts";
import { parseDdl } from "./ddl-parser.ts";
import type { AlterAction, ParsedColumn, TableName } from "./ddl-parser.ts";
import type { SchemaHistoryEntry, SchemaHistoryStore } from "./schema-history.ts";
import { keepsValues } from "./kept-values.ts";
import { bindTableMap } from "./table-binding.ts";
import type { BindingContext, TableBinding } from "./table-binding.ts";
import { canonicalDefault, sameDefinition, tableKey } from "./table-definition.ts";
import type { ColumnDefinition, TableDefinition } from "./table-definition.ts";

export interface CatalogSource {
  /** Current definitions of these tables; missing tables are left out. */
  readDefinitions(tables: readonly TableName[]): Promise<Map<string, TableDefinition>>;
  databaseCharset(database: string): Promise<string | null>;
}

export interface SchemaTrackerOptions {
  readonly store: SchemaHistoryStore;
  /** The server's catalog, to re-read tables; null when decoding offline. */
  readonly catalog: CatalogSource | null;
  readonly matches: TableMatcher;
  readonly binding: BindingContext;
  readonly logger: Logger;
  readonly context: ErrorContext;
  /** A binlog file name of the server (any: only its base name is used), so positions print as `mysql-bin.000042:1234`. */
  readonly binlogFile?: () => string | undefined;
  /** MariaDB sequences the catalog listed at start (their names matched or not): never captured. */
  readonly sequences?: Iterable<TableName>;
}

export interface QueryOutcome {
  /** Captured tables a TRUNCATE emptied, or a CREATE TABLE made again under the name of a table dropped or renamed away. */
  readonly truncated: readonly TableName[];
  /** Captured tables whose definition changed. */
  readonly changed: readonly string[];
  /**
   * Tables renamed to a captured name no captured table had before the statement: the new name's topic and
   * targets hold none of their rows (not a swap, where a copy takes the place of a captured table).
   */
  readonly renamed?: readonly { readonly from: string; readonly to: TableName }[];
  /**
   * Captured tables with columns whose values in the rows already there the targets do not have: a column
   * renamed (RENAME COLUMN, CHANGE a b), whose targets have the values under the old name, or a name the table
   * had before, dropped since, whose targets still hold the dropped column's values (a sink keeps a dropped
   * column). Only reading the rows again gives the targets what the table holds.
   */
  readonly reread?: readonly { readonly table: string; readonly columns: readonly string[]; readonly rowsChanged?: RowsChange }[];
}

/**
 * Rows that entered or left a table with no row event (AlterAction rows-changed). `partitioned`: the table is the one
 * the ALTER names, not the table exchanged with or converted to; `partitions`: those a TRUNCATE or DROP names.
 */
export interface RowsChange {
  readonly what: string;
  readonly database: string;
  readonly table: string;
  readonly partitioned: boolean;
  readonly partitions: readonly string[] | null;
}

interface CachedBinding {
  readonly mapBytes: Buffer;
  readonly definition: TableDefinition | null;
  readonly binding: TableBinding;
}

const NO_CHANGE: QueryOutcome = { truncated: [], changed: [] };

/** The columns MariaDB gives every sequence (SHOW CREATE TABLE of one). */
const SEQUENCE_COLUMNS = ["next_not_cached_value", "minimum_value", "maximum_value", "start_value", "increment", "cache_size", "cycle_option", "cycle_count"];

function isSequenceShaped(definition: TableDefinition): boolean {
  const names = definition.columns.map((c) => c.name.toLowerCase());
  return names.length === SEQUENCE_COLUMNS.length && SEQUENCE_COLUMNS.every((name, i) => names[i] === name);
}

export class SchemaTracker {
  private readonly options: SchemaTrackerOptions;
  private readonly definitions = new Map<string, TableDefinition>();
  /** `table@at` of entries already in the store, so a replayed DDL is not stored twice. */
  private readonly stored = new Set<string>();
  /** Tables that had a definition at some point up to where the history is applied (dropped ones too). */
  private readonly named = new Set<string>();
  /** Tables read from the server at the resume position for want of history (assume), until a statement sets them. */
  private readonly assumed = new Set<string>();
  /** Per table, the (lower-case) names of every column its definitions had since it was created or renamed to its name. */
  private readonly columnsHad = new Map<string, Set<string>>();
  private readonly bindings = new Map<string, CachedBinding>();
  private readonly databaseCharsets = new Map<string, string>();
  /** MariaDB sequences by tableKey: the server logs their updates as row events, which are no table's changes. */
  private readonly sequences = new Map<string, TableName>();
  private readonly sequencesTold = new Set<string>();

  constructor(options: SchemaTrackerOptions) {
    this.options = options;
    for (const sequence of options.sequences ?? []) this.sequences.set(tableKey(sequence.database, sequence.table), sequence);
  }

  /**
   * Loads the history and applies its entries at or before `upTo`. Returns how many applied. A definition read from the
   * server at `upTo` itself is assumed (see assume): an earlier start resuming here read it for want of history.
   */
  async restore(upTo: bigint): Promise<number> {
    const entries = await this.options.store.load();
    let applied = 0;
    for (const entry of entries) {
      this.stored.add(`${entry.table}@${entry.at}`);
      if (BigInt(entry.at) > upTo) continue;
      this.set(entry.table, entry.definition);
      if (entry.cause === "catalog" && entry.definition !== null && BigInt(entry.at) === upTo) this.assumed.add(entry.table);
      applied++;
    }
    // The catalog lists today's sequences: a name the history holds as a table at `upTo` was a table there (a sequence
    // made under its name since is told by its statement as capture reads on), whose row events must not be skipped.
    // A version before sequences were told apart bound a sequence as a table: such a definition (a sequence's own
    // columns) leaves it a sequence.
    for (const [key] of [...this.sequences]) {
      const held = this.definitions.get(key);
      if (held !== undefined && !isSequenceShaped(held)) this.sequences.delete(key);
    }
    return applied;
  }

  /** Records definitions read at a snapshot (or when streaming starts without one). */
  async record(at: bigint, definitions: Iterable<TableDefinition>, cause: "snapshot" | "catalog"): Promise<void> {
    const keyed = [...definitions].map((definition) => ({ key: tableKey(definition.database, definition.table), definition }));
    const fresh = keyed.filter(({ key }) => !this.stored.has(`${key}@${at}`));
    await this.options.store.append(fresh.map(({ key, definition }) => ({ at: at.toString(), table: key, definition, cause })));
    for (const { key, definition } of keyed) {
      this.stored.add(`${key}@${at}`);
      this.set(key, definition);
    }
  }

  /**
   * Records the current definitions of tables the history does not know at the resume position `at` (read from the
   * server). Such a table may have its name from a statement after `at` that the stream reads next (a RENAME TABLE
   * while Sluice was stopped): until a statement sets it, it does not count as a table that had the name before a
   * rename onto it, so that rename is told (QueryOutcome.renamed) as one read live.
   */
  async assume(at: bigint, definitions: Iterable<TableDefinition>): Promise<void> {
    const assumed = [...definitions];
    await this.record(at, assumed, "catalog");
    for (const definition of assumed) this.assumed.add(tableKey(definition.database, definition.table));
  }

  captured(database: string, table: string): boolean {
    if (!this.options.matches(database, table)) return false;
    const key = tableKey(database, table);
    if (!this.sequences.has(key)) return true;
    if (!this.sequencesTold.has(key)) {
      this.sequencesTold.add(key);
      this.options.logger.info({ table: key }, "a sequence matches the tables captured; sequences are not captured (docs/mysql.md)");
    }
    return false;
  }

  private isSequence(name: TableName): boolean {
    return this.sequences.has(tableKey(name.database, name.table));
  }

  /** A sequence made under `name`: a table that had the name before (CREATE OR REPLACE) is gone. */
  private async becameSequence(name: TableName, query: string, from: bigint, changed: string[]): Promise<void> {
    const key = tableKey(name.database, name.table);
    this.sequences.set(key, name);
    if (!this.definitions.has(key)) return;
    await this.commit(key, null, from, "ddl", query);
    changed.push(key);
  }

  definition(database: string, table: string): TableDefinition | null {
    return this.definitions.get(tableKey(database, table)) ?? null;
  }

  /** The definition under its tableKey, not split again (a database name may hold a dot). */
  definitionOf(key: string): TableDefinition | null {
    return this.definitions.get(key) ?? null;
  }

  knownTables(): string[] {
    return [...this.definitions.keys()];
  }

  /**
   * A binding for a TABLE_MAP event of a captured table. `mapBytes`: the event body after the table
   * id (equal bytes: equal table map). `at`: position of the event's first byte.
   */
  bind(map: TableMap, mapBytes: Buffer, at: bigint): TableBinding | Promise<TableBinding> {
    const key = tableKey(map.database, map.table);
    const definition = this.definitions.get(key) ?? null;
    const cached = this.bindings.get(key);
    if (cached !== undefined && cached.definition === definition && cached.mapBytes.equals(mapBytes)) return cached.binding;
    return this.bindSlow(key, map, Buffer.from(mapBytes), definition, at);
  }

  private positionText(at: bigint): string {
    return formatAt(at, this.options.binlogFile?.());
  }

  private async bindSlow(key: string, map: TableMap, mapBytes: Buffer, definition: TableDefinition | null, at: bigint): Promise<TableBinding> {
    const { logger, binding: context } = this.options;
    let result = bindTableMap(map, definition, context);
    if (!result.ok) {
      const reread = (await this.reread([{ database: map.database, table: map.table }], at + 1n, "catalog", null)).get(key) ?? null;
      result = bindTableMap(map, reread, context);
      if (!result.ok) {
        throw new SluiceError(
          `cannot decode rows of ${key} at ${this.positionText(at)}: ${result.reason}, and the binlog does not name the columns; set binlog_row_metadata=FULL on the server, or re-snapshot`,
          { code: "MYSQL_SCHEMA_UNKNOWN", context: { ...this.options.context, table: key, position: this.positionText(at) } },
        );
      }
      logger.warn({ table: key, position: this.positionText(at) }, "schema history did not fit the binlog; re-read the table from the server");
    } else if (result.fromBinlog) {
      if (definition !== null) logger.info({ table: key, position: this.positionText(at) }, "table definition taken from the binlog's column metadata");
      await this.commit(key, result.binding.definition, at + 1n, "binlog");
    }
    const current = this.definitions.get(key) ?? null;
    this.bindings.set(key, { mapBytes, definition: current, binding: result.binding });
    return result.binding;
  }

  /** Follows a QUERY event's statement. `at`: position of the event's first byte. */
  async applyQuery(query: string, defaultDatabase: string, at: bigint): Promise<QueryOutcome> {
    const statement = parseDdl(query, { defaultDatabase, mariadb: this.options.binding.mariadb });
    const from = at + 1n;
    const changed: string[] = [];
    const put = async (name: TableName, definition: TableDefinition | null) => {
      const key = tableKey(name.database, name.table);
      if (!this.captured(name.database, name.table)) return;
      if (definition === null && !this.definitions.has(key)) return;
      await this.commit(key, definition === null ? null : { ...definition, database: name.database, table: name.table }, from, "ddl", query);
      changed.push(key);
    };
    switch (statement.kind) {
      case "none":
        return NO_CHANGE;
      case "create-sequence":
        if (statement.ifNotExists && this.definition(statement.sequence.database, statement.sequence.table) !== null) return NO_CHANGE;
        await this.becameSequence(statement.sequence, query, from, changed);
        return { truncated: [], changed };
      case "alter-sequence":
        this.sequences.set(tableKey(statement.sequence.database, statement.sequence.table), statement.sequence);
        return NO_CHANGE;
      case "drop-sequences":
        for (const sequence of statement.sequences) this.sequences.delete(tableKey(sequence.database, sequence.table));
        return NO_CHANGE;
      case "truncate":
        return { truncated: this.captured(statement.table.database, statement.table.table) ? [statement.table] : [], changed };
      case "create-table": {
        const { table } = statement;
        if (statement.orReplace === true) this.sequences.delete(tableKey(table.database, table.table));
        if (!this.captured(table.database, table.table)) return NO_CHANGE;
        if (statement.ifNotExists && this.definition(table.database, table.table) !== null) return NO_CHANGE;
        const created = this.createdBy(table, statement.orReplace === true);
        this.columnsHad.delete(tableKey(table.database, table.table));
        const fallback = statement.defaultCharset ?? (await this.databaseCharset(table.database));
        // The server makes key columns NOT NULL, and names them as the column list does, whatever the case in PRIMARY KEY (...).
        const byName = new Map(statement.columns.map((column) => [column.name.toLowerCase(), column.name]));
        const key = statement.primaryKey.map((name) => byName.get(name.toLowerCase()) ?? name);
        const columns = statement.columns.map((column) => toColumn(column, fallback)).map((c) => (key.includes(c.name) ? { ...c, nullable: false } : c));
        await put(table, { database: table.database, table: table.table, columns, key, defaultCharset: fallback });
        return { truncated: created, changed };
      }
      case "create-table-like": {
        const { table, like } = statement;
        if (this.isSequence(like)) {
          if (statement.ifNotExists && this.definition(table.database, table.table) !== null) return NO_CHANGE;
          await this.becameSequence(table, query, from, changed);
          return { truncated: [], changed };
        }
        if (statement.orReplace === true) this.sequences.delete(tableKey(table.database, table.table));
        if (!this.captured(table.database, table.table)) return NO_CHANGE;
        if (statement.ifNotExists && this.definition(table.database, table.table) !== null) return NO_CHANGE;
        const created = this.createdBy(table, statement.orReplace === true);
        this.columnsHad.delete(tableKey(table.database, table.table));
        const source = this.definition(like.database, like.table);
        if (source !== null) await put(table, source);
        else await this.rereadFor(query, [table], from, changed);
        return { truncated: created, changed };
      }
      case "alter-table": {
        const renameTo = statement.actions.find((a): a is Extract<AlterAction, { kind: "rename-table" }> => a.kind === "rename-table")?.to;
        if (this.isSequence(statement.table)) {
          if (renameTo !== undefined) this.moveSequence(statement.table, renameTo);
          return NO_CHANGE;
        }
        const newName =
          renameTo !== undefined &&
          this.captured(renameTo.database, renameTo.table) &&
          (this.definition(renameTo.database, renameTo.table) === null || this.assumed.has(tableKey(renameTo.database, renameTo.table)));
        const reread: { table: string; columns: string[]; rowsChanged?: RowsChange }[] = [];
        await this.alter(statement.table, statement.actions.filter((a) => a.kind !== "rows-changed"), query, from, changed, reread);
        // Rows moved with no row event (partitions truncated, dropped, exchanged...): only reading the tables again tells.
        for (const action of statement.actions) {
          if (action.kind !== "rows-changed") continue;
          for (const t of action.other === null ? [statement.table] : [statement.table, action.other]) {
            if (!this.captured(t.database, t.table)) continue;
            const rowsChanged = { what: action.what, database: t.database, table: t.table, partitioned: t === statement.table, partitions: action.partitions };
            reread.push({ table: tableKey(t.database, t.table), columns: [], rowsChanged });
          }
        }
        return {
          truncated: [],
          changed,
          ...(newName ? { renamed: [{ from: tableKey(statement.table.database, statement.table.table), to: renameTo }] } : {}),
          ...(reread.length > 0 ? { reread } : {}),
        };
      }
      case "drop-tables":
        for (const table of statement.tables) {
          this.sequences.delete(tableKey(table.database, table.table));
          await put(table, null);
        }
        return { truncated: [], changed };
      case "rename-tables": {
        const knownBefore = new Set(this.knownTables().filter((key) => !this.assumed.has(key)));
        const definedBefore = new Map([...knownBefore].map((key) => [key, this.definitions.get(key)!]));
        const renamed: { from: string; to: TableName }[] = [];
        const reread: { table: string; columns: string[] }[] = [];
        for (const { from: source, to } of statement.renames) {
          if (this.isSequence(source)) {
            this.moveSequence(source, to);
            continue;
          }
          await this.move(source, to, query, from, changed);
          const key = tableKey(to.database, to.table);
          if (!this.captured(to.database, to.table)) continue;
          if (!knownBefore.has(key)) renamed.push({ from: tableKey(source.database, source.table), to });
          else {
            // A copy renamed over a captured name (pt-online-schema-change, gh-ost): its rows were copied with the
            // migration's conversions, which no change of the captured name carried.
            const was = definedBefore.get(key);
            const now = this.definitions.get(key);
            if (was !== undefined && now !== undefined) this.noteUnknownValues(was, now, new Set(), new Set(), new Set(), reread);
          }
        }
        return { truncated: [], changed, renamed, ...(reread.length > 0 ? { reread } : {}) };
      }
      case "drop-database":
        for (const [key, sequence] of [...this.sequences]) if (sequence.database === statement.database) this.sequences.delete(key);
        for (const key of this.knownTables()) {
          const definition = this.definitions.get(key)!;
          if (definition.database === statement.database) await put(definition, null);
        }
        return { truncated: [], changed };
      case "unparsed": {
        const captured = statement.tables.filter((t) => this.captured(t.database, t.table) || this.definition(t.database, t.table) !== null);
        if (captured.length === 0) return NO_CHANGE;
        this.options.logger.warn({ statement: query.slice(0, 500), reason: statement.reason, tables: captured.map((t) => tableKey(t.database, t.table)), position: this.positionText(at) }, "DDL not understood; re-reading the tables it names");
        // CREATE TABLE ... SELECT: its rows follow in the same transaction.
        const create = /^\s*CREATE\s+(OR\s+REPLACE\s+)?TABLE\s/i.exec(query);
        const created = create === null ? [] : captured.flatMap((t) => this.createdBy(t, create[1] !== undefined));
        await this.rereadFor(query, captured, from, changed);
        const what = statement.rowsChanged;
        if (what === undefined) return { truncated: created, changed };
        const reread = captured
          .filter((t) => this.captured(t.database, t.table))
          .map((t) => ({ table: tableKey(t.database, t.table), columns: [], rowsChanged: { what, database: t.database, table: t.table, partitioned: true, partitions: null } }));
        return { truncated: created, changed, ...(reread.length > 0 ? { reread } : {}) };
      }
    }
  }

  /**
   * A CREATE TABLE of a captured name that a table had before (dropped or renamed away since; or replaced, MariaDB's
   * CREATE OR REPLACE) starts it empty: returned as truncated, so targets lose that table's rows (the binlog has no row
   * events for a DROP). A name never seen is left.
   */
  private createdBy(table: TableName, orReplace: boolean): TableName[] {
    const key = tableKey(table.database, table.table);
    return this.captured(table.database, table.table) && (orReplace || !this.definitions.has(key)) && this.named.has(key) ? [table] : [];
  }

  private async alter(table: TableName, actions: readonly AlterAction[], query: string, from: bigint, changed: string[], reread: { table: string; columns: string[] }[]): Promise<void> {
    const key = tableKey(table.database, table.table);
    const renameTo = actions.find((a): a is Extract<AlterAction, { kind: "rename-table" }> => a.kind === "rename-table")?.to;
    const capturedNow = this.captured(table.database, table.table);
    const capturedAfter = renameTo !== undefined && this.captured(renameTo.database, renameTo.table);
    if (!capturedNow && !capturedAfter) return;
    const current = this.definitions.get(key) ?? null;
    if (current === null) {
      await this.rereadFor(query, [renameTo ?? table], from, changed);
      if (renameTo !== undefined && capturedNow) await this.commit(key, null, from, "ddl", query);
      return;
    }
    let next: TableDefinition;
    try {
      next = await this.applyActions(current, actions);
    } catch (error) {
      this.options.logger.warn({ statement: query.slice(0, 500), reason: (error as Error).message, table: key }, "ALTER TABLE does not apply to the known definition; re-reading the table");
      const had = new Set(this.columnsHad.get(key));
      await this.rereadFor(query, [renameTo ?? table], from, changed);
      const now = this.definitions.get(key);
      if (renameTo === undefined && now !== undefined) this.noteUnknownValues(current, now, had, null, new Set(), reread);
      return;
    }
    if (renameTo === undefined) this.noteUnknownValues(current, next, this.columnsHad.get(key) ?? new Set(), addedNames(actions), columnsGivenValues(actions), reread);
    if (renameTo !== undefined) {
      await this.move(table, renameTo, query, from, changed, next);
      return;
    }
    if (!sameDefinition(current, next)) {
      await this.commit(key, next, from, "ddl", query);
      changed.push(key);
    }
  }

  /**
   * Columns of `next` whose values in the rows already there are not the column's default and not what the targets
   * hold under that name: new to `current` and renamed (not among `added`, the names ADD COLUMN gave; null when not
   * known) or a name the table had before (`had`), given values by the statement (`replaced`, columnsGivenValues), or
   * redefined in a way that converts its values (keepsValues: a narrower DECIMAL scale rounds, a shorter VARCHAR cuts).
   */
  private noteUnknownValues(
    current: TableDefinition,
    next: TableDefinition,
    had: ReadonlySet<string>,
    added: ReadonlySet<string> | null,
    replaced: ReadonlySet<string>,
    reread: { table: string; columns: string[] }[],
  ): void {
    // A primary key column (the only key tracked) holds no NULL, whatever a MODIFY without NOT NULL made the tracked definition say.
    const key = new Set(current.key.map((k) => k.toLowerCase()));
    const before = new Map(current.columns.map((c) => [c.name.toLowerCase(), key.has(c.name.toLowerCase()) ? { ...c, nullable: false } : c]));
    const columns = next.columns
      .filter((column) => {
        const lower = column.name.toLowerCase();
        if (replaced.has(lower)) return true;
        const was = before.get(lower);
        if (was !== undefined) return !keepsValues(was, column);
        return (added !== null && !added.has(lower)) || had.has(lower);
      })
      .map((c) => c.name);
    if (columns.length > 0 && this.captured(next.database, next.table)) reread.push({ table: tableKey(next.database, next.table), columns });
  }

  private async applyActions(definition: TableDefinition, actions: readonly AlterAction[]): Promise<TableDefinition> {
    let columns = [...definition.columns];
    let key = [...definition.key];
    let defaultCharset = definition.defaultCharset;
    // A table CHARACTER SET option (or CONVERT TO) applies to the columns the same statement adds or redefines, wherever it stands.
    const setDefault = actions.findLast((action) => action.kind === "default-charset" || action.kind === "convert-charset");
    const fallback = (setDefault !== undefined && "charset" in setDefault ? setDefault.charset : defaultCharset) ?? (await this.databaseCharset(definition.database));
    const indexOf = (name: string) => columns.findIndex((c) => c.name.toLowerCase() === name.toLowerCase());
    const place = (column: ColumnDefinition, where: { first: true } | { after: string } | null, at: number) => {
      if (where === null) columns.splice(at < 0 ? columns.length : at, 0, column);
      else if ("first" in where) columns.unshift(column);
      else {
        const after = indexOf(where.after);
        if (after < 0) throw new RangeError(`no column ${where.after} to add after`);
        columns.splice(after + 1, 0, column);
      }
    };
    for (const action of actions) {
      switch (action.kind) {
        case "add-column":
          if (indexOf(action.column.name) >= 0) {
            if (action.ifNotExists) break;
            throw new RangeError(`column ${action.column.name} exists already`);
          }
          place(toColumn(action.column, fallback), action.place, -1);
          if (action.column.primaryKey) key = [action.column.name];
          break;
        case "drop-column": {
          const index = indexOf(action.name);
          if (index < 0) {
            if (action.ifExists) break;
            throw new RangeError(`no column ${action.name} to drop`);
          }
          columns.splice(index, 1);
          key = key.filter((k) => k.toLowerCase() !== action.name.toLowerCase());
          break;
        }
        case "modify-column":
        case "change-column": {
          const old = action.kind === "change-column" ? action.from : action.column.name;
          const index = indexOf(old);
          if (index < 0) throw new RangeError(`no column ${old} to change`);
          columns.splice(index, 1);
          // MODIFY and CHANGE carry no attribute forward: a column redefined without a character set takes the table's default.
          const column = toColumn(action.column, fallback);
          place(column, action.place, index);
          key = key.map((k) => (k.toLowerCase() === old.toLowerCase() ? column.name : k));
          if (action.column.primaryKey) key = [column.name];
          break;
        }
        case "rename-column": {
          const index = indexOf(action.from);
          if (index < 0) throw new RangeError(`no column ${action.from} to rename`);
          columns[index] = { ...columns[index]!, name: action.to };
          key = key.map((k) => (k.toLowerCase() === action.from.toLowerCase() ? action.to : k));
          break;
        }
        case "add-primary-key":
          key = action.columns.map((name) => columns[indexOf(name)]?.name ?? name);
          columns = columns.map((c) => (key.includes(c.name) ? { ...c, nullable: false } : c));
          break;
        case "drop-primary-key":
          key = [];
          break;
        case "default-charset":
          defaultCharset = action.charset;
          break;
        case "column-default": {
          const index = indexOf(action.name);
          if (index < 0) throw new RangeError(`no column ${action.name} to set a default of`);
          const { default: _old, ...column } = columns[index]!;
          const literal = action.value === undefined ? undefined : canonicalDefault(column.dbType, action.value);
          columns[index] = literal === undefined ? column : { ...column, default: literal };
          break;
        }
        case "convert-charset":
          columns = columns.map((column) => convertedColumn(column, action.charset));
          defaultCharset = action.charset;
          break;
        case "rename-table":
          break;
      }
    }
    return { ...definition, columns, key, defaultCharset };
  }

  private async move(source: TableName, target: TableName, query: string, from: bigint, changed: string[], definition?: TableDefinition): Promise<void> {
    const sourceKey = tableKey(source.database, source.table);
    const targetKey = tableKey(target.database, target.table);
    const known = definition ?? this.definitions.get(sourceKey) ?? null;
    if (this.definitions.has(sourceKey)) {
      await this.commit(sourceKey, null, from, "ddl", query);
      changed.push(sourceKey);
    }
    if (!this.captured(target.database, target.table)) return;
    if (known === null) {
      await this.rereadFor(query, [target], from, changed);
      return;
    }
    await this.commit(targetKey, { ...known, database: target.database, table: target.table }, from, "ddl", query);
    changed.push(targetKey);
  }

  private moveSequence(source: TableName, target: TableName): void {
    this.sequences.delete(tableKey(source.database, source.table));
    this.sequences.set(tableKey(target.database, target.table), target);
  }

  private async rereadFor(query: string, tables: readonly TableName[], from: bigint, changed: string[]): Promise<void> {
    const read = await this.reread(tables, from, "catalog", query);
    for (const table of tables) {
      const key = tableKey(table.database, table.table);
      if (read.has(key) || this.definitions.has(key)) changed.push(key);
    }
  }

  /** Re-reads tables from the server (current state) and records them; without a server, forgets them. */
  private async reread(tables: readonly TableName[], from: bigint, cause: "catalog", query: string | null): Promise<Map<string, TableDefinition>> {
    const { catalog, logger } = this.options;
    const wanted = tables.filter((t) => this.captured(t.database, t.table));
    if (catalog === null) {
      logger.warn({ tables: wanted.map((t) => tableKey(t.database, t.table)) }, "no server to re-read tables from; their definitions come from binlog metadata only");
      for (const table of wanted) this.set(tableKey(table.database, table.table), null);
      return new Map();
    }
    const read = await catalog.readDefinitions(wanted);
    for (const table of wanted) {
      const key = tableKey(table.database, table.table);
      await this.commit(key, read.get(key) ?? null, from, cause, query ?? undefined);
    }
    return read;
  }

  private async databaseCharset(database: string): Promise<string> {
    const known = this.databaseCharsets.get(database);
    if (known !== undefined) return known;
    const charset = (await this.options.catalog?.databaseCharset(database).catch(() => null)) ?? "utf8mb4";
    this.databaseCharsets.set(database, charset);
    return charset;
  }

  private async commit(key: string, definition: TableDefinition | null, at: bigint, cause: SchemaHistoryEntry["cause"], statement?: string): Promise<void> {
    const id = `${key}@${at}`;
    if (!this.stored.has(id)) {
      const entry: SchemaHistoryEntry = statement === undefined ? { at: at.toString(), table: key, definition, cause } : { at: at.toString(), table: key, definition, cause, statement: statement.slice(0, 10_000) };
      await this.options.store.append([entry]);
      this.stored.add(id);
    }
    this.set(key, definition);
  }

  private set(key: string, definition: TableDefinition | null): void {
    this.assumed.delete(key);
    if (definition === null) {
      this.definitions.delete(key);
      this.columnsHad.delete(key);
    } else {
      this.definitions.set(key, definition);
      this.named.add(key);
      const had = this.columnsHad.get(key) ?? new Set<string>();
      for (const column of definition.columns) had.add(column.name.toLowerCase());
      this.columnsHad.set(key, had);
    }
  }
}

/** The (lower-case) names ADD COLUMN actions give. */
function addedNames(actions: readonly AlterAction[]): Set<string> {
  return new Set(actions.flatMap((a) => (a.kind === "add-column" ? [a.column.name.toLowerCase()] : [])));
}

/**
 * The (lower-case) names of columns one ALTER TABLE gives values the targets cannot know: dropped and given
 * again (DROP COLUMN c, ADD COLUMN c ...), added with values the definition computes (ParsedColumn.filledBy),
 * or made generated (MODIFY c ... AS (expr)).
 */
function columnsGivenValues(actions: readonly AlterAction[]): Set<string> {
  const dropped = new Set<string>();
  const given = new Set<string>();
  for (const action of actions) {
    if (action.kind === "drop-column") {
      dropped.add(action.name.toLowerCase());
      continue;
    }
    const name = action.kind === "add-column" || action.kind === "modify-column" || action.kind === "change-column" ? action.column.name : action.kind === "rename-column" ? action.to : null;
    if (name === null) continue;
    const filledBy = "column" in action ? action.column.filledBy : undefined;
    if (dropped.has(name.toLowerCase()) && action.kind !== "modify-column") given.add(name.toLowerCase());
    if (filledBy === "generated" || (filledBy === "default" && action.kind === "add-column")) given.add(name.toLowerCase());
  }
  return given;
}

/** Bytes each TEXT type holds, smallest first. */
const TEXT_TYPES: readonly (readonly [string, number])[] = [
  ["tinytext", 255],
  ["text", 65_535],
  ["mediumtext", 16_777_215],
  ["longtext", 4_294_967_295],
];
/** The most bytes a VARCHAR can hold; a longer one the server would turn into a TEXT type (or refuse). */
const VARCHAR_MAX_BYTES = 65_532;

/**
 * A column after ALTER TABLE ... CONVERT TO CHARACTER SET: every character column gets the charset, and a TEXT column
 * the smallest TEXT type holding as many characters as before in it (the server widens, never narrows: latin1 TEXT
 * becomes utf8mb4 MEDIUMTEXT, utf8mb4 TEXT stays TEXT in latin1). Binary columns keep theirs.
 */
function convertedColumn(column: ColumnDefinition, charset: string): ColumnDefinition {
  if (column.charset === null || column.charset === "binary") return column;
  const from = charsetNamed(column.charset).maxBytesPerChar;
  const to = charsetNamed(charset).maxBytesPerChar;
  let dbType = column.dbType;
  const text = TEXT_TYPES.findIndex(([type]) => type === dbType);
  if (text >= 0 && to > from) {
    const needed = Math.floor(TEXT_TYPES[text]![1] / from) * to;
    dbType = (TEXT_TYPES.find(([, bytes]) => bytes >= needed) ?? TEXT_TYPES.at(-1)!)[0];
  }
  const varchar = /^varchar\((\d+)\)$/.exec(dbType);
  if (varchar !== null && Number(varchar[1]) * to > VARCHAR_MAX_BYTES) throw new RangeError(`CONVERT TO CHARACTER SET ${charset} makes ${column.name} ${dbType} longer than a VARCHAR holds`);
  return { ...column, dbType, charset };
}

function toColumn(column: ParsedColumn, fallbackCharset: string | null): ColumnDefinition {
  return {
    name: column.name,
    dbType: column.dbType,
    nullable: column.nullable,
    charset: column.charset ?? (column.textual ? (fallbackCharset ?? "utf8mb4") : null),
    ...(column.default === undefined ? {} : { default: column.default }),
  };
}
