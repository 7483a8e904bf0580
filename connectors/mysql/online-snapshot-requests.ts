/**
 * Requests for online snapshots of a MySQL/MariaDB source (sluice snapshot, the signal table,
 * tables added to the config later): checks a table can be read online (captured by the config,
 * existing, keyed by a primary key, the WHERE condition valid), estimates its rows and chunks, and
 * queues it on the running engine (incremental-snapshot.ts).
 */
import type { MysqlSourceConfig } from "../../config/schema.ts";
import { SluiceError } from "../errors.ts";
import type { ErrorContext } from "../errors.ts";
import type { FailedSnapshot, OnlineSnapshotPlan, OnlineSnapshotting, SnapshotTask } from "../common/incremental-snapshot-state.ts";
import { ambiguousLabel, tableReadings } from "../common/table-label.ts";
import { tableMatcher } from "../common/table-patterns.ts";
import { readDefinitions } from "./catalog.ts";
import type { Row, Sql } from "./catalog.ts";
import type { TableDefinition } from "./schema/table-definition.ts";
import { quoteIdentifier } from "./connection-settings.ts";
import { toSluiceError } from "./mysql-errors.ts";
import { noChunkKey } from "./incremental-snapshot.ts";
import type { MysqlIncrementalSnapshots, ResolvedTable } from "./incremental-snapshot.ts";
import type { WatermarkTable } from "./watermarks.ts";
import { checkWhere, MYSQL_CONDITION } from "../common/where-condition.ts";

export interface MysqlOnlineSnapshotHost {
  readonly config: () => MysqlSourceConfig;
  /** The catalog connection; null while not connected. */
  readonly catalog: () => Sql | null;
  /** The engine; null while the source is not streaming. */
  readonly engine: () => MysqlIncrementalSnapshots | null;
  /** The tasks queued or running, also while the source is not streaming (the server away): they go on when it is back. */
  readonly queued: () => readonly SnapshotTask[];
  /** Task `id` as the last checkpoint stored carries it (SnapshotLedger.stored). */
  readonly stored: (id: string) => SnapshotTask | null;
  /** Null when the config names no watermark table and no pattern names one database. */
  readonly watermarks: () => WatermarkTable | null;
  readonly context: () => ErrorContext;
}

export class MysqlOnlineSnapshotRequests implements OnlineSnapshotting {
  private readonly host: MysqlOnlineSnapshotHost;

  constructor(host: MysqlOnlineSnapshotHost) {
    this.host = host;
  }

  /** The dry run: checks everything a request checks, queues nothing. */
  async plan(table: string, where: string | null): Promise<OnlineSnapshotPlan> {
    const engine = this.running();
    const { definition } = await this.resolve(table);
    await this.checkCommitOrder();
    const cleanWhere = checkWhere(where, table, this.host.context(), MYSQL_CONDITION);
    const estimatedRows = await this.estimate(definition.database, definition.table, cleanWhere, table);
    const chunkRows = this.host.config().snapshot.chunk_rows;
    return {
      source: this.host.config().name,
      table,
      key: definition.key,
      keySource: "primary key",
      where: cleanWhere,
      estimatedRows,
      chunkRows,
      estimatedChunks: estimatedRows === null ? null : Math.max(1, Math.ceil(estimatedRows / chunkRows)),
      reset: cleanWhere === null,
      queuedBehind: engine.tasks().length,
    };
  }

  async request(table: string, where: string | null, origin: string, id?: string): Promise<{ plan: OnlineSnapshotPlan; task: SnapshotTask }> {
    const plan = await this.plan(table, where);
    // Where the table is missing Sluice creates it now: a refusal comes back to the request rather than failing the snapshot later.
    await this.host.watermarks()!.ensure(this.host.catalog()!);
    const task = this.running().request(table, plan.where, origin, id);
    return { plan, task };
  }

  /**
   * Queues a snapshot of the whole table with the checks of a request but neither the optimizer's estimate nor the
   * watermark table's probe write, which wait for locks on those tables (the engine writes its watermarks anyway):
   * what the stream decoder asks for while it waits (a table renamed, columns renamed, an XA rollback) must not wait
   * behind a migration's lock, and all capture with it. `id` names the request: one already queued is not queued twice.
   * A driver's error comes back as a SluiceError saying whether asking again can help (a lost connection can).
   * `where` (Sluice's own, not checked): a read with no closing reset.
   */
  async queue(table: string, origin: string, id: string, where: string | null = null): Promise<SnapshotTask> {
    const queued = this.running().tasks().find((task) => task.id === id);
    if (queued !== undefined) return queued;
    try {
      await this.resolve(table);
    } catch (error) {
      throw toSluiceError(error, `read the catalog for an online snapshot of ${table}`, { ...this.host.context(), table });
    }
    return this.running().request(table, where, origin, id);
  }

  list(): { tasks: readonly SnapshotTask[]; failed: readonly FailedSnapshot[] } {
    const engine = this.host.engine();
    return { tasks: engine?.tasks() ?? this.host.queued(), failed: engine?.failed() ?? [] };
  }

