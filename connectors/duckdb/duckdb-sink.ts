/**
 * The DuckDB sink, the embedded default warehouse: one file; per source table a versioned table
 * `_sluice."<target>__v<N>"` (primary key from the source, plus `_sluice_version` and
 * `_sluice_deleted`) and a view `main."<target>"` of its current rows, which is what users query.
 *
 * Every write is one transaction: schema changes, truncates, the rows (staged through the
 * appender into a temporary table, then one INSERT ... ON CONFLICT ... DO UPDATE ... WHERE newer per
 * group of unchanged-TOAST columns) and the consumer offsets. Deletes keep the row as a tombstone
 * with its version, so a replayed older insert cannot bring it back.
 */
import { mkdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { DuckDBInstance } from "@duckdb/node-api";
import type { DuckDBAppender, DuckDBConnection, DuckDBValue } from "@duckdb/node-api";
import type { Logger } from "../../runtime/logger.ts";
import type { SinkChange, SinkItemFailure, TableId, TableSchema, TopicPartitionOffset } from "../contracts.ts";
import { UNCHANGED } from "../contracts.ts";
import { ConnectionError, SluiceError } from "../errors.ts";
import type { ErrorContext } from "../errors.ts";
import { personalValuesOf, redactPersonalValues } from "../sinks/personal-values.ts";
import { allIndices, collapseChanges, tableKey, versionOf } from "../sinks/batch.ts";
import type { RowChange, TableChanges } from "../sinks/batch.ts";
import { defaultOf, DELETED_COLUMN, firstVersionWith, initialColumns, planColumns, VERSION_COLUMN } from "../sinks/columns.ts";
import type { PlanContext, SinceOf, TargetColumn } from "../sinks/columns.ts";
import type { LogicalType } from "../sinks/logical-type.ts";
import type { ErasableSink, ErasureRequest, OffsetWriteResult, RebuildRowCounts, RebuildShadow, StoredSinkOffset, VersionedSink } from "../sinks/contract.ts";
import { CATALOG_MISMATCH, errorMessage, rebuildState, rowRejected, schemaUnsupported, TargetBlockedError, TARGET_REPLACED, ValueRejected } from "../sinks/errors.ts";
import { Failures } from "../sinks/failures.ts";
import { beforeHalt, earlierPlace, failedRowPlace } from "../sinks/halt-place.ts";
import type { HaltPlace } from "../sinks/halt-place.ts";
import { isolateRejected } from "../sinks/isolate.ts";
import { generationOf, physicalName, renderTarget, tableFilter, tableLabel } from "../sinks/naming.ts";
import { refuseSubjectColumn } from "../sinks/subject-column.ts";
import { TargetClaims } from "../sinks/target-claims.ts";
import { cellOf, positionLabel } from "../sinks/rows.ts";
import { Serial } from "../sinks/serial.ts";
import { bootstrapCatalog, forgetTable, loadTargetOwners, loadTables, readOffsets, saveTable, saveTargetOwner, writeOffsets } from "./catalog.ts";
import type { PhysicalTable } from "./catalog.ts";
import { INTERNAL_SCHEMA, VIEW_SCHEMA } from "./config.ts";
import type { DuckDbSinkConfig, DuckDbSinkOptions } from "./config.ts";
import { endRead, lockDown, readJsonOn, readOn } from "./read-query.ts";
import type { ReadQueryLimits, ReadQueryResult } from "./read-query.ts";
import { diskSpace, type DiskSpaceOf, formatBytes, spillRoom } from "./spill-room.ts";
import { ident, isDuckDbDataError, isDuckDbFatal, literal } from "./sql.ts";
import { appendFor, duckdbType, duckdbValue } from "./types.ts";

const STAGE = "_sluice_stage";
/**
 * Rows converted or appended in one turn of the event loop: staging is synchronous JavaScript on
 * the sink's thread, and each step of a query endpoint's read waits for the stretch under way.
 */
const STAGE_SLICE = 64;
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));
const GROUP_COLUMN = "_sluice_group";

type Mode = "live" | "rebuild";

interface StagedRow {
  readonly change: RowChange;
  readonly cells: readonly DuckDBValue[];
  readonly group: number;
}

/** What DuckDB's allocator may keep of freed memory before it hands it back: an eighth of memory_limit, 4-128 MiB. */
export function allocatorFlushBytes(memoryLimitBytes: number): number {
  return Math.min(128 * 2 ** 20, Math.max(4 * 2 ** 20, Math.floor(memoryLimitBytes / 8)));
}

/**
 * The WAL size at which DuckDB checkpoints: an eighth of memory_limit, 1-16 MiB (DuckDB's default
 * 16 MiB). What upserts change of a primary-key index stays in memory DuckDB does not evict until
 * a checkpoint writes it: at the default, upserts over 1.2 million bigint keys after a restart ran
 * out of a 16 MiB memory_limit before the WAL reached 16 MiB (duckdb-memory.int.test.ts).
 */
export function checkpointThresholdBytes(memoryLimitBytes: number): number {
  return Math.min(16 * 2 ** 20, Math.max(2 ** 20, Math.floor(memoryLimitBytes / 8)));
}

/**
 * DuckDB's share of the memory budget (memory_limit, threads: config/memory.ts), set before the
 * configuration is locked; a database this process already opened and locked keeps what it got.
 */
async function limitResources(connection: DuckDBConnection, config: DuckDbSinkConfig): Promise<void> {
  if (config.memory_limit === undefined && config.threads === undefined) return;
  const locked = (await connection.runAndReadAll("SELECT current_setting('lock_configuration') AS locked")).getRowObjectsJS()[0]!["locked"] === true;
  if (locked) return;
  if (config.memory_limit !== undefined) {
    await connection.run(`SET memory_limit = '${Math.floor(config.memory_limit / 1024)}KiB'`);
    // DuckDB's allocator keeps what a thread freed for reuse until that thread's peak passes the
    // flush threshold (128 MiB by default): outside memory_limit and in RSS. Tie it to the limit.
    const flush = allocatorFlushBytes(config.memory_limit);
    await connection.run(`SET allocator_flush_threshold = '${Math.floor(flush / 1024)}KiB'`);
    await connection.run(`SET allocator_bulk_deallocation_flush_threshold = '${Math.floor(flush / 1024)}KiB'`);
    // What a thread that is not DuckDB's frees (a query's values, freed by the sink's thread as it
    // reads them) is flushed by no task's end: without the allocator's background threads handing
    // freed pages back, 9 queries of 200 values of 1 MB left the daemon at ~1 GB resident; with
    // them it is back to ~175 MB seconds after the last.
    await connection.run("SET allocator_background_threads = true");
    await connection.run(`SET checkpoint_threshold = '${Math.floor(checkpointThresholdBytes(config.memory_limit) / 1024)}KiB'`);
  }
  if (config.threads !== undefined) await connection.run(`SET threads = ${config.threads}`);
}

/** A file's device and inode: what stays the same while the file at a path is the one opened. */
interface FileIdentity {
  readonly dev: bigint;
  readonly ino: bigint;
}

/** The identity of the file at `path`: null when there is none, undefined when it cannot be told (a directory on the way not searchable). */
function fileIdentity(path: string): FileIdentity | null | undefined {
  try {
    const stat = statSync(path, { bigint: true, throwIfNoEntry: false });
    return stat === undefined ? null : { dev: stat.dev, ino: stat.ino };
  } catch {
    return undefined;
  }
}

export class DuckDbSink implements VersionedSink, ErasableSink {
  readonly name: string;
  readonly offsetsAtomic = true;
  readonly targetLabel: string;
  readonly #config: DuckDbSinkConfig;
  readonly #logger: Logger;
  readonly #diskSpace: DiskSpaceOf;
  readonly #accept: (table: TableId) => boolean;
  readonly #serial = new Serial();
  readonly #queries = new Serial();
  #instance: DuckDBInstance | null = null;
  #connection: DuckDBConnection | null = null;
  /**
   * Why the database is to be opened again before the next statement: it ran out of memory (the
   * reopen failed), or a fatal error invalidated it. Null while the one open is usable.
   */
  #lost: "memory" | "invalidated" | null = null;
  /** The query endpoint's connection, beside the writer's: kept between queries (one at a time), each in a transaction of its own. */
  #reader: DuckDBConnection | null = null;
  /** Physical tables by name, as the catalog holds them after the last committed transaction. */
  #tables = new Map<string, PhysicalTable>();
  /**
   * Per target, the shadow its last swap made live, until its next prepare: a swap tried again after its commit landed
   * and the step still failed (the database invalidated at the commit, reopened) recognises it done.
   */
  readonly #lastSwap = new Map<string, string>();
  /** Tables in the internal schema the catalog does not list (its rows deleted by hand): their names are not used again. */
  #strays = new Set<string>();
  /**
   * Why the last open of the file failed, told to queries meanwhile; null once open. `retried`: whether the runtime
   * opens it again (a retriable error, and the open's signal not aborted since: a stopped sink is not opened again).
   */
  #openFailure: { readonly message: string; readonly retried: () => boolean } | null = null;
  /** Identities of the topics read now: stored with every offset. */
  #topicIds: ReadonlyMap<string, string> = new Map();
  /** Which table each target is: DuckDB's names ignore case, so "Up" and "up" are one table to it. */
  readonly #claims: TargetClaims;
  /** The table each target was first written for, as `_sluice.targets` holds it after the last committed transaction. */
  #owners = new Map<string, TableId>();
  /**
   * The file opened at the path (null: in memory). DuckDB writes on into a file deleted or replaced
   * at its path, where nothing will find it again: each transaction first checks that the path
   * still names it, and once it does not (`#replaced`), every one is refused until `open`.
   */
  #file: FileIdentity | null = null;
  #replaced: SluiceError | null = null;

