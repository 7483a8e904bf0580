/**
 * Everything online snapshots add to the MySQL/MariaDB source, so source.ts only calls in: the
 * snapshot tasks restored from and written into checkpoints (common/incremental-snapshot-state.ts),
 * the engine (incremental-snapshot.ts) and the signal table poller while the source streams, the
 * requests the admin API and the signal table make (online-snapshot-requests.ts), and the backfill
 * of tables added to the config: a checkpoint records the config's `tables` patterns, and at a
 * resume every existing table the new patterns match and the recorded ones did not is read online
 * (its rows predate its capture; its changes are captured from the resume point on).
 */
import type { Logger } from "pino";
import { onlineChunkBytes, STANDALONE_READ_AHEAD_BYTES } from "../../config/memory.ts";
import type { MysqlSourceConfig } from "../../config/schema.ts";
import type { Checkpoint, Position, TableSnapshotProgress } from "../contracts.ts";
import { SluiceError } from "../errors.ts";
import type { ErrorContext } from "../errors.ts";
import { resumedSnapshotTasks } from "../common/exported-snapshot-progress.ts";
import type { ExportedSnapshotProgress, TableLeft } from "../common/exported-snapshot-progress.ts";
import type { SnapshotLedger, SnapshotTask } from "../common/incremental-snapshot-state.ts";
import { OnlineSnapshotRunner, requestBackfills } from "../common/online-snapshot-runner.ts";
import type { OnlineSnapshotSession } from "../common/online-snapshot-runner.ts";
import { SignalPoller } from "../common/snapshot-signals.ts";
import { tableMatcher } from "../common/table-patterns.ts";
import type { CapturedTableRef, Sql } from "./catalog.ts";
import { connectionOptions } from "./connection-settings.ts";
import { MysqlIncrementalSnapshots } from "./incremental-snapshot.ts";
import { toSluiceError } from "./mysql-errors.ts";
import { MysqlOnlineSnapshotRequests } from "./online-snapshot-requests.ts";
import { decodeResumeToken, encodeResumeToken } from "./resume-token.ts";
import type { ResumeToken } from "./resume-token.ts";
import type { SchemaTracker } from "./schema/schema-tracker.ts";
import type { BindingContext } from "./schema/table-binding.ts";
import { MysqlSignalStore, SIGNAL_TABLE_SETUP } from "./signal-table.ts";
import { watermarkTableOf, WatermarkTable } from "./watermarks.ts";

export interface MysqlOnlineSnapshotsHost {
  readonly config: MysqlSourceConfig;
  readonly logger: Logger;
  readonly context: ErrorContext;
  readonly catalog: () => Sql | null;
  readonly tracker: () => SchemaTracker | null;
  readonly binding: () => BindingContext;
  readonly onProgress?: (progress: readonly TableSnapshotProgress[]) => void;
}

export class MysqlOnlineSnapshots {
  private readonly host: MysqlOnlineSnapshotsHost;
  readonly watermarks: WatermarkTable | null;
  readonly requests: MysqlOnlineSnapshotRequests;
  private readonly runner: OnlineSnapshotRunner<MysqlIncrementalSnapshots>;

  constructor(host: MysqlOnlineSnapshotsHost) {
    this.host = host;
    this.runner = new OnlineSnapshotRunner({ logger: host.logger, context: host.context });
    const table = watermarkTableOf(host.config);
    this.watermarks = table === null ? null : new WatermarkTable(table, host.config.name, host.context);
    // Said at start: otherwise the first sign is a RENAME COLUMN whose re-read is refused, the targets left without the column's values.
    if (table === null && host.config.snapshot.mode !== "never") {
      host.logger.warn(
        { tables: host.config.tables },
        "no watermark table (no pattern of tables names one database and snapshot.watermark_table is not set): online snapshots cannot run, " +
          "neither sluice snapshot nor the reads Sluice asks for itself after a RENAME TABLE, a column renamed or an XA ROLLBACK, which leave the targets without what the source holds; set snapshot.watermark_table (docs/mysql.md)",
      );
    }
    this.requests = new MysqlOnlineSnapshotRequests({
      config: () => host.config,
      catalog: host.catalog,
      engine: () => this.runner.engine,
      queued: () => this.runner.ledger.tasks,
      stored: (id) => this.runner.ledger.stored(id),
      watermarks: () => this.watermarks,
      context: () => host.context,
    });
  }

  /** The watermark table is Sluice's own: never captured, whatever the patterns say. */
  excludes(database: string, table: string): boolean {
    return this.watermarks?.is(database, table) === true;
  }

  /** Before connecting: the tasks the checkpoint carries, and requests not yet stored with one (a reconnect keeps them). */
  restore(from: Checkpoint | null): void {
    this.runner.restore(from);
  }

  /** A new initial snapshot reads every table: online snapshots in progress are moot. */
  clear(): void {
    this.runner.replace();
  }

