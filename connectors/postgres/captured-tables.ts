/**
 * The captured tables as Sluice sees them: for each relation, its TableSchema (dbType as
 * format_type names it, nullability, defaults, key) and how to decode each column. Built from the
 * catalog for the snapshot, and again whenever a pgoutput Relation message differs from what is
 * known (a schema change): the events after it carry the new TableSchema.
 */
import type pg from "pg";
import type { Logger } from "pino";
import type { ColumnSchema, Position, TableSchema } from "../contracts.ts";
import { ConfigError } from "../errors.ts";
import { attributes, loadTypeCatalog, relationInfo, typeNames } from "./catalog.ts";
import type { AttributeInfo, PublishedTable, RelationInfo } from "./catalog.ts";
import type { RelationMessage } from "./protocol/pgoutput.ts";
import type { TableMatcher } from "../common/table-patterns.ts";
import type { TextDecoder } from "./values/scalars.ts";
import type { TypeCatalog } from "./values/type-catalog.ts";
import type { RelationLayout } from "./relation-layouts.ts";
import { literalOfDefault } from "../../schema-registry/column-defaults.ts";

type Queryable = Pick<pg.Client, "query">;

export interface CapturedColumn {
  readonly name: string;
  readonly typeOid: number;
  readonly typeModifier: number;
  /** The declared type as SQL (for casts in snapshot queries). */
  readonly sqlType: string;
  readonly decode: TextDecoder;
}

export type KeySource = "primary key" | "replica identity index" | "key_columns" | "full row";

export interface CapturedTable {
  readonly relid: number;
  /** "r" table, "p" partitioned table. */
  readonly kind: string;
  readonly schema: TableSchema;
  /** In the order of pgoutput tuples (and of snapshot SELECTs). */
  readonly columns: readonly CapturedColumn[];
  /** Indexes into `columns` of TableSchema.key. */
  readonly keyIndexes: readonly number[];
  readonly keySource: KeySource;
  /** The key is a primary key or unique index: snapshot chunks can page by it. */
  readonly uniqueKey: boolean;
  /** Column names, type OIDs and modifiers, and the replica identity's columns: equal signatures need no new schema. */
  readonly signature: string;
  readonly rowFilter: string | null;
}

export interface CapturedTablesOptions {
  readonly sourceName: string;
  readonly database: string;
  readonly keyColumns: Readonly<Record<string, readonly string[]>>;
  readonly matches: TableMatcher;
  readonly types: TypeCatalog;
  readonly logger: Logger;
  /**
   * A captured table renamed (or moved to another schema) to a name the source still captures and no other captured
   * table has, or one whose place it did not take in a swap (see swapped): its changes go to the new name's topic from
   * now on, whose targets hold none of its rows yet, maybe a gone table's (the source empties them, then backfills them).
   * Not awaited here: what it returns says when it is done (onPublished's `settled`), which the source's stream waits
   * for before it goes past the Relation message at `at` (null: a table read from the catalog).
   */
  readonly onRenamed?: (from: string, to: string, at: Position | null) => Promise<unknown> | void;
  /**
   * Columns of a captured table renamed, dropped and added again under their name (by attnum), or added with values
   * for the rows already there (`what` says which, for the log): WAL has no row changes for any, so the targets do not hold what the table's rows have in them (the source reads it again).
   * Not awaited, as onRenamed.
   */
  readonly onColumnsChanged?: (table: string, columns: readonly string[], at: Position | null, what: string) => Promise<unknown> | void;
  /**
   * What the previous run published of each relation (relation-layouts.ts): a relation's first Relation message in
   * this run is compared with it, so a rename made while Sluice was stopped is told as one seen live.
   */
  readonly previous?: ReadonlyMap<number, RelationLayout>;
  /**
   * A relation's layout as published from `at` on (null: from the catalog, at once; layout null: not captured), once
   * `settled`, what it set off (onRenamed, onColumnsChanged), is done.
   */
  readonly onPublished?: (relid: number, layout: RelationLayout | null, at: Position | null, settled: Promise<unknown> | undefined) => void;
}

interface ColumnSpec {
  readonly name: string;
  readonly typeOid: number;
  readonly typeModifier: number;
}

