/**
 * The ClickHouse sink: per source table a versioned `ReplacingMergeTree(_sluice_version)` table
 * `<target>__v<N>` ordered by the primary key, with a `_sluice_deleted` flag (tombstones), and a
 * view `<target>` of current rows (FINAL, no tombstones, nothing at or below the newest truncate)
 * that users query. Rows go in as batched RowBinary inserts (exact for every type, floats
 * included); a retried or replayed batch inserts rows ReplacingMergeTree collapses by version, so
 * it never shows twice. Unchanged-TOAST columns are filled from the stored row (read back as
 * RowBinary, re-inserted byte for byte).
 *
 * ClickHouse has no transactions: data first, then bookkeeping (truncate versions, catalog,
 * offsets), so a crash in between repeats work that applies by version. RowBinary names no types,
 * so each table's catalog entry is compared with the server's columns before its first write
 * (consistency.ts).
 */
import { randomBytes } from "node:crypto";
import type { Logger } from "../../runtime/logger.ts";
import type { SinkChange, TableId, TableSchema, TopicPartitionOffset } from "../contracts.ts";
import { UNCHANGED } from "../contracts.ts";
import { ConnectionError, isRetriable, SluiceError } from "../errors.ts";
import { allIndices, collapseChanges, hasUnchanged } from "../sinks/batch.ts";
import type { RowChange, StagedChange, TableChanges } from "../sinks/batch.ts";
import { DELETED_COLUMN, firstVersionWith, initialColumns, planColumns, VERSION_COLUMN } from "../sinks/columns.ts";
import type { SinceOf, TargetColumn } from "../sinks/columns.ts";
import type { ErasableSink, ErasureRequest, OffsetWriteResult, RebuildRowCounts, RebuildShadow, StagedWrite, StagingSink, StoredSinkOffset, VersionedSink } from "../sinks/contract.ts";
import { errorMessage, rebuildState, rowRejected, schemaUnsupported, ValueRejected } from "../sinks/errors.ts";
import { Failures } from "../sinks/failures.ts";
import { beforeHalt, earlierPlace, failedRowPlace } from "../sinks/halt-place.ts";
import type { HaltPlace } from "../sinks/halt-place.ts";
import { applyUntilRejected, isolateRejected } from "../sinks/isolate.ts";
import { physicalName, renderTarget, tableFilter, tableLabel } from "../sinks/naming.ts";
import { refuseSubjectColumn } from "../sinks/subject-column.ts";
import { TargetClaims } from "../sinks/target-claims.ts";
import { cellOf, positionLabel } from "../sinks/rows.ts";
import { Serial } from "../sinks/serial.ts";
import { settleInTurn } from "../sinks/tables-in-flight.ts";
import { ClickHouseCatalog } from "./catalog.ts";
import type { ClickHouseTable } from "./catalog.ts";
import type { ClickHouseSinkConfig, ClickHouseSinkOptions } from "./config.ts";
import { ClickHouseConnection, ClickHouseDataError, serverErrorCode } from "./connection.ts";
import { addedMismatch, CatalogMismatch, checkTable, describeColumn, describeServerColumn, evolutionSteps, parseServerColumns, sameColumns, systemColumnsSql, takes, writesAs } from "./consistency.ts";
import type { MismatchContext, ServerColumn, ServerTables } from "./consistency.ts";
import { addColumnSql, countCurrentRowsMeetingSql, countCurrentRowsSql, createTableSql, createViewSql, ident, modifyColumnSql, qualified, TRUNCATES_TABLE, viewDefinitionSql, viewSource } from "./ddl.ts";
import { keyLiteral, readValue, skipValue, writeValue } from "./codec.ts";
import { parseTsv, sqlString, unescapeField } from "./tsv.ts";
import { sleep } from "../../runtime/backoff.ts";
import { RowBinaryReader, RowBinaryWriter } from "./rowbinary.ts";
import { ClickHouseStagedWrite } from "./staged-write.ts";
import type { StagedTable } from "./staged-write.ts";
import { atLeast, clickhouseType, dialectFor } from "./types.ts";
import type { Dialect } from "./types.ts";

type Mode = "live" | "rebuild";

/** A stored non-key field: its RowBinary bytes, the column they belong to and its ClickHouse type. */
interface StoredField {
  readonly column: TargetColumn;
  readonly type: string;
  readonly bytes: Buffer;
}

/** A row as stored: its version, tombstone flag and non-key fields by column. */
interface StoredRow {
  readonly version: bigint;
  readonly deleted: boolean;
  readonly fields: ReadonlyMap<string, StoredField>;
}

const STORED_CHUNK = 500;
/** ClickHouse's UNKNOWN_TABLE and NO_SUCH_COLUMN_IN_TABLE: an insert into a table changed behind the sink's back. */
const UNKNOWN_TABLE = 60;
const NO_SUCH_COLUMN = 16;
const VIEW_CHECK_MS = 10_000;

const RECREATED_EMPTY =
  "the table was dropped and created again, or emptied (TRUNCATE TABLE, every partition dropped with ALTER TABLE ... DROP PARTITION, or a TTL that removed every part): " +
  "it has the catalog's columns but none of the rows written to it";

/**
 * A table the sink wrote found with no data part after a mismatch: re-created from its DDL, or emptied in place, which
 * ClickHouse does not tell apart. Re-created, its rows are gone for good; emptied on purpose, the operator may take it as
 * it is (sluice halted retry --force: acceptTargetAsIs).
 */
export class EmptiedTable extends CatalogMismatch {}

function recreatedEmpty(context: Omit<MismatchContext, "column" | "catalogType" | "serverType">, columns: number): EmptiedTable {
  return new EmptiedTable(
    RECREATED_EMPTY,
    { ...context, catalogType: `${columns} columns, rows written`, serverType: "the same columns, no data part" },
    "if it was created again, the rows it held are gone: fill it again from the topics (sluice replay --sink NAME --from-beginning --rebuild --table T --execute), then sluice halted retry; " +
      "if it was emptied on purpose and is to be written on as it is, sluice halted retry --sink NAME --table T --force --execute",
  );
}

/** The tables of `database` (or only `table`) that have an active data part. */
function tablesWithPartsSql(database: string, table?: string): string {
  const only = table === undefined ? "" : ` AND table = ${sqlString(table)}`;
  return `SELECT DISTINCT table FROM system.parts WHERE database = ${sqlString(database)}${only} AND active FORMAT TabSeparated`;
}

export class ClickHouseSink implements VersionedSink, ErasableSink, StagingSink {
  readonly name: string;
  readonly offsetsAtomic = false;
  /** For messages such as SINK_TARGET_OFFSETS_LOST. */
  readonly targetLabel: string;
  readonly #config: ClickHouseSinkConfig;
  readonly #logger: Logger;
  readonly #accept: (table: TableId) => boolean;
  readonly #serial = new Serial();
  readonly #database: string;
  /** Suffix of this process's scratch views: processes sharing the sink never build under one name. */
  readonly #scratch = randomBytes(4).toString("hex");
  /** Which table each target is (a target or its generations "<target>__v<N>" never serve two tables). */
  readonly #claims: TargetClaims;
  /** The table each target was first written for, as `_sluice_targets` holds it. */
  #owners = new Map<string, TableId>();
  #connection: ClickHouseConnection | null = null;
  #catalog: ClickHouseCatalog | null = null;
  #dialect: Dialect = { dateTime64: false, date32: false, nativeDeletes: false };
  #tables = new Map<string, ClickHouseTable>();
  /** Identities of the topics read now: stored with every offset. */
  #topicIds: ReadonlyMap<string, string> = new Map();
  /** Highest generation used per target, dropped ones included. */
  #generations = new Map<string, number>();
  /** Per target, the shadow its last swap made live and the table it replaced, until its next prepare: a swap tried again finishes it. */
  readonly #lastSwap = new Map<string, { readonly shadow: string; readonly old: string | null }>();
  /** Each physical table's columns on the server: read at open and after a CREATE, then kept up to date by the sink's own ALTERs. */
  #server: ServerTables = new Map();
  /** Physical tables compared with the server since open, and those that did not match (halted; read from the server again when written again: #lookAgain). */
  #checked = new Set<string>();
  #mismatched = new Map<string, CatalogMismatch>();
  /**
   * Physical tables known to hold a data part (at open, or written since). ClickHouse 18.16 has no table identity that
   * a re-creation changes and a RENAME keeps (no system.tables.uuid; metadata_modification_time changes at a RENAME
   * too), but a MergeTree table once written keeps an active part, an empty one even when a mutation deleted every row:
   * one back with no part after a mismatch was re-created, not put back (#lookAgain).
   */
  #holdingParts = new Set<string>();
  /** Per schema: the columns of the live table last found to take its rows as they are (no evolution), for the staged write. */
  #takes = new WeakMap<TableSchema, readonly TargetColumn[]>();
  readonly #viewCheckMs: number;
  /** When a write next looks for views dropped while the sink runs (performance.now()). */
  #nextViewCheck = 0;

