/**
 * Online (incremental) snapshots of PostgreSQL tables while the stream runs: the watermark
 * algorithm of DBLog. For each chunk of a table (by its unique key, in key order):
 *
 *   1. note the slot's restart_lsn (every change not yet committed lies at or after it);
 *   2. write a low watermark: a transactional logical message, which the stream shows in commit order;
 *   3. SELECT the chunk (one short autocommit statement, no long-running transaction);
 *   4. write a high watermark.
 *
 * The stream decoder reports every change it hands on; changes of the table between the two
 * watermarks remove their keys from the chunk (the stream carries a newer value). At the high
 * watermark the chunk's remaining rows are handed on as snapshot reads (op "r") in the stream's
 * order. Their version is restart_lsn - 1: below every change the SELECT could not see, so a
 * streamed change always wins over a chunk row whatever order sinks receive them in, and at or
 * above the changes it did see unless the sink has that very change already.
 *
 * A whole-table snapshot ends with the table's reset (common/snapshot-reset.ts) at a version below
 * its first chunk's rows: sinks drop the rows the source no longer has. A snapshot with a WHERE
 * condition has no reset. Progress travels with the checkpoint (common/incremental-snapshot-state.ts).
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import type { ClientConfig } from "pg";
import type { Logger } from "pino";
import type { ChangeEvent, Row, TableSnapshotProgress } from "../contracts.ts";
import { SluiceError } from "../errors.ts";
import type { ErrorContext } from "../errors.ts";
import type { SnapshotLedger, SnapshotTask } from "../common/incremental-snapshot-state.ts";
import type { CapturedTable } from "./captured-tables.ts";
import { insertEvent, truncateEvent } from "./change-events.ts";
import type { EventOrigin } from "./change-events.ts";
import { quoteIdent } from "./connection-settings.ts";
import { toSluiceError } from "./pg-errors.ts";
import { WATERMARK_PREFIX } from "./stream-decoder.ts";
import type { DecodedOutput, StreamInterleave } from "./stream-decoder.ts";

export interface ResolvedTable {
  readonly table: CapturedTable;
  readonly estimatedRows: number | null;
}

export interface IncrementalSnapshotOptions {
  readonly client: ClientConfig;
  readonly sourceName: string;
  readonly slot: string;
  readonly chunkRows: number;
  readonly ledger: SnapshotLedger;
  /** The captured table "schema.table" names, as the catalog shows it now (published columns, row filter). */
  readonly resolve: (table: string) => Promise<ResolvedTable>;
  readonly logger: Logger;
  readonly context: ErrorContext;
  readonly onProgress?: () => void;
  /** Tables finished (kept by the source across reconnects, the last 20). */
  readonly finished: TableSnapshotProgress[];
}

interface OpenChunk {
  readonly seq: number;
  readonly task: SnapshotTask;
  readonly table: CapturedTable;
  readonly version: bigint;
  /** Set once the SELECT returned (always before the high watermark is written). */
  rows: (string | null)[][] | null;
  /** Keys the stream changed between the watermarks. */
  readonly changed: Set<string>;
  truncated: boolean;
  windowOpen: boolean;
  readonly handedOn: PromiseWithResolvers<void>;
}

export interface FailedSnapshot {
  readonly table: string;
  readonly error: string;
  readonly code: string;
  readonly atMs: number;
}

/** Identity of a key for comparing chunk rows with streamed changes. */
export function keyText(table: { readonly schema: { readonly key: readonly string[] } }, key: Row): string {
  return JSON.stringify(table.schema.key.map((name) => key[name] ?? null), (_name, value: unknown) => {
    if (typeof value === "bigint") return `${value}n`;
    if (value instanceof Uint8Array) return Buffer.from(value).toString("hex");
    return value;
  });
}

