/**
 * Online (incremental) snapshots of MySQL/MariaDB tables while the binlog streams: the watermark
 * algorithm of DBLog, as on PostgreSQL (postgres/incremental-snapshot.ts). For each chunk of a
 * table (by its primary key, in key order):
 *
 *   1. write a low watermark (a row of the watermark table, watermarks.ts: its own transaction);
 *   2. SELECT the chunk (one short autocommit statement, no long-running transaction);
 *   3. write a high watermark.
 *
 * The decoder reports every change it hands on; changes of the table between the two watermarks
 * remove their keys from the chunk (the stream carries a newer value). At the high watermark the
 * chunk's remaining rows are handed on as snapshot reads (op "r") in the stream's order, at the
 * high watermark's own binlog position. The binlog holds transactions whole in commit order, and a
 * transaction is visible before a later one's commit returns, so every change the SELECT saw lies
 * before the high watermark and every change it did not see lies after the low one: a chunk row's
 * version is above every change it already contains and below every later change of its key, so
 * a streamed change always wins over a chunk row whatever order sinks receive them in.
 *
 * A whole-table snapshot ends with the table's reset (common/snapshot-reset.ts) at a version just
 * below its first chunk's low watermark: sinks drop the rows the source no longer has. A snapshot
 * with a WHERE condition has no reset. Progress travels with the checkpoint
 * (common/incremental-snapshot-state.ts). A DDL of the table between a chunk's read and its high
 * watermark drops the chunk: it is read again with the new definition.
 */
import { randomBytes } from "node:crypto";
import type { Connection, ConnectionOptions } from "mysql2/promise";
import type { Logger } from "pino";
import type { ChangeEvent, ColumnValue, Position, Row, TableSchema, TableSnapshotProgress } from "../contracts.ts";
import { SluiceError } from "../errors.ts";
import type { ErrorContext } from "../errors.ts";
import { ChunkSizer } from "../common/chunk-sizer.ts";
import type { FailedSnapshot, SnapshotLedger, SnapshotTask } from "../common/incremental-snapshot-state.ts";
import { keyIdentity, SnapshotRates, untilOrAborted } from "../common/online-snapshot-support.ts";
import { quoteIdentifier } from "./connection-settings.ts";
import { toSluiceError } from "./mysql-errors.ts";
import type { RowColumn } from "./protocol/rows-event.ts";
import type { TableMap } from "./protocol/table-map.ts";
import type { BindingContext } from "./schema/table-binding.ts";
import { sameDefinition, toTableSchema } from "./schema/table-definition.ts";
import type { ColumnDefinition, TableDefinition } from "./schema/table-definition.ts";
import { rowBytes } from "./snapshot-reader.ts";
import { closeQuietly, openConnection, sqlOf } from "./sql-connection.ts";
import type { BinlogInterleave, DecodedEvent, TransactionContext } from "./stream-decoder.ts";
import { zeroDatesOf } from "./values/column-decoder.ts";
import type { ZeroDates } from "./values/column-decoder.ts";
import { keyLiteral, selectExpression, snapshotDecoder } from "./values/snapshot-values.ts";
import { markOf } from "./watermarks.ts";
import type { WatermarkTable } from "./watermarks.ts";

export interface ResolvedTable {
  /** The table as the server's catalog shows it now. */
  readonly definition: TableDefinition;
  readonly estimatedRows: number | null;
}

export interface MysqlIncrementalSnapshotOptions {
  readonly connection: ConnectionOptions;
  readonly sourceName: string;
  readonly chunkRows: number;
  /** About the most bytes of rows one chunk holds (config/memory.ts onlineChunkBytes): wide rows make chunks of fewer rows. */
  readonly chunkBytes: number;
  /** Tables read at the same time, each on a connection of its own (config snapshot.parallelism). */
  readonly parallelism: number;
  /** Chunks read but not yet handed on, across every table being read: bounds memory. */
  readonly chunksInFlight: number;
  readonly ledger: SnapshotLedger;
  readonly watermarks: WatermarkTable;
  /** To read the watermark table's rows events. */
  readonly binding: BindingContext;
  /** A captured "database.table", checked and resolved against the catalog. */
  readonly resolve: (table: string) => Promise<ResolvedTable>;
  /** The table's definition where the stream has got to (the schema tracker); null when it does not know the table. */
  readonly definitionAtStream: (database: string, table: string) => TableDefinition | null;
  readonly zeroDates: ZeroDates;
  readonly logger: Logger;
  readonly context: ErrorContext;
  readonly onProgress?: () => void;
  /** Tables finished (kept by the source across reconnects, the last 20). */
  readonly finished: TableSnapshotProgress[];
}