  constructor(config: DuckDbSinkConfig, options: DuckDbSinkOptions) {
    this.name = config.name;
    this.targetLabel = config.path === ":memory:" ? "its in-memory DuckDB database" : `DuckDB file ${config.path}`;
    this.#config = config;
    this.#logger = options.logger.child({ component: "sink", sink: config.name, kind: "duckdb" });
    this.#diskSpace = options.diskSpace ?? diskSpace;
    this.#accept = tableFilter(config);
    this.#claims = new TargetClaims(config.name, { fold: (name) => name.toLowerCase(), why: " (DuckDB's names ignore case)" });
  }

  async open(signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    this.#replaced = null;
    this.#lost = null;
    try {
      if (this.#config.path !== ":memory:") mkdirSync(dirname(this.#config.path), { recursive: true });
      try {
        await this.#connect(false);
      } catch (error) {
        if (!this.#removeEmptyFile(error)) throw error;
        await this.close();
        await this.#connect(false);
      }
      this.#openFailure = null;
    } catch (error) {
      await this.close();
      const failure = this.#openError(error, "");
      this.#openFailure = { message: errorMessage(error), retried: () => failure.retriable && !signal.aborted };
      throw failure;
    }
    this.#logger.info({ path: this.#config.path, tables: this.#tables.size }, "DuckDB sink open");
  }

  /**
   * An open that failed, retried. On a read-only file system (a restart before the disk was repaired: "IO Error: Cannot
   * open file ...: Read-only file system") it says so and what to do; waiting holds nothing open, so the repair can go
   * on, and the sink opens by itself once the file system is writable again.
   */
  #openError(error: unknown, again: string): ConnectionError {
    const message = errorMessage(error);
    const context = { component: "sink", sink: this.name };
    if (READ_ONLY_FS.test(message) || (error as NodeJS.ErrnoException).code === "EROFS") {
      return new ConnectionError(
        `DuckDB cannot open ${this.#config.path}${again}: its file system is read-only (EROFS; Linux turns it so after disk errors). Check the disk (dmesg), repair it and mount it writable again: the sink retries the open meanwhile and goes on from its stored offsets: ${message.split("\n")[0]}`,
        { code: "SINK_READ_ONLY", context, cause: error },
      );
    }
    return new ConnectionError(`cannot open DuckDB file ${this.#config.path}${again}: ${message}`, { code: "SINK_OPEN_FAILED", context, cause: error });
  }

  /**
   * A first open that found the disk full leaves the file created but empty, or with part of DuckDB's header area only
   * (3 blocks of 4 KiB before any data), which DuckDB then refuses for ever ("not a valid DuckDB database file", "Could
   * not read enough bytes from file"), so the sink never started once space was freed. Such a file (and no WAL beside
   * it) holds nothing: it is removed, for DuckDB to create the database anew. True when it was. A file of another
   * program (not empty, no DuckDB magic) is left alone.
   */
  #removeEmptyFile(error: unknown): boolean {
    const path = this.#config.path;
    if (path === ":memory:" || !/not a valid DuckDB database file|Could not read enough bytes from file/.test(errorMessage(error))) return false;
    const size = (file: string) => statSync(file, { throwIfNoEntry: false })?.size;
    if ((size(`${path}.wal`) ?? 0) !== 0 || !isUnfinishedDuckDbFile(path)) return false;
    rmSync(path);
    rmSync(`${path}.wal`, { force: true });
    this.#logger.warn({ path }, "removed an empty DuckDB file (left by a first open that found the disk full): the database is created anew");
    return true;
  }

  /**
   * Checkpoints and disconnects; the database itself closes when its last user in the process lets
   * go. This sink's hold on it is let go of at once: opened again, the sink gets the file at the path
   * now (another one, if it was replaced), not a database still kept for it.
   */
  async close(): Promise<void> {
    const connection = this.#connection;
    if (connection && this.#lost === null) await this.#serial.run(() => connection.run("CHECKPOINT")).catch(() => undefined);
    await this.#letGo();
  }

  /** Closes the query endpoint's connection, the writer's and the sink's hold on the database, in that order. */
  async #letGo(): Promise<void> {
    const reader = this.#reader;
    this.#reader = null;
    if (reader) await this.#queries.run(async () => reader.closeSync()).catch(() => undefined);
    this.#connection?.closeSync();
    this.#connection = null;
    this.#instance?.closeSync();
    this.#instance = null;
  }

  /** Runs trusted SQL on the sink's connection, between writes (for tests and tools in this process); values as JSON. */
  query(sql: string): Promise<Record<string, unknown>[]> {
    return this.#serial.run(() => this.#usable(async (connection) => (await connection.runAndReadAll(sql)).getRowObjectsJson()));
  }

  /**
   * Runs a user's SQL (the query endpoint): one SELECT, read-only, on a connection of its own beside
   * the writer's, bounded by the sink's `query` limits; queries run one at a time. The answer is
   * given before its transaction is ended (the next query waits for that), and the connection is
   * kept: each step is a turn of this thread's event loop, which a busy sink's batches hold.
   */
  readQuery(sql: string): Promise<ReadQueryResult> {
    return this.#onReader((reader, limits, context) => readOn(reader, sql, limits, context));
  }

  /** As readQuery, the answer as its JSON text in UTF-8, in a buffer of its own (what the query endpoint sends). */
  readQueryJson(sql: string): Promise<Uint8Array> {
    return this.#onReader((reader, limits, context) => readJsonOn(reader, sql, limits, context));
  }