/**
 * `identity`: the columns of the replica identity (what pgoutput flags as key in a Relation message):
 * a primary key or identity index changed without a column change must give a new schema, or the
 * sinks would go on keying rows by the old key and fold rows the new one tells apart into one.
 */
function signatureOf(schema: string, table: string, columns: readonly ColumnSpec[], identity: readonly string[]): string {
  return JSON.stringify([schema, table, columns.map((c) => [c.name, c.typeOid, c.typeModifier]), identity]);
}

/** The columns a Relation message flags as the replica identity (pgoutput's key flag), in column order. */
function flaggedIdentity(message: RelationMessage): string[] {
  return message.columns.filter((c) => c.isKey).map((c) => c.name);
}

/**
 * What a callback set off, handled at once: the source awaits it at the Relation message (onPublished's `settled`), but
 * a catalog read of fromRelation that fails after the callback never hands it on, and its failure (a request that
 * could not be made) must not be an unhandled rejection, which ends the process. The stream fails with the read and
 * tells the callback again from its last checkpoint.
 */
function setOff(told: Promise<unknown> | void): Promise<unknown> | undefined {
  if (!(told instanceof Promise)) return undefined;
  told.catch(() => undefined);
  return told;
}

const INT2 = 21;
const INT4 = 23;
const INT8 = 20;
const TEXT = 25;
const VARCHAR = 1043;
const NUMERIC = 1700;

/**
 * Whether a column's type change keeps every stored value as it was (a widening: a wider integer, a longer or unbounded
 * varchar, more numeric precision at the same scale). Any other change may rewrite them (rounding to a smaller scale,
 * a float's new digits, a time zone applied): the table is read again. A USING expression cannot be seen.
 */
function keepsValues(from: ColumnSpec, to: ColumnSpec): boolean {
  if (from.typeOid === to.typeOid && from.typeModifier === to.typeModifier) return true;
  const integers = [INT2, INT4, INT8];
  if (integers.includes(from.typeOid) && integers.includes(to.typeOid)) return integers.indexOf(to.typeOid) >= integers.indexOf(from.typeOid);
  if (from.typeOid === VARCHAR && to.typeOid === TEXT) return true;
  if ((from.typeOid === VARCHAR || from.typeOid === TEXT) && to.typeOid === VARCHAR) return to.typeModifier === -1 || (from.typeOid === VARCHAR && from.typeModifier !== -1 && to.typeModifier >= from.typeModifier);
  if (from.typeOid === NUMERIC && to.typeOid === NUMERIC) {
    if (to.typeModifier === -1) return true;
    if (from.typeModifier === -1) return false;
    const [fromPrecision, fromScale] = [(from.typeModifier - 4) >> 16, (from.typeModifier - 4) & 0xffff];
    const [toPrecision, toScale] = [(to.typeModifier - 4) >> 16, (to.typeModifier - 4) & 0xffff];
    return toScale === fromScale && toPrecision >= fromPrecision;
  }
  return false;
}

/** Same columns, replica identity and key: no new schema. */
function sameShape(a: CapturedTable, b: CapturedTable): boolean {
  return a.signature === b.signature && a.schema.key.length === b.schema.key.length && a.schema.key.every((name, i) => b.schema.key[i] === name);
}

/** The columns pgoutput flags as the replica identity, as the catalog says they are now (relreplident and its index). */
function catalogIdentity(info: RelationInfo | null, byNumber: ReadonlyMap<number, string>, names: readonly string[]): string[] {
  const columns = (numbers: readonly number[] | null) => (numbers ?? []).map((n) => byNumber.get(n)).filter((name): name is string => name !== undefined && names.includes(name));
  switch (info?.replicaIdentity) {
    case "f":
      return [...names];
    case "i":
      return columns(info.identityIndex);
    case "d":
      return columns(info.primaryKey);
    default:
      return [];
  }
}

export class CapturedTables {
  private readonly options: CapturedTablesOptions;
  private types: TypeCatalog;
  private readonly byRelid = new Map<number, CapturedTable | null>();
  /** Relations the catalog no longer lists under the name they have here, which no other table took: not found by name. */
  private readonly vacated = new Set<number>();
  /** By relation: the attnums its captured columns' names had, and the names and types its attnums had, since the source started. */
  private readonly columnNumbers = new Map<number, { readonly byName: Map<string, number>; readonly byNumber: Map<number, ColumnSpec> }>();
  private readonly warnedFullRow = new Set<string>();
  private readonly warnedGenerated = new Set<string>();
  /**
   * Relations whose entry a Relation message set: the stream decodes their tuples by it until the next Relation message,
   * so a catalog read (fromCatalog) never replaces it. The catalog may already have another layout (a column dropped
   * and added again further on in the WAL), and decoding the stream's tuples by that layout put values in the wrong
   * columns or failed to decode them.
   */
  private readonly streamed = new Set<number>();