/** Where reading stands for the task being read (ahead of what the stream has handed on). */
interface ReadCursor {
  readonly taskId: string;
  /** Raw key values (latin1 text of the bytes SELECT returned) of the last row read. */
  lastKey: readonly (string | null)[] | null;
  startedAtMs: number | null;
  readingDone: boolean;
  resolved: ResolvedTable | null;
  /** Set when the stream dropped a chunk of this cursor: its later chunks are dropped too. */
  invalid: boolean;
  /** Rows per chunk, from the rows' measured size. */
  readonly sizer: ChunkSizer;
}

/**
 * One table read at a time, on a connection of its own: up to `parallelism` lanes read different
 * tables at once. A lane writes its chunks' watermarks one after the other, so a table's chunks
 * are handed on in key order.
 */
interface Lane {
  readonly index: number;
  cursor: ReadCursor | null;
  connection: Connection | null;
}

interface OpenChunk {
  readonly seq: number;
  readonly lane: number;
  readonly taskId: string;
  readonly cursor: ReadCursor;
  readonly definition: TableDefinition;
  readonly schema: TableSchema;
  readonly startedAtMs: number;
  readonly rowsEstimated: number | null;
  /** Rows the SELECT asked for (fewer came: the table's last chunk). */
  readonly limit: number;
  /** Set once the SELECT returned (always before the stream can hand on the high watermark). */
  rows: Row[] | null;
  lastKey: readonly (string | null)[] | null;
  /** Keys the stream changed between the watermarks. */
  readonly changed: Set<string>;
  truncated: boolean;
  /** Where the low watermark's transaction begins, once the stream has seen it. */
  lowAt: bigint | null;
  readonly handedOn: PromiseWithResolvers<void>;
}

type RawRow = (Buffer | null)[];

/** Every value as the bytes the server sent (null for NULL): mysql2 reads them straight, without a per-field callback. */
const rawBytes = { typeCast: false } as const;


export class MysqlIncrementalSnapshots implements BinlogInterleave {
  private readonly options: MysqlIncrementalSnapshotOptions;
  private readonly logger: Logger;
  /** Watermarks of earlier runs (before a restart), replayed by the stream, are ignored. */
  private readonly runId = randomBytes(6).toString("hex");
  private seq = 0;
  /** Chunks read and not yet handed on (overlapping the stream's round trip keeps the snapshot fast), and chunk reads under way. */
  private inFlight: OpenChunk[] = [];
  private reserved = 0;
  private lanes: Lane[] = [];
  private readonly waiters = new Set<() => void>();
  private readonly failures: FailedSnapshot[] = [];
  private readonly rates = new SnapshotRates();
  private misfitLogged = false;

  constructor(options: MysqlIncrementalSnapshotOptions) {
    this.options = options;
    this.logger = options.logger.child({ component: "incremental-snapshot" });
  }

  /** Queues a snapshot of `table` (already checked by the caller); returns its task. */
  request(table: string, where: string | null, origin: string, id?: string): SnapshotTask {
    const task: SnapshotTask = {
      id: id ?? `${Date.now().toString(36)}-${randomBytes(3).toString("hex")}`,
      table,
      where,
      lastKey: null,
      rowsDone: 0,
      rowsEstimated: null,
      resetVersion: null,
      requestedAtMs: Date.now(),
      startedAtMs: null,
      origin,
    };
    this.options.ledger.add(task);
    this.logger.info({ table, where, origin, id: task.id }, "incremental snapshot requested");
    this.wakeAll();
    return task;
  }

  tasks(): readonly SnapshotTask[] {
    return this.options.ledger.tasks;
  }

  failed(): readonly FailedSnapshot[] {
    return this.failures;
  }

  progress(): TableSnapshotProgress[] {
    const reading = new Set(this.lanes.flatMap((lane) => (lane.cursor === null ? [] : [lane.cursor.taskId])));
    const running = this.options.ledger.tasks.map((task): TableSnapshotProgress => ({
      table: task.table,
      state: reading.has(task.id) && task.startedAtMs !== null ? "running" : "pending",
      rowsDone: task.rowsDone,
      rowsEstimated: task.rowsEstimated,
      rowsPerSecond: this.rates.perSecond(task.id),
      startedAtMs: task.startedAtMs,
      finishedAtMs: null,
    }));
    return [...this.options.finished, ...running];
  }

