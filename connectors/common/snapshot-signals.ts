/**
 * The signal table's logic, whatever the database (config snapshot.signal_table): snapshot requests
 * for environments where the command line cannot reach the daemon. Sluice polls the table while
 * the stream runs; a row (id, 'snapshot', '{"table": "schema.table", "where": null}') queues an
 * online snapshot under the task id "signal:<id>". The row is deleted once the request rides in a
 * stored checkpoint (so a crash in between finds the row again, and the restored task keeps it from
 * being queued twice), or at once when it is refused (the refusal is logged). The source supplies
 * the reads and deletes (SignalStore).
 */
import type { Logger } from "pino";
import type { OnlineSnapshotting, SnapshotTask } from "./incremental-snapshot-state.ts";

export const SIGNAL_TASK_PREFIX = "signal:";

export interface SignalRow {
  readonly id: string;
  readonly type: string | null;
  readonly data: string | null;
}

/** The signal table on one database: the first rows by id, deleting rows by id. */
export interface SignalStore {
  read(limit: number): Promise<SignalRow[]>;
  delete(ids: readonly string[]): Promise<void>;
  /** Drops the connection (after a failure, and at the end). */
  close(): Promise<void>;
}

export interface SignalPollerOptions {
  /** "schema.table", for messages. */
  readonly table: string;
  readonly store: SignalStore;
  readonly snapshots: OnlineSnapshotting;
  /** Whether a task is in the last stored checkpoint. */
  readonly durable: (id: string) => boolean;
  /** The tasks still queued or running. */
  readonly queued: () => readonly SnapshotTask[];
  /** What to tell the operator when the table cannot be read (how to create it and grant access). */
  readonly setupHint: string;
  readonly logger: Logger;
  readonly intervalMs?: number;
}

export class SignalPoller {
  private readonly options: SignalPollerOptions;
  private readonly logger: Logger;
  private failing = false;
  /** Signals taken (or refused) whose rows are still to be deleted. */
  private readonly taken = new Set<string>();

  constructor(options: SignalPollerOptions) {
    this.options = options;
    this.logger = options.logger.child({ component: "signal-table", table: options.table });
  }

  async run(signal: AbortSignal): Promise<void> {
    try {
      while (!signal.aborted) {
        try {
          await this.poll();
          if (this.failing) this.logger.info("signal table readable again");
          this.failing = false;
        } catch (error) {
          if (!this.failing) this.logger.warn({ err: (error as Error).message }, `cannot read the signal table ${this.options.table}: ${this.options.setupHint}`);
          this.failing = true;
          await this.options.store.close();
        }
        await sleep(this.options.intervalMs ?? 2_000, signal);
      }
    } finally {
      await this.options.store.close();
    }
  }

  /** One pass: queue new signals, delete the rows of signals taken and stored. */
  async poll(): Promise<void> {
    const rows = await this.options.store.read(100);
    const queued = new Set(this.options.queued().map((t) => t.id));
    const done: string[] = [];
    for (const row of rows) {
      const taskId = `${SIGNAL_TASK_PREFIX}${row.id}`;
      if (this.taken.has(row.id) || queued.has(taskId)) {
        // Stored with a checkpoint, or already finished: the row has done its work.
        if (this.options.durable(taskId) || !queued.has(taskId)) done.push(row.id);
        this.taken.add(row.id);
        continue;
      }
      this.taken.add(row.id);
      const request = parseSignal(row.type, row.data);
      if ("error" in request) {
        this.logger.error({ id: row.id, type: row.type, data: row.data }, `signal ignored: ${request.error}`);
        done.push(row.id);
        continue;
      }
      try {
        await this.options.snapshots.request(request.table, request.where, "signal", taskId);
      } catch (error) {
        this.logger.error({ id: row.id, table: request.table, err: (error as Error).message }, "snapshot signal refused");
        done.push(row.id);
      }
    }
    if (done.length > 0) {
      await this.options.store.delete(done);
      for (const id of done) this.taken.delete(id);
    }
  }
}

export function parseSignal(type: string | null, data: string | null): { table: string; where: string | null } | { error: string } {
  if (type !== "snapshot") return { error: `unknown type "${type ?? ""}" (Sluice knows "snapshot")` };
  let parsed: unknown;
  try {
    parsed = JSON.parse(data ?? "");
  } catch {
    return { error: 'data is not JSON; expected {"table": "schema.table", "where": null}' };
  }
  const { table, where } = (typeof parsed === "object" && parsed !== null ? parsed : {}) as { table?: unknown; where?: unknown };
  if (typeof table !== "string" || table === "") return { error: 'data names no "table"' };
  if (where !== undefined && where !== null && typeof where !== "string") return { error: '"where" must be an SQL condition (a string) or null' };
  return { table, where: typeof where === "string" ? where : null };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    if (signal.aborted) done();
    else signal.addEventListener("abort", done, { once: true });
  });
}