  constructor(options: CapturedTablesOptions) {
    this.options = options;
    this.types = options.types;
    for (const [relid, layout] of options.previous ?? []) {
      this.columnNumbers.set(relid, {
        byName: new Map(layout.columns.map((c) => [c.name, c.number])),
        byNumber: new Map(layout.columns.map((c) => [c.number, { name: c.name, typeOid: c.typeOid, typeModifier: c.typeModifier }])),
      });
    }
  }

  /** The captured table for a relation id: undefined when never seen, null when not captured. */
  get(relid: number): CapturedTable | null | undefined {
    return this.byRelid.get(relid);
  }

  /** The captured table a schema belongs to (by name), if it is known and its relation has not vacated the name. */
  find(schema: Pick<TableSchema, "schema" | "table">): CapturedTable | undefined {
    for (const [relid, table] of this.byRelid) {
      if (table && table.schema.schema === schema.schema && table.schema.table === schema.table && !this.vacated.has(relid)) return table;
    }
    return undefined;
  }

  /**
   * The relation is gone from the catalog (dropped, or renamed out of the tables) and `name` (schema.table), the one it
   * had, is free (TableDiscovery): a table renamed onto that name later is no swap. Its changes still in the WAL
   * are decoded as before (by relation id).
   */
  vacate(relid: number, name: string): void {
    const table = this.byRelid.get(relid);
    if (table != null && `${table.schema.schema}.${table.schema.table}` === name) this.vacated.add(relid);
  }

  /** Stored generated columns are left out: pgoutput (PostgreSQL 17 and older) never sends them, so the snapshot leaves them out too. */
  private warnGenerated(schemaName: string, tableName: string, columns: readonly string[]): void {
    const qualified = `${schemaName}.${tableName}`;
    if (columns.length === 0 || this.warnedGenerated.has(qualified)) return;
    this.warnedGenerated.add(qualified);
    this.options.logger.warn(
      { table: qualified, columns },
      `generated columns ${columns.join(", ")} of ${qualified} are not captured: PostgreSQL's logical replication does not send them; topics and sinks have the table without them (compute them in the target, or make them plain columns)`,
    );
  }

  /** The table as the catalog of `db` (a snapshot transaction) shows it, limited to the published columns. */
  async fromCatalog(db: Queryable, relid: number, published: PublishedTable | undefined): Promise<CapturedTable> {
    const info = await relationInfo(db, relid);
    if (info === null) throw new Error(`relation ${relid} does not exist`);
    const attrs = await attributes(db, relid);
    const publishedColumns = published?.columns ?? null;
    const specs = attrs.filter((a) => !a.generated && (publishedColumns === null || publishedColumns.includes(a.name)));
    this.warnGenerated(info.schema, info.table, attrs.filter((a) => a.generated).map((a) => a.name));
    const table = await this.build(db, relid, info, attrs, specs, info.schema, info.table, published?.rowFilter ?? null);
    // A catalog read records a relation's columns only when none are recorded yet: comparing them is the part of the
    // stream's Relation messages, in WAL order. Recorded here, a column renamed or added before the stream's Relation
    // message for it (an online snapshot resolving the table in between) would be known when that message comes, and
    // the read again it calls for never asked.
    if ((this.columnNumbers.get(relid)?.byNumber.size ?? 0) === 0) this.numbered(relid, attrs, specs);
    if (this.streamed.has(relid)) return table;
    this.remember(table);
    this.published(relid, this.byRelid.get(relid) ?? table, null, undefined);
    return table;
  }