export class IncrementalSnapshots implements StreamInterleave {
  private readonly options: IncrementalSnapshotOptions;
  private readonly logger: Logger;
  /** Watermarks of earlier runs (before a restart) are replayed by the stream and ignored. */
  private readonly runId = randomBytes(6).toString("hex");
  private seq = 0;
  private chunk: OpenChunk | null = null;
  private client: pg.Client | null = null;
  private wake: (() => void) | null = null;
  private readonly failures: FailedSnapshot[] = [];
  private readonly rates = new Map<string, { atMs: number; rows: number; perSecond: number }>();

  constructor(options: IncrementalSnapshotOptions) {
    this.options = options;
    this.logger = options.logger.child({ component: "incremental-snapshot" });
  }

  /** Queues a snapshot of `table` (already checked by the caller); returns its task. */
  request(table: string, where: string | null, origin: string): SnapshotTask {
    const task: SnapshotTask = {
      id: `${Date.now().toString(36)}-${randomBytes(3).toString("hex")}`,
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
    this.wake?.();
    return task;
  }

  /** Snapshots not finished yet, in the order they run. */
  tasks(): readonly SnapshotTask[] {
    return this.options.ledger.tasks;
  }

  failed(): readonly FailedSnapshot[] {
    return this.failures;
  }

  progress(): TableSnapshotProgress[] {
    const running = this.options.ledger.tasks.map((task, index): TableSnapshotProgress => ({
      table: task.table,
      state: index === 0 && task.startedAtMs !== null ? "running" : "pending",
      rowsDone: task.rowsDone,
      rowsEstimated: task.rowsEstimated,
      rowsPerSecond: this.rates.get(task.id)?.perSecond ?? 0,
      startedAtMs: task.startedAtMs,
      finishedAtMs: null,
    }));
    return [...this.options.finished, ...running];
  }

  /** Reads chunks until `signal` aborts; waits for requests when there is nothing to read. */
  async run(signal: AbortSignal): Promise<void> {
    let failuresInRow = 0;
    try {
      while (!signal.aborted) {
        const task = this.options.ledger.tasks[0];
        if (task === undefined) {
          await this.sleep(signal, Infinity);
          continue;
        }
        try {
          await this.readChunk(task, signal);
          failuresInRow = 0;
        } catch (error) {
          if (signal.aborted) break;
          const failure = toSluiceError(error, `incremental snapshot of ${task.table} failed`, { ...this.options.context, table: task.table });
          this.chunk = null;
          if (failure.retriable) {
            failuresInRow++;
            const delayMs = Math.min(30_000, 500 * 2 ** Math.min(failuresInRow, 6));
            this.logger.warn({ err: failure.message, table: task.table, delayMs }, "incremental snapshot chunk failed; retrying");
            await this.closeClient();
            await this.sleep(signal, delayMs);
            continue;
          }
          this.logger.error({ err: failure.message, ...failure.toLog() }, "incremental snapshot of table failed; going on with the others");
          this.failures.push({ table: task.table, error: failure.message, code: failure.code, atMs: Date.now() });
          if (this.failures.length > 20) this.failures.shift();
          this.options.ledger.remove(task.id);
        }
      }
    } finally {
      await this.closeClient();
    }
  }

  async close(): Promise<void> {
    this.wake?.();
    await this.closeClient();
  }

  /** Decoder hook: a watermark in commit order. Hands on the chunk's rows at its high watermark. */
  watermark(content: string, commitLsn: bigint, out: DecodedOutput): void {
    const chunk = this.chunk;
    const [runId, seq, kind] = content.split(":");
    if (chunk === null || runId !== this.runId || Number(seq) !== chunk.seq) return;
    if (kind === "low") {
      chunk.windowOpen = true;
      return;
    }
    if (kind !== "high" || chunk.rows === null) return;
    this.chunk = null;
    const { table, task, rows, version } = chunk;
    const origin: EventOrigin = { sourceName: this.options.sourceName, position: { commit: commitLsn, change: version }, txId: null, commitTimeMs: Date.now(), snapshot: true };
    let handedOn = 0;
    if (!chunk.truncated) {
      for (const row of rows) {
        const event = insertEvent(table, row, origin, "r");
        if (chunk.changed.has(keyText(table, event.key))) continue;
        out.events.push(event);
        handedOn++;
      }
    }
    const last = rows.length < this.options.chunkRows;
    const lastRow = rows.at(-1);
    const next: SnapshotTask = {
      ...task,
      lastKey: lastRow === undefined ? task.lastKey : table.keyIndexes.map((i) => lastRow[i] ?? null),
      rowsDone: task.rowsDone + rows.length,
    };
    if (last && task.where === null && task.resetVersion !== null) {
      out.events.push(truncateEvent(table, { ...origin, position: { commit: commitLsn, change: BigInt(task.resetVersion) } }));
    }
    this.options.ledger.record(origin.position, task.id, last ? null : next);
    this.updateRate(next);
    if (last) {
      const now = Date.now();
      this.options.finished.push({ table: task.table, state: "done", rowsDone: next.rowsDone, rowsEstimated: task.rowsEstimated, rowsPerSecond: this.rates.get(task.id)?.perSecond ?? 0, startedAtMs: task.startedAtMs, finishedAtMs: now });
      if (this.options.finished.length > 20) this.options.finished.shift();
      this.rates.delete(task.id);
      this.logger.info({ table: task.table, rows: next.rowsDone, handedOnLastChunk: handedOn, id: task.id }, "incremental snapshot of table finished");
    }
    this.options.onProgress?.();
    chunk.handedOn.resolve();
  }

  /** Decoder hook: every change handed on. Inside a chunk's window its key leaves the chunk. */
  changed(event: ChangeEvent): void {
    const chunk = this.chunk;
    if (chunk === null || !chunk.windowOpen) return;
    if (event.source.table !== chunk.table.schema.table || event.source.schema !== chunk.table.schema.schema) return;
    if (event.op === "t") chunk.truncated = true;
    else chunk.changed.add(keyText(chunk.table, event.key));
  }

  private async readChunk(task: SnapshotTask, signal: AbortSignal): Promise<void> {
    const { table, estimatedRows } = await this.options.resolve(task.table);
    if (!table.uniqueKey) throw noChunkKey(task.table, this.options.context);
    const client = await this.connection();
    const restartLsn = await this.restartLsn(client);
    let current = task;
    if (task.resetVersion === null || task.startedAtMs === null) {
      current = { ...task, resetVersion: task.resetVersion ?? String(restartLsn - 2n), startedAtMs: task.startedAtMs ?? Date.now(), rowsEstimated: task.rowsEstimated ?? estimatedRows };
      this.logger.info({ table: task.table, key: table.schema.key, where: task.where, estimatedRows, id: task.id }, "incremental snapshot of table started");
    }
    const seq = ++this.seq;
    const chunk: OpenChunk = { seq, task: current, table, version: restartLsn - 1n, rows: null, changed: new Set(), truncated: false, windowOpen: false, handedOn: Promise.withResolvers() };
    this.chunk = chunk;
    await this.emitWatermark(client, seq, "low");
    chunk.rows = await this.select(client, table, current);
    await this.emitWatermark(client, seq, "high");
    const aborted = new Promise<never>((_, reject) => {
      if (signal.aborted) reject(signal.reason as Error);
      signal.addEventListener("abort", () => reject(signal.reason as Error), { once: true });
    });
    await Promise.race([chunk.handedOn.promise, aborted]);
  }

  private async select(client: pg.Client, table: CapturedTable, task: SnapshotTask): Promise<(string | null)[][]> {
    const keyColumns = table.keyIndexes.map((i) => table.columns[i]!);
    const keyList = keyColumns.map((c) => quoteIdent(c.name)).join(", ");
    const conditions: string[] = [];
    if (table.rowFilter !== null) conditions.push(`(${table.rowFilter})`);
    if (task.where !== null) conditions.push(`(${task.where})`);
    const values: (string | null)[] = [];
    if (task.lastKey !== null) {
      conditions.push(`(${keyList}) > (${keyColumns.map((c, i) => `$${i + 1}::${c.sqlType}`).join(", ")})`);
      values.push(...task.lastKey);
    }
    const from = `${table.kind === "p" ? "" : "ONLY "}${quoteIdent(table.schema.schema)}.${quoteIdent(table.schema.table)}`;
    const text =
      `SELECT ${table.columns.map((c) => quoteIdent(c.name)).join(", ")} FROM ${from}` +
      `${conditions.length > 0 ? ` WHERE ${conditions.join(" AND ")}` : ""} ORDER BY ${keyList} LIMIT ${this.options.chunkRows}`;
    const result = await client.query<(string | null)[]>({ text, values, rowMode: "array" });
    return result.rows;
  }

  private async restartLsn(client: pg.Client): Promise<bigint> {
    const result = await client.query<{ restart_lsn: string | null }>("SELECT (restart_lsn - '0/0'::pg_lsn)::text AS restart_lsn FROM pg_replication_slots WHERE slot_name = $1", [this.options.slot]);
    const text = result.rows[0]?.restart_lsn;
    if (text == null) {
      throw new SluiceError(`replication slot "${this.options.slot}" is gone or invalidated`, { code: "PG_SLOT_MISSING", retriable: true, context: { ...this.options.context, slot: this.options.slot } });
    }
    return BigInt(text.split(".")[0]!);
  }

  private async emitWatermark(client: pg.Client, seq: number, kind: "low" | "high"): Promise<void> {
    await client.query("SELECT pg_logical_emit_message(true, $1, $2)", [WATERMARK_PREFIX, `${this.runId}:${seq}:${kind}`]);
  }

  private async connection(): Promise<pg.Client> {
    if (this.client !== null) return this.client;
    const client = new pg.Client(this.options.client);
    client.on("error", (error) => this.logger.warn({ err: error.message }, "incremental snapshot connection failed"));
    await client.connect();
    await client.query("SET statement_timeout = 0");
    this.client = client;
    return client;
  }

  private async closeClient(): Promise<void> {
    const client = this.client;
    this.client = null;
    if (client !== null) await client.end().catch(() => undefined);
  }

  private updateRate(task: SnapshotTask): void {
    const now = Date.now();
    const previous = this.rates.get(task.id);
    if (previous === undefined) {
      const elapsed = (now - (task.startedAtMs ?? now)) / 1000;
      this.rates.set(task.id, { atMs: now, rows: task.rowsDone, perSecond: elapsed > 0 ? task.rowsDone / elapsed : 0 });
      return;
    }
    const seconds = (now - previous.atMs) / 1000;
    if (seconds < 1) return;
    const instant = (task.rowsDone - previous.rows) / seconds;
    // Smoothed over ~5 updates: a terminal's ETA should not jump with every chunk.
    const perSecond = previous.perSecond === 0 ? instant : previous.perSecond * 0.8 + instant * 0.2;
    this.rates.set(task.id, { atMs: now, rows: task.rowsDone, perSecond });
  }

  private sleep(signal: AbortSignal, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        if (this.wake === done) this.wake = null;
        resolve();
      };
      const timer = Number.isFinite(ms) ? setTimeout(done, ms) : undefined;
      this.wake = done;
      signal.addEventListener("abort", done, { once: true });
    });
  }
}

export function noChunkKey(table: string, context: ErrorContext): SluiceError {
  return new SluiceError(
    `table ${table} has no primary key or replica identity index, so an online snapshot cannot read it in key order: ` +
      `add a primary key (or ALTER TABLE ... REPLICA IDENTITY USING INDEX on a unique index of NOT NULL columns), ` +
      `or take a new initial snapshot of the source (snapshot.mode, see docs/snapshots.md)`,
    { code: "SNAPSHOT_NO_CHUNK_KEY", context: { ...context, table } },
  );
}