  /** Reads chunks until `signal` aborts, on up to `parallelism` lanes; waits for requests when there is nothing to read. */
  async run(signal: AbortSignal): Promise<void> {
    const lanes = Array.from({ length: Math.max(1, this.options.parallelism) }, (_, index): Lane => ({ index, cursor: null, connection: null }));
    this.lanes = lanes;
    try {
      await Promise.all(lanes.map((lane) => this.runLane(lane, signal)));
    } finally {
      await Promise.all(lanes.map((lane) => this.closeConnection(lane)));
    }
  }

  async close(): Promise<void> {
    this.wakeAll();
    await Promise.all(this.lanes.map((lane) => this.closeConnection(lane)));
  }

  private async runLane(lane: Lane, signal: AbortSignal): Promise<void> {
    let failuresInRow = 0;
    while (!signal.aborted) {
      const task = this.claim(lane);
      if (task === undefined) {
        await this.sleep(signal, Infinity);
        continue;
      }
      try {
        await this.step(lane, task, signal);
        failuresInRow = 0;
      } catch (error) {
        if (signal.aborted) break;
        const failure = toSluiceError(error, `incremental snapshot of ${task.table} failed`, { ...this.options.context, table: task.table });
        // Read again from what the stream handed on: this lane's chunks in flight are dropped.
        if (lane.cursor !== null) this.invalidate(lane.cursor);
        lane.cursor = null;
        // A schema change can fail a chunk read with the table as resolved before: read it once more, resolved anew.
        if (failure.retriable || failuresInRow === 0) {
          failuresInRow++;
          const delayMs = Math.min(30_000, 500 * 2 ** Math.min(failuresInRow, 6));
          this.logger.warn({ err: failure.message, table: task.table, delayMs }, "incremental snapshot chunk failed; retrying");
          await this.closeConnection(lane);
          await this.sleep(signal, delayMs);
          continue;
        }
        this.logger.error({ err: failure.message, ...failure.toLog() }, "incremental snapshot of table failed; going on with the others");
        this.failures.push({ id: task.id, table: task.table, error: failure.message, code: failure.code, atMs: Date.now() });
        if (this.failures.length > 20) this.failures.shift();
        this.options.ledger.remove(task.id);
      }
    }
  }

  /** The task `lane` reads: the one it holds while that is queued, else the first queued task no other lane holds (tables run in the order asked for). */
  private claim(lane: Lane): SnapshotTask | undefined {
    const tasks = this.options.ledger.tasks;
    if (lane.cursor !== null) {
      const held = tasks.find((t) => t.id === lane.cursor!.taskId);
      if (held !== undefined) return held;
      lane.cursor = null;
    }
    const taken = new Set(this.lanes.flatMap((other) => (other === lane || other.cursor === null ? [] : [other.cursor.taskId])));
    return tasks.find((t) => !taken.has(t.id));
  }

  /** Decoder hook: the watermark table's rows are read with the columns Sluice created it with. */
  watermarkColumns(map: TableMap): readonly RowColumn[] | null {
    const { watermarks } = this.options;
    if (!watermarks.is(map.database, map.table)) return null;
    const bound = watermarks.columns(map, this.options.binding);
    if ("columns" in bound) return bound.columns;
    if (!this.misfitLogged) {
      this.logger.error({ table: watermarks.text, reason: bound.misfit }, "the watermark table is not the table Sluice creates (source VARBINARY(255) PRIMARY KEY, mark VARBINARY(255)): online snapshots cannot see their watermarks; drop it and let Sluice create it");
      this.misfitLogged = true;
    }
    return null;
  }