  #onReader<T>(read: (reader: DuckDBConnection, limits: ReadQueryLimits, context: ErrorContext) => Promise<T>): Promise<T> {
    return new Promise((resolve, reject) => {
      void this.#queries.run(async () => {
        const instance = this.#instance;
        if (!instance || !this.#connection) {
          // An analyst's process holding the file (DuckDB's lock) is the likely cause at 3 a.m.: say it, not just "not open".
          const failure = this.#openFailure;
          const why =
            failure === null ? "" : failure.retried() ? `: it cannot open ${this.#config.path} and retries (${failure.message})` : `: its last open of ${this.#config.path} failed and is not retried (${failure.message})`;
          reject(new SluiceError(`the DuckDB sink is not open${why}`, { code: "SINK_NOT_OPEN", context: { component: "sink", sink: this.name } }));
          return;
        }
        let reader: DuckDBConnection;
        try {
          reader = this.#reader ??= await instance.connect();
        } catch (error) {
          reject(error as Error);
          return;
        }
        const { max_rows: maxRows, max_bytes: maxBytes, timeout: timeoutMs } = this.#config.query;
        await read(reader, { maxRows, maxBytes, timeoutMs }, { component: "query", sink: this.name }).then(resolve, (error: unknown) => {
          // The writer opens the database again before its next statement.
          if (isDuckDbFatal(error)) this.#lost = "invalidated";
          reject(error as Error);
        });
        if (!(await endRead(reader))) {
          // The connection no longer answers: the next query opens another.
          if (this.#reader === reader) this.#reader = null;
          reader.closeSync();
        }
      });
    });
  }

  write(changes: readonly SinkChange[], signal: AbortSignal, offsets?: readonly TopicPartitionOffset[]): Promise<OffsetWriteResult> {
    return this.#serial.run(() => this.#writeFitting(changes, "live", offsets ?? null, signal));
  }

  async writeRebuild(changes: readonly SinkChange[], signal: AbortSignal): Promise<OffsetWriteResult> {
    return this.#serial.run(() => this.#writeFitting(changes, "rebuild", null, signal));
  }

  storeOffsets(offsets: readonly TopicPartitionOffset[], signal: AbortSignal): Promise<void> {
    return this.#serial.run(async () => {
      signal.throwIfAborted();
      await this.#transaction(true, () => writeOffsets(this.#conn(), this.name, offsets, this.#topicIds));
    });
  }

  useTopicIds(ids: ReadonlyMap<string, string>): void {
    this.#topicIds = new Map(ids);
  }

  committedOffsets(): Promise<StoredSinkOffset[]> {
    return this.#serial.run(() => this.#usable((connection) => readOffsets(connection, this.name)));
  }

  prepareRebuild(table: TableId, signal: AbortSignal, shape?: TableSchema): Promise<void> {
    return this.#serial.run(async () => {
      signal.throwIfAborted();
      const target = this.#target(table);
      const context = { sink: this.name, table: tableLabel(table) };
      const columns = shape ? caseDistinct(initialColumns(shape, context), context) : null;
      this.#lastSwap.delete(target);
      await this.#transaction(true, async () => {
        const old = this.#find(target, "shadow");
        if (old) await this.#drop(old);
        const live = this.#find(target, "live");
        const shadow: PhysicalTable = {
          physical: physicalName(target, this.#nextGeneration(target)),
          target,
          role: "shadow",
          generation: this.#nextGeneration(target),
          truncateVersion: 0n,
          columns: [],
          createdAtMs: Date.now(),
        };
        const initial = columns ?? live?.columns;
        if (initial) await this.#create(shadow, initial);
        else await saveTable(this.#conn(), shadow);
        this.#tables.set(shadow.physical, shadow);
      });
      this.#logger.info({ target }, "rebuild prepared: writes go to the live table and the shadow");
    });
  }

  swap(table: TableId, signal: AbortSignal): Promise<void> {
    return this.#serial.run(async () => {
      signal.throwIfAborted();
      const target = this.#target(table);
      const label = tableLabel(table);
      const done = await this.#transaction(true, async () => {
        const shadow = this.#find(target, "shadow");
        if (!shadow) {
          if (this.#lastSwap.has(target) && this.#find(target, "live")?.physical === this.#lastSwap.get(target)) return true;
          throw rebuildState("no rebuild in progress (call prepareRebuild first)", { sink: this.name, table: label });
        }
        this.#lastSwap.set(target, shadow.physical);
        const live = this.#find(target, "live");
        if (shadow.columns.length === 0) {
          if (!live) {
            await forgetTable(this.#conn(), shadow.physical);
            this.#tables.delete(shadow.physical);
            return false;
          }
          await this.#create(shadow, live.columns);
        }
        shadow.role = "live";
        await saveTable(this.#conn(), shadow);
        await this.#createView(shadow);
        if (live) await this.#drop(live);
        return false;
      });
      this.#logger.info({ target }, done ? "rebuild swapped in (found done when tried again)" : "rebuild swapped in");
    });
  }

  rebuildRowCounts(table: TableId, signal: AbortSignal): Promise<RebuildRowCounts> {
    return this.#serial.run(() => {
      signal.throwIfAborted();
      return this.#usable(async (connection) => {
        const target = this.#target(table);
        const count = async (physical: PhysicalTable | null): Promise<number | null> => {
          if (!physical) return null;
          if (physical.columns.length === 0) return 0;
          const rows = await connection.runAndReadAll(`SELECT count(*) AS n FROM ${this.#qualified(physical)} WHERE NOT ${ident(DELETED_COLUMN)}`);
          return Number(rows.getRowObjectsJson()[0]?.["n"] ?? 0);
        };
        // A live table dropped by hand (its halt says to rebuild it): no live rows to compare with, as with no live table.
        // Nor one that lost a column by hand: its halt says to rebuild it too, and rows deleted with it would refuse the swap.
        const livePhysical = this.#find(target, "live");
        const damaged = livePhysical !== null && (await this.#columnsGone(connection, livePhysical)).length > 0;
        const live = damaged
          ? null
          : await count(livePhysical).catch((error: unknown) => {
              if (MISSING_TABLE.test(errorMessage(error))) return null;
              throw error;
            });
        return { live, shadow: (await count(this.#find(target, "shadow"))) ?? 0 };
      });
    });
  }

  rebuildShadows(signal: AbortSignal): Promise<RebuildShadow[]> {
    return this.#serial.run(async () => {
      signal.throwIfAborted();
      return [...this.#tables.values()]
        .filter((t) => t.role === "shadow")
        .map((t) => ({ table: this.#owners.get(t.target) ?? null, target: t.target, physical: t.physical, preparedAtMs: t.createdAtMs ?? null }));
    });
  }

  abortRebuild(table: TableId, signal: AbortSignal): Promise<void> {
    return this.#serial.run(async () => {
      signal.throwIfAborted();
      const target = this.#target(table);
      await this.#transaction(true, async () => {
        const shadow = this.#find(target, "shadow");
        if (shadow) await this.#drop(shadow);
      });
    });
  }

  // --- writing -----------------------------------------------------------------------------

  /**
   * A write DuckDB runs out of memory_limit for is applied again as two writes of half its changes,
   * each its own transaction (a half that runs out splits again), the offsets with the last. What
   * one transaction holds until it ends (its rows, their primary-key index entries, undo) does not
   * shrink by retrying it: the same write failed for ever. Under on_error: halt, a table that fails
   * in the first half keeps only its changes of the second that come before the halt.
   * One change that still runs out after ONE_CHANGE_ATTEMPTS fresh opens halts its table
   * (SINK_TARGET_BLOCKED, under any on_error) instead of being retried for ever, stalling the
   * sink's other tables: its table's later changes are held until a restart with memory_limit
   * raised reads the table again from it (halts are not kept over a restart).
   */
  async #writeFitting(changes: readonly SinkChange[], mode: Mode, offsets: readonly TopicPartitionOffset[] | null, signal: AbortSignal): Promise<OffsetWriteResult> {
    for (let attempt = 1; ; attempt++) {
      if (this.#lost !== null) await this.#reopen();
      try {
        return await this.#write(changes, mode, offsets, signal);
      } catch (error) {
        if (error instanceof SluiceError && error.context["fatal"] !== undefined) this.#logFatal(error, changes);
        // A fatal error whose cause was memory (a rollback that ran out too) is out of memory all the same: retried
        // unchanged it fails the same way for ever, holding up the sink's other tables.
        const outOfMemory = error instanceof SluiceError && (error.code === "SINK_OUT_OF_MEMORY" || (error.code === DATABASE_INVALIDATED && error.context["outOfMemory"] === 1));
        if (!outOfMemory) throw error;
        this.#logger.warn({ changes: changes.length, attempt, error: error.message }, "DuckDB ran out of memory for the write; opening the database again and applying it in two halves");
        await this.#reopen();
        if (changes.length >= 2) break;
        if (attempt < ONE_CHANGE_ATTEMPTS) continue;
        // Offsets alone that do not fit: no change to halt, the runner retries the write with backoff.
        if (changes.length === 0) throw error;
        return { failures: [{ index: 0, error: this.#tooLarge(changes[0]!, error), retriable: false }], offsetsStored: false };
      }
    }
    const middle = Math.ceil(changes.length / 2);
    const first = await this.#writeFitting(changes.slice(0, middle), mode, null, signal);
    const rest: number[] = [];
    const halting = this.#config.on_error === "halt" ? first.failures : first.failures.filter(({ error }) => error instanceof TargetBlockedError);
    const halts = haltsOf(changes, halting);
    for (let index = middle; index < changes.length; index++) {
      const halt = halts.get(tableKey(changes[index]!.event.schema));
      if (halt === undefined || versionOf(changes[index]!.event) < halt.version) rest.push(index);
    }
    const restOffsets = first.failures.length === 0 ? offsets : null;
    // A second half left empty (all of it held behind a halt in the first) has nothing to write.
    const second: OffsetWriteResult =
      rest.length === 0 && restOffsets === null ? { failures: [], offsetsStored: false } : await this.#writeFitting(rest.map((index) => changes[index]!), mode, restOffsets, signal);
    return {
      failures: [...first.failures, ...second.failures.map((failure) => ({ ...failure, index: rest[failure.index]! }))],
      offsetsStored: second.offsetsStored,
    };
  }

  async #write(changes: readonly SinkChange[], mode: Mode, offsets: readonly TopicPartitionOffset[] | null, signal: AbortSignal): Promise<OffsetWriteResult> {
    signal.throwIfAborted();
    const { tables } = collapseChanges(changes, this.#accept);
    const rejected = new Map<RowChange, unknown>();
    // on_error: halt stops a table at its first failing change: later rows of it are not applied.
    const held = new Set<RowChange>();
    const holdAfterFailures = () => {
      if (this.#config.on_error !== "halt") return;
      for (const table of tables) {
        let halt: HaltPlace | null = null;
        for (const { index } of table.invalid) halt = earlierPlace(halt, { version: versionOf(changes[index]!.event), index });
        for (const row of table.rows) if (rejected.has(row)) halt = earlierPlace(halt, failedRowPlace(row));
        if (halt === null) continue;
        for (const row of table.rows) if (!beforeHalt(row, halt) && !rejected.has(row)) held.add(row);
      }
    };
    const include = (row: RowChange) => !rejected.has(row) && !held.has(row);
    holdAfterFailures();
    try {
      return await this.#transaction(true, () => this.#apply(tables, mode, include, offsets, rejected));
    } catch (error) {
      if (!isDuckDbDataError(error)) throw this.#wrap(error);
      const personal = personalValuesOf(changes.map((c) => c.event));
      this.#logger.warn({ error: redactPersonalValues(errorMessage(error), personal) }, "DuckDB rejected the batch; isolating the rows it rejects");
    }
    // A statement failed on the data: find the rows it fails on (each probe rolled back), then apply the rest.
    const rows = tables.flatMap((t) => t.rows);
    const found = await isolateRejected(
      rows,
      async (subset) => {
        const only = new Set(subset);
        await this.#transaction(false, () => this.#apply(tables, mode, (row) => only.has(row), null, new Map()));
      },
      isDuckDbDataError,
    );
    for (const { item, error } of found) rejected.set(item, error);
    holdAfterFailures();
    try {
      return await this.#transaction(true, () => this.#apply(tables, mode, include, offsets, rejected));
    } catch (error) {
      throw this.#wrap(error);
    }
  }

  /** Applies the batch inside the open transaction; rows `include` refuses are left out (and reported if in `rejected`). */
  async #apply(
    tables: readonly TableChanges[],
    mode: Mode,
    include: (row: RowChange) => boolean,
    offsets: readonly TopicPartitionOffset[] | null,
    rejected: ReadonlyMap<RowChange, unknown>,
  ): Promise<OffsetWriteResult> {
    const failures = new Failures();
    for (const changes of tables) {
      const label = tableLabel(changes.table);
      const context = { sink: this.name, table: label };
      try {
        for (const { index, error } of changes.invalid) failures.add([index], rowRejected(error.message, { ...context, column: error.column }, error));
        for (const row of changes.rows) {
          const error = rejected.get(row);
          if (error !== undefined) failures.add(row.indices, rowRejected(errorMessage(error), { ...context, position: positionLabel(row) }, error));
        }
        const target = this.#target(changes.table);
        if (!this.#owners.has(target)) {
          await saveTargetOwner(this.#conn(), target, changes.table);
          this.#owners.set(target, changes.table);
        }
        let primary: PhysicalTable;
        let mirror: PhysicalTable | null = null;
        if (mode === "live") {
          primary = await this.#ensureLive(target, changes.schemas[0] as TableSchema, label, firstVersionWith(changes.rows));
          mirror = this.#find(target, "shadow");
        } else {
          const shadow = this.#find(target, "shadow");
          if (!shadow) {
            failures.add(allIndices(changes), rebuildState("no rebuild in progress for this table", context));
            continue;
          }
          primary = shadow;
        }
        for (const physical of mirror ? [primary, mirror] : [primary]) {
          const added: TargetColumn[] = [];
          for (const schema of changes.schemas) added.push(...(await this.#evolve(physical, schema, label, firstVersionWith(changes.rows))));
          // After every ALTER of the table: DuckDB refuses to commit a transaction that altered a table after updating it.
          await this.#fillDefaults(physical, added);
          if (changes.truncate) await this.#truncate(physical, changes.truncate.version);
        }
        const rows = changes.rows.filter((row) => include(row) && row.version > primary.truncateVersion);
        if (rows.length === 0) continue;
        let staged: StagedRow[] = [];
        const groups = new Map<string, number>();
        let halt: HaltPlace | null = null;
        for (const [index, change] of rows.entries()) {
          if (index > 0 && index % STAGE_SLICE === 0) await nextTurn();
          try {
            staged.push(this.#stageRow(primary.columns, change, groups));
          } catch (error) {
            if (!(error instanceof ValueRejected)) throw error;
            failures.add(change.indices, rowRejected(error.message, { ...context, position: positionLabel(change), column: error.column }, error));
            halt = earlierPlace(halt, failedRowPlace(change));
          }
        }
        // on_error: halt: nothing of the table after its first rejected row (groups left empty upsert nothing).
        if (this.#config.on_error === "halt" && halt !== null) staged = staged.filter((row) => beforeHalt(row.change, halt));
        if (staged.length === 0) continue;
        await this.#fillStage(primary.columns, staged);
        const script: string[] = [];
        for (const [signature, group] of groups) script.push(...this.#upsertGroup(primary, group, new Set(signature === "" ? [] : signature.split("\u0000"))));
        if (mirror) script.push(...this.#copyStagedKeys(primary, mirror));
        script.push(`DROP TABLE IF EXISTS temp.main.${ident(STAGE)}`);
        // One call: each is a turn of the sink thread's event loop. DuckDB runs them in order and stops at the first that fails.
        await this.#conn().run(script.join(";\n"));
      } catch (error) {
        throw this.#missingTable(error, changes.table, label) ?? (await this.#missingColumn(error, changes.table, label)) ?? error;
      }
    }
    const offsetsStored = offsets !== null && failures.size === 0;
    if (offsetsStored) await writeOffsets(this.#conn(), this.name, offsets, this.#topicIds);
    return { failures: failures.list(), offsetsStored };
  }

  #stageRow(columns: readonly TargetColumn[], change: RowChange, groups: Map<string, number>): StagedRow {
    const unchanged: string[] = [];
    const cells = columns.map((column) => {
      const value = cellOf(change, column);
      if (value === UNCHANGED) {
        if (column.key) throw new ValueRejected("a key column cannot be unchanged-TOAST", column.name);
        unchanged.push(column.name);
        return null;
      }
      try {
        return duckdbValue(column.type, value);
      } catch (error) {
        if (error instanceof ValueRejected) throw new ValueRejected(error.message, column.name);
        throw error;
      }
    });
    const signature = unchanged.join("\u0000");
    let group = groups.get(signature);
    if (group === undefined) {
      group = groups.size;
      groups.set(signature, group);
    }
    return { change, cells, group };
  }

  async #fillStage(columns: readonly TargetColumn[], staged: readonly StagedRow[]): Promise<void> {
    const definitions = columns.map((c) => `${ident(c.name)} ${duckdbType(c.type)}`);
    await this.#conn().run(
      `CREATE OR REPLACE TEMP TABLE ${ident(STAGE)} (${definitions.join(", ")}, ${ident(VERSION_COLUMN)} UBIGINT, ${ident(DELETED_COLUMN)} BOOLEAN, ${ident(GROUP_COLUMN)} INTEGER)`,
    );
    const appender = await this.#conn().createAppender(STAGE, "main", "temp");
    try {
      const appends = columns.map((column, index) => appendFor(column.type, appender.columnType(index)));
      for (let index = 0; index < staged.length; index++) {
        if (index > 0 && index % STAGE_SLICE === 0) await nextTurn();
        appendRow(appender, appends, staged[index]!);
      }
      appender.flushSync();
    } catch (error) {
      // Closing flushes again, in the transaction the failure aborted: its error would hide this one (an out-of-memory read as a write failure).
      try {
        appender.closeSync();
      } catch {}
      throw error;
    }
    appender.closeSync();
  }

  /** The statements that upsert one group of the staged rows (those with the same unchanged-TOAST columns). */
  #upsertGroup(physical: PhysicalTable, group: number, unchanged: ReadonlySet<string>): string[] {
    const names = [...physical.columns.map((c) => c.name), VERSION_COLUMN, DELETED_COLUMN];
    const list = names.map(ident).join(", ");
    const keys = physical.columns.filter((c) => c.key).map((c) => ident(c.name));
    const updates = names
      .filter((name) => !unchanged.has(name) && !physical.columns.some((c) => c.key && c.name === name))
      .map((name) => `${ident(name)} = excluded.${ident(name)}`);
    const upsert =
      `INSERT INTO ${this.#qualified(physical)} (${list}) SELECT ${list} FROM temp.main.${ident(STAGE)} WHERE ${ident(GROUP_COLUMN)} = ${group} ` +
      `ON CONFLICT (${keys.join(", ")}) DO UPDATE SET ${updates.join(", ")} ` +
      `WHERE excluded.${ident(VERSION_COLUMN)} > ${ident(VERSION_COLUMN)}`;
    // DuckDB's INSERT ... ON CONFLICT turns -0.0 inside a LIST into 0.0 (scalars keep it; UPDATE keeps it): write float lists again.
    const floatLists = physical.columns.filter((c) => !c.key && !unchanged.has(c.name) && holdsFloatList(c.type));
    return [upsert, ...this.#rewriteFloatLists(physical, floatLists, keys, `temp.main.${ident(STAGE)}`, `s.${ident(GROUP_COLUMN)} = ${group}`)];
  }

  #rewriteFloatLists(physical: PhysicalTable, columns: readonly TargetColumn[], keys: readonly string[], from: string, where: string): string[] {
    if (columns.length === 0) return [];
    const matches = [...keys, ident(VERSION_COLUMN)].map((k) => `t.${k} = s.${k}`).join(" AND ");
    return [`UPDATE ${this.#qualified(physical)} AS t SET ${columns.map((c) => `${ident(c.name)} = s.${ident(c.name)}`).join(", ")} FROM ${from} AS s WHERE ${where} AND ${matches}`];
  }

  /** Copies the rows just written for the staged keys from the live table into the shadow (rows complete, unchanged-TOAST resolved). */
  #copyStagedKeys(from: PhysicalTable, to: PhysicalTable): string[] {
    const shared = to.columns.filter((c) => from.columns.some((f) => f.name === c.name)).map((c) => c.name);
    const names = [...shared, VERSION_COLUMN, DELETED_COLUMN];
    const list = names.map(ident).join(", ");
    const keyNames = to.columns.filter((c) => c.key).map((c) => c.name);
    const matches = keyNames.map((k) => `s.${ident(k)} = l.${ident(k)}`).join(" AND ");
    const updates = names.filter((n) => !keyNames.includes(n)).map((n) => `${ident(n)} = excluded.${ident(n)}`);
    const copy =
      `INSERT INTO ${this.#qualified(to)} (${list}) SELECT ${names.map((n) => `l.${ident(n)}`).join(", ")} FROM ${this.#qualified(from)} l ` +
      `WHERE EXISTS (SELECT 1 FROM temp.main.${ident(STAGE)} s WHERE ${matches}) AND l.${ident(VERSION_COLUMN)} > ${to.truncateVersion} ` +
      `ON CONFLICT (${keyNames.map(ident).join(", ")}) DO UPDATE SET ${updates.join(", ")} ` +
      `WHERE excluded.${ident(VERSION_COLUMN)} > ${ident(VERSION_COLUMN)}`;
    const floatLists = to.columns.filter((c) => !c.key && shared.includes(c.name) && holdsFloatList(c.type));
    const stagedKey = keyNames.map((k) => `st.${ident(k)} = s.${ident(k)}`).join(" AND ");
    return [copy, ...this.#rewriteFloatLists(to, floatLists, keyNames.map(ident), this.#qualified(from), `EXISTS (SELECT 1 FROM temp.main.${ident(STAGE)} st WHERE ${stagedKey})`)];
  }

  async #truncate(physical: PhysicalTable, version: bigint): Promise<void> {
    if (version <= physical.truncateVersion) return;
    physical.truncateVersion = version;
    await saveTable(this.#conn(), physical);
    // Rows at or below the truncate, tombstones included: the truncate version now guards them.
    // Rows above it stay, even if they were written before the truncate arrived (a snapshot's reset follows its rows).
    await this.#conn().run(`DELETE FROM ${this.#qualified(physical)} WHERE ${ident(VERSION_COLUMN)} <= ${version}`);
  }

  // --- tables and schema evolution -----------------------------------------------------------

  async #ensureLive(target: string, schema: TableSchema, label: string, since: SinceOf): Promise<PhysicalTable> {
    const live = this.#find(target, "live");
    if (live) return live;
    const strayOf = () => [...this.#strays].find((name) => generationOf(target, name) !== null);
    // Read again before halting: the operator may have dropped the stray table since the last read.
    if (strayOf() !== undefined) await this.#readStrays();
    const stray = strayOf();
    if (stray !== undefined) throw this.#uncatalogued(stray, schema, label);
    const generation = this.#nextGeneration(target);
    const table: PhysicalTable = { physical: physicalName(target, generation), target, role: "live", generation, truncateVersion: 0n, columns: [] };
    await this.#create(table, caseDistinct(initialColumns(schema, { sink: this.name, table: label }, since), { sink: this.name, table: label }));
    await this.#createView(table);
    this.#logger.info({ target, physical: table.physical }, "created table");
    return table;
  }

  /** Alters the table to fit `schema`; returns the columns added, whose defaults the caller fills in after the table's last ALTER. */
  async #evolve(physical: PhysicalTable, schema: TableSchema, label: string, since: SinceOf): Promise<readonly TargetColumn[]> {
    const context = { sink: this.name, table: label };
    if (physical.columns.length === 0) {
      await this.#create(physical, caseDistinct(initialColumns(schema, context, since), context));
      return [];
    }
    const plan = planColumns(physical.columns, schema, context, since);
    caseDistinct(plan.columns, context);
    if (plan.added.length === 0 && plan.changed.length === 0) return [];
    if (plan.changed.some((c) => c.key)) {
      await this.#rewrite(physical, plan.columns);
      return plan.added;
    }
    for (const column of plan.added) {
      await this.#conn().run(`ALTER TABLE ${this.#qualified(physical)} ADD COLUMN ${ident(column.name)} ${duckdbType(column.type)}`);
    }
    for (const change of plan.changed) {
      await this.#conn().run(`ALTER TABLE ${this.#qualified(physical)} ALTER COLUMN ${ident(change.name)} TYPE ${duckdbType(change.to)}`);
    }
    physical.columns = plan.columns;
    await saveTable(this.#conn(), physical);
    this.#logger.info({ physical: physical.physical, added: plan.added.map((c) => c.name), widened: plan.changed.map((c) => c.name) }, "schema evolved");
    return plan.added;
  }

  /**
   * Rows written before a column with a default was added hold that default in the source: they
   * get it here, in the transaction that adds the column (a restart redoes both or neither), after
   * the table's last ALTER in it.
   */
  async #fillDefaults(physical: PhysicalTable, added: readonly TargetColumn[]): Promise<void> {
    for (const column of added) {
      if (column.default === undefined) continue;
      const older = column.since === undefined ? "" : ` WHERE ${ident(VERSION_COLUMN)} < ${column.since}`;
      await this.#conn().run(`UPDATE ${this.#qualified(physical)} SET ${ident(column.name)} = $1${older}`, [duckdbValue(column.type, defaultOf(column))]);
    }
  }

  /** A key column changed type: DuckDB cannot alter primary-key columns, so copy into the next generation. */
  async #rewrite(old: PhysicalTable, columns: readonly TargetColumn[]): Promise<void> {
    const generation = this.#nextGeneration(old.target);
    const next: PhysicalTable = { ...old, physical: physicalName(old.target, generation), generation, columns: [] };
    await this.#create(next, columns);
    const names = [...old.columns.map((c) => c.name), VERSION_COLUMN, DELETED_COLUMN].map(ident).join(", ");
    await this.#conn().run(`INSERT INTO ${this.#qualified(next)} (${names}) SELECT ${names} FROM ${this.#qualified(old)}`);
    await this.#drop(old);
    if (next.role === "live") await this.#createView(next);
    // Callers hold the old object: keep it pointing at the table that now serves.
    Object.assign(old, next);
    this.#tables.set(old.physical, old);
  }

  async #create(table: PhysicalTable, columns: readonly TargetColumn[]): Promise<void> {
    const definitions = columns.map((c) => `${ident(c.name)} ${duckdbType(c.type)}${c.key ? " NOT NULL" : ""}`);
    const keys = columns.filter((c) => c.key).map((c) => ident(c.name));
    await this.#conn().run(
      `CREATE TABLE ${this.#qualified(table)} (${definitions.join(", ")}, ${ident(VERSION_COLUMN)} UBIGINT NOT NULL, ` +
        `${ident(DELETED_COLUMN)} BOOLEAN NOT NULL, PRIMARY KEY (${keys.join(", ")}))`,
    );
    table.columns = columns;
    await saveTable(this.#conn(), table);
    this.#tables.set(table.physical, table);
  }

  async #createView(table: PhysicalTable): Promise<void> {
    await this.#conn().run(
      `CREATE OR REPLACE VIEW ${ident(VIEW_SCHEMA)}.${ident(table.target)} AS SELECT * EXCLUDE (${ident(VERSION_COLUMN)}, ${ident(DELETED_COLUMN)}) ` +
        `FROM ${this.#qualified(table)} WHERE NOT ${ident(DELETED_COLUMN)}`,
    );
  }

  async #drop(table: PhysicalTable): Promise<void> {
    await this.#conn().run(`DROP TABLE IF EXISTS ${this.#qualified(table)}`);
    await forgetTable(this.#conn(), table.physical);
    this.#tables.delete(table.physical);
  }

  /** `sluice forget`: nulls the subject's personal columns in every generation of the table, in one transaction. */
  erase(request: ErasureRequest, signal: AbortSignal): Promise<number> {
    return this.#serial.run(async () => {
      signal.throwIfAborted();
      const target = this.#target(request.table);
      const physicals = [...this.#tables.values()].filter((t) => t.target === target && t.columns.some((c) => c.name === request.subjectColumn));
      for (const physical of physicals) refuseSubjectColumn(this.name, tableLabel(request.table), physical.columns.find((c) => c.name === request.subjectColumn)!);
      let changed = 0;
      await this.#transaction(true, async () => {
        for (const physical of physicals) {
          const columns = request.columns.filter((name) => physical.columns.some((c) => c.name === name && !c.key));
          if (columns.length === 0) continue;
          // Bound, not a literal: DuckDB's parser ends a literal at a NUL character (a MySQL text may hold one), refusing the statement.
          const result = await this.#conn().run(
            `UPDATE ${this.#qualified(physical)} SET ${columns.map((c) => `${ident(c)} = NULL`).join(", ")} WHERE CAST(${ident(request.subjectColumn)} AS VARCHAR) = $1 AND (${columns.map((c) => `${ident(c)} IS NOT NULL`).join(" OR ")})`,
            [request.subject],
          );
          if (physical.role === "live") changed += result.rowsChanged;
        }
      });
      return changed;
    });
  }

  #find(target: string, role: "live" | "shadow"): PhysicalTable | null {
    for (const table of this.#tables.values()) if (table.target === target && table.role === role) return table;
    return null;
  }

  #nextGeneration(target: string): number {
    let max = 0;
    for (const table of this.#tables.values()) if (table.target === target && table.generation > max) max = table.generation;
    for (const name of this.#strays) max = Math.max(max, generationOf(target, name) ?? 0);
    return max + 1;
  }

  /** The columns the sink made in `table` that its DuckDB table no longer has (dropped or renamed by hand). */
  async #columnsGone(connection: DuckDBConnection, table: PhysicalTable): Promise<string[]> {
    const reader = await connection.runAndReadAll(
      `SELECT column_name AS name FROM duckdb_columns() WHERE database_name = current_database() AND schema_name = ${literal(INTERNAL_SCHEMA)} AND table_name = ${literal(table.physical)}`,
    );
    const present = new Set(reader.getRowObjectsJson().map((row) => String(row["name"])));
    return [...table.columns.map((c) => c.name), VERSION_COLUMN, DELETED_COLUMN].filter((name) => !present.has(name));
  }

  #qualified(table: PhysicalTable): string {
    return `${ident(INTERNAL_SCHEMA)}.${ident(table.physical)}`;
  }

  // --- plumbing ------------------------------------------------------------------------------

  /**
   * Lets go of the database and opens it again, as a restart does: what DuckDB keeps of the
   * primary-key index that upserts loaded is not evicted, and checkpoints do not free it
   * (docs/operations.md#memory). Another user of the file in this process keeps it open, and that memory with it.
   */
  async #reopen(): Promise<void> {
    const opened = this.#file;
    this.#lost ??= "memory";
    await this.#letGo();
    try {
      await this.#connect(this.#lost === "invalidated");
      this.#openFailure = null;
    } catch (error) {
      const failure = this.#openError(error, " again");
      this.#openFailure = { message: errorMessage(error), retried: () => failure.retriable };
      throw failure;
    }
    if (this.#lost === "invalidated") this.#logger.info({ path: this.#config.path, tables: this.#tables.size }, "DuckDB database opened again after the fatal error");
    this.#lost = null;
    // Opened again here, the sink would write on into another file than the one it resumed from.
    if (opened !== null && this.#file !== null && this.#replaced === null) this.#noteReplaced(opened, this.#file);
  }

  /**
   * Opens the database with the sink's limits and lock-down, and reads its catalog (made first if the file is new).
   * Taken from the process-wide cache, which other sinks on the same file share, unless `fresh`, or unless what the
   * cache holds was invalidated by a fatal error: DuckDB's cache gives back the invalidated instance as long as
   * another user in this process holds it (and, when only its connections do, waits for it to close, for ever).
   * A fresh instance beside an invalidated one is safe: DuckDB refuses every statement on the invalidated one.
   */
  async #connect(fresh: boolean): Promise<void> {
    const path = this.#config.path;
    try {
      await this.#connectTo(fresh ? await DuckDBInstance.create(path) : await DuckDBInstance.fromCache(path));
    } catch (error) {
      if (fresh || !isDuckDbFatal(error)) throw error;
      this.#logger.warn({ path, error: errorMessage(error) }, "the DuckDB database this process holds was invalidated by a fatal error; opening the file anew");
      await this.#letGo();
      await this.#connectTo(await DuckDBInstance.create(path));
    }
  }

  async #connectTo(instance: DuckDBInstance): Promise<void> {
    this.#instance = instance;
    this.#file = this.#config.path === ":memory:" ? null : (fileIdentity(this.#config.path) ?? null);
    this.#connection = await this.#instance.connect();
    await limitResources(this.#connection, this.#config);
    await lockDown(this.#connection);
    await bootstrapCatalog(this.#connection);
    await this.#reload();
    await this.#restoreViews();
  }

  /**
   * Makes again, with a warning, the view of a live table that is gone (dropped by hand while the sink was stopped):
   * the names users query. Left alone it stays gone, the sink ready, until the table's next schema change. A name
   * taken by something else now (a table made in its place) is left alone too, with a warning.
   */
  async #restoreViews(): Promise<void> {
    const names = async (sql: string) => new Set((await this.#conn().runAndReadAll(sql)).getRowObjectsJson().map((row) => `${String(row["s"])}.${String(row["n"])}`));
    const scope = `database_name = current_database() AND schema_name IN (${literal(VIEW_SCHEMA)}, ${literal(INTERNAL_SCHEMA)})`;
    const views = await names(`SELECT schema_name AS s, view_name AS n FROM duckdb_views() WHERE ${scope}`);
    const tables = await names(`SELECT schema_name AS s, table_name AS n FROM duckdb_tables() WHERE ${scope}`);
    for (const table of this.#tables.values()) {
      const view = `${VIEW_SCHEMA}.${table.target}`;
      if (table.role !== "live" || views.has(view) || !tables.has(`${INTERNAL_SCHEMA}.${table.physical}`)) continue;
      const context = { code: VIEW_RESTORED, target: table.target, physical: table.physical, path: this.#config.path };
      if (tables.has(view)) {
        this.#logger.warn(context, `DuckDB view ${view} is missing and a table of that name is in its place (made by hand?): the sink leaves it; drop it and restart to have the view made again over ${INTERNAL_SCHEMA}.${table.physical}`);
        continue;
      }
      try {
        await this.#createView(table);
      } catch (error) {
        // A table that also lost a column the sink made halts at its next write (#missingColumn); an open that failed here stopped the daemon at every start.
        if (isDuckDbFatal(error)) throw error;
        const owner = this.#owners.get(table.target);
        const advice = owner === undefined ? "fill it again from the topics (sluice replay --from-beginning --rebuild), which makes the view" : `${this.#rebuildAdvice(owner)}; the rebuild makes the view`;
        this.#logger.warn(
          { ...context, code: VIEW_NOT_RESTORED, error: errorMessage(error) },
          `DuckDB view ${view} is missing (dropped by hand?) and could not be made again over ${INTERNAL_SCHEMA}.${table.physical}: ${errorMessage(error)}. ` +
            `The sink goes on without it, and queries of ${view} fail: ${advice}`,
        );
        continue;
      }
      this.#logger.warn(context, `DuckDB view ${view} was missing (dropped by hand?): made again over ${INTERNAL_SCHEMA}.${table.physical}`);
    }
  }

  #conn(): DuckDBConnection {
    if (!this.#connection) throw new SluiceError("the DuckDB sink is not open", { code: "SINK_NOT_OPEN", context: { component: "sink", sink: this.name } });
    return this.#connection;
  }

  /** Runs `body` on the writer's connection outside a transaction, the database opened again first if it was lost; a fatal error is SINK_DATABASE_INVALIDATED. */
  async #usable<T>(body: (connection: DuckDBConnection) => Promise<T>): Promise<T> {
    if (this.#lost !== null) await this.#reopen();
    try {
      return await body(this.#conn());
    } catch (error) {
      throw isDuckDbFatal(error) ? this.#invalidated(error) : error;
    }
  }

  async #reload(): Promise<void> {
    this.#tables = new Map((await loadTables(this.#conn())).map((t) => [t.physical, t]));
    this.#owners = await loadTargetOwners(this.#conn());
    for (const [target, table] of this.#owners) this.#claims.know(target, table);
    for (const table of this.#tables.values()) this.#claims.know(table.target);
    await this.#readStrays();
  }

  /** The generation tables in the file that the catalog does not list (its rows deleted by hand). */
  async #readStrays(): Promise<void> {
    const reader = await this.#conn().runAndReadAll(
      `SELECT table_name AS n FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = ${literal(INTERNAL_SCHEMA)}`,
    );
    this.#strays = new Set(reader.getRowObjectsJson().map((row) => String(row["n"])).filter((name) => /__v\d+$/.test(name) && !this.#tables.has(name)));
  }

  /** The table's target, refused (SINK_SCHEMA_UNSUPPORTED) when another table's is the same to DuckDB. */
  #target(table: TableId): string {
    return this.#claims.claim(table, renderTarget(this.#config.target, table));
  }

  /**
   * Refuses to write once the path no longer names the file open (deleted, or another moved over
   * it): what the sink wrote on would be lost with the old file, and the file at the path, opened
   * again, is filled from the offsets it keeps (none: from the beginning; the sink runner does that).
   */
  #checkFile(): void {
    if (this.#replaced === null && this.#file !== null) {
      const now = fileIdentity(this.#config.path);
      if (now !== undefined) this.#noteReplaced(this.#file, now);
    }
    if (this.#replaced !== null) throw this.#replaced;
  }

  #noteReplaced(opened: FileIdentity, now: FileIdentity | null): void {
    if (now !== null && now.dev === opened.dev && now.ino === opened.ino) return;
    const what = now === null ? "was deleted" : "was replaced by another file";
    this.#replaced = new SluiceError(`sink ${this.name}: DuckDB file ${this.#config.path} ${what} while the sink had it open; the sink stops writing into the old file`, {
      code: TARGET_REPLACED,
      retriable: false,
      context: { component: "sink", sink: this.name, path: this.#config.path },
    });
  }

  /** Runs `body` in a transaction, committed or (for probes) rolled back; the in-memory catalog is reloaded after any rollback. */
  async #transaction<T>(commit: boolean, body: () => Promise<T>): Promise<T> {
    if (this.#lost !== null) await this.#reopen();
    this.#checkFile();
    const connection = this.#conn();
    let result: T;
    try {
      await connection.run("BEGIN TRANSACTION");
      result = await body();
      await connection.run(commit ? "COMMIT" : "ROLLBACK");
    } catch (error) {
      return this.#abandon(connection, error);
    }
    if (!commit) await this.#usable(() => this.#reload());
    return result;
  }

  /**
   * After a failed statement: rolls back and reloads the in-memory catalog, then throws `error`. When the
   * statement, its rollback or the reload meets a fatal error, that one is thrown (SINK_DATABASE_INVALIDATED):
   * the reload's "database has been invalidated" replaced it before, and a rollback's own fatal error
   * (after running out of memory) was dropped, so the error that invalidated the database was never seen.
   */
  async #abandon(connection: DuckDBConnection, error: unknown): Promise<never> {
    let fatal: unknown = isDuckDbFatal(error) ? error : null;
    await connection.run("ROLLBACK").catch((rollbackError: unknown) => {
      if (fatal === null && isDuckDbFatal(rollbackError)) fatal = rollbackError;
    });
    if (fatal === null) {
      try {
        await this.#reload();
      } catch (reloadError) {
        if (!isDuckDbFatal(reloadError)) throw reloadError;
        fatal = reloadError;
      }
    }
    if (fatal !== null) throw this.#invalidated(fatal, error === fatal ? undefined : error);
    throw error;
  }

  /**
   * A fatal DuckDB error: the database is opened again, as a new instance, before the sink's next statement.
   * Retriable: the runner waits with backoff and writes again from the offsets the file keeps (a transaction
   * commits its rows and its offsets together or neither). An in-memory database is gone with it: the sink
   * is opened again and filled from the topics' beginning, as for a replaced file.
   */
  #invalidated(fatal: unknown, statementError?: unknown): SluiceError {
    this.#lost = "invalidated";
    const duckdb = oneLine(errorMessage(fatal));
    const before = statementError === undefined ? "" : ` (after the statement failed: ${oneLine(errorMessage(statementError))})`;
    const memory = OUT_OF_MEMORY.test(errorMessage(fatal)) || (statementError !== undefined && OUT_OF_MEMORY.test(errorMessage(statementError)));
    const context = { component: "sink", sink: this.name, path: this.#config.path, fatal: duckdb, ...(memory ? { outOfMemory: 1 } : {}) };
    if (this.#config.path === ":memory:") {
      // Every write is refused until open, as for a replaced file: the runner opens the sink again and reads the topics from the beginning.
      this.#replaced = new SluiceError(`sink ${this.name}: a fatal DuckDB error invalidated its in-memory database, and what it held with it${before}: ${duckdb}`, {
        code: TARGET_REPLACED,
        retriable: false,
        context,
        cause: fatal,
      });
      return this.#replaced;
    }
    return new ConnectionError(
      `DuckDB invalidated the database of ${this.#config.path} after a fatal error${before}; the sink opens the file again and writes again from the offsets it keeps. DuckDB: ${duckdb}`,
      { code: DATABASE_INVALIDATED, context, cause: fatal },
    );
  }

  /** The fatal error, once, in full, with what the write held: the error that names the cause (a full disk, memory) must not be lost. */
  #logFatal(error: SluiceError, changes: readonly SinkChange[]): void {
    const tables = [...new Set(changes.map((c) => tableLabel(c.event.schema)))];
    const first = changes[0];
    this.#logger.error(
      {
        code: error.code,
        error: errorMessage(error.cause),
        tables,
        ...(first ? { position: positionLabel({ schema: first.event.schema, position: first.event.source.position }) } : {}),
        changes: changes.length,
      },
      "a fatal DuckDB error invalidated the database; it is opened again before the next write, which the sink retries",
    );
  }

  /** A change that alone does not fit memory_limit: its table halts until the limit is raised. */
  #tooLarge(change: SinkChange, error: SluiceError): TargetBlockedError {
    const table = tableLabel(change.event.schema);
    const limit = this.#config.memory_limit === undefined ? "DuckDB's default" : `${Math.round(this.#config.memory_limit / 2 ** 20)} MiB`;
    return new TargetBlockedError(
      `sink "${this.name}": a change of ${table} does not fit DuckDB's memory_limit (${limit}) even alone, after ${ONE_CHANGE_ATTEMPTS} attempts; the table halts, the sink's other tables go on. ` +
        `Raise this sink's memory_limit (or the process's memory budget, \`memory\`, of which it takes a fifth) and restart: memory_limit is read at start, and the sink reads the table again from this change then (docs/operations.md#memory). ` +
        `A wide table needs about 256 KiB a column beside its values. DuckDB: ${error.message}`,
      false,
      { component: "sink", sink: this.name, table, position: positionLabel({ schema: change.event.schema, position: change.event.source.position }) },
      error,
    );
  }

  /**
   * A write that finds a generation table of `table` gone (dropped by hand while the sink was stopped): the table halts
   * (SINK_CATALOG_MISMATCH, as ClickHouse's and Elasticsearch's do) with what to do, instead of stopping the daemon,
   * again at every start. Null for any other error.
   */
  #missingTable(error: unknown, table: TableId, label: string): SluiceError | null {
    const gone = MISSING_TABLE.exec(errorMessage(error));
    const physical = gone === null ? undefined : [...this.#tables.values()].find((t) => t.physical === gone[1] && t.target === this.#target(table));
    if (physical === undefined) return null;
    return new SluiceError(
      `sink "${this.name}", table ${label}: its DuckDB table ${INTERNAL_SCHEMA}.${physical.physical} (${physical.role} generation of ${physical.target}) is missing from ${this.#config.path}: ` +
        `it was dropped by hand, and its rows went with it. The sink stops writing this table; ${this.#rebuildAdvice(table)}`,
      { code: CATALOG_MISMATCH, retriable: false, context: { component: "sink", sink: this.name, table: label, physical: physical.physical }, cause: error },
    );
  }

  /**
   * A write that finds a column Sluice made gone from a generation table of `table` (dropped or renamed by hand while
   * the sink was stopped): the table halts, as for a dropped table, instead of stopping the daemon at every start. Its
   * values went with it, so only a rebuild makes the table whole again. Null for any other error, and when every
   * generation still has the column.
   */
  async #missingColumn(error: unknown, table: TableId, label: string): Promise<SluiceError | null> {
    const message = errorMessage(error);
    const gone = MISSING_COLUMN.map((pattern) => pattern.exec(message)).find((match) => match !== null);
    if (gone === undefined) return null;
    const column = gone[1] as string;
    const made = (t: PhysicalTable) => column === VERSION_COLUMN || column === DELETED_COLUMN || t.columns.some((c) => c.name === column);
    const generations = [...this.#tables.values()].filter((t) => t.target === this.#target(table) && made(t));
    // The generation that lost it: during a rebuild both are written, and either may be the one edited by hand.
    // If every generation still has it, the statement itself is wrong (a bug of the sink's), and its own error is raised.
    // A binder error leaves the transaction usable; should the look-up fail all the same, the first is named.
    let physical: PhysicalTable | undefined;
    let unknown = false;
    for (const generation of generations) {
      const lost = await this.#columnsGone(this.#conn(), generation).catch((): null => null);
      if (lost === null) unknown = true;
      else if (lost.includes(column)) {
        physical = generation;
        break;
      }
    }
    physical ??= unknown ? generations[0] : undefined;
    if (physical === undefined) return null;
    return new SluiceError(
      `sink "${this.name}", table ${label}: its DuckDB table ${INTERNAL_SCHEMA}.${physical.physical} (${physical.role} generation of ${physical.target}) in ${this.#config.path} has no column ${column} ` +
        `any more, which the sink made: it was dropped or renamed by hand, and its values went with it. The sink stops writing this table; ${this.#rebuildAdvice(table)}`,
      { code: CATALOG_MISMATCH, retriable: false, context: { component: "sink", sink: this.name, table: label, physical: physical.physical, column }, cause: error },
    );
  }

  /**
   * A table with no live generation in the catalog whose DuckDB table is there all the same (the catalog's rows,
   * _sluice.tables, deleted by hand while the sink was stopped): the sink cannot tell which columns and rows it holds,
   * so the table halts instead of the daemon stopping at every start on "already exists". A rebuild makes a new
   * generation beside it (its name is not used again).
   */
  #uncatalogued(physical: string, schema: TableSchema, label: string): SluiceError {
    return new SluiceError(
      `sink "${this.name}", table ${label}: its DuckDB table ${INTERNAL_SCHEMA}.${physical} in ${this.#config.path} is no longer listed in the sink's catalog ` +
        `(${INTERNAL_SCHEMA}.tables; its row was deleted by hand), so the sink cannot tell what it holds. The sink stops writing this table; ` +
        `${this.#rebuildAdvice(schema)}; afterwards ${INTERNAL_SCHEMA}.${physical} is no longer used and can be dropped`,
      { code: CATALOG_MISMATCH, retriable: false, context: { component: "sink", sink: this.name, table: label, physical } },
    );
  }

  /** The commands that fill a table halted for a hand-made change again, with the table named as `replay --table` and `halted` take it. */
  #rebuildAdvice(table: TableId): string {
    const name = `${table.schema}.${table.table}`;
    return `fill it again from the topics (sluice replay --sink ${this.name} --from-beginning --rebuild --table ${name} --execute), then sluice halted retry --sink ${this.name} --table ${name} --execute`;
  }

  #wrap(error: unknown): Error {
    if (error instanceof SluiceError) return error;
    // Before the rest: its message quotes the first error (disk full, out of memory), which a reopen from the cache would not cure.
    if (isDuckDbFatal(error)) return this.#invalidated(error);
    const message = errorMessage(error);
    // Not waited out: mending the disk (fsck, a remount) needs the file closed, which a waiting sink would keep open.
    if (READ_ONLY_FS.test(message)) {
      return new SluiceError(
        `DuckDB cannot write ${this.#config.path}: its file system turned read-only (EROFS; Linux does so after disk errors). Check the disk (dmesg), repair it and mount it writable again, then start Sluice again: the sink goes on from its stored offsets: ${message.split("\n")[0]}`,
        { code: "SINK_READ_ONLY", context: { component: "sink", sink: this.name }, cause: error },
      );
    }
    if (/^IO Error/.test(message)) {
      return new ConnectionError(`DuckDB I/O error: ${message}`, { code: "SINK_IO", context: { component: "sink", sink: this.name }, cause: error });
    }
    // A commit that cannot write its WAL (disk full, a file size limit) fails as a TransactionContext Error, not an IO Error: room may come free.
    if (NO_ROOM.test(message)) {
      return new ConnectionError(`DuckDB cannot write ${this.#config.path} (disk full or a file size limit; the sink retries until there is room): ${message.split("\n")[0]}`, {
        code: "SINK_IO",
        context: { component: "sink", sink: this.name },
        cause: error,
      });
    }
    // Said as out of memory: the spill did not fit max_temp_directory_size, by default 90% of the temp directory's disk's free room.
    if (NO_SPILL_ROOM.test(message)) {
      const room = spillRoom(this.#config.path, message, this.#diskSpace);
      const free = room.space === null ? "its free room could not be read" : `${formatBytes(room.space.free)} free of ${formatBytes(room.space.size)}`;
      const limit = room.limit === null ? "by default 90% of the disk's free room" : `${formatBytes(room.limit)}, by default 90% of the disk's free room when DuckDB first spilled`;
      if (room.full) {
        return new ConnectionError(
          `DuckDB cannot spill to its temp directory ${room.directory} (the disk is full: ${free}; its max_temp_directory_size is ${limit}; the sink retries until there is room): ${message.split("\n")[0]}`,
          { code: "SINK_IO", context: { component: "sink", sink: this.name }, cause: error },
        );
      }
      // The disk has room: this write's spill alone is larger than the limit, which waiting never cures. Out of memory: halved, then its table halts.
      return new SluiceError(
        `DuckDB ran out of its memory_limit and its spill does not fit max_temp_directory_size either (${limit}; the temp directory ${room.directory}'s disk has ${free}: the write needs more than that): ` +
          `${message.split("\n")[0]} \u2014 raise memory (or this sink's memory_limit; docs/operations.md#memory)`,
        { code: "SINK_OUT_OF_MEMORY", retriable: true, context: { component: "sink", sink: this.name }, cause: error },
      );
    }
    // Memory may come free (a checkpoint, a smaller batch): the sink waits and retries instead of stopping the daemon.
    if (OUT_OF_MEMORY.test(message)) {
      return new SluiceError(`DuckDB ran out of its memory_limit: ${message.split("\n")[0]} \u2014 raise memory (or this sink's memory_limit; docs/operations.md#memory)`, {
        code: "SINK_OUT_OF_MEMORY",
        retriable: true,
        context: { component: "sink", sink: this.name },
        cause: error,
      });
    }
    return new SluiceError(`DuckDB write failed: ${message}`, { code: "SINK_WRITE_FAILED", context: { component: "sink", sink: this.name }, cause: error });
  }
}

