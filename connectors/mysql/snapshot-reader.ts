/**
 * The initial snapshot: every captured table read inside a worker's consistent-snapshot transaction
 * (snapshot-start.ts), several tables at once. Tables with a primary key are read in keyset-paginated
 * chunks of chunk_rows (WHERE key > last key ORDER BY key LIMIT n); tables without one in a single
 * streamed scan. Rows go into the byte-bounded buffer, waiting for space, so a slow topic log slows
 * the snapshot instead of growing memory. Each row goes with the text of its key, so the checkpoints
 * say how far the snapshot got and a crash resumes after it (common/exported-snapshot-progress.ts).
 */
import type { Connection as CoreConnection } from "mysql2";
import type { Connection } from "mysql2/promise";
import type { Logger } from "pino";
import type { BinlogCoordinates, ChangeEvent, ColumnValue, Position, TableSchema } from "../contracts.ts";
import { SluiceError } from "../errors.ts";
import type { ErrorContext } from "../errors.ts";
import type { ByteBoundedBuffer } from "../common/byte-bounded-buffer.ts";
import { ChunkSizer } from "../common/chunk-sizer.ts";
import { snapshotResetPosition } from "../common/snapshot-reset.ts";
import type { SnapshotKey } from "../common/exported-snapshot-progress.ts";
import type { CapturedTableRef } from "./catalog.ts";
import { quoteIdentifier } from "./connection-settings.ts";
import { toSluiceError } from "./mysql-errors.ts";
import type { SnapshotWorker } from "./snapshot-start.ts";
import { tableKey, toTableSchema } from "./schema/table-definition.ts";
import type { TableDefinition } from "./schema/table-definition.ts";
import { ZeroDateError, zeroDatesOf } from "./values/column-decoder.ts";
import type { ZeroDates } from "./values/column-decoder.ts";
import { keyLiteral, selectExpression, snapshotDecoder } from "./values/snapshot-values.ts";
import type { SnapshotDecoder } from "./values/snapshot-values.ts";

import type { TableSnapshotProgress } from "../contracts.ts";

export type { TableSnapshotProgress };

/** A snapshot event in the buffer, with the raw key of a row as online snapshots page by it (latin1 text of its bytes; null for a reset or a keyless table). */
export interface MysqlSnapshotRow {
  readonly event: ChangeEvent;
  readonly key: SnapshotKey;
}

export interface SnapshotReaderOptions {
  readonly sourceName: string;
  readonly workers: readonly SnapshotWorker[];
  readonly tables: readonly CapturedTableRef[];
  readonly definitions: ReadonlyMap<string, TableDefinition>;
  /** Position every snapshot row carries (the stream's start). */
  readonly position: Position;
  /** The binlog file and offset the snapshot was read at, which Debezium's source block gives every read (server_id and row 0). */
  readonly binlogStart?: { readonly file: string; readonly offset: number };
  readonly startedAtMs: number;
  readonly buffer: ByteBoundedBuffer<MysqlSnapshotRow>;
  readonly chunkRows: number;
  readonly zeroDates: ZeroDates;
  readonly logger: Logger;
  readonly context: ErrorContext;
  readonly onProgress?: (progress: readonly TableSnapshotProgress[]) => void;
}

interface MutableProgress {
  table: string;
  state: "pending" | "running" | "done";
  rowsDone: number;
  rowsEstimated: number | null;
  startedAtMs: number | null;
  finishedAtMs: number | null;
}

type RawRow = (Buffer | null)[];

const RESET_BYTES = 64;

const rawBytes = { typeCast: (field: { buffer(): Buffer | null }) => field.buffer() };

/** Bytes a snapshot row counts against max_buffer_bytes: its values plus a per-column overhead. */
export function rowBytes(row: RawRow): number {
  let bytes = 64;
  for (const value of row) bytes += 16 + (value === null ? 0 : value.length);
  return bytes;
}

export class SnapshotReader {
  private readonly options: SnapshotReaderOptions;
  private readonly progressByTable: MutableProgress[];
  /** "db.table" -> binlog position of the snapshot that read it. */
  private readonly readAt = new Map<string, bigint>();
  private closed = false;

  constructor(options: SnapshotReaderOptions) {
    this.options = options;
    this.progressByTable = [...options.tables]
      .sort((a, b) => (b.estimatedRows ?? 0) - (a.estimatedRows ?? 0))
      .map((t) => ({ table: tableKey(t.database, t.table), state: "pending" as const, rowsDone: 0, rowsEstimated: t.estimatedRows, startedAtMs: null, finishedAtMs: null }));
  }

