/**
 * The signal table (config snapshot.signal_table): snapshot requests for environments where the
 * command line cannot reach the daemon. Sluice polls it while the stream runs; a row
 * (id, 'snapshot', '{"table": "schema.table", "where": null}') queues an online snapshot under the
 * task id "signal:<id>". The row is deleted once the request rides in a stored checkpoint (so a
 * crash in between finds the row again, and the restored task keeps it from being queued twice),
 * or at once when it is refused (the refusal is logged and listed by `sluice snapshot list`).
 */
import pg from "pg";
import type { ClientConfig } from "pg";
import type { Logger } from "pino";
import type { OnlineSnapshotting, SnapshotTask } from "../common/incremental-snapshot-state.ts";
import { quoteIdent } from "./connection-settings.ts";

export interface SignalTableOptions {
  readonly client: ClientConfig;
  /** "schema.table" */
  readonly table: string;
  readonly snapshots: OnlineSnapshotting;
  /** Whether a task is in the last stored checkpoint, and whether it is still queued or running. */
  readonly durable: (id: string) => boolean;
  readonly queued: () => readonly SnapshotTask[];
  readonly logger: Logger;
  readonly intervalMs?: number;
}

export const SIGNAL_TASK_PREFIX = "signal:";

export class SignalTable {
  private readonly options: SignalTableOptions;
  private readonly logger: Logger;
  private client: pg.Client | null = null;
  private failing = false;
  /** Signals taken (or refused) whose rows are still to be deleted. */
  private readonly taken = new Set<string>();

  constructor(options: SignalTableOptions) {
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
          if (!this.failing) this.logger.warn({ err: (error as Error).message }, `cannot read the signal table ${this.options.table}: create it (id text PRIMARY KEY, type text NOT NULL, data text) and grant the capture role SELECT and DELETE on it`);
          this.failing = true;
          await this.closeClient();
        }
        await sleep(this.options.intervalMs ?? 2_000, signal);
      }
    } finally {
      await this.closeClient();
    }
  }

  /** One pass: queue new signals, delete the rows of signals taken and stored. */
  async poll(): Promise<void> {
    const client = await this.connection();
    const [schema, table] = this.options.table.split(".") as [string, string];
    const name = `${quoteIdent(schema)}.${quoteIdent(table)}`;
    const rows = (await client.query<{ id: string; type: string | null; data: string | null }>(`SELECT id::text AS id, type::text AS type, data::text AS data FROM ${name} ORDER BY id LIMIT 100`)).rows;
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
      await client.query(`DELETE FROM ${name} WHERE id::text = ANY($1::text[])`, [done]);
      for (const id of done) this.taken.delete(id);
    }
  }

  async close(): Promise<void> {
    await this.closeClient();
  }

  private async connection(): Promise<pg.Client> {
    if (this.client !== null) return this.client;
    const client = new pg.Client(this.options.client);
    client.on("error", (error) => this.logger.warn({ err: error.message }, "signal table connection failed"));
    await client.connect();
    this.client = client;
    return client;
  }

  private async closeClient(): Promise<void> {
    const client = this.client;
    this.client = null;
    if (client !== null) await client.end().catch(() => undefined);
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
    signal.addEventListener("abort", done, { once: true });
  });
}