  /**
   * An initial snapshot that did not finish goes on online: queues the tables it had not finished
   * (the one part-way through after its last stored key, with its reset at `resetVersion`, the
   * interrupted snapshot's), replacing any other task. Returns why it cannot instead (then the
   * snapshot starts over): no watermark table or none Sluice can write, a server setting online
   * snapshots need, or a table left without a primary key.
   */
  async resumeInitial(sql: Sql, progress: ExportedSnapshotProgress, tables: readonly CapturedTableRef[], resetVersion: bigint): Promise<string | null> {
    if (this.watermarks === null) return "no watermark table for online snapshots: no pattern of tables names one database and snapshot.watermark_table is not set";
    const done = new Set(progress.done);
    const left: TableLeft[] = [];
    try {
      await this.requests.checkCommitOrder();
      await this.watermarks.ensure(sql);
      for (const table of tables) {
        const name = `${table.database}.${table.table}`;
        if (done.has(name) || this.excludes(table.database, table.table)) continue;
        const { definition, estimatedRows } = await this.requests.resolve(name);
        left.push({ name, keyLength: definition.key.length, keyColumns: definition.key, estimatedRows });
      }
    } catch (error) {
      if (error instanceof SluiceError && ["SNAPSHOT_NO_CHUNK_KEY", "SNAPSHOT_WATERMARK_TABLE", "SNAPSHOT_SERVER_SETTING"].includes(error.code)) return error.message;
      throw error;
    }
    this.runner.replace(resumedSnapshotTasks(progress, left, resetVersion));
    return null;
  }

  /** The online snapshots queued now. */
  tasks(): readonly SnapshotTask[] {
    return this.runner.ledger.tasks;
  }

  /** Starts the engine (and the signal table poller) as the source starts streaming; the decoder weaves it in. */
  start(): MysqlIncrementalSnapshots | null {
    const watermarks = this.watermarks;
    if (watermarks === null) return null;
    return this.runner.start((ledger, finished) => this.session(watermarks, ledger, finished));
  }

  private session(watermarks: WatermarkTable, ledger: SnapshotLedger, finished: TableSnapshotProgress[]): OnlineSnapshotSession<MysqlIncrementalSnapshots> {
    const { config, logger, context } = this.host;
    const tracker = this.host.tracker();
    const chunksInFlight = config.snapshot.chunks_in_flight ?? config.snapshot.parallelism + 2;
    const engine = new MysqlIncrementalSnapshots({
      connection: connectionOptions(config, "snapshot"),
      sourceName: config.name,
      chunkRows: config.snapshot.chunk_rows,
      chunkBytes: onlineChunkBytes(config.max_buffer_bytes ?? STANDALONE_READ_AHEAD_BYTES, chunksInFlight),
      parallelism: config.snapshot.parallelism,
      chunksInFlight,
      ledger,
      watermarks,
      binding: this.host.binding(),
      resolve: (table) => this.requests.resolve(table),
      definitionAtStream: (database, table) => tracker?.definition(database, table) ?? null,
      zeroDates: config.zero_dates,
      finished,
      logger,
      context,
      ...(this.host.onProgress === undefined ? {} : { onProgress: () => this.host.onProgress!(this.progress()) }),
    });
    const signalTable = config.snapshot.signal_table;
    if (signalTable === undefined) return { engine };
    const companion = new SignalPoller({
      table: signalTable,
      store: new MysqlSignalStore(connectionOptions(config, "catalog"), signalTable),
      snapshots: this.requests,
      durable: (id) => ledger.isDurable(id),
      queued: () => ledger.tasks,
      setupHint: SIGNAL_TABLE_SETUP,
      logger,
    });
    return { engine, companion };
  }

  stop(): Promise<void> {
    return this.runner.stop();
  }

  /** The checkpoint's position with the snapshot tasks it carries and the config's table patterns. */
  checkpoint(position: Position): Position {
    const { config } = this.host;
    return this.runner.checkpoint(position, (base) => (base?.startsWith("mysql:") ? encodeResumeToken({ ...decodeResumeToken(base, config.name), capturedTables: config.tables }) : base));
  }

  progress(): TableSnapshotProgress[] {
    return this.runner.progress();
  }

  /** At a resume: reads online every existing table the config's patterns match now and did not when the checkpoint was taken. */
  async backfillAdded(token: ResumeToken, tables: readonly CapturedTableRef[]): Promise<void> {
    if (token.capturedTables === undefined) return;
    const before = tableMatcher(token.capturedTables);
    const queued = new Set(this.runner.ledger.tasks.map((t) => t.table));
    const added = tables.map((t) => `${t.database}.${t.table}`).filter((name, i) => !before(tables[i]!.database, tables[i]!.table) && !this.excludes(tables[i]!.database, tables[i]!.table) && !queued.has(name));
    if (added.length === 0) return;
    const { logger, config } = this.host;
    if (config.snapshot.mode === "never") {
      logger.warn({ tables: added }, "tables added to the config are captured from now on but not backfilled (snapshot.mode never): sluice snapshot --table T --execute reads one");
      return;
    }
    logger.info({ tables: added }, "tables added to the config: captured from now on and backfilled online");
    await requestBackfills(
      added,
      (table) => this.requests.request(table, null, "table-added").catch((error: unknown) => Promise.reject(toSluiceError(error, `read the catalog for an online snapshot of ${table}`, { ...this.host.context, table }))),
      (table, error) => logger.error({ table, err: error.message }, `table added to the config cannot be backfilled online (its changes are captured from now on): read it with sluice snapshot --table ${table} --execute`),
      `${token.file}:${token.offset}`,
      this.host.context,
    );
  }
}