/** DuckDB's error for a table that is not there (the physical table's name in group 1). */
const MISSING_TABLE = /Catalog Error: Table with name (\S+) does not exist/;
/** The warning when a view users query was missing at open and is made again. */
const VIEW_RESTORED = "SINK_VIEW_RESTORED";
const VIEW_NOT_RESTORED = "SINK_VIEW_NOT_RESTORED";
/** DuckDB's words for a column of the statement missing from its table: in an upsert's SET, in its column list. */
/**
 * DuckDB quotes no name in the first and doubles no `"` inside them in the others: a name runs to the text after it.
 * The third is the upsert's version test (`excluded._sluice_version > _sluice_version`) on a table that lost _sluice_version.
 */
const MISSING_COLUMN = [
  /Binder Error: Referenced update column (.+?) not found in table!/,
  /Binder Error: Table ".+?" does not have a column with name "(.*)"$/m,
  /Binder Error: Values list "excluded" does not have a column named "(.*)"$/m,
];

/** How many times one change that runs out of memory_limit is tried, the database opened again before each retry, before its table halts. */
const ONE_CHANGE_ATTEMPTS = 3;

/** DuckDB's words for a statement that ran out of memory_limit (a commit that runs out says "Failed to commit: failed to pin block"). */
const OUT_OF_MEMORY = /could not allocate block|failed to pin block|Out of Memory Error/i;