  progress(): TableSnapshotProgress[] {
    const now = Date.now();
    return this.progressByTable.map((p) => {
      const elapsed = ((p.finishedAtMs ?? now) - (p.startedAtMs ?? now)) / 1000;
      return { ...p, rowsPerSecond: elapsed > 0 ? p.rowsDone / elapsed : 0 };
    });
  }

  /** Per table, the position below which its stream changes are in the snapshot, where later than the stream's start. */
  thresholds(): Map<string, bigint> {
    const start = this.options.position.change;
    return new Map([...this.readAt].filter(([, at]) => at > start));
  }

  async run(signal: AbortSignal): Promise<void> {
    const queue = [...this.progressByTable];
    const work = async (worker: SnapshotWorker) => {
      for (let progress = queue.shift(); progress !== undefined; progress = queue.shift()) {
        signal.throwIfAborted();
        this.readAt.set(progress.table, worker.at);
        await this.readTable(worker.connection, progress, signal);
      }
      await worker.connection.query("COMMIT");
    };
    try {
      await Promise.all(this.options.workers.map(work));
    } catch (error) {
      if (this.closed || signal.aborted) throw signal.reason ?? error;
      if (error instanceof ZeroDateError) throw new SluiceError(error.message, { code: "MYSQL_ZERO_DATE", cause: error, context: this.options.context });
      throw toSluiceError(error, "snapshot failed", this.options.context);
    }
    const rows = this.progressByTable.reduce((sum, p) => sum + p.rowsDone, 0);
    this.options.logger.info({ tables: this.progressByTable.length, rows, seconds: (Date.now() - this.options.startedAtMs) / 1000 }, "snapshot finished");
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.options.workers.map((w) => w.connection.end().catch(() => w.connection.destroy())));
  }

  private async readTable(connection: Connection, progress: MutableProgress, signal: AbortSignal): Promise<void> {
    const { definitions, sourceName, logger, zeroDates } = this.options;
    const definition = definitions.get(progress.table);
    if (definition === undefined) {
      progress.state = "done";
      logger.warn({ table: progress.table }, "table vanished before the snapshot read it");
      return;
    }
    const schema = toTableSchema(sourceName, definition);
    progress.state = "running";
    progress.startedAtMs = Date.now();
    logger.info({ table: progress.table, key: definition.key, estimatedRows: progress.rowsEstimated }, "snapshot of table started");
    const decoders = definition.columns.map((column) => snapshotDecoder(column, zeroDatesOf(zeroDates, definition.key, column.name)));
    const keyIndexes = definition.key.map((name) => definition.columns.findIndex((c) => c.name === name));
    const keyOf = (row: RawRow): SnapshotKey => (keyIndexes.length === 0 ? null : keyIndexes.map((i) => row[i]?.toString("latin1") ?? null));
    const sizer = new ChunkSizer(this.options.chunkRows, this.options.buffer.maxBytes);
    const emit = async (rows: readonly RawRow[]) => {
      let bytes = 0;
      for (const row of rows) {
        if (this.options.buffer.full) await this.options.buffer.waitForSpace(signal);
        const size = rowBytes(row);
        bytes += size;
        this.options.buffer.push({ event: this.event(schema, definition, decoders, row), key: keyOf(row) }, size);
      }
      sizer.observe(rows.length, bytes);
      progress.rowsDone += rows.length;
      this.options.onProgress?.(this.progress());
    };
    const from = `${quoteIdentifier(definition.database)}.${quoteIdentifier(definition.table)}`;
    const select = `SELECT ${definition.columns.map(selectExpression).join(", ")} FROM ${from}`;
    if (definition.key.length > 0) await this.readByKey(connection, definition, select, sizer, emit, signal);
    else await this.readByScan(connection, select, emit, signal);
    // The reset follows the rows (its version is below theirs): sinks never show the table empty meanwhile.
    // It is in the buffer before the snapshot can end, so the checkpoint that marks it done comes with or after it.
    if (this.options.buffer.full) await this.options.buffer.waitForSpace(signal);
    this.options.buffer.push({ event: this.reset(schema, definition), key: null }, RESET_BYTES);
    progress.state = "done";
    progress.finishedAtMs = Date.now();
    this.options.onProgress?.(this.progress());
    logger.info({ table: progress.table, rows: progress.rowsDone }, "snapshot of table finished");
  }

  /** Keyset pagination: (k1 > a) OR (k1 = a AND k2 > b) ..., ORDER BY k1, k2 LIMIT n (chunk_rows, fewer for wide rows). */
  private async readByKey(connection: Connection, definition: TableDefinition, select: string, sizer: ChunkSizer, emit: (rows: readonly RawRow[]) => Promise<void>, signal: AbortSignal): Promise<void> {
    const keyIndexes = definition.key.map((name) => definition.columns.findIndex((c) => c.name === name));
    const keyColumns = keyIndexes.map((i) => definition.columns[i]!);
    const order = keyColumns.map((c) => quoteIdentifier(c.name)).join(", ");
    let last: RawRow | null = null;
    for (;;) {
      signal.throwIfAborted();
      let where = "";
      if (last !== null) {
        const previous = last;
        const literals = keyIndexes.map((index, i) => keyLiteral(keyColumns[i]!, previous[index]!));
        const alternatives = keyColumns.map((column, i) => {
          const equal = keyColumns.slice(0, i).map((c, j) => `${quoteIdentifier(c.name)} = ${literals[j]}`);
          return `(${[...equal, `${quoteIdentifier(column.name)} > ${literals[i]}`].join(" AND ")})`;
        });
        where = ` WHERE ${alternatives.join(" OR ")}`;
      }
      const chunkRows = sizer.next();
      const [rows] = await connection.query({ sql: `${select}${where} ORDER BY ${order} LIMIT ${chunkRows}`, rowsAsArray: true, ...rawBytes });
      const chunk = rows as unknown as RawRow[];
      await emit(chunk);
      if (chunk.length < chunkRows) return;
      last = chunk[chunk.length - 1]!;
    }
  }

  /** One streamed SELECT for tables without a key, pausing the socket while the buffer is full. */
  private readByScan(connection: Connection, select: string, emit: (rows: readonly RawRow[]) => Promise<void>, signal: AbortSignal): Promise<void> {
    // mysql2/promise has no streaming query: the core connection underneath does.
    const core = (connection as unknown as { connection: CoreConnection }).connection;
    return new Promise((resolve, reject) => {
      const query = core.query({ sql: select, rowsAsArray: true, ...rawBytes });
      let pending = Promise.resolve();
      let failed = false;
      query.on("result", (row) => {
        if (failed) return;
        if (this.options.buffer.full) core.pause();
        pending = pending.then(() => emit([row as unknown as RawRow])).then(
          () => {
            if (!this.options.buffer.full) core.resume();
          },
          (error: unknown) => {
            failed = true;
            core.resume();
            reject(error);
          },
        );
        if (signal.aborted && !failed) {
          failed = true;
          reject(signal.reason);
        }
      });
      query.on("error", (error) => {
        failed = true;
        reject(error);
      });
      query.on("end", () => {
        pending.then(() => (failed ? undefined : resolve()), reject);
      });
    });
  }

  /** The truncate that closes the table's snapshot, one version below its rows (common/snapshot-reset.ts). */
  private reset(schema: TableSchema, definition: TableDefinition): ChangeEvent {
    const { position, sourceName, startedAtMs } = this.options;
    return {
      op: "t",
      key: {},
      before: null,
      after: null,
      source: {
        connector: "mysql",
        name: sourceName,
        db: definition.database,
        schema: definition.database,
        table: definition.table,
        position: snapshotResetPosition(position),
        txId: null,
        commitTimeMs: startedAtMs,
        snapshot: true,
        ...this.binlog,
      },
      schema,
    };
  }

  private event(schema: TableSchema, definition: TableDefinition, decoders: readonly SnapshotDecoder[], raw: RawRow): ChangeEvent {
    const after: Record<string, ColumnValue> = {};
    definition.columns.forEach((column, i) => {
      const value = raw[i];
      after[column.name] = value === null || value === undefined ? null : decoders[i]!(value);
    });
    const key: Record<string, ColumnValue> = {};
    for (const name of definition.key) key[name] = after[name]!;
    const { position, sourceName, startedAtMs } = this.options;
    return {
      op: "r",
      key,
      before: null,
      after,
      source: { connector: "mysql", name: sourceName, db: definition.database, schema: definition.database, table: definition.table, position, txId: null, commitTimeMs: startedAtMs, snapshot: true, ...this.binlog },
      schema,
    };
  }

  private get binlog(): { binlog?: BinlogCoordinates } {
    const start = this.options.binlogStart;
    return start === undefined ? {} : { binlog: { serverId: 0, file: start.file, pos: start.offset, row: 0 } };
  }
}