  /** Decoder hook: a watermark in binlog order. Hands on the chunk's rows at its high watermark. */
  watermark(row: Row, position: Position, transaction: TransactionContext, out: DecodedEvent[]): boolean {
    const mark = markOf(row, this.options.sourceName);
    if (mark === null) return false;
    const [runId, seqText, kind] = mark.split(":");
    if (runId !== this.runId) return false;
    const chunk = this.inFlight.find((c) => c.seq === Number(seqText));
    if (chunk === undefined) return false;
    if (kind === "low") {
      chunk.lowAt = position.commit;
      return false;
    }
    if (kind !== "high" || chunk.rows === null) return false;
    // High watermarks are written in chunk order, one transaction each: this is the oldest chunk in flight.
    this.inFlight = this.inFlight.filter((c) => c !== chunk);
    const task = this.options.ledger.tasks.find((t) => t.id === chunk.taskId);
    const now = this.options.definitionAtStream(chunk.definition.database, chunk.definition.table);
    if (task === undefined || chunk.cursor.invalid || (now !== null && !sameDefinition(now, chunk.definition))) {
      if (task !== undefined && !chunk.cursor.invalid) {
        this.logger.info({ table: task.table, id: task.id }, "the table's definition changed while a chunk was read: reading it again");
        this.invalidate(chunk.cursor);
      }
      chunk.handedOn.resolve();
      this.wakeAll();
      return false;
    }
    const resetVersion = task.resetVersion ?? String((chunk.lowAt ?? position.commit) - 1n);
    let handedOn = 0;
    if (!chunk.truncated) {
      const keyColumns = chunk.definition.key;
      const anyChanged = chunk.changed.size > 0;
      for (const after of chunk.rows) {
        const key: Record<string, ColumnValue> = {};
        for (const name of keyColumns) key[name] = after[name] ?? null;
        if (anyChanged && chunk.changed.has(keyIdentity(keyColumns, key))) continue;
        out.push({ event: this.readEvent(chunk, key, after, position, transaction), transaction });
        handedOn++;
      }
    }
    const last = chunk.rows.length < chunk.limit;
    const next: SnapshotTask = {
      ...task,
      lastKey: chunk.lastKey ?? task.lastKey,
      rowsDone: task.rowsDone + chunk.rows.length,
      resetVersion,
      startedAtMs: task.startedAtMs ?? chunk.startedAtMs,
      rowsEstimated: task.rowsEstimated ?? chunk.rowsEstimated,
    };
    if (last && task.where === null) out.push({ event: this.resetEvent(chunk, { commit: position.commit, change: BigInt(resetVersion) }, transaction), transaction });
    this.options.ledger.record(position, task.id, last ? null : next);
    this.rates.update(next);
    if (last) {
      this.options.finished.push({ table: task.table, state: "done", rowsDone: next.rowsDone, rowsEstimated: next.rowsEstimated, rowsPerSecond: this.rates.perSecond(task.id), startedAtMs: next.startedAtMs, finishedAtMs: Date.now() });
      if (this.options.finished.length > 20) this.options.finished.shift();
      this.rates.forget(task.id);
      for (const lane of this.lanes) if (lane.cursor?.taskId === task.id) lane.cursor = null;
      this.logger.info({ table: task.table, rows: next.rowsDone, handedOnLastChunk: handedOn, id: task.id }, "incremental snapshot of table finished");
    }
    this.options.onProgress?.();
    chunk.handedOn.resolve();
    this.wakeAll();
    return true;
  }

  /** Decoder hook: every change handed on. Inside a chunk's window its key leaves the chunk. */
  changed(event: ChangeEvent): void {
    for (const chunk of this.inFlight) {
      if (chunk.lowAt === null || event.source.table !== chunk.definition.table || event.source.db !== chunk.definition.database) continue;
      if (event.op === "t") chunk.truncated = true;
      else chunk.changed.add(keyIdentity(chunk.definition.key, event.key));
    }
  }

  /**
   * Reads the task's next chunk while the chunks in flight (every lane's) are within the budget;
   * otherwise waits for this lane's oldest chunk to be handed on, or for any if it has none.
   */
  private async step(lane: Lane, task: SnapshotTask, signal: AbortSignal): Promise<void> {
    if (lane.cursor === null || lane.cursor.taskId !== task.id) {
      const sizer = new ChunkSizer(this.options.chunkRows, this.options.chunkBytes);
      lane.cursor = { taskId: task.id, lastKey: task.lastKey, startedAtMs: task.startedAtMs, readingDone: false, resolved: null, invalid: false, sizer };
    }
    const cursor = lane.cursor;
    if (!cursor.readingDone && this.inFlight.length + this.reserved < Math.max(1, this.options.chunksInFlight)) {
      this.reserved++;
      try {
        await this.readChunk(lane, task, cursor);
      } finally {
        this.reserved--;
      }
      return;
    }
    const oldest = this.inFlight.find((c) => c.lane === lane.index);
    if (oldest !== undefined) {
      await untilOrAborted(oldest.handedOn.promise, signal);
      return;
    }
    if (cursor.readingDone) {
      // Everything read was handed on but the task is still there: it finished while we looked, or is read again.
      if (this.options.ledger.tasks.some((t) => t.id === task.id)) lane.cursor = null;
      return;
    }
    // The budget is taken by other lanes' chunks: one of them handed on wakes this lane.
    await this.sleep(signal, Infinity);
  }

