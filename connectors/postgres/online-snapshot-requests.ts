/**
 * Requests for online snapshots of a PostgreSQL source (sluice snapshot, the signal table, tables
 * added later): checks a table can be read online (captured by the config, published, keyed by a
 * unique key, the WHERE condition valid), estimates its rows and chunks, and queues it.
 */
import type pg from "pg";
import type { PostgresSourceConfig } from "../../config/schema.ts";
import { SluiceError } from "../errors.ts";
import type { ErrorContext } from "../errors.ts";
import type { FailedSnapshot, OnlineSnapshotPlan, OnlineSnapshotting, SnapshotTask } from "../common/incremental-snapshot-state.ts";
import { ambiguousLabel, tableReadings } from "../common/table-label.ts";
import { tableMatcher } from "../common/table-patterns.ts";
import type { CapturedTables } from "./captured-tables.ts";
import { listTables, publicationInfo, publishedTables } from "./catalog.ts";
import { quoteIdent } from "./connection-settings.ts";
import { noChunkKey } from "./incremental-snapshot.ts";
import type { IncrementalSnapshots, ResolvedTable } from "./incremental-snapshot.ts";
import { checkWhere, POSTGRES_CONDITION } from "../common/where-condition.ts";

export interface OnlineSnapshotHost {
  readonly config: () => PostgresSourceConfig;
  readonly publication: () => string;
  readonly catalog: () => pg.Client | null;
  readonly captured: () => CapturedTables | null;
  readonly serverVersion: () => number;
  readonly engine: () => IncrementalSnapshots | null;
  /** The tasks queued or running, also while the source is not streaming (the server away): they go on when it is back. */
  readonly queued: () => readonly SnapshotTask[];
  /** Task `id` as the last checkpoint stored carries it (SnapshotLedger.stored). */
  readonly stored: (id: string) => SnapshotTask | null;
  readonly context: () => ErrorContext;
}

export class OnlineSnapshotRequests implements OnlineSnapshotting {
  private readonly host: OnlineSnapshotHost;

  constructor(host: OnlineSnapshotHost) {
    this.host = host;
  }

  /** The dry run: checks everything a request checks, queues nothing. */
  async plan(table: string, where: string | null): Promise<OnlineSnapshotPlan> {
    const engine = this.running();
    const { table: captured } = await this.resolve(table);
    const cleanWhere = checkWhere(where, table, this.host.context(), POSTGRES_CONDITION);
    const estimatedRows = await this.estimate(captured.schema.schema, captured.schema.table, cleanWhere, table);
    const chunkRows = this.host.config().snapshot.chunk_rows;
    return {
      source: this.host.config().name,
      table,
      key: captured.schema.key,
      keySource: captured.keySource,
      where: cleanWhere,
      estimatedRows,
      chunkRows,
      estimatedChunks: estimatedRows === null ? null : Math.max(1, Math.ceil(estimatedRows / chunkRows)),
      reset: cleanWhere === null,
      queuedBehind: engine.tasks().length,
    };
  }

  /** `above`: see IncrementalSnapshots.request. */
  async request(table: string, where: string | null, origin: string, id?: string, above?: bigint): Promise<{ plan: OnlineSnapshotPlan; task: SnapshotTask }> {
    const plan = await this.plan(table, where);
    const task = this.running().request(table, plan.where, origin, id, above);
    return { plan, task };
  }

  /**
   * Queues a snapshot of the whole table with the checks of a request but without the planner's estimate, which takes
   * a lock on the table: what the stream decoder asks for while it waits (a table added to the publication) must not
   * wait behind a migration's lock on it, and all capture with it. `id` names the request: one already queued is not queued twice.
   * `where`: "TRUE" for a read with no reset (a publication leaving out deletes or truncates keeps purged rows).
   */
  async queue(table: string, origin: string, id: string, above?: bigint, where: "TRUE" | null = null): Promise<SnapshotTask> {
    const queued = this.running().tasks().find((task) => task.id === id);
    if (queued !== undefined) return queued;
    await this.resolve(table);
    return this.running().request(table, where, origin, id, above);
  }

