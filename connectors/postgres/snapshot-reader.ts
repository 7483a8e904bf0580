/**
 * The initial snapshot: every captured table read inside the snapshot the slot exported, so the
 * rows meet the stream exactly at the slot's consistent point. Several tables in parallel, each
 * worker on its own connection importing the same snapshot; tables with a unique key are read in
 * keyset-paginated chunks, others through a cursor. Rows go into the byte-bounded buffer, waiting
 * for space, so a slow topic log slows the snapshot instead of growing memory.
 */
import pg from "pg";
import type { ClientConfig } from "pg";
import type { Logger } from "pino";
import type { ErrorContext } from "../errors.ts";
import type { ByteBoundedBuffer } from "../common/byte-bounded-buffer.ts";
import { ChunkSizer } from "../common/chunk-sizer.ts";
import type { SnapshotKey } from "../common/exported-snapshot-progress.ts";
import type { CapturedTable, CapturedTables } from "./captured-tables.ts";
import type { PublishedTable, TableRef } from "./catalog.ts";
import { quoteIdent, quoteLiteral } from "./connection-settings.ts";
import { toSluiceError } from "./pg-errors.ts";

import type { TableSnapshotProgress } from "../contracts.ts";

export type { TableSnapshotProgress };

export interface SnapshotReaderOptions {
  readonly client: ClientConfig;
  readonly snapshotName: string;
  readonly startedAtMs: number;
  readonly tables: readonly TableRef[];
  readonly published: ReadonlyMap<string, PublishedTable>;
  readonly captured: CapturedTables;
  readonly buffer: ByteBoundedBuffer<SnapshotRow>;
  readonly parallelism: number;
  readonly chunkRows: number;
  readonly logger: Logger;
  readonly context: ErrorContext;
  readonly onProgress?: (progress: readonly TableSnapshotProgress[]) => void;
}

/**
 * A row as read, decoded into a ChangeEvent only when read() hands it on: raw text is compact.
 * `values` null is the table's reset, queued after its last row (common/snapshot-reset.ts).
 */
export interface SnapshotRow {
  readonly table: CapturedTable;
  readonly values: readonly (string | null)[] | null;
}

/** The key of a snapshot row as online snapshots page by it (the text of its key columns); null for a table without a unique key. */
export function snapshotRowKey(row: SnapshotRow): SnapshotKey {
  const values = row.values;
  return values === null || !row.table.uniqueKey ? null : row.table.keyIndexes.map((i) => values[i] ?? null);
}

const RESET_BYTES = 64;

interface MutableProgress {
  table: string;
  state: "pending" | "running" | "done";
  rowsDone: number;
  rowsEstimated: number | null;
  startedAtMs: number | null;
  finishedAtMs: number | null;
}

/** Bytes a snapshot row counts against max_buffer_bytes: its text plus the array's and strings' overhead. */
export function rowBytes(row: readonly (string | null)[]): number {
  let bytes = 64;
  for (const value of row) bytes += value === null ? 8 : 24 + value.length;
  return bytes;
}

export class SnapshotReader {
  private readonly options: SnapshotReaderOptions;
  private readonly workers: pg.Client[] = [];
  private readonly progressByTable: MutableProgress[];
  private closed = false;
  private cursorCount = 0;

  constructor(options: SnapshotReaderOptions) {
    this.options = options;
    this.progressByTable = [...options.tables]
      .sort((a, b) => b.estimatedRows - a.estimatedRows)
      .map((t) => ({
        table: `${t.schema}.${t.table}`,
        state: "pending" as const,
        rowsDone: 0,
        rowsEstimated: t.estimatedRows >= 0 ? t.estimatedRows : null,
        startedAtMs: null,
        finishedAtMs: null,
      }));
  }

  progress(): TableSnapshotProgress[] {
    const now = Date.now();
    return this.progressByTable.map((p) => {
      const elapsed = ((p.finishedAtMs ?? now) - (p.startedAtMs ?? now)) / 1000;
      return { ...p, rowsPerSecond: elapsed > 0 ? p.rowsDone / elapsed : 0 };
    });
  }

  /** Opens the worker connections and imports the exported snapshot into each; call while the exporting connection is idle. */
  async importSnapshot(): Promise<void> {
    const count = Math.max(1, Math.min(this.options.parallelism, this.options.tables.length));
    for (let i = 0; i < count; i++) {
      const client = new pg.Client(this.options.client);
      client.on("error", (error) => this.options.logger.warn({ err: error.message }, "snapshot connection failed"));
      this.workers.push(client);
      try {
        await client.connect();
        await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
        await client.query(`SET TRANSACTION SNAPSHOT ${quoteLiteral(this.options.snapshotName)}`);
      } catch (error) {
        throw toSluiceError(error, "cannot import the exported snapshot", this.options.context);
      }
    }
  }