  private async readChunk(lane: Lane, task: SnapshotTask, cursor: ReadCursor): Promise<void> {
    cursor.resolved ??= await this.options.resolve(task.table);
    const { estimatedRows } = cursor.resolved;
    const catalog = cursor.resolved.definition;
    // Read with the definition the stream has where it knows the table: the chunk must fit the events around it.
    const definition = this.options.definitionAtStream(catalog.database, catalog.table) ?? catalog;
    if (definition.key.length === 0) throw noChunkKey(task.table, this.options.context);
    const connection = await this.open(lane);
    if (cursor.startedAtMs === null) {
      cursor.startedAtMs = Date.now();
      this.logger.info({ table: task.table, key: definition.key, where: task.where, estimatedRows, id: task.id }, "incremental snapshot of table started");
    }
    const chunk: OpenChunk = {
      seq: ++this.seq,
      lane: lane.index,
      taskId: task.id,
      cursor,
      definition,
      schema: toTableSchema(this.options.sourceName, definition),
      startedAtMs: cursor.startedAtMs,
      rowsEstimated: task.rowsEstimated ?? estimatedRows,
      limit: cursor.sizer.next(),
      rows: null,
      lastKey: null,
      changed: new Set(),
      truncated: false,
      lowAt: null,
      handedOn: Promise.withResolvers(),
    };
    this.inFlight.push(chunk);
    await this.options.watermarks.write(sqlOf(connection), `${this.runId}:${chunk.seq}:low`);
    const raw = await this.select(connection, definition, task.where, cursor.lastKey, chunk.limit);
    cursor.sizer.observe(raw.length, raw.reduce((sum, row) => sum + rowBytes(row), 0));
    // The high watermark commits while the rows are decoded: the stream cannot hand it to
    // watermark() before this synchronous decoding ends (one thread), so the rows are in place first.
    const high = this.options.watermarks.write(sqlOf(connection), `${this.runId}:${chunk.seq}:high`);
    try {
      chunk.rows = decodeRows(raw, definition, this.options.zeroDates);
    } catch (error) {
      await high.catch(() => undefined);
      throw error;
    }
    const lastRow = raw.at(-1);
    if (lastRow !== undefined) {
      chunk.lastKey = keyIndexes(definition).map((i) => lastRow[i]?.toString("latin1") ?? null);
      cursor.lastKey = chunk.lastKey;
    }
    if (raw.length < chunk.limit) cursor.readingDone = true;
    await high;
  }

  private async select(connection: Connection, definition: TableDefinition, where: string | null, lastKey: readonly (string | null)[] | null, limit: number): Promise<RawRow[]> {
    const keyColumns = keyIndexes(definition).map((i) => definition.columns[i]!);
    const conditions: string[] = [];
    if (where !== null) conditions.push(`(${where})`);
    if (lastKey !== null) conditions.push(`(${keysetAfter(keyColumns, lastKey.map((text) => Buffer.from(text ?? "", "latin1")))})`);
    const sql =
      `SELECT ${definition.columns.map(selectExpression).join(", ")} FROM ${quoteIdentifier(definition.database)}.${quoteIdentifier(definition.table)}` +
      `${conditions.length > 0 ? ` WHERE ${conditions.join(" AND ")}` : ""} ORDER BY ${keyColumns.map((c) => quoteIdentifier(c.name)).join(", ")} LIMIT ${limit}`;
    // A WHERE condition may come from whoever can write the signal table: it is evaluated in a read-only transaction
    // (a function it calls cannot write: NEXTVAL, a stored function's INSERT, ...), rolled back after the read. The
    // watermarks around the read are written outside it.
    await connection.query("START TRANSACTION READ ONLY");
    try {
      const [rows] = await connection.query({ sql, rowsAsArray: true, ...rawBytes });
      return rows as unknown as RawRow[];
    } finally {
      await connection.query("ROLLBACK");
    }
  }

