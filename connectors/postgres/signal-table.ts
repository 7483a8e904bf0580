/**
 * The signal table on PostgreSQL (config snapshot.signal_table, "schema.table"): the reads and
 * deletes behind common/snapshot-signals.ts (which queues the requests and says when a row is
 * done), on a connection of its own.
 */
import pg from "pg";
import type { ClientConfig } from "pg";
import type { Logger } from "pino";
import type { OnlineSnapshotting, SnapshotTask } from "../common/incremental-snapshot-state.ts";
import { SignalPoller } from "../common/snapshot-signals.ts";
import type { SignalRow, SignalStore } from "../common/snapshot-signals.ts";
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

class PostgresSignalStore implements SignalStore {
  private readonly config: ClientConfig;
  private readonly name: string;
  private readonly logger: Logger;
  private client: pg.Client | null = null;

  constructor(config: ClientConfig, table: string, logger: Logger) {
    this.config = config;
    const [schema, name] = table.split(".") as [string, string];
    this.name = `${quoteIdent(schema)}.${quoteIdent(name)}`;
    this.logger = logger;
  }

  async read(limit: number): Promise<SignalRow[]> {
    const client = await this.connection();
    return (await client.query<SignalRow>(`SELECT id::text AS id, type::text AS type, data::text AS data FROM ${this.name} ORDER BY id LIMIT ${Math.floor(limit)}`)).rows;
  }

  async delete(ids: readonly string[]): Promise<void> {
    const client = await this.connection();
    await client.query(`DELETE FROM ${this.name} WHERE id::text = ANY($1::text[])`, [ids]);
  }

  async close(): Promise<void> {
    const client = this.client;
    this.client = null;
    if (client !== null) await client.end().catch(() => undefined);
  }

  private async connection(): Promise<pg.Client> {
    if (this.client !== null) return this.client;
    const client = new pg.Client(this.config);
    client.on("error", (error) => this.logger.warn({ err: error.message }, "signal table connection failed"));
    await client.connect();
    this.client = client;
    return client;
  }
}

export class SignalTable {
  private readonly poller: SignalPoller;

  constructor(options: SignalTableOptions) {
    this.poller = new SignalPoller({
      table: options.table,
      store: new PostgresSignalStore(options.client, options.table, options.logger),
      snapshots: options.snapshots,
      durable: options.durable,
      queued: options.queued,
      setupHint: "create it (id text PRIMARY KEY, type text NOT NULL, data text) and grant the capture role SELECT and DELETE on it",
      logger: options.logger,
      ...(options.intervalMs === undefined ? {} : { intervalMs: options.intervalMs }),
    });
  }

  run(signal: AbortSignal): Promise<void> {
    return this.poller.run(signal);
  }

  /** One pass: queue new signals, delete the rows of signals taken and stored. */
  poll(): Promise<void> {
    return this.poller.poll();
  }
}