  /**
   * Records the attnums of the columns; returns, as `changed`, those whose name had another attnum, whose attnum had
   * another name, or whose type changed in a way that can change stored values (ALTER COLUMN TYPE rewrites the rows
   * without WAL changes), and as `filled` those added to a relation seen before that gave the rows already there values
   * no change carries and no Avro default can give: a default that is no literal (now(), nextval(...),
   * gen_random_uuid()) or an identity column (GENERATED ... AS IDENTITY, which has no default entry).
   */
  private numbered(relid: number, attrs: readonly AttributeInfo[], columns: readonly ColumnSpec[]): { changed: string[]; filled: string[] } {
    let seen = this.columnNumbers.get(relid);
    if (seen === undefined) {
      seen = { byName: new Map(), byNumber: new Map() };
      this.columnNumbers.set(relid, seen);
    }
    const seenBefore = seen.byNumber.size > 0;
    const changed: string[] = [];
    const filled: string[] = [];
    for (const column of columns) {
      const attr = attrs.find((a) => a.name === column.name);
      if (attr === undefined) continue;
      const number = attr.number;
      const before = seen.byName.get(column.name);
      const had = seen.byNumber.get(number);
      const added = seenBefore && before === undefined && had === undefined;
      if ((before !== undefined && before !== number) || (had !== undefined && (had.name !== column.name || !keepsValues(had, column)))) changed.push(column.name);
      else if (added && (attr.identity === true || (attr.defaultExpression !== null && literalOfDefault(attr.defaultExpression) === undefined))) filled.push(column.name);
      seen.byName.set(column.name, number);
      seen.byNumber.set(number, column);
    }
    return { changed, filled };
  }

  /** Tells onColumnsChanged of columns renamed, added again or added with values for the rows already there since the relation was last seen (catalog attnums); returns what it returned. */
  private checkColumns(relid: number, attrs: readonly AttributeInfo[], message: RelationMessage, at: Position | null): Promise<unknown> | undefined {
    const { changed, filled } = this.numbered(relid, attrs, message.columns);
    if (changed.length === 0 && filled.length === 0) return undefined;
    const what = [
      ...(changed.length > 0 ? [`columns ${changed.join(", ")} were renamed, dropped and added again, or changed type`] : []),
      ...(filled.length > 0 ? [`columns ${filled.join(", ")} were added with values the rows already there took from a default that is no literal or an identity`] : []),
    ].join("; ");
    return setOff(this.options.onColumnsChanged?.(`${message.namespace}.${message.name}`, [...changed, ...filled], at, what));
  }

  /** The relation's layout as published: its name and its captured columns with their attnums. */
  private layoutOf(table: CapturedTable): RelationLayout {
    const byName = this.columnNumbers.get(table.relid)?.byName;
    const columns = table.columns.flatMap((c) => {
      const number = byName?.get(c.name);
      return number === undefined ? [] : [{ number, name: c.name, typeOid: c.typeOid, typeModifier: c.typeModifier }];
    });
    return { schema: table.schema.schema, table: table.schema.table, columns };
  }

  private published(relid: number, table: CapturedTable | null, at: Position | null, settled: Promise<unknown> | undefined): void {
    this.options.onPublished?.(relid, table === null ? null : this.layoutOf(table), at, settled);
  }

  /**
   * The relation captured under `name` (schema.table) before `relid` took it: one known in this run, or one the
   * previous run published under it and this run has not seen yet.
   */
  private holderOf(schema: string, table: string, relid: number): number | undefined {
    const known = this.find({ schema, table });
    if (known !== undefined) return known.relid === relid ? undefined : known.relid;
    for (const [previous, layout] of this.options.previous ?? []) {
      if (previous !== relid && layout.schema === schema && layout.table === table && !this.byRelid.has(previous) && !this.vacated.has(previous)) return previous;
    }
    return undefined;
  }