  private readEvent(chunk: OpenChunk, key: Row, after: Row, position: Position, transaction: TransactionContext): ChangeEvent {
    const { database, table } = chunk.definition;
    return {
      op: "r",
      key,
      before: null,
      after,
      // Debezium marks the reads of incremental snapshots so in source.snapshot.
      source: { connector: "mysql", name: this.options.sourceName, db: database, schema: database, table, position, txId: null, commitTimeMs: transaction.commitTimeMs, snapshot: true, snapshotMarker: "incremental" },
      schema: chunk.schema,
    };
  }

  /** The truncate that closes a whole-table snapshot, below every row it read (common/snapshot-reset.ts). */
  private resetEvent(chunk: OpenChunk, position: Position, transaction: TransactionContext): ChangeEvent {
    const { database, table } = chunk.definition;
    return {
      op: "t",
      key: {},
      before: null,
      after: null,
      source: { connector: "mysql", name: this.options.sourceName, db: database, schema: database, table, position, txId: null, commitTimeMs: transaction.commitTimeMs, snapshot: true },
      schema: chunk.schema,
    };
  }

  /** Drops the chunks of `cursor` still in flight (later ones of its lane go with them); reading goes on from what the stream handed on. */
  private invalidate(cursor: ReadCursor): void {
    cursor.invalid = true;
    for (const lane of this.lanes) if (lane.cursor === cursor) lane.cursor = null;
    for (const chunk of this.inFlight.filter((c) => c.cursor === cursor)) chunk.handedOn.resolve();
    this.inFlight = this.inFlight.filter((c) => c.cursor !== cursor);
    this.wakeAll();
  }

  private sleep(signal: AbortSignal, ms: number): Promise<void> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        this.waiters.delete(done);
        resolve();
      };
      const timer = Number.isFinite(ms) ? setTimeout(done, ms) : undefined;
      this.waiters.add(done);
      signal.addEventListener("abort", done, { once: true });
    });
  }

  private wakeAll(): void {
    for (const wake of [...this.waiters]) wake();
  }

  private async open(lane: Lane): Promise<Connection> {
    if (lane.connection !== null) return lane.connection;
    const connection = await openConnection(this.options.connection);
    try {
      await this.options.watermarks.ensure(sqlOf(connection));
    } catch (error) {
      await closeQuietly(connection);
      throw error;
    }
    lane.connection = connection;
    return connection;
  }

  private async closeConnection(lane: Lane): Promise<void> {
    const connection = lane.connection;
    lane.connection = null;
    await closeQuietly(connection);
  }
}

function decodeRows(raw: readonly RawRow[], definition: TableDefinition, zeroDates: ZeroDates): Row[] {
  const decoders = definition.columns.map((column) => snapshotDecoder(column, zeroDatesOf(zeroDates, definition.key, column.name)));
  const names = definition.columns.map((column) => column.name);
  return raw.map((values) => {
    const after: Record<string, ColumnValue> = {};
    for (let i = 0; i < names.length; i++) {
      const value = values[i];
      after[names[i]!] = value === null || value === undefined ? null : decoders[i]!(value);
    }
    return after;
  });
}

function keyIndexes(definition: TableDefinition): number[] {
  return definition.key.map((name) => definition.columns.findIndex((c) => c.name === name));
}

/** Keyset pagination after `last`: (k1 > a) OR (k1 = a AND k2 > b) ..., in the columns' own collations. */
function keysetAfter(keyColumns: readonly ColumnDefinition[], last: readonly Buffer[]): string {
  const literals = keyColumns.map((column, i) => keyLiteral(column, last[i]!));
  return keyColumns
    .map((column, i) => {
      const equal = keyColumns.slice(0, i).map((c, j) => `${quoteIdentifier(c.name)} = ${literals[j]}`);
      return `(${[...equal, `${quoteIdentifier(column.name)} > ${literals[i]}`].join(" AND ")})`;
    })
    .join(" OR ");
}

export function noChunkKey(table: string, context: ErrorContext): SluiceError {
  return new SluiceError(
    `table ${table} has no primary key, so an online snapshot cannot read it in key order (and sinks cannot tell its rows apart): ` +
      `add a primary key (ALTER TABLE ... ADD PRIMARY KEY (...)), or take a new initial snapshot of the source (snapshot.mode, see docs/snapshots.md)`,
    { code: "SNAPSHOT_NO_CHUNK_KEY", context: { ...context, table } },
  );
}