/** A fatal DuckDB error invalidated the database: it is opened again, as a new instance, before the next write. */
const DATABASE_INVALIDATED = "SINK_DATABASE_INVALIDATED";

/** DuckDB's message on one line, without the list of possible solutions and the link it adds to some. */
function oneLine(message: string): string {
  return message
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("* ") && line !== "Possible solutions:" && !line.startsWith("See also "))
    .join(" ");
}

/**
 * DuckDB's words when a block it must spill does not fit its temp directory's size limit (max_temp_directory_size, by
 * default 90% of the free space of the disk holding it): an Out of Memory Error, whether the disk is full or the spill too large.
 */
const NO_SPILL_ROOM = /failed to offload data block/i;

/** The operating system's words for a write to a file system mounted read-only, or turned so after disk errors (EROFS). */
const READ_ONLY_FS = /Read-only file system/;

/** The operating system's words for a write that found no room (ENOSPC, EFBIG, EDQUOT). */
const NO_ROOM = /No space left on device|File too large|Disk quota exceeded/;

/** Where each table with a failure among `changes` halts: at its first failing change (halt-place.ts). */
function haltsOf(changes: readonly SinkChange[], failures: readonly SinkItemFailure[]): Map<string, HaltPlace> {
  const halts = new Map<string, HaltPlace>();
  for (const { index } of failures) {
    const event = changes[index]!.event;
    const key = tableKey(event.schema);
    halts.set(key, earlierPlace(halts.get(key) ?? null, { version: versionOf(event), index }));
  }
  return halts;
}