  /**
   * Queues a read of one leaf partition of the partitioned `table` (FROM ONLY the leaf, its rows handed on as the root's;
   * `partition` null: through the root, limited by `where`), with no reset: a partition attached while capture streams.
   * No planner estimate, which would lock every partition. `id` names the request: one already queued is not queued
   * twice, but its read starts again from the first key if it had begun: the partition may have been detached, refilled
   * and attached again meanwhile, its rows below the read's position new.
   */
  async queuePartition(table: string, partition: number | null, where: string, origin: string, id: string): Promise<SnapshotTask> {
    const engine = this.running();
    if (engine.restart(id)) return engine.tasks().find((task) => task.id === id)!;
    await this.resolve(table);
    return this.running().request(table, where, origin, id, undefined, partition ?? undefined);
  }

  list(): { tasks: readonly SnapshotTask[]; failed: readonly FailedSnapshot[] } {
    const engine = this.host.engine();
    return { tasks: engine?.tasks() ?? this.host.queued(), failed: engine?.failed() ?? [] };
  }

  stored(id: string): SnapshotTask | null {
    return this.host.stored(id);
  }

  /** The table as the catalog shows it now, with its published columns and row filter; refuses one the source does not capture. */
  async resolve(table: string): Promise<ResolvedTable> {
    const context = { ...this.host.context(), table };
    const catalog = this.host.catalog();
    const captured = this.host.captured();
    if (catalog === null || captured === null) throw new SluiceError("the source is not connected", { code: "SOURCE_NOT_CONNECTED", retriable: true, context });
    const readings = tableReadings(table);
    if (readings.length === 0) throw new SluiceError(`"${table}" is not a "schema.table" name`, { code: "SNAPSHOT_TABLE_UNKNOWN", context });
    const config = this.host.config();
    const matches = tableMatcher(config.tables);
    const capturedReadings = readings.filter((r) => matches(r.schema, r.table));
    if (capturedReadings.length === 0) {
      throw new SluiceError(`source "${config.name}" does not capture ${table} (tables: ${config.tables.join(", ")}): add it to the config's tables first`, { code: "SNAPSHOT_TABLE_NOT_CAPTURED", context });
    }
    const refs = await listTables(catalog, (s, t) => capturedReadings.some((r) => r.schema === s && r.table === t));
    const ref = refs[0];
    if (ref === undefined) throw new SluiceError(`table ${table} does not exist in database "${config.database}"`, { code: "SNAPSHOT_TABLE_UNKNOWN", context });
    if (refs.length > 1) throw ambiguousLabel(table, refs, context);
    const schemaName = ref.schema;
    const tableName = ref.table;
    const publication = this.host.publication();
    const info = await publicationInfo(catalog, publication);
    const published = (await publishedTables(catalog, publication, this.host.serverVersion())).find((t) => t.schema === schemaName && t.table === tableName);
    if (info === null || (!info.allTables && published === undefined)) {
      throw new SluiceError(
        `table ${table} is not in publication "${publication}", so its changes are not streamed and an online snapshot of it would go stale: ` +
          `ALTER PUBLICATION ${quoteIdent(publication)} ADD TABLE ${quoteIdent(schemaName)}.${quoteIdent(tableName)}`,
        { code: "SNAPSHOT_TABLE_UNPUBLISHED", context: { ...context, publication } },
      );
    }
    const resolved = await captured.fromCatalog(catalog, ref.relid, published);
    if (!resolved.uniqueKey) throw noChunkKey(table, this.host.context());
    return { table: resolved, estimatedRows: ref.estimatedRows >= 0 ? ref.estimatedRows : null };
  }

  private running(): IncrementalSnapshots {
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

  /** The planner's row estimate; also proves the WHERE condition is valid SQL on this table. */
  private async estimate(schemaName: string, tableName: string, where: string | null, table: string): Promise<number | null> {
    const catalog = this.host.catalog()!;
    const text = `EXPLAIN (FORMAT JSON) SELECT 1 FROM ${quoteIdent(schemaName)}.${quoteIdent(tableName)}${where === null ? "" : ` WHERE (${where})`}`;
    try {
      const result = await catalog.query<{ "QUERY PLAN": string }>(text);
      const plan = JSON.parse(String(result.rows[0]?.["QUERY PLAN"] ?? "[]")) as { Plan?: { "Plan Rows"?: number } }[];
      const rows = plan[0]?.Plan?.["Plan Rows"];
      return typeof rows === "number" ? rows : null;
    } catch (error) {
      if (where === null) return null;
      throw new SluiceError(`the condition --where "${where}" does not work on ${table}: ${(error as Error).message}`, { code: "SNAPSHOT_WHERE_INVALID", cause: error, context: { ...this.host.context(), table } });
    }
  }
}