  /**
   * The table a Relation message describes, or null when it is not captured. Reuses the known
   * table when nothing changed; otherwise reads keys, nullability and defaults from the current
   * catalog (types and column order come from the message, which is authoritative for the WAL).
   */
  async fromRelation(db: Queryable, message: RelationMessage, at: Position | null = null): Promise<CapturedTable | null> {
    const relid = message.relationId;
    const known = this.byRelid.get(relid);
    // First seen in this run: compared with what the previous run published of it (unknown: nothing to tell).
    const before = known === undefined ? this.options.previous?.get(relid) : known?.schema;
    const renamedFrom = before != null && (before.schema !== message.namespace || before.table !== message.name) ? `${before.schema}.${before.table}` : null;
    const to = `${message.namespace}.${message.name}`;
    if (!this.options.matches(message.namespace, message.name)) {
      if (renamedFrom !== null) {
        this.options.logger.warn({ table: renamedFrom, renamedTo: to }, `table ${renamedFrom} was renamed to ${to}, which the source's tables do not match: it is no longer captured (its targets keep the rows they have)`);
      }
      this.byRelid.set(relid, null);
      this.streamed.add(relid);
      this.published(relid, null, at, undefined);
      return null;
    }
    const settled: Promise<unknown>[] = [];
    this.streamed.add(relid);
    if (renamedFrom !== null) {
      const holder = this.holderOf(message.namespace, message.name, relid);
      if (holder === undefined || !(await this.swapped(db, holder, relid))) {
        const told = setOff(this.options.onRenamed?.(renamedFrom, to, at));
        if (told !== undefined) settled.push(told);
      } else {
        // Another captured relation had this name (an online schema change's swap: the copy renamed over the original):
        // the name's topic and targets already hold the table's rows.
        this.options.logger.info({ table: to, renamedFrom }, `table ${renamedFrom} was renamed to ${to}, taking the place of the captured table of that name: its changes go on in ${to}'s topic`);
      }
    }
    const done = () => (settled.length === 0 ? undefined : Promise.all(settled));
    const signature = signatureOf(message.namespace, message.name, message.columns, flaggedIdentity(message));
    // With REPLICA IDENTITY FULL every column is flagged, so only the catalog tells a changed primary key.
    if (known != null && known.signature === signature && message.replicaIdentity !== "f") {
      // A column dropped and added again under its name and type looks the same: only its attnum tells.
      const told = this.checkColumns(relid, await attributes(db, relid), message, at);
      if (told !== undefined) settled.push(told);
      this.published(relid, known, at, done());
      return known;
    }
    const info = await relationInfo(db, relid);
    const attrs = info === null ? [] : await attributes(db, relid);
    const told = this.checkColumns(relid, attrs, message, at);
    if (told !== undefined) settled.push(told);
    const table = await this.build(db, relid, info, attrs, message.columns, message.namespace, message.name, known?.rowFilter ?? null, message);
    if (known != null && sameShape(known, table)) {
      this.published(relid, known, at, done());
      return known;
    }
    if (known != null) {
      this.options.logger.info(
        { table: `${message.namespace}.${message.name}`, columns: table.schema.columns.map((c) => `${c.name} ${c.dbType}`) },
        "table schema changed",
      );
    }
    this.remember(table);
    this.published(relid, table, at, done());
    return table;
  }

  /**
   * Whether relation `renamed`, renamed onto the name `holder` had, took its place in an online schema change's swap: a
   * copy is created after its original (a higher relation id), and the original still exists under another name. A
   * holder dropped (also one dropped and the name taken before TableDiscovery saw it free) or created after `renamed`
   * (two tables' names exchanged) is no swap: the name's targets hold another table's rows. The catalog is read now:
   * an original dropped since its swap makes the copy read again (the targets end up right, at the cost of a read).
   */
  private async swapped(db: Queryable, holder: number, renamed: number): Promise<boolean> {
    if (holder >= renamed) return false;
    return (await relationInfo(db, holder)) !== null;
  }

  private remember(table: CapturedTable): void {
    const known = this.byRelid.get(table.relid);
    this.byRelid.set(table.relid, known != null && sameShape(known, table) ? known : table);
  }