function holdsFloatList(type: LogicalType): boolean {
  return type.kind === "array" && (type.element.kind === "float" || holdsFloatList(type.element));
}

function appendRow(appender: DuckDBAppender, appends: readonly ((appender: DuckDBAppender, cell: DuckDBValue) => void)[], row: StagedRow): void {
  const { cells } = row;
  for (let index = 0; index < cells.length; index++) {
    const cell = cells[index]!;
    if (cell === null) appender.appendNull();
    else appends[index]!(appender, cell);
  }
  appender.appendUBigInt(row.change.version);
  appender.appendBoolean(row.change.deleted);
  appender.appendInteger(row.group);
  appender.endRow();
}

/**
 * DuckDB's names ignore case: columns "A" and "a" of a table (or "_SLUICE_VERSION" beside Sluice's own) would be one, and its
 * CREATE or ALTER fails ('Column with name a already exists!'), which stopped the daemon. Refused (SINK_SCHEMA_UNSUPPORTED) instead.
 */
function caseDistinct(columns: readonly TargetColumn[], context: PlanContext): readonly TargetColumn[] {
  const seen = new Map([VERSION_COLUMN, DELETED_COLUMN].map((name) => [name.toLowerCase(), name]));
  for (const column of columns) {
    const other = seen.get(column.name.toLowerCase());
    if (other !== undefined) {
      throw schemaUnsupported(`columns "${other}" and "${column.name}" are one name to DuckDB, whose names ignore case: rename one, or leave the table out of the sink's tables`, { ...context, column: column.name });
    }
    seen.set(column.name.toLowerCase(), column.name);
  }
  return columns;
}

export function createDuckDbSink(config: DuckDbSinkConfig, options: DuckDbSinkOptions): DuckDbSink {
  return new DuckDbSink(config, options);
}

/** DuckDB's header area: a main header and two database headers of 4 KiB each, before any data block. */
const DUCKDB_HEADER_BYTES = 3 * 4096;
/** Where DuckDB's main header holds its magic bytes (after an 8-byte checksum). */
const DUCKDB_MAGIC_OFFSET = 8;

/** Whether `path` is empty, or shorter than DuckDB's header area and either all zeros or starting as a DuckDB file. */
function isUnfinishedDuckDbFile(path: string): boolean {
  const size = statSync(path, { throwIfNoEntry: false })?.size;
  if (size === undefined || size >= DUCKDB_HEADER_BYTES) return false;
  if (size === 0) return true;
  const head = readFileSync(path);
  return head.subarray(DUCKDB_MAGIC_OFFSET, DUCKDB_MAGIC_OFFSET + 4).toString("latin1") === "DUCK" || head.every((byte) => byte === 0);
}