  stored(id: string): SnapshotTask | null {
    return this.host.stored(id);
  }

  /** The table as the catalog shows it now; refuses one the source does not capture, or one without a primary key. */
  async resolve(table: string): Promise<ResolvedTable> {
    const context = { ...this.host.context(), table };
    const sql = this.host.catalog();
    if (sql === null) throw new SluiceError("the source is not connected", { code: "SOURCE_NOT_CONNECTED", retriable: true, context });
    const readings = tableReadings(table);
    if (readings.length === 0) throw new SluiceError(`"${table}" is not a "database.table" name`, { code: "SNAPSHOT_TABLE_UNKNOWN", context });
    const config = this.host.config();
    const matches = tableMatcher(config.tables);
    const capturedReadings = readings.filter((r) => matches(r.schema, r.table) && this.host.watermarks()?.is(r.schema, r.table) !== true);
    if (capturedReadings.length === 0) {
      throw new SluiceError(`source "${config.name}" does not capture ${table} (tables: ${config.tables.join(", ")}): add it to the config's tables first`, { code: "SNAPSHOT_TABLE_NOT_CAPTURED", context });
    }
    // One reading at a time: readDefinitions keys its answer by "database.table", the same text for every reading.
    const definitions: TableDefinition[] = [];
    for (const reading of capturedReadings) {
      const found = (await readDefinitions(sql, [{ database: reading.schema, table: reading.table }])).get(table);
      if (found !== undefined) definitions.push(found);
    }
    const definition = definitions[0];
    if (definition === undefined) throw new SluiceError(`table ${table} does not exist on the server`, { code: "SNAPSHOT_TABLE_UNKNOWN", context });
    if (definitions.length > 1) throw ambiguousLabel(table, definitions.map((d) => ({ schema: d.database, table: d.table })), context);
    const database = definition.database;
    const name = definition.table;
    if (definition.key.length === 0) throw noChunkKey(table, this.host.context());
    const rows = await sql.rows("SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", [database, name]);
    const estimate = first(rows[0]);
    return { definition, estimatedRows: estimate === null ? null : Number(estimate) };
  }

  /**
   * The watermarks rely on a transaction being visible once a later one in the binlog has
   * committed: MySQL with binlog_order_commits=OFF may commit out of binlog order, and a chunk
   * could then miss a change that precedes its low watermark. (MariaDB always commits in order.)
   */
  async checkCommitOrder(): Promise<void> {
    const rows = await this.host.catalog()!.rows("SHOW GLOBAL VARIABLES LIKE 'binlog_order_commits'");
    const value = rows[0] === undefined ? null : String(Object.values(rows[0])[1] ?? "");
    if (value !== null && /^(OFF|0)$/i.test(value)) {
      throw new SluiceError("the server has binlog_order_commits=OFF, so a transaction can become visible after a later one in the binlog and an online snapshot chunk could miss it: SET GLOBAL binlog_order_commits=ON (the default)", {
        code: "SNAPSHOT_SERVER_SETTING",
        context: this.host.context(),
      });
    }
  }

  private running(): MysqlIncrementalSnapshots {
    if (this.host.watermarks() === null) {
      throw new SluiceError(
        `source "${this.host.config().name}" has no watermark table for online snapshots: no pattern of its tables names one database, so set snapshot.watermark_table ("database.table", docs/mysql.md)`,
        { code: "SNAPSHOT_NO_WATERMARK_TABLE", context: this.host.context() },
      );
    }
    const engine = this.host.engine();
    if (engine === null) {
      throw new SluiceError("online snapshots start once the source streams (it is connecting or taking its initial snapshot): ask again then", {
        code: "SNAPSHOT_NOT_STREAMING",
        retriable: true,
        context: this.host.context(),
      });
    }
    return engine;
  }

  /** The optimizer's row estimate (EXPLAIN); also proves the WHERE condition is valid SQL on this table. */
  private async estimate(database: string, name: string, where: string | null, table: string): Promise<number | null> {
    const sql = this.host.catalog()!;
    try {
      const rows = await sql.rows(`EXPLAIN SELECT 1 FROM ${quoteIdentifier(database)}.${quoteIdentifier(name)}${where === null ? "" : ` WHERE (${where})`}`);
      const estimates = rows.map((row) => Number(row["rows"] ?? row["ROWS"])).filter((n) => Number.isFinite(n));
      return estimates.length === 0 ? null : Math.max(...estimates);
    } catch (error) {
      if (where === null) return null;
      throw new SluiceError(`the condition --where "${where}" does not work on ${table}: ${(error as Error).message}`, { code: "SNAPSHOT_WHERE_INVALID", cause: error, context: { ...this.host.context(), table } });
    }
  }
}

function first(row: Row | undefined): unknown {
  if (row === undefined) return null;
  const value = Object.values(row)[0];
  return value === undefined || value === null ? null : Buffer.isBuffer(value) ? value.toString("utf8") : value;
}