  private async build(
    db: Queryable,
    relid: number,
    info: RelationInfo | null,
    attrs: readonly AttributeInfo[],
    specs: readonly ColumnSpec[],
    schemaName: string,
    tableName: string,
    rowFilter: string | null,
    message?: RelationMessage,
  ): Promise<CapturedTable> {
    if (specs.some((spec) => !this.types.has(spec.typeOid))) this.types = await loadTypeCatalog(db);
    const byName = new Map(attrs.map((a) => [a.name, a]));
    const byNumber = new Map(attrs.map((a) => [a.number, a.name]));
    const names = specs.map((s) => s.name);
    const key = this.chooseKey(schemaName, tableName, info, byNumber, names, message);
    const dbTypes = await typeNames(db, specs.map((s) => this.types.nameTarget(s.typeOid, s.typeModifier)));

    const columns: CapturedColumn[] = specs.map((spec) => ({
      name: spec.name,
      typeOid: spec.typeOid,
      typeModifier: spec.typeModifier,
      sqlType: byName.get(spec.name)?.sqlType ?? "text",
      decode: this.types.decoderFor(spec.typeOid),
    }));
    const columnSchemas: ColumnSchema[] = specs.map((spec, i) => {
      const attr = byName.get(spec.name);
      const keyPosition = key.names.indexOf(spec.name);
      const column: ColumnSchema = {
        name: spec.name,
        dbType: dbTypes[i]!,
        nullable: attr === undefined ? true : !attr.notNull,
        default: attr?.defaultExpression ?? null,
        ...(keyPosition >= 0 ? { primaryKeyIndex: keyPosition + 1 } : {}),
      };
      return column;
    });
    const schema: TableSchema = {
      source: this.options.sourceName,
      database: this.options.database,
      schema: schemaName,
      table: tableName,
      sourceKind: "postgres",
      columns: columnSchemas,
      key: key.names,
      ...(key.source === "full row" ? { keyIsWholeRow: true } : {}),
    };
    return {
      relid,
      kind: info?.kind ?? "r",
      schema,
      columns,
      keyIndexes: key.names.map((name) => names.indexOf(name)),
      keySource: key.source,
      uniqueKey: key.source === "primary key" || key.source === "replica identity index",
      signature: signatureOf(schemaName, tableName, specs, message === undefined ? catalogIdentity(info, byNumber, names) : flaggedIdentity(message)),
      rowFilter,
    };
  }

  private chooseKey(
    schemaName: string,
    tableName: string,
    info: RelationInfo | null,
    byNumber: ReadonlyMap<number, string>,
    names: readonly string[],
    message: RelationMessage | undefined,
  ): { names: string[]; source: KeySource } {
    const qualified = `${schemaName}.${tableName}`;
    const fromAttnums = (numbers: readonly number[] | null): string[] | null => {
      if (numbers === null || numbers.length === 0) return null;
      const resolved = numbers.map((n) => byNumber.get(n));
      return resolved.every((name): name is string => name !== undefined && names.includes(name)) ? resolved : null;
    };
    const primaryKey = fromAttnums(info?.primaryKey ?? null);
    const identity = fromAttnums(info?.identityIndex ?? null);
    // A Relation message flags the replica identity as of the WAL being decoded, while the catalog may already
    // be past a later key change: the flags decide, in the catalog's key order when the columns are the same.
    if (message !== undefined && (message.replicaIdentity === "d" || message.replicaIdentity === "i")) {
      const flagged = flaggedIdentity(message);
      if (flagged.length > 0) {
        const catalogKey = message.replicaIdentity === "i" ? identity : primaryKey;
        const sameColumns = catalogKey !== null && catalogKey.length === flagged.length && catalogKey.every((name) => flagged.includes(name));
        return { names: sameColumns ? catalogKey : flagged, source: message.replicaIdentity === "i" ? "replica identity index" : "primary key" };
      }
    }
    // With REPLICA IDENTITY USING INDEX, deletes carry only that index's columns: key by it.
    if (identity !== null && info?.replicaIdentity === "i") return { names: identity, source: "replica identity index" };
    if (primaryKey !== null) return { names: primaryKey, source: "primary key" };
    if (identity !== null) return { names: identity, source: "replica identity index" };
    const configured = this.options.keyColumns[qualified];
    if (configured !== undefined) {
      const unknown = configured.filter((name) => !names.includes(name));
      if (unknown.length > 0) {
        throw new ConfigError(`key_columns for ${qualified} names columns the table does not have: ${unknown.join(", ")}`, {
          code: "PG_KEY_COLUMNS_UNKNOWN",
          context: { component: "postgres-source", source: this.options.sourceName, table: qualified },
        });
      }
      return { names: [...configured], source: "key_columns" };
    }
    if (!this.warnedFullRow.has(qualified)) {
      this.warnedFullRow.add(qualified);
      this.options.logger.warn(
        { table: qualified },
        "table has no primary key, replica identity index or key_columns entry: its whole row is its record key, and sinks refuse it (identical rows cannot be told apart); add a primary key or a key_columns entry",
      );
    }
    return { names: [...names], source: "full row" };
  }
}