  constructor(config: ClickHouseSinkConfig, options: ClickHouseSinkOptions) {
    this.name = config.name;
    this.#config = config;
    this.#database = config.database;
    this.#logger = options.logger.child({ component: "sink", sink: config.name, kind: "clickhouse" });
    this.#accept = tableFilter(config);
    this.#claims = new TargetClaims(config.name);
    this.#viewCheckMs = options.viewCheckMs ?? VIEW_CHECK_MS;
    this.targetLabel = `ClickHouse database ${config.database} at ${new URL(config.url).origin}`;
  }

  /** The server's column types and engine options, known after `open`. */
  get dialect(): Dialect {
    return this.#dialect;
  }

  async open(signal: AbortSignal): Promise<void> {
    const connection = new ClickHouseConnection(this.#config, this.#logger);
    try {
      const version = await connection.version(signal);
      if (this.#config.native_deletes && !atLeast(version, 23, 2)) {
        throw new SluiceError(`native_deletes needs ClickHouse 23.2 or later; the server is ${version}`, {
          code: "SINK_SERVER_UNSUPPORTED",
          context: { component: "sink", sink: this.name },
        });
      }
      this.#dialect = dialectFor(version, this.#config.native_deletes);
      const catalog = new ClickHouseCatalog(connection, this.#database);
      await catalog.bootstrap(signal);
      const { tables, generations } = await catalog.load(signal);
      this.#tables = new Map(tables.map((t) => [t.physical, t]));
      this.#owners = await catalog.loadOwners(signal);
      for (const [target, owner] of this.#owners) this.#claims.know(target, owner);
      for (const table of this.#tables.values()) this.#claims.know(table.target);
      this.#generations = generations;
      const server = parseServerColumns(await connection.select(systemColumnsSql(this.#database), signal));
      this.#server = new Map([...server].filter(([physical]) => this.#tables.has(physical)));
      this.#holdingParts = new Set(parseTsv(await connection.select(tablesWithPartsSql(this.#database), signal)).map(([table]) => unescapeField(table!).toString("utf8")));
      this.#checked = new Set();
      this.#mismatched = new Map();
      this.#connection = connection;
      this.#catalog = catalog;
      this.#nextViewCheck = performance.now() + this.#viewCheckMs;
      const lives = [...this.#tables.values()].filter((t) => t.role === "live").map((t) => t.target);
      for (const target of new Set(lives.filter((target, i) => lives.indexOf(target) !== i))) await this.#finishTwoLive(target, signal);
      for (const target of new Set([...this.#tables.values()].filter((t) => t.role === "shadow").map((t) => t.target))) await this.#finishSwap(target, signal);
      // A crash between saving a new table in the catalog and making its view leaves no view: make it now.
      for (const table of this.#tables.values()) {
        if (table.role !== "live" || table.columns.length === 0 || server.has(table.target)) continue;
        if (!server.has(table.physical)) {
          // Dropped with its view (by hand) while the sink was stopped: its first write halts it as a catalog mismatch (#check), the other tables go on.
          this.#logger.warn({ target: table.target, physical: table.physical }, "the table and its view are missing on the server (dropped while the sink was stopped): its writes halt until it is rebuilt");
          continue;
        }
        await this.#replaceView(table, signal);
        this.#logger.warn({ target: table.target, physical: table.physical }, "the table's view was missing (a crash before it was made): made it");
      }
      this.#logger.info({ version, dialect: this.#dialect, tables: this.#tables.size }, "ClickHouse sink open");
    } catch (error) {
      await connection.close().catch(() => undefined);
      throw error;
    }
  }

  async close(): Promise<void> {
    const connection = this.#connection;
    this.#connection = null;
    this.#catalog = null;
    await connection?.close();
  }

  write(changes: readonly SinkChange[], signal: AbortSignal, offsets?: readonly TopicPartitionOffset[]): Promise<OffsetWriteResult> {
    return this.#serial.run(() => this.#write(changes, "live", offsets ?? null, signal));
  }

  /** A staged write for the next batch (sinks/contract.ts; staged-write.ts), or null while the sink is not open. */
  stagedWrite(signal: AbortSignal): StagedWrite | null {
    if (this.#connection === null) return null;
    return new ClickHouseStagedWrite({
      tableFor: (schema) => this.#stagedTable(schema),
      prepare: (schema, version, hasRows) => this.#serial.run(() => this.#prepareStaged(schema, version, hasRows, signal)),
      types: (columns) => this.#types(columns),
      encode: (table, change) => this.#row(table.writer, table.columns, table.types, change, undefined),
      write: (tables, signal, offsets) => this.#serial.run(() => this.#writeStaged(tables, offsets ?? null, signal)),
    });
  }

  writeRebuild(changes: readonly SinkChange[], signal: AbortSignal): Promise<OffsetWriteResult> {
    return this.#serial.run(() => this.#write(changes, "rebuild", null, signal));
  }

  storeOffsets(offsets: readonly TopicPartitionOffset[], signal: AbortSignal): Promise<void> {
    return this.#serial.run(() => this.#cat().writeOffsets(this.name, offsets, this.#topicIds, signal));
  }

  useTopicIds(ids: ReadonlyMap<string, string>): void {
    this.#topicIds = new Map(ids);
  }

  committedOffsets(signal: AbortSignal = AbortSignal.timeout(60_000)): Promise<StoredSinkOffset[]> {
    return this.#serial.run(() => this.#cat().readOffsets(this.name, signal));
  }

  prepareRebuild(table: TableId, signal: AbortSignal, shape?: TableSchema): Promise<void> {
    return this.#serial.run(async () => {
      const target = this.#target(table);
      const columns = shape ? initialColumns(shape, { sink: this.name, table: tableLabel(table) }) : null;
      await this.#finishSwap(target, signal);
      this.#lastSwap.delete(target);
      const old = this.#find(target, "shadow");
      if (old) await this.#drop(old, signal);
      const live = this.#find(target, "live");
      const generation = this.#nextGeneration(target);
      const shadow: ClickHouseTable = { physical: physicalName(target, generation), target, role: "shadow", generation, truncateVersion: 0n, columns: [] };
      this.#tables.set(shadow.physical, shadow);
      const initial = columns ?? live?.columns;
      if (initial) await this.#create(shadow, initial, tableLabel(table), signal);
      else await this.#cat().save(shadow, signal);
      this.#logger.info({ target, shadow: shadow.physical }, "rebuild prepared: writes go to the live table and the shadow");
    });
  }

  swap(table: TableId, signal: AbortSignal): Promise<void> {
    return this.#serial.run(async () => {
      const target = this.#target(table);
      const shadow = this.#find(target, "shadow");
      if (!shadow) {
        await this.#finishSwapTriedAgain(target, tableLabel(table), signal);
        return;
      }
      const live = this.#find(target, "live");
      this.#lastSwap.set(target, { shadow: shadow.physical, old: live?.physical ?? null });
      if (shadow.columns.length === 0) {
        if (!live) {
          await this.#cat().save(shadow, signal, true);
          this.#tables.delete(shadow.physical);
          this.#lastSwap.delete(target);
          return;
        }
        await this.#create(shadow, live.columns, tableLabel(table), signal);
      }
      // The view switch is the atomic step (RENAME); the bookkeeping follows, finished by #finishSwap when a crash or a failed save stops it.
      await this.#replaceView(shadow, signal);
      await this.#recordSwap(shadow, live, signal);
      this.#logger.info({ target, live: shadow.physical }, "rebuild swapped in");
    });
  }

  /**
   * A swap tried again after its catalog save went through (its reply lost, or the old table's drop failed): the shadow is
   * recorded live already, so only the old table's drop may be left. Without such a swap, there is no rebuild to swap in.
   */
  async #finishSwapTriedAgain(target: string, table: string, signal: AbortSignal): Promise<void> {
    const last = this.#lastSwap.get(target);
    if (last === undefined || this.#tables.get(last.shadow)?.role !== "live") throw rebuildState("no rebuild in progress (call prepareRebuild first)", { sink: this.name, table });
    if (last.old !== null) {
      const old = this.#tables.get(last.old);
      if (old) await this.#drop(old, signal);
      else await this.#conn().command(`DROP TABLE IF EXISTS ${qualified(this.#database, last.old)}`, signal);
    }
    this.#logger.info({ target, live: last.shadow }, "rebuild swapped in (found done when tried again)");
  }

  rebuildRowCounts(table: TableId, signal: AbortSignal): Promise<RebuildRowCounts> {
    return this.#serial.run(async () => {
      const target = this.#target(table);
      const count = async (physical: ClickHouseTable | null): Promise<number | null> => {
        if (!physical) return null;
        if (physical.columns.length === 0) return 0;
        return Number((await this.#conn().select(countCurrentRowsSql(this.#database, physical.physical), signal)).toString().trim());
      };
      // A live table dropped by hand is no live target to compare with: the rebuild is what brings it back
      // (the count failed with UNKNOWN_TABLE, and so did every rebuild its halt message told the operator to run).
      const live = await count(this.#find(target, "live")).catch((error: unknown) => {
        if (serverErrorCode(error) === UNKNOWN_TABLE) return null;
        throw error;
      });
      return { live, shadow: (await count(this.#find(target, "shadow"))) ?? 0 };
    });
  }

  /** Shadows whose swap was stopped after its view switch were finished at open (#finishSwap): those left are not swapped in. */
  rebuildShadows(signal: AbortSignal): Promise<RebuildShadow[]> {
    return this.#serial.run(async () => {
      signal.throwIfAborted();
      // When it was prepared is not kept: its catalog rows are merged down to the newest (a column added since).
      return [...this.#tables.values()]
        .filter((t) => t.role === "shadow")
        .map((t) => ({ table: this.#owners.get(t.target) ?? null, target: t.target, physical: t.physical, preparedAtMs: null }));
    });
  }

  abortRebuild(table: TableId, signal: AbortSignal): Promise<void> {
    return this.#serial.run(async () => {
      const target = this.#target(table);
      await this.#finishSwap(target, signal);
      const shadow = this.#find(target, "shadow");
      if (shadow) await this.#drop(shadow, signal);
    });
  }

  // --- writing -----------------------------------------------------------------------------

  /**
   * `sluice forget`: nulls the subject's personal columns in every generation of the table, in
   * every stored version of its rows (a mutation rewrites all parts), and waits for the mutation.
   * The condition is never NULL: ClickHouse 18.16 updates the rows whose condition is NULL (a row
   * without a subject, where toString gives NULL and `0 AND NULL` is NULL), as if it were true.
   */
  erase(request: ErasureRequest, signal: AbortSignal): Promise<number> {
    return this.#serial.run(async () => {
      const target = this.#target(request.table);
      let changed = 0;
      for (const physical of this.#tables.values()) {
        const subject = physical.target === target ? physical.columns.find((c) => c.name === request.subjectColumn) : undefined;
        if (subject === undefined) continue;
        refuseSubjectColumn(this.name, tableLabel(request.table), subject);
        const columns = request.columns.filter((name) => physical.columns.some((c) => c.name === name && !c.key));
        if (columns.length === 0) continue;
        const condition = `ifNull(toString(${ident(request.subjectColumn)}) = ${sqlString(request.subject)}, 0) AND (${columns.map((c) => `${ident(c)} IS NOT NULL`).join(" OR ")})`;
        // The rows users see that the mutation changes (the mutation itself says nothing), counted before it as DuckDB's and Elasticsearch's erasures count theirs.
        if (physical.role === "live") {
          const count = countCurrentRowsMeetingSql(this.#database, physical.physical, [request.subjectColumn, ...columns], condition);
          changed += Number((await this.#conn().select(count, signal)).toString().trim());
        }
        await this.#conn().command(`ALTER TABLE ${qualified(this.#database, physical.physical)} UPDATE ${columns.map((c) => `${ident(c)} = NULL`).join(", ")} WHERE ${condition}`, signal);
        // Mutations run in the background (mutations_sync is not known to every server version): wait until none of the table is pending.
        const pending = `SELECT count() FROM system.mutations WHERE database = ${sqlString(this.#database)} AND table = ${sqlString(physical.physical)} AND is_done = 0 FORMAT TabSeparated`;
        while (Number((await this.#conn().select(pending, signal)).toString().trim()) > 0) await sleep(100, signal);
      }
      return changed;
    });
  }

  async #write(changes: readonly SinkChange[], mode: Mode, offsets: readonly TopicPartitionOffset[] | null, signal: AbortSignal): Promise<OffsetWriteResult> {
    signal.throwIfAborted();
    if (mode === "live") await this.#restoreViews(signal);
    const { tables } = collapseChanges(changes, this.#accept);
    await this.#readColumnsAgain(this.#comparedTables(tables.map((t) => t.table)), signal);
    const failures = new Failures();
    // Catalog and DDL work one table at a time; the tables' inserts side by side.
    const inserts: (() => Promise<void>)[] = [];
    for (const changesOfTable of tables) {
      const insert = await this.#planTable(changesOfTable, mode, failures, signal);
      if (insert) inserts.push(insert);
    }
    await settleInTurn(inserts);
    const offsetsStored = offsets !== null && failures.size === 0;
    if (offsetsStored) await this.#cat().writeOffsets(this.name, offsets, this.#topicIds, signal);
    return { failures: failures.list(), offsetsStored };
  }

  /**
   * The live table a schema's rows can be staged for as it is: created, compared with the server,
   * without a rebuild's shadow, and taking the schema's rows without an evolution. Null for a table
   * the sink does not take; undefined when it must be prepared first (#prepareStaged).
   */
  #stagedTable(schema: TableSchema): ClickHouseTable | null | undefined {
    if (!this.#accept(schema)) return null;
    const target = this.#claims.owned(schema, renderTarget(this.#config.target, schema));
    if (target === null) return undefined;
    const live = this.#find(target, "live");
    if (live === null || live.columns.length === 0 || !this.#checked.has(live.physical) || this.#mismatched.has(live.physical) || this.#find(target, "shadow") !== null) return undefined;
    if (this.#takes.get(schema) === live.columns) return live;
    try {
      const plan = planColumns(live.columns, schema, { sink: this.name, table: tableLabel(schema) });
      if (plan.added.length > 0 || plan.changed.length > 0) return undefined;
    } catch {
      return undefined;
    }
    this.#takes.set(schema, live.columns);
    return live;
  }

  /**
   * What #write's #prepareTables does for a batch with one schema of the table, for a change at
   * `version` staged first: the live table created, compared with the server and evolved (a
   * column's default from `version` on). Undefined when the table cannot be staged for: a rebuild's
   * shadow, rows already staged for it under its columns now, or anything failing (#write then
   * does it again and reports what fails, e.g. a schema the sink cannot take).
   */
  async #prepareStaged(schema: TableSchema, version: bigint, hasRows: (target: string) => boolean, signal: AbortSignal): Promise<ClickHouseTable | undefined> {
    let target: string;
    try {
      target = this.#target(schema);
    } catch {
      return undefined; // another table's target: the write refuses the table, naming both
    }
    const label = tableLabel(schema);
    const existing = this.#find(target, "live");
    if (hasRows(target) || this.#find(target, "shadow") !== null || (existing !== null && this.#mismatched.has(existing.physical))) return undefined;
    const since: SinceOf = () => version;
    try {
      await this.#recordOwner(target, schema, signal);
      const live = await this.#ensureLive(target, schema, label, since, signal);
      this.#check(live, [schema], label);
      await this.#evolve(live, [schema], label, since, signal);
      return this.#stagedTable(schema) ?? undefined;
    } catch (error) {
      this.#logger.debug({ err: error, table: label }, "table not prepared for a staged write: the batch goes through the write");
      return undefined;
    }
  }

  /** Inserts staged rows, then stores the offsets; throws when a table changed since its rows were encoded (DDL, truncate, a rebuild begun). */
  async #writeStaged(tables: readonly StagedTable[], offsets: readonly TopicPartitionOffset[] | null, signal: AbortSignal): Promise<boolean> {
    signal.throwIfAborted();
    await this.#restoreViews(signal);
    for (const { physical, columns, truncateVersion } of tables) {
      const current = this.#tables.get(physical.physical) === physical && physical.role === "live" && physical.columns === columns && physical.truncateVersion === truncateVersion;
      if (!current || this.#mismatched.has(physical.physical) || this.#find(physical.target, "shadow") !== null) {
        throw new SluiceError(`the ClickHouse table ${physical.physical} changed while a batch was staged for it`, { code: "SINK_STAGED_STALE", context: { component: "sink", sink: this.name } });
      }
    }
    if (await this.#readColumnsAgain(tables.map((t) => t.physical.physical), signal)) {
      throw new SluiceError("a ClickHouse table's columns changed on the server while a batch was staged for it", { code: "SINK_STAGED_STALE", context: { component: "sink", sink: this.name } });
    }
    const inserts: (() => Promise<void>)[] = [];
    for (const table of tables) {
      const rows = table.rows();
      if (rows.length === 0) continue;
      inserts.push(() => this.#insertRows(table.physical, rowsOf(table.writer, rows), signal));
    }
    await settleInTurn(inserts);
    if (offsets === null) return false;
    await this.#cat().writeOffsets(this.name, offsets, this.#topicIds, signal);
    return true;
  }

  /** Prepares one table's write (tables evolved and truncated, rows encoded); returns its inserts, or null when there is nothing to insert. */
  async #planTable(changes: TableChanges, mode: Mode, failures: Failures, signal: AbortSignal): Promise<(() => Promise<void>) | null> {
    const label = tableLabel(changes.table);
    const context = { sink: this.name, table: label };
    for (const { index, error } of changes.invalid) failures.add([index], rowRejected(error.message, { ...context, column: error.column }, error));
    let tables: { primary: ClickHouseTable; mirror: ClickHouseTable | null } | null;
    try {
      tables = await this.#prepareTables(changes, mode, label, signal);
    } catch (error) {
      if (!(error instanceof CatalogMismatch)) throw error;
      // Only this table stops: its changes fail (halt, or dead-letter by the sink's on_error), the others apply.
      if (!this.#mismatched.has(error.physical)) this.#logger.error(error.toLog(), error.message);
      this.#mismatched.set(error.physical, error);
      failures.add(allIndices(changes), error);
      return null;
    }
    if (tables === null) {
      failures.add(allIndices(changes), rebuildState("no rebuild in progress for this table", context));
      return null;
    }
    const { primary, mirror } = tables;
    const rows = changes.rows.filter((row) => row.version > primary.truncateVersion);
    if (rows.length === 0) return null;
    let stored: Map<string, StoredRow>;
    try {
      stored = await this.#readStored(primary, rows.filter((row) => hasUnchanged(row.row)), signal);
    } catch (error) {
      // The table dropped or changed behind the sink's back: only this table stops, as at its insert.
      failures.add(allIndices(changes), await this.#changedBehind(primary, changes.schemas, label, error, signal));
      return null;
    }
    const inserts: (() => Promise<void>)[] = [];
    for (const physical of mirror ? [primary, mirror] : [primary]) {
      // Rows are kept in the writer by number, in the order of `rows` (version order): encoded[i] is row i's change.
      const writer = new RowBinaryWriter();
      const types = this.#types(physical.columns);
      const encoded: RowChange[] = [];
      let halt: HaltPlace | null = null;
      for (const change of rows) {
        if (change.version <= physical.truncateVersion) continue;
        const before = stored.get(change.id);
        // Stale for this table: the stored row is as new or newer (only known when we had to read it).
        if (physical === primary && before && before.version >= change.version) continue;
        try {
          this.#row(writer, physical.columns, types, change, before);
          encoded.push(change);
        } catch (error) {
          if (!(error instanceof ValueRejected)) throw error;
          failures.add(change.indices, rowRejected(error.message, { ...context, position: positionLabel(change), column: error.column }, error));
          halt = earlierPlace(halt, failedRowPlace(change));
        }
      }
      // A halted table must not show anything after its first failing change: insert in version order up to it (a prefix of the rows).
      let count = encoded.length;
      if (this.#config.on_error === "halt" && halt !== null) {
        count = 0;
        while (count < encoded.length && beforeHalt(encoded[count]!, halt)) count++;
      }
      const numbers = Array.from({ length: count }, (_, i) => i);
      let columnsReadAgain = false;
      const insert = async (subset: readonly number[]) => {
        try {
          await this.#insertRows(physical, rowsOf(writer, subset), signal);
        } catch (error) {
          // A column whose type an operator changed while the sink ran makes the server refuse the rows (RowBinary misaligned):
          // the table's columns are read again at its first refusal of the batch, so the table halts, not each row as poison.
          if (error instanceof ClickHouseDataError && !columnsReadAgain) {
            columnsReadAgain = true;
            const mismatch = await this.#compareAgain(physical, changes.schemas, label, signal);
            if (mismatch !== null) throw mismatch;
          }
          throw error;
        }
      };
      const isDataError = (error: unknown) => error instanceof ClickHouseDataError;
      inserts.push(async () => {
        let rejected: { item: number; error: unknown }[];
        try {
          if (this.#config.on_error === "halt") {
            const first = await applyUntilRejected(numbers, insert, isDataError);
            rejected = first ? [first] : [];
          } else {
            rejected = await isolateRejected(numbers, insert, isDataError);
          }
        } catch (error) {
          // Only this table stops, as for a mismatch found before writing; the others apply.
          failures.add(allIndices(changes), error instanceof CatalogMismatch ? error : await this.#changedBehind(physical, changes.schemas, label, error, signal));
          return;
        }
        for (const { item, error } of rejected) {
          const change = encoded[item]!;
          failures.add(change.indices, rowRejected(errorMessage(error), { ...context, position: positionLabel(change) }, error));
        }
      });
    }
    // The live table, then a rebuild's shadow, in order.
    return async () => {
      for (const run of inserts) await run();
    };
  }

  /** The tables a write goes to (null: a rebuild write without a shadow), compared with the server, evolved and truncated. */
  async #prepareTables(changes: TableChanges, mode: Mode, label: string, signal: AbortSignal): Promise<{ primary: ClickHouseTable; mirror: ClickHouseTable | null } | null> {
    const target = this.#target(changes.table);
    await this.#recordOwner(target, changes.table, signal);
    const since = firstVersionWith(changes.rows);
    const primary = mode === "live" ? await this.#ensureLive(target, changes.schemas[0] as TableSchema, label, since, signal) : this.#find(target, "shadow");
    if (primary === null) return null;
    const mirror = mode === "live" ? this.#find(target, "shadow") : null;
    const physicals = mirror ? [primary, mirror] : [primary];
    for (const physical of physicals) await this.#lookAgain(physical, changes.schemas, label, signal);
    for (const physical of physicals) this.#check(physical, changes.schemas, label);
    for (const physical of physicals) {
      await this.#evolve(physical, changes.schemas, label, since, signal);
      if (changes.truncate) await this.#truncate(physical, changes.truncate.version, signal);
    }
    return { primary, mirror };
  }

  async #insertRows(physical: ClickHouseTable, rows: Buffer | readonly Buffer[], signal: AbortSignal): Promise<void> {
    await this.#conn().insert(qualified(this.#database, physical.physical), this.#columnList(physical), "RowBinary", rows, signal);
    this.#holdingParts.add(physical.physical);
  }

  /** Writes the row of `change` and keeps it in the writer. */
  #row(writer: RowBinaryWriter, columns: readonly TargetColumn[], types: readonly string[], change: StagedChange, stored: StoredRow | undefined): void {
    try {
      for (let i = 0; i < columns.length; i++) this.#field(writer, columns[i]!, types[i]!, change, stored);
      writer.uint64(change.version);
      writer.uint8(change.deleted ? 1 : 0);
      writer.keepRow();
    } catch (error) {
      writer.dropRow();
      throw error;
    }
  }

  #field(writer: RowBinaryWriter, column: TargetColumn, type: string, change: StagedChange, stored: StoredRow | undefined): void {
    const value = cellOf(change, column);
    try {
      if (value !== UNCHANGED) {
        writeValue(writer, column.type, this.#dialect, !column.key, value);
        return;
      }
      if (column.key) throw new ValueRejected("a key column cannot be unchanged-TOAST");
      const kept = stored && !stored.deleted ? stored.fields.get(column.name) : undefined;
      if (kept === undefined) writeValue(writer, column.type, this.#dialect, true, null);
      else if (kept.type === type) writer.raw(kept.bytes);
      // read from a table whose column has another type (the live table, for a rebuild's shadow)
      else writeValue(writer, column.type, this.#dialect, true, readValue(new RowBinaryReader(kept.bytes), kept.column.type, true));
    } catch (error) {
      if (error instanceof ValueRejected) throw new ValueRejected(error.message, column.name);
      throw error;
    }
  }

  #types(columns: readonly TargetColumn[]): string[] {
    return columns.map((c) => clickhouseType(c.type, this.#dialect, !c.key));
  }

  #columnList(physical: ClickHouseTable): string[] {
    return [...physical.columns.map((c) => c.name), VERSION_COLUMN, DELETED_COLUMN].map(ident);
  }

  /** The current stored rows (FINAL) of the given changes' keys, by key id. */
  async #readStored(physical: ClickHouseTable, changes: readonly RowChange[], signal: AbortSignal): Promise<Map<string, StoredRow>> {
    const out = new Map<string, StoredRow>();
    if (changes.length === 0) return out;
    const keys = physical.columns.filter((c) => c.key);
    // A key is matched by its RowBinary bytes, which are what the server sends back for it.
    const scratch = new RowBinaryWriter();
    const byKeyBytes = new Map<string, string>();
    const literals: string[] = [];
    for (const change of changes) {
      try {
        for (const k of keys) writeValue(scratch, k.type, this.#dialect, false, change.key[k.name] ?? null);
        const values = keys.map((k) => keyLiteral(k.type, this.#dialect, change.key[k.name] ?? null));
        byKeyBytes.set(scratch.endRow().toString("latin1"), change.id);
        literals.push(values.length === 1 ? (values[0] as string) : `(${values.join(", ")})`);
      } catch (error) {
        scratch.dropRow();
        if (!(error instanceof ValueRejected)) throw error;
        // the row itself will be rejected when it is encoded
      }
    }
    const types = this.#types(physical.columns);
    const keyList = keys.length === 1 ? ident(keys[0]!.name) : `(${keys.map((k) => ident(k.name)).join(", ")})`;
    const columns = [...physical.columns.map((c) => ident(c.name)), ident(VERSION_COLUMN), ident(DELETED_COLUMN)];
    for (let i = 0; i < literals.length; i += STORED_CHUNK) {
      const body = await this.#conn().select(
        `SELECT ${columns.join(", ")} FROM ${qualified(this.#database, physical.physical)} FINAL WHERE ${keyList} IN (${literals.slice(i, i + STORED_CHUNK).join(", ")}) FORMAT RowBinary`,
        signal,
      );
      const reader = new RowBinaryReader(body);
      while (!reader.done) {
        let key = "";
        const fields = new Map<string, StoredField>();
        physical.columns.forEach((column, j) => {
          const start = reader.pos;
          skipValue(reader, column.type, !column.key);
          const bytes = body.subarray(start, reader.pos);
          if (column.key) key += bytes.toString("latin1");
          else fields.set(column.name, { column, type: types[j] as string, bytes });
        });
        const version = reader.uint64();
        const deleted = reader.uint8() === 1;
        const id = byKeyBytes.get(key);
        if (id !== undefined) out.set(id, { version, deleted, fields });
      }
    }
    return out;
  }

  async #truncate(physical: ClickHouseTable, version: bigint, signal: AbortSignal): Promise<void> {
    if (version <= physical.truncateVersion || physical.columns.length === 0) return;
    await this.#cat().recordTruncate(physical.physical, version, signal);
    physical.truncateVersion = version;
    // Frees the space of the rows the truncate hides (a mutation, applied in the background); the view hides them already.
    await this.#conn().command(`ALTER TABLE ${qualified(this.#database, physical.physical)} DELETE WHERE ${ident(VERSION_COLUMN)} < ${version}`, signal);
  }

  // --- tables and schema evolution -----------------------------------------------------------

  async #ensureLive(target: string, schema: TableSchema, label: string, since: SinceOf, signal: AbortSignal): Promise<ClickHouseTable> {
    const live = this.#find(target, "live");
    if (live) return live;
    const generation = this.#nextGeneration(target);
    const table: ClickHouseTable = { physical: physicalName(target, generation), target, role: "live", generation, truncateVersion: 0n, columns: [] };
    this.#tables.set(table.physical, table);
    await this.#create(table, initialColumns(schema, { sink: this.name, table: label }, since), label, signal);
    await this.#replaceView(table, signal);
    this.#logger.info({ target, physical: table.physical }, "created table");
    return table;
  }

  /** Compares a table's catalog entry with the server's columns once per open (no query: the snapshot taken at open); throws CatalogMismatch. */
  #check(table: ClickHouseTable, schemas: readonly TableSchema[], label: string): void {
    const known = this.#mismatched.get(table.physical);
    if (known) throw known;
    if (this.#checked.has(table.physical) || table.columns.length === 0) return;
    this.#compare(table, table.columns, evolutionSteps(table.columns, schemas, { sink: this.name, table: label }), label);
  }

  /**
   * A table halted for a mismatch gets writes again only when the runtime reads it again (sluice halted retry, once the
   * operator put it back: RENAME TABLE to its name, the column added again): its columns are read from the server again,
   * so a table put right goes on, and one still off halts again (logged only when what is off changed).
   */
  async #lookAgain(table: ClickHouseTable, schemas: readonly TableSchema[], label: string, signal: AbortSignal): Promise<void> {
    const known = this.#mismatched.get(table.physical);
    if (known === undefined) return;
    const server = parseServerColumns(await this.#conn().select(systemColumnsSql(this.#database, table.physical), signal));
    this.#server.set(table.physical, server.get(table.physical) ?? []);
    this.#checked.delete(table.physical);
    this.#mismatched.delete(table.physical);
    try {
      this.#check(table, schemas, label);
      if (this.#holdingParts.has(table.physical) && !(await this.#holdsParts(table, signal))) throw recreatedEmpty(this.#where(table, label), table.columns.length);
    } catch (error) {
      if (error instanceof CatalogMismatch && error.message === known.message) this.#mismatched.set(table.physical, error);
      throw error;
    }
    this.#logger.info({ target: table.target, physical: table.physical }, "the ClickHouse table matches Sluice's catalog again (put back by hand): writing it again");
  }

  /**
   * sluice halted retry --force: a table halted as dropped and created again, or emptied (EmptiedTable), is taken as it is
   * now when `accept`: the retry writes it instead of halting it again. Other halts are not the sink's to overrule.
   */
  acceptTargetAsIs(halt: Error, accept: boolean): boolean {
    if (!(halt instanceof EmptiedTable)) return false;
    if (accept) {
      this.#holdingParts.delete(halt.physical);
      this.#logger.warn({ physical: halt.physical }, `sink "${this.name}": the ClickHouse table ${this.#database}.${halt.physical} is taken as it is (an operator's halted retry --force): the rows it held before it was emptied are not written again`);
    }
    return true;
  }

  async #holdsParts(table: ClickHouseTable, signal: AbortSignal): Promise<boolean> {
    return parseTsv(await this.#conn().select(tablesWithPartsSql(this.#database, table.physical), signal)).length > 0;
  }

  #compare(table: ClickHouseTable, columns: readonly TargetColumn[], steps: ReadonlyMap<string, readonly TargetColumn[]>, label: string): void {
    const server = this.#server.get(table.physical) ?? [];
    const unknown = checkTable(columns, server, steps, this.#dialect, this.#where(table, label));
    if (unknown.length > 0) {
      this.#logger.warn(
        { physical: table.physical, columns: unknown.map((c) => `${c.name} ${describeServerColumn(c)}`) },
        "the ClickHouse table has columns Sluice's catalog does not know; inserts leave them at their defaults",
      );
    }
    this.#checked.add(table.physical);
  }

  /**
   * The mismatch when an insert failed because the table was dropped or a column of it dropped or
   * renamed while the sink ran (an operator's DDL: errors 60 and 16); the error as it was otherwise.
   * The table's columns are read from the server again and compared with the catalog.
   */
  async #changedBehind(table: ClickHouseTable, schemas: readonly TableSchema[], label: string, error: unknown, signal: AbortSignal): Promise<CatalogMismatch> {
    const code = serverErrorCode(error);
    if (code !== UNKNOWN_TABLE && code !== NO_SUCH_COLUMN) throw error;
    const mismatch = await this.#compareAgain(table, schemas, label, signal);
    if (mismatch !== null) return mismatch;
    // It matches again (put back meanwhile): the insert is tried again with the batch.
    throw new ConnectionError(`the ClickHouse table ${this.#database}.${table.physical} of ${label} changed during an insert and matches the catalog again: ${errorMessage(error)}`, {
      code: "SINK_UNAVAILABLE",
      context: { component: "sink", sink: this.name, table: label },
      cause: error,
    });
  }

  /** The physical tables of `tables` already compared with the server (live and a rebuild's shadow), not halted. */
  #comparedTables(tables: readonly TableId[]): string[] {
    const out: string[] = [];
    for (const table of tables) {
      const target = this.#claims.owned(table, renderTarget(this.#config.target, table));
      if (target === null) continue;
      for (const role of ["live", "shadow"] as const) {
        const physical = this.#find(target, role);
        if (physical !== null && this.#checked.has(physical.physical) && !this.#mismatched.has(physical.physical)) out.push(physical.physical);
      }
    }
    return out;
  }

  /**
   * Reads the columns of `physicals` from the server (one system.columns query per batch) and takes those that changed
   * since the sink compared them: such a table is compared again at its write (#check). A column an operator changed by hand
   * to a type of the same RowBinary width (Int32 to UInt32, a decimal's scale) takes the sink's rows without an error,
   * reinterpreted; a comparison at open only would let them in until the next one. True when any changed.
   */
  async #readColumnsAgain(physicals: readonly string[], signal: AbortSignal): Promise<boolean> {
    if (physicals.length === 0) return false;
    const server = parseServerColumns(await this.#conn().select(systemColumnsSql(this.#database, physicals), signal));
    let changed = false;
    for (const physical of new Set(physicals)) {
      const now = server.get(physical);
      // A table (or the database) gone is not a column changed: the insert meets it (errors 60 and 81) and the sink's
      // gone-table path makes it again; taken here, the table would halt as a mismatch instead.
      if (now === undefined || sameColumns(this.#server.get(physical) ?? [], now)) continue;
      this.#server.set(physical, now);
      this.#checked.delete(physical);
      changed = true;
    }
    return changed;
  }

  /** The table's columns read from the server again and compared with the catalog: the mismatch (logged, the table halted on it), or null when they match. */
  async #compareAgain(table: ClickHouseTable, schemas: readonly TableSchema[], label: string, signal: AbortSignal): Promise<CatalogMismatch | null> {
    const server = parseServerColumns(await this.#conn().select(systemColumnsSql(this.#database, table.physical), signal));
    this.#server.set(table.physical, server.get(table.physical) ?? []);
    this.#checked.delete(table.physical);
    try {
      this.#check(table, schemas, label);
      return null;
    } catch (mismatch) {
      if (!(mismatch instanceof CatalogMismatch)) throw mismatch;
      this.#logger.error(mismatch.toLog(), mismatch.message);
      this.#mismatched.set(table.physical, mismatch);
      return mismatch;
    }
  }

  #where(table: ClickHouseTable, label: string) {
    return { sink: this.name, table: label, database: this.#database, physical: table.physical };
  }

  /**
   * Brings a table to each of `schemas` in turn. A column the server has already at the planned
   * type (or at one a later schema of the batch gives it) is adopted instead of altered: an
   * earlier process applied the ALTER and stopped before saving the catalog. A column added with a
   * default gets it as its DEFAULT: the rows already there read it (existing parts have no values
   * of the column), and a type change keeps it (MODIFY COLUMN without DEFAULT drops it).
   */
  async #evolve(physical: ClickHouseTable, schemas: readonly TableSchema[], label: string, since: SinceOf, signal: AbortSignal): Promise<void> {
    const context = { sink: this.name, table: label };
    for (const [i, schema] of schemas.entries()) {
      if (physical.columns.length === 0) {
        await this.#create(physical, initialColumns(schema, context, since), label, signal);
        if (physical.role === "live") await this.#replaceView(physical, signal);
        continue;
      }
      const plan = planColumns(physical.columns, schema, context, since);
      if (plan.added.length === 0 && plan.changed.length === 0) continue;
      const table = qualified(this.#database, physical.physical);
      for (const change of plan.changed) {
        const from = clickhouseType(change.from, this.#dialect, !change.key);
        const to = clickhouseType(change.to, this.#dialect, !change.key);
        if (from === to) continue;
        if (change.key) {
          throw schemaUnsupported(`ClickHouse cannot change the type of a sorting-key column (${from} \u2192 ${to}); rebuild the target (sluice replay --rebuild)`, {
            ...context,
            column: change.name,
          });
        }
      }
      const server = new Map((this.#server.get(physical.physical) ?? []).map((c) => [c.name, c]));
      const columns = [...plan.columns];
      const adopted: string[] = [];
      let later: Map<string, TargetColumn[]> | null = null;
      const adopt = (column: TargetColumn, found: ServerColumn): boolean => {
        later ??= evolutionSteps(plan.columns, schemas.slice(i + 1), context);
        const fits = [column, ...(later.get(column.name) ?? [])].find((next) => takes(found, next));
        if (fits === undefined) return false;
        columns[columns.findIndex((c) => c.name === column.name)] = fits;
        adopted.push(`${column.name} ${found.type}`);
        return true;
      };
      const ddl: { sql: string; column: ServerColumn }[] = [];
      for (const column of plan.added) {
        const found = server.get(column.name);
        if (found === undefined) ddl.push({ sql: addColumnSql(this.#database, physical.physical, column, this.#dialect), column: this.#serverColumn(column) });
        else if (!adopt(column, found)) throw addedMismatch(found, column, this.#dialect, this.#where(physical, label));
      }
      for (const change of plan.changed) {
        const to: TargetColumn = plan.columns.find((c) => c.name === change.name) ?? { name: change.name, type: change.to, key: change.key };
        if (clickhouseType(change.from, this.#dialect, !change.key) === clickhouseType(to.type, this.#dialect, !change.key)) continue;
        const found = server.get(change.name);
        if (found && adopt(to, found)) continue;
        if (!found || !writesAs(found.type, { ...to, type: change.from })) {
          throw new CatalogMismatch("the column has another type on the server than the schema change starts from", {
            ...this.#where(physical, label),
            column: change.name,
            catalogType: `${describeColumn({ ...to, type: change.from }, this.#dialect)} \u2192 ${describeColumn(to, this.#dialect)}`,
            serverType: describeServerColumn(found),
          });
        }
        ddl.push({ sql: modifyColumnSql(this.#database, physical.physical, to, this.#dialect), column: this.#serverColumn(to) });
      }
      try {
        for (const { sql, column } of ddl) {
          await this.#conn().command(sql, signal);
          server.set(column.name, column);
          this.#server.set(physical.physical, [...server.values()]);
        }
      } catch (error) {
        if (isRetriable(error)) throw error;
        throw schemaUnsupported(`ClickHouse refused the schema change on ${table}: ${errorMessage(error)}`, context, error);
      }
      // The columns as the server shows them now (a DEFAULT's kind, its type's spelling): each batch compares them with what it reads (#readColumnsAgain).
      if (ddl.length > 0) this.#server.set(physical.physical, parseServerColumns(await this.#conn().select(systemColumnsSql(this.#database, physical.physical), signal)).get(physical.physical) ?? []);
      physical.columns = columns;
      await this.#cat().save(physical, signal);
      if (ddl.length > 0) {
        // Compared again as read: a change by hand made beside the sink's own is not taken into the snapshot unseen.
        this.#checked.delete(physical.physical);
        this.#check(physical, [], label);
      }
      if (physical.role === "live") await this.#replaceView(physical, signal);
      if (adopted.length > 0) {
        this.#logger.warn(
          { physical: physical.physical, adopted },
          "catalog reconciled with the server: the table already had these columns (an earlier schema change was applied but not recorded, e.g. a crash before saving the catalog)",
        );
      }
      this.#logger.info({ physical: physical.physical, added: plan.added.map((c) => c.name), widened: plan.changed.map((c) => c.name) }, "schema evolved");
    }
  }

  #serverColumn(column: TargetColumn): ServerColumn {
    return { name: column.name, type: clickhouseType(column.type, this.#dialect, !column.key), defaultKind: "", sortingKey: column.key };
  }

  /** CREATE TABLE IF NOT EXISTS, then the created table's columns from the server: a table left by a crash before the catalog was saved must match too. */
  async #create(table: ClickHouseTable, columns: readonly TargetColumn[], label: string, signal: AbortSignal): Promise<void> {
    await this.#conn().command(createTableSql(this.#database, table.physical, columns, this.#dialect), signal);
    const server = parseServerColumns(await this.#conn().select(systemColumnsSql(this.#database, table.physical), signal));
    this.#server.set(table.physical, server.get(table.physical) ?? []);
    this.#compare(table, columns, new Map(), label);
    table.columns = columns;
    await this.#cat().save(table, signal);
  }

  /**
   * Points the view `<target>` at `table` with its current columns. ClickHouse 18.16 has no CREATE OR REPLACE VIEW: build a new one and RENAME it over (one atomic statement).
   * Several processes may run this sink (sharing its partitions) and replace one view at once: each builds under names of its own, and a
   * swap that lost the race (the view appeared or vanished meanwhile: errors 57 and 60) is tried again.
   * The connection sends a RENAME again by itself when its reply is lost: that resend fails 57 or 60 though the
   * first went through. So before a try again, a `next` gone means the switch happened (only this process renames
   * it): done when the view reads `table`. A RENAME naming a `next` that is gone is never sent: on 18.16 a
   * two-table RENAME is not atomic, and its first half would take the view away.
   */
  async #replaceView(table: ClickHouseTable, signal: AbortSignal): Promise<void> {
    const next = `${table.target}__view_next_${this.#scratch}`;
    const old = `${table.target}__view_old_${this.#scratch}`;
    const makeNext = async (): Promise<void> => {
      await this.#conn().command(`DROP TABLE IF EXISTS ${qualified(this.#database, next)}`, signal);
      await this.#conn()
        .command(createViewSql(this.#database, next, table.physical, table.columns), signal)
        .catch((error: unknown) => {
          // The connection resends a CREATE whose reply was lost; the resend finds the view the first made (no one else uses this name).
          if (serverErrorCode(error) !== 57) throw error;
        });
    };
    await makeNext();
    for (let attempt = 1; ; attempt++) {
      try {
        if (attempt > 1 && !(await this.#exists(next, signal))) {
          if ((await this.#viewSource(table.target, signal)) === table.physical) {
            await this.#conn().command(`DROP TABLE IF EXISTS ${qualified(this.#database, old)}`, signal);
            return;
          }
          await makeNext();
        }
        if (await this.#exists(table.target, signal)) {
          await this.#conn().command(`DROP TABLE IF EXISTS ${qualified(this.#database, old)}`, signal);
          await this.#conn().command(
            `RENAME TABLE ${qualified(this.#database, table.target)} TO ${qualified(this.#database, old)}, ${qualified(this.#database, next)} TO ${qualified(this.#database, table.target)}`,
            signal,
          );
          await this.#conn().command(`DROP TABLE IF EXISTS ${qualified(this.#database, old)}`, signal);
        } else {
          await this.#conn().command(`RENAME TABLE ${qualified(this.#database, next)} TO ${qualified(this.#database, table.target)}`, signal);
        }
        return;
      } catch (error) {
        if (attempt >= 5 || !(error instanceof Error) || !/^ClickHouse error (57|60):/.test(error.message)) {
          await this.#conn().command(`DROP TABLE IF EXISTS ${qualified(this.#database, next)}`, signal).catch(() => undefined);
          throw error;
        }
        this.#logger.info({ table: table.target, attempt }, "another process replaced the view at the same time; trying again");
      }
    }
  }

  async #exists(name: string, signal: AbortSignal): Promise<boolean> {
    return (await this.#conn().select(`EXISTS TABLE ${qualified(this.#database, name)} FORMAT TabSeparated`, signal)).toString().trim() === "1";
  }

  /** The physical table the view `target` reads, or null (no such view, or one of another form). */
  async #viewSource(target: string, signal: AbortSignal): Promise<string | null> {
    const [definition] = parseTsv(await this.#conn().select(viewDefinitionSql(this.#database, target), signal));
    return definition?.[0] === undefined ? null : viewSource(unescapeField(definition[0]));
  }

  /**
   * Makes again the views of live tables dropped by hand while the sink runs (reads through them
   * failed until the next open otherwise): at most once per #viewCheckMs, one query of
   * system.tables. A table dropped too is left alone: its writes halt it (#changedBehind). A
   * failure is logged and tried again at the next check, never failing the write.
   */
  async #restoreViews(signal: AbortSignal): Promise<void> {
    if (performance.now() < this.#nextViewCheck) return;
    this.#nextViewCheck = performance.now() + this.#viewCheckMs;
    try {
      const body = await this.#conn().select(`SELECT name FROM system.tables WHERE database = ${sqlString(this.#database)} FORMAT TabSeparated`, signal);
      const names = new Set(parseTsv(body).map(([name]) => unescapeField(name ?? Buffer.alloc(0)).toString("utf8")));
      for (const table of this.#tables.values()) {
        if (table.role !== "live" || table.columns.length === 0 || this.#mismatched.has(table.physical) || names.has(table.target) || !names.has(table.physical)) continue;
        await this.#replaceView(table, signal);
        this.#logger.warn({ target: table.target, physical: table.physical }, "the table's view was missing (dropped while the sink ran): made it again");
      }
    } catch (error) {
      signal.throwIfAborted();
      this.#logger.warn({ err: error }, "could not look for or make again the views dropped while the sink ran; trying again at the next check");
    }
  }

  /**
   * A swap's bookkeeping after its view switch: the shadow recorded live and the old live table dropped in one INSERT
   * (two saves left both live when stopped between them, and writes went to the old one), in memory once saved (a
   * failed save leaves it a shadow); then the old table itself is dropped.
   */
  async #recordSwap(shadow: ClickHouseTable, live: ClickHouseTable | null, signal: AbortSignal): Promise<void> {
    await this.#cat().saveAll([{ table: { ...shadow, role: "live" }, dropped: false }, ...(live ? [{ table: live, dropped: true }] : [])], signal);
    shadow.role = "live";
    if (live) await this.#dropSaved(live, signal);
  }

  /**
   * A target with two tables recorded live (a swap of an older Sluice stopped between its two catalog saves): the view
   * decides, as in #finishSwap; the other is dropped. When the view reads neither, the newest is kept (the swap's).
   */
  async #finishTwoLive(target: string, signal: AbortSignal): Promise<void> {
    const lives = [...this.#tables.values()].filter((t) => t.target === target && t.role === "live");
    if (lives.length < 2) return;
    const source = await this.#viewSource(target, signal);
    const kept = lives.find((t) => t.physical === source) ?? lives.reduce((a, b) => (b.generation > a.generation ? b : a));
    const others = lives.filter((t) => t !== kept);
    const copied: Record<string, number> = {};
    const setAside: ClickHouseTable[] = [];
    for (const other of others) {
      try {
        copied[other.physical] = await this.#copyInto(kept, other, signal);
      } catch (error) {
        // Only a refusal of the rows themselves (a value that does not convert): anything else (a grant, a profile's
        // read limit, a cancelled query) fails the open, retried, so the copy is tried again once it is mended.
        if (!(error instanceof ClickHouseDataError)) throw error;
        // Its rows may be the only copy of acknowledged changes: left on the server for an operator, out of the catalog so the sink starts.
        this.#logger.error(
          { target, live: kept.physical, setAside: other.physical, err: errorMessage(error) },
          "a table an older Sluice left live beside the one the view reads could not be copied into it: it is kept on the server, no longer written or read by the view; copy its rows the view lacks by hand, then drop it",
        );
        setAside.push(other);
      }
      // A truncate the older Sluice applied to the other table hides the kept table's rows at or below it too.
      if (other.truncateVersion > kept.truncateVersion) await this.#truncate(kept, other.truncateVersion, signal);
    }
    await this.#cat().saveAll(others.map((table) => ({ table, dropped: true })), signal);
    for (const other of others) {
      if (setAside.includes(other)) this.#forget(other);
      else await this.#dropSaved(other, signal);
    }
    this.#logger.warn(
      { target, live: kept.physical, dropped: others.filter((t) => !setAside.includes(t)).map((t) => t.physical), copied },
      "finished a rebuild's swap stopped between its catalog saves (two tables recorded live): the table the view reads is kept live, the other's rows and truncates carried into it, then the other dropped",
    );
  }

  /**
   * Copies into `kept` the rows of `from` it lacks: an older Sluice may have written (and acknowledged) rows only
   * there. Every version row, tombstones too, so the newest version per key wins in `kept`; a (key, version) `kept`
   * holds already is left out (the same change, possibly written differently by a rebuild), and so are rows at or
   * below `from`'s newest truncate. Only the columns both tables have. Repeated after a crash, it copies nothing twice.
   */
  async #copyInto(kept: ClickHouseTable, from: ClickHouseTable, signal: AbortSignal): Promise<number> {
    const server = parseServerColumns(await this.#conn().select(systemColumnsSql(this.#database, [kept.physical, from.physical]), signal));
    const source = server.get(from.physical);
    const into = server.get(kept.physical);
    if (!source || !into) return 0;
    const writable = (c: ServerColumn): boolean => c.defaultKind !== "MATERIALIZED" && c.defaultKind !== "ALIAS";
    const names = new Set(source.filter(writable).map((c) => c.name));
    const columns = into.filter((c) => writable(c) && names.has(c.name));
    const list = columns.map((c) => ident(c.name));
    // As `kept`'s types: a rebuild for a sorting-key type change leaves the two tables' key columns of different types.
    const cast = (c: ServerColumn): string => `CAST(${ident(c.name)}, ${sqlString(c.type)})`;
    const keyColumns = [...into.filter((c) => c.sortingKey && c.name !== VERSION_COLUMN), ...into.filter((c) => c.name === VERSION_COLUMN)];
    const where =
      `WHERE ${ident(VERSION_COLUMN)} > (SELECT max(version) FROM ${qualified(this.#database, TRUNCATES_TABLE)} WHERE physical = ${sqlString(from.physical)}) ` +
      `AND (${keyColumns.map(cast).join(", ")}) NOT IN (SELECT ${keyColumns.map((c) => ident(c.name)).join(", ")} FROM ${qualified(this.#database, kept.physical)})`;
    const [count] = parseTsv(await this.#conn().select(`SELECT count() FROM ${qualified(this.#database, from.physical)} ${where} FORMAT TabSeparated`, signal));
    const rows = Number(count?.[0]?.toString() ?? "0");
    if (rows > 0) {
      await this.#conn().command(
        `INSERT INTO ${qualified(this.#database, kept.physical)} (${list.join(", ")}) SELECT ${columns.map(cast).join(", ")} FROM ${qualified(this.#database, from.physical)} ${where}`,
        signal,
      );
    }
    return rows;
  }

  /**
   * Finishes a swap stopped between its view switch and its catalog save (kill -9, or the save
   * failing): the view then reads the table the catalog still calls the shadow. The view is what
   * users query, so it decides: that table is recorded live and the old one dropped, as the swap
   * would have. Run wherever the catalog picks a table to drop as the shadow (open, prepareRebuild,
   * abortRebuild); otherwise the table the view reads would go and every query of the view fail.
   */
  async #finishSwap(target: string, signal: AbortSignal): Promise<void> {
    const shadow = this.#find(target, "shadow");
    if (!shadow || shadow.columns.length === 0) return;
    if ((await this.#viewSource(target, signal)) !== shadow.physical) return;
    const live = this.#find(target, "live");
    await this.#recordSwap(shadow, live, signal);
    this.#logger.warn(
      { target, live: shadow.physical, dropped: live?.physical ?? null },
      "finished a rebuild's swap stopped after its view switch (a crash or a failed catalog save): the table the view reads is recorded live, the old one dropped",
    );
  }

  async #drop(table: ClickHouseTable, signal: AbortSignal): Promise<void> {
    await this.#cat().save(table, signal, true);
    await this.#dropSaved(table, signal);
  }

  /** Drops a table already saved as dropped in the catalog. */
  async #dropSaved(table: ClickHouseTable, signal: AbortSignal): Promise<void> {
    this.#forget(table);
    await this.#conn().command(`DROP TABLE IF EXISTS ${qualified(this.#database, table.physical)}`, signal);
  }

  /** Drops a table saved as dropped from memory, leaving the server's table as it is. */
  #forget(table: ClickHouseTable): void {
    this.#tables.delete(table.physical);
    this.#server.delete(table.physical);
    this.#checked.delete(table.physical);
    this.#mismatched.delete(table.physical);
  }

  #find(target: string, role: "live" | "shadow"): ClickHouseTable | null {
    for (const table of this.#tables.values()) if (table.target === target && table.role === role) return table;
    return null;
  }

  #nextGeneration(target: string): number {
    const next = (this.#generations.get(target) ?? 0) + 1;
    this.#generations.set(target, next);
    return next;
  }

  /** Records in the catalog the table a target is first written for (a restarted sink's claims know it). */
  async #recordOwner(target: string, table: TableId, signal: AbortSignal): Promise<void> {
    if (this.#owners.has(target)) return;
    await this.#cat().saveOwner(target, table, signal);
    this.#owners.set(target, table);
  }

  /** The table's target, claimed for it: refused (SINK_SCHEMA_UNSUPPORTED) when another table's target is the same or one of its generations. */
  #target(table: TableId): string {
    return this.#claims.claim(table, renderTarget(this.#config.target, table));
  }

  #conn(): ClickHouseConnection {
    if (!this.#connection) throw new SluiceError("the ClickHouse sink is not open", { code: "SINK_NOT_OPEN", context: { component: "sink", sink: this.name } });
    return this.#connection;
  }

  #cat(): ClickHouseCatalog {
    if (!this.#catalog) throw new SluiceError("the ClickHouse sink is not open", { code: "SINK_NOT_OPEN", context: { component: "sink", sink: this.name } });
    return this.#catalog;
  }
}

/** The body of an insert of the kept rows `numbers` (ascending; runs of consecutive numbers are one view per chunk). */
function rowsOf(writer: RowBinaryWriter, numbers: readonly number[]): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < numbers.length; ) {
    let end = i + 1;
    while (end < numbers.length && numbers[end] === numbers[end - 1]! + 1) end++;
    out.push(...writer.rows(numbers[i]!, numbers[end - 1]! + 1));
    i = end;
  }
  return out;
}

export function createClickHouseSink(config: ClickHouseSinkConfig, options: ClickHouseSinkOptions): ClickHouseSink {
  return new ClickHouseSink(config, options);
}