  /** Reads every table; resolves when all rows are in the buffer. */
  async run(signal: AbortSignal): Promise<void> {
    const queue = this.options.tables
      .map((ref) => ({ ref, progress: this.progressByTable.find((p) => p.table === `${ref.schema}.${ref.table}`)! }))
      .sort((a, b) => b.ref.estimatedRows - a.ref.estimatedRows);
    const work = async (client: pg.Client) => {
      for (let item = queue.shift(); item !== undefined; item = queue.shift()) {
        signal.throwIfAborted();
        await this.readTable(client, item.ref, item.progress, signal);
      }
      await client.query("COMMIT");
    };
    try {
      await Promise.all(this.workers.map(work));
    } catch (error) {
      if (this.closed || signal.aborted) throw signal.reason ?? error;
      throw toSluiceError(error, "snapshot failed", this.options.context);
    }
    this.options.logger.info(
      { tables: this.progressByTable.length, rows: this.progressByTable.reduce((sum, p) => sum + p.rowsDone, 0), seconds: (Date.now() - this.options.startedAtMs) / 1000 },
      "snapshot finished",
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.workers.splice(0).map((client) => client.end().catch(() => undefined)));
  }

  private async readTable(client: pg.Client, ref: TableRef, progress: MutableProgress, signal: AbortSignal): Promise<void> {
    const { captured, published, chunkRows, logger } = this.options;
    const table = await captured.fromCatalog(client, ref.relid, published.get(`${ref.schema}.${ref.table}`));
    progress.state = "running";
    progress.startedAtMs = Date.now();
    logger.info({ table: progress.table, key: table.schema.key, keySource: table.keySource, estimatedRows: progress.rowsEstimated }, "snapshot of table started");
    const sizer = new ChunkSizer(chunkRows, this.options.buffer.maxBytes);
    const emitRows = async (rows: readonly (string | null)[][]) => {
      let bytes = 0;
      for (const row of rows) {
        if (this.options.buffer.full) await this.options.buffer.waitForSpace(signal);
        const size = rowBytes(row);
        bytes += size;
        this.options.buffer.push({ table, values: row }, size);
      }
      sizer.observe(rows.length, bytes);
      progress.rowsDone += rows.length;
      this.options.onProgress?.(this.progress());
    };

    const select = `SELECT ${table.columns.map((c) => quoteIdent(c.name)).join(", ")} FROM ${table.kind === "p" ? "" : "ONLY "}${quoteIdent(ref.schema)}.${quoteIdent(ref.table)}`;
    const filter = table.rowFilter === null ? null : `(${table.rowFilter})`;
    if (table.uniqueKey) await this.readByKey(client, table, select, filter, sizer, emitRows, signal);
    else await this.readByCursor(client, select, filter, sizer, emitRows, signal);
    // The reset follows the rows (its version is below theirs): sinks never show the table empty meanwhile.
    // It is in the buffer before the snapshot can end, so the checkpoint that marks it done comes with or after it.
    if (this.options.buffer.full) await this.options.buffer.waitForSpace(signal);
    this.options.buffer.push({ table, values: null }, RESET_BYTES);

    progress.state = "done";
    progress.finishedAtMs = Date.now();
    this.options.onProgress?.(this.progress());
    logger.info({ table: progress.table, rows: progress.rowsDone }, "snapshot of table finished");
  }

  /** Keyset pagination: WHERE (k1, k2) > (last k1, last k2) ORDER BY k1, k2 LIMIT n (chunk_rows, fewer for wide rows). */
  private async readByKey(
    client: pg.Client,
    table: CapturedTable,
    select: string,
    filter: string | null,
    sizer: ChunkSizer,
    emitRows: (rows: readonly (string | null)[][]) => Promise<void>,
    signal: AbortSignal,
  ): Promise<void> {
    const keyColumns = table.keyIndexes.map((i) => table.columns[i]!);
    const keyList = keyColumns.map((c) => quoteIdent(c.name)).join(", ");
    const after = `(${keyList}) > (${keyColumns.map((c, i) => `$${i + 1}::${c.sqlType}`).join(", ")})`;
    let last: (string | null)[] | null = null;
    for (;;) {
      signal.throwIfAborted();
      const previous: (string | null)[] | null = last;
      const conditions: string[] = [filter, previous === null ? null : after].filter((c): c is string => c !== null);
      const chunkRows = sizer.next();
      const text = `${select}${conditions.length > 0 ? ` WHERE ${conditions.join(" AND ")}` : ""} ORDER BY ${keyList} LIMIT ${chunkRows}`;
      const values: (string | null)[] = previous === null ? [] : table.keyIndexes.map((i) => previous[i] ?? null);
      const result: pg.QueryArrayResult<(string | null)[]> = await client.query<(string | null)[]>({ text, values, rowMode: "array" });
      await emitRows(result.rows);
      if (result.rows.length < chunkRows) return;
      last = result.rows[result.rows.length - 1]!;
    }
  }

  private async readByCursor(
    client: pg.Client,
    select: string,
    filter: string | null,
    sizer: ChunkSizer,
    emitRows: (rows: readonly (string | null)[][]) => Promise<void>,
    signal: AbortSignal,
  ): Promise<void> {
    const cursor = `sluice_snapshot_${++this.cursorCount}`;
    await client.query(`DECLARE ${cursor} NO SCROLL CURSOR FOR ${select}${filter === null ? "" : ` WHERE ${filter}`}`);
    for (;;) {
      signal.throwIfAborted();
      const chunkRows = sizer.next();
      const result = await client.query<(string | null)[]>({ text: `FETCH FORWARD ${chunkRows} FROM ${cursor}`, rowMode: "array" });
      await emitRows(result.rows);
      if (result.rows.length < chunkRows) break;
    }
    await client.query(`CLOSE ${cursor}`);
  }
}
