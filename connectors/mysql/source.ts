/**
 * The MySQL/MariaDB source: connect (check the server, then snapshot or resume), read batches
 * (snapshot rows, then the binlog), close. See docs/mysql.md.
 */
import type { Connection } from "mysql2/promise";
import type { Logger } from "pino";
import type { MysqlSourceConfig } from "../../config/schema.ts";
import { STANDALONE_READ_AHEAD_BYTES } from "../../config/memory.ts";
import { tableName } from "../contracts.ts";
import type { ChangeEvent, Checkpoint, Position, Source, SourceBatch, TransactionMarker } from "../contracts.ts";
import { SluiceError } from "../errors.ts";
import type { ErrorContext } from "../errors.ts";
import { CaptureLoop, CaptureSource } from "../common/capture-loop.ts";
import type { CapturePhase, CaptureStats, InitialSnapshot, OpenedStream } from "../common/capture-loop.ts";
import { partitionRowsPlan, tableVersioning, versioningOf } from "./partition-drops.ts";
import { tableKey } from "./schema/table-definition.ts";
import type { TableVersioning } from "./partition-drops.ts";
import { backfillChangedRows, backfillColumns, backfillRenamed, backfillRolledBackSavepoint, backfillRolledBackXa } from "../common/online-snapshot-runner.ts";
import { tableMatcher } from "../common/table-patterns.ts";
import { BinlogStream } from "./binlog-stream.ts";
import { binlogResetProblem } from "./binlog-reset.ts";
import { mariadbGtidStateByDump } from "./gtid-state-dump.ts";
import { binaryLogs, collationRows, currentPosition, databaseCharset, listCatalog, readDefinitions } from "./catalog.ts";
import { warnKeylessTables } from "./keyless-tables.ts";
import { warnCascadingKeys } from "./cascading-keys.ts";
import type { BinlogCoordinates, CapturedTableRef, GtidStateReader, Sql } from "./catalog.ts";
import { CATALOG_TIMEOUT_MS, catalogSessionSql, connectionOptions } from "./connection-settings.ts";
import { checkPrivileges } from "./privileges.ts";
import { MysqlGtidSet } from "./gtid.ts";
import { HeartbeatArrivals } from "./heartbeat-arrivals.ts";
import { connectionsNeeded, toSluiceError } from "./mysql-errors.ts";
import { binlogAt, binlogFileIndex, EPOCH_FILES, formatAt, MAX_BINLOG_EPOCH, throughPosition } from "./positions.ts";
import { EventParser } from "./protocol/event-parser.ts";
import { decodeResumeToken, encodeResumeToken } from "./resume-token.ts";
import type { ResumeToken } from "./resume-token.ts";
import { MemorySchemaHistoryStore } from "./schema/schema-history.ts";
import type { SchemaHistoryStore } from "./schema/schema-history.ts";
import { SchemaTracker } from "./schema/schema-tracker.ts";
import type { RowsChange } from "./schema/schema-tracker.ts";
import { checkServerSettings, readServerSettings } from "./server-settings.ts";
import type { ServerSettings } from "./server-settings.ts";
import { SnapshotMarkers } from "../common/snapshot-markers.ts";
import { snapshotResetPosition } from "../common/snapshot-reset.ts";
import { ExportedSnapshotTracker } from "../common/exported-snapshot-progress.ts";
import { SnapshotReader } from "./snapshot-reader.ts";
import type { MysqlSnapshotRow, TableSnapshotProgress } from "./snapshot-reader.ts";
import { startConsistentSnapshot } from "./snapshot-start.ts";
import type { SnapshotLocking } from "./snapshot-start.ts";
import { closeQuietly, openConnection, sqlOf } from "./sql-connection.ts";
import { endReplacedDumps, userDumpThreads } from "./replaced-dump.ts";
import { StreamBatcher } from "./stream-batcher.ts";
import { StreamDecoder } from "./stream-decoder.ts";
import { watermarkTableOf } from "./watermarks.ts";
import { completePartialCreates } from "./partial-images.ts";
import { skippedOperations } from "../common/skipped-operations.ts";
import { CollationTable } from "./values/charsets.ts";
import { MysqlOnlineSnapshots } from "./online-snapshots.ts";
import type { MysqlOnlineSnapshotRequests } from "./online-snapshot-requests.ts";

export type { TableSnapshotProgress } from "./snapshot-reader.ts";

export interface MysqlSourceOptions {
  readonly logger: Logger;
  /** Most events per batch (default 4096). */
  readonly maxBatchEvents?: number;
  /** Called as the snapshot progresses (after every chunk): for metrics and a terminal display. */
  readonly onSnapshotProgress?: (progress: readonly TableSnapshotProgress[]) => void;
  /** Where the schema history is kept durably (default: in memory, read again from the server after a restart). */
  readonly schemaHistory?: SchemaHistoryStore;
  /** Force how the snapshot start is locked (tests); by default the server decides. */
  readonly snapshotLocking?: SnapshotLocking;
  /** How long a catalog statement may wait for a metadata lock before it fails, retriable (default CATALOG_TIMEOUT_MS; tests set less). */
  readonly catalogTimeoutMs?: number;
  /** The most bytes a compressed binlog event or COMPRESSED value may decompress to (default defaultDecompressionLimit(); tests set less). */
  readonly decompressionLimit?: number;
}

export type MysqlSourcePhase = CapturePhase;

export interface MysqlSourceStats extends CaptureStats {
  readonly binlogBytes: number;
  /** Where decoding has got to (file:offset) and the last acknowledged checkpoint. */
  readonly decodedThrough: string | null;
  readonly acknowledged: Position | null;
}

interface StreamStart {
  readonly coordinates: BinlogCoordinates;
  readonly skipThrough: Position | null;
  /** The checkpoint's positionsKey (resume-token.ts), for a skipThrough inside a compressed transaction. */
  readonly skipPositionsKey?: string | undefined;
  readonly thresholds: ReadonlyMap<string, bigint>;
  readonly lastCheckpoint: Position | null;
  /** The prepared XA transactions the checkpoint carries (resume-token.ts). */
  readonly preparedXa?: Readonly<Record<string, readonly string[]>> | undefined;
}

interface StreamState extends OpenedStream<SourceBatch> {
  readonly stream: BinlogStream;
  readonly decoder: StreamDecoder;
}

export class MysqlSource extends CaptureSource<SourceBatch, StreamState> implements Source {
  readonly name: string;
  readonly kind = "mysql" as const;
  private readonly config: MysqlSourceConfig;
  private readonly options: MysqlSourceOptions;
  private readonly logger: Logger;
  private readonly context: ErrorContext;
  private readonly history: SchemaHistoryStore;
  protected readonly loop: CaptureLoop<SourceBatch, StreamState>;
  private catalog: Connection | null = null;
  private settings: ServerSettings | null = null;
  private collations: CollationTable | null = null;
  private tracker: SchemaTracker | null = null;
  private pendingStream: StreamStart | null = null;
  private acknowledged: Position | null = null;
  /** The binlog history epoch positions are taken in (positions.ts): the checkpoint's, one more once a reset binlog or another server is accepted. */
  private epoch = 0;
  /** MariaDB refused a stream by GTID (GTIDs written out of order): streams start by file and offset from then on. */
  private gtidStartRefused = false;
  /** Online snapshots (sluice snapshot, the signal table, tables added to the config): see online-snapshots.ts. */
  private readonly online: MysqlOnlineSnapshots;
  readonly snapshots: MysqlOnlineSnapshotRequests;

  constructor(config: MysqlSourceConfig, options: MysqlSourceOptions) {
    super();
    this.config = config;
    this.options = options;
    this.name = config.name;
    this.logger = options.logger.child({ component: "mysql-source", source: config.name });
    this.context = { component: "mysql-source", source: config.name, server: `${config.host}:${config.port}`, connectionsNeeded: connectionsNeeded(config.snapshot) };
    this.history = options.schemaHistory ?? new MemorySchemaHistoryStore();
    this.online = new MysqlOnlineSnapshots({
      config,
      logger: this.logger,
      context: this.context,
      catalog: () => (this.catalog === null ? null : sqlOf(this.catalog)),
      tracker: () => this.tracker,
      binding: () => ({ sourceName: config.name, collations: this.collations!, zeroDates: config.zero_dates, mariadb: this.settings?.flavor === "mariadb", ...this.limits() }),
      ...(options.onSnapshotProgress === undefined ? {} : { onProgress: () => options.onSnapshotProgress!(this.snapshotProgress()) }),
    });
    this.snapshots = this.online.requests;
    this.loop = new CaptureLoop<SourceBatch, StreamState>({
      context: this.context,
      maxBatchEvents: options.maxBatchEvents ?? 4096,
      readAheadBytes: config.max_buffer_bytes ?? STANDALONE_READ_AHEAD_BYTES,
      toError: (error, what) => toSluiceError(error, what, this.context),
      prepare: (from) => this.online.restore(from),
      setUp: (from, signal) => this.setUp(from, signal),
      openStream: () => this.openStream(),
      online: this.online,
      release: () => this.release(),
    });
  }

  stats(): MysqlSourceStats {
    const streaming = this.loop.stream;
    return {
      ...this.loop.stats(),
      binlogBytes: streaming?.stream.receivedBytes ?? 0,
      decodedThrough: streaming === null ? null : `${streaming.decoder.through.file}:${streaming.decoder.through.offset}`,
      acknowledged: this.acknowledged,
    };
  }

  private async setUp(from: Checkpoint | null, signal: AbortSignal): Promise<void> {
    const { config, logger, context } = this;
    this.catalog = await openConnection(connectionOptions(config, "catalog")).catch((error: unknown) => {
      throw toSluiceError(error, "cannot connect", context);
    });
    const sql = sqlOf(this.catalog);
    const settings = await readServerSettings(sql);
    checkServerSettings(settings, context);
    await sql.rows(catalogSessionSql(settings.flavor, this.options.catalogTimeoutMs ?? CATALOG_TIMEOUT_MS));
    await checkPrivileges(sql, config.tables, settings.flavor, context);
    this.settings = settings;
    if (settings.binlogRowMetadata !== "FULL") {
      logger.info({ binlog_row_metadata: settings.binlogRowMetadata || "unsupported" }, "the binlog does not name columns: table definitions come from Sluice's schema history");
    }
    this.collations = CollationTable.fromServer(await collationRows(sql));
    const patterns = tableMatcher(config.tables);
    const matches = (database: string, table: string) => patterns(database, table) && !this.online.excludes(database, table);
    const { tables, sequences } = await listCatalog(sql, matches);
    if (tables.length === 0) logger.warn({ tables: config.tables }, "no existing table matches; tables created later are captured");
    await warnKeylessTables(sql, tables, logger);
    await warnCascadingKeys(sql, tables, logger);
    this.tracker = new SchemaTracker({
      store: this.history,
      catalog: { readDefinitions: (names) => readDefinitions(sql, names), databaseCharset: (database) => databaseCharset(sql, database) },
      matches,
      binding: { sourceName: config.name, collations: this.collations, zeroDates: config.zero_dates, mariadb: settings.flavor === "mariadb", ...this.limits() },
      logger,
      context,
      binlogFile: () => this.loop.stream?.decoder.through.file,
      sequences,
    });
    signal.throwIfAborted();

    const token = from === null ? null : decodeResumeToken(from.position.resume, config.name);
    this.epoch = token?.epoch ?? 0;
    if (token !== null && token.serverId !== settings.serverId) {
      this.acceptNewHistory(
        token,
        `the checkpoint was taken on the server with server_id ${token.serverId}, this one has ${settings.serverId}; binlog positions are per server`,
        "MYSQL_SERVER_CHANGED",
      );
      this.online.clear();
      await this.startSnapshot(sql, tables);
      return;
    }
    const snapshotWanted = token === null ? config.snapshot.mode !== "never" : token.snapshotIncomplete;
    if (token === null && !snapshotWanted) {
      const here = await currentPosition(sql, settings.flavor, this.gtidStateReader(sql));
      const at = binlogAt(binlogFileIndex(here.file, this.epoch), here.offset);
      await this.tracker.record(at, (await readDefinitions(sql, tables)).values(), "catalog");
      this.beginStreaming({ coordinates: here, skipThrough: null, thresholds: new Map(), lastCheckpoint: null });
      return;
    }
    if (token !== null && !snapshotWanted) {
      const usable = await this.checkResumable(sql, token);
      if (usable) {
        await this.restoreSchema(sql, token, tables);
        this.beginStreaming({
          coordinates: { file: token.file, offset: token.offset, gtid: token.gtid },
          skipThrough: token.skipThrough,
          skipPositionsKey: token.positionsKey,
          thresholds: new Map(Object.entries(token.snapshotThresholds)),
          lastCheckpoint: from!.position,
          preparedXa: token.preparedXa,
        });
        await this.online.backfillAdded(token, tables);
        return;
      }
    }
    if (token?.snapshotIncomplete === true && (await this.resumeSnapshot(sql, token, tables, from!.position))) return;
    this.online.clear();
    await this.startSnapshot(sql, tables);
  }

  /**
   * An initial snapshot that did not finish goes on with the online machinery (docs/snapshots.md):
   * the binlog from the snapshot's start (where the stored rows meet it), the tables it finished
   * not read again, the table part-way through read on after its last stored key, the tables not
   * started read whole. False when it cannot (a checkpoint without the progress, the binlog purged,
   * no usable watermark table, a table left without a primary key): the snapshot starts over.
   */
  private async resumeSnapshot(sql: Sql, token: ResumeToken, tables: readonly CapturedTableRef[], interrupted: Position): Promise<boolean> {
    const startOver = (reason: string) => {
      this.logger.warn({ reason }, `the initial snapshot did not finish and cannot resume (${reason}): starting it over`);
      return false;
    };
    // Checked first, whatever the progress: a snapshot taken again in the old epoch after a reset sorts below the versions the sinks hold.
    const history = await this.binlogHistory(sql, token);
    if (history === "new-history") return false;
    const progress = token.exportedProgress;
    if (progress === undefined) return startOver("its checkpoint does not say how far it got");
    if (history === "purged") return startOver(`the binlog ${token.file} it started at was purged`);
    const problem = await this.online.resumeInitial(sql, progress, tables, snapshotResetPosition(interrupted).change);
    if (problem !== null) return startOver(problem);
    await this.restoreSchema(sql, token, tables);
    // The stream drops what each table's snapshot read holds already (MariaDB: per worker), for the tables whose stored rows stay.
    const kept = new Set([...progress.done, ...progress.reading.map((r) => r.table)]);
    const thresholds = new Map(Object.entries(token.snapshotThresholds).filter(([table]) => kept.has(table)));
    this.beginStreaming({ coordinates: { file: token.file, offset: token.offset, gtid: token.gtid }, skipThrough: null, thresholds, lastCheckpoint: interrupted });
    const tasks = this.online.tasks();
    this.logger.info(
      { start: `${token.file}:${token.offset}`, done: progress.done.length, resumed: tasks.filter((t) => t.lastKey !== null).map((t) => t.table), left: tasks.length },
      "the initial snapshot did not finish: resuming it from the binlog at its start, the tables left read online (docs/snapshots.md)",
    );
    return true;
  }

  /**
   * The checkpoint belongs to another binlog history (a reset binlog, another server): under
   * snapshot.mode: when-needed a new snapshot is taken one binlog history epoch higher, so its rows
   * and its reset markers sort above every version of the old history and the sinks end up holding
   * the server's tables (docs/mysql.md, "A reset binlog or another server"); otherwise refused.
   * Nothing is stored until the new snapshot's first checkpoint, which carries the epoch: a crash
   * before it finds the same history again and takes the same epoch.
   */
  private acceptNewHistory(token: ResumeToken, why: string, code: "MYSQL_BINLOG_RESET" | "MYSQL_SERVER_CHANGED"): void {
    const at = `${token.file}:${token.offset}`;
    const context = { ...this.context, position: at };
    const what = code === "MYSQL_BINLOG_RESET" ? "the binlog was reset (RESET MASTER) or the server replaced; positions no longer order changes, and resuming would skip the new binlog's first transactions" : "the versions this source's topics and sinks hold are the other server's";
    const next = this.epoch + 1;
    if (this.config.snapshot.mode !== "when-needed") {
      throw new SluiceError(
        `${why}: ${what}. To capture this server's binlog from now on, set snapshot.mode: when-needed and start again: a new snapshot is taken in binlog history epoch ${next}, whose rows and reset markers replace every version the topics and sinks hold of the tables it reads (docs/mysql.md#a-reset-binlog-or-another-server)`,
        { code, context },
      );
    }
    // Every version of the old history must sort below the new epoch's: epoch 0 positions do below file 2^24 only (positions.ts).
    let noRoom: string | null = null;
    if (next > MAX_BINLOG_EPOCH) noRoom = `the checkpoint is at binlog history epoch ${this.epoch}, the last there is room for`;
    else if (this.epoch === 0 && binlogFileIndex(token.file) >= EPOCH_FILES - 1) noRoom = "the checkpoint's binlog file number is beyond 2^24-2, below which a binlog history epoch sorts above the old positions";
    if (noRoom !== null) throw new SluiceError(`${why}: ${what}, and ${noRoom}: capture this server into new topics and targets (docs/mysql.md#a-reset-binlog-or-another-server)`, { code, context });
    this.logger.warn({ code, position: at, reason: why, epoch: next }, `${why}: ${what}; taking a new snapshot in binlog history epoch ${next} (snapshot.mode: when-needed), which replaces what the sinks hold of the tables it reads`);
    this.epoch = next;
  }

  /** Whether the binlog still has the token's position; refuses a purged position unless snapshot.mode is when-needed, and a reset binlog. */
  private async checkResumable(sql: Sql, token: ResumeToken): Promise<boolean> {
    const history = await this.binlogHistory(sql, token);
    if (history === "here") return true;
    if (history === "new-history") return false;
    const at = `${token.file}:${token.offset}`;
    const logs = await binaryLogs(sql);
    if (this.config.snapshot.mode === "when-needed") {
      this.logger.warn({ position: at, oldest: logs[0]?.file }, "the checkpoint's binlog was purged; taking a new snapshot (snapshot.mode: when-needed)");
      return false;
    }
    throw new SluiceError(
      `the checkpoint is at ${at}, but the server has purged that binlog (oldest: ${logs[0]?.file ?? "none"}); the changes since are lost to the binlog: re-snapshot by setting snapshot.mode: when-needed or removing the checkpoint, and keep binlogs longer (binlog_expire_logs_seconds / expire_logs_days)`,
      { code: "MYSQL_POSITION_PURGED", context: { ...this.context, position: at } },
    );
  }

  /**
   * Whether the server's binlog is still the history of the token (a streaming checkpoint's or an
   * interrupted snapshot's): "here" (its file there, the same history at its coordinate), "purged"
   * (its file older than the server's oldest). Another history (the file beyond the server's newest,
   * or on MariaDB another GTID at its coordinate: binlog-reset.ts) goes to acceptNewHistory, which
   * refuses it or, under when-needed, moves to the next epoch ("new-history").
   */
  private async binlogHistory(sql: Sql, token: ResumeToken): Promise<"here" | "purged" | "new-history"> {
    const logs = await binaryLogs(sql);
    this.checkEpochRoom(logs);
    const at = `${token.file}:${token.offset}`;
    if (logs.some((log) => log.file === token.file)) {
      const problem = await binlogResetProblem(sql, token, this.gtidStateReader(sql));
      if (problem === null) return "here";
      this.acceptNewHistory(token, problem, "MYSQL_BINLOG_RESET");
      return "new-history";
    }
    const newest = logs.at(-1);
    if (newest !== undefined && binlogFileIndex(newest.file) < binlogFileIndex(token.file)) {
      this.acceptNewHistory(token, `the checkpoint is at ${at}, beyond the server's newest binlog ${newest.file}`, "MYSQL_BINLOG_RESET");
      return "new-history";
    }
    return "purged";
  }

  /** The epoch, once checked that its positions have room for the server's binlog file numbers (positions.ts). */
  private checkEpochRoom(logs: readonly { readonly file: string }[]): number {
    const newest = logs.at(-1);
    if (this.epoch > 0 && newest !== undefined && binlogFileIndex(newest.file) >= EPOCH_FILES) {
      throw new SluiceError(
        `the server's binlog is at ${newest.file}, beyond file number 2^24-1, which binlog history epoch ${this.epoch} has room for: capture this server into new topics and targets (docs/mysql.md#a-reset-binlog-or-another-server)`,
        { code: "MYSQL_BINLOG_EPOCH_FULL", context: this.context },
      );
    }
    return this.epoch;
  }

  private async restoreSchema(sql: Sql, token: ResumeToken, tables: readonly CapturedTableRef[]): Promise<void> {
    const at = binlogAt(binlogFileIndex(token.file, this.epoch), token.offset);
    const applied = await this.tracker!.restore(at);
    const known = new Set(this.tracker!.knownTables());
    const missing = tables.filter((t) => !known.has(`${t.database}.${t.table}`));
    if (applied > 0 && missing.length === 0) return;
    if (missing.length > 0) {
      this.logger.warn({ tables: missing.map((t) => `${t.database}.${t.table}`), position: formatAt(at, token.file, this.epoch) }, "the schema history does not know these tables at the resume position; reading their current definitions");
      await this.tracker!.assume(at, (await readDefinitions(sql, missing)).values());
    }
  }

  /** The GTID state before a coordinate through a binlog dump (before the source's own stream runs: it registers as the same replica). */
  private gtidStateReader(sql: Sql): GtidStateReader {
    const dump = { connection: connectionOptions(this.config, "binlog"), serverId: this.config.server_id, catalog: sql, logger: this.logger, context: this.context };
    return (file, offset) => mariadbGtidStateByDump(dump, file, offset);
  }

  private async startSnapshot(sql: Sql, tables: readonly CapturedTableRef[]): Promise<void> {
    const { config, logger, context, settings } = this;
    const snapshot = await startConsistentSnapshot({
      connection: connectionOptions(config, "snapshot"),
      catalog: sql,
      flavor: settings!.flavor,
      tables,
      workers: Math.max(1, Math.min(config.snapshot.parallelism, tables.length)),
      epoch: this.checkEpochRoom(await binaryLogs(sql)),
      ...(this.options.snapshotLocking === undefined ? {} : { locking: this.options.snapshotLocking }),
      readGtidState: this.gtidStateReader(sql),
      logger,
      context,
    });
    await this.tracker!.record(snapshot.startAt, snapshot.definitions.values(), "snapshot");
    const buffer = this.loop.readAheadBuffer<MysqlSnapshotRow>();
    const position = throughPosition(snapshot.startAt);
    const reader = new SnapshotReader({
      sourceName: config.name,
      workers: snapshot.workers,
      tables,
      definitions: snapshot.definitions,
      position,
      binlogStart: snapshot.start,
      startedAtMs: Date.now(),
      buffer,
      chunkRows: config.snapshot.chunk_rows,
      zeroDates: config.zero_dates,
      logger,
      context,
      ...(this.options.onSnapshotProgress === undefined ? {} : { onProgress: this.options.onSnapshotProgress }),
    });
    const start = snapshot.start;
    const base = { flavor: settings!.flavor, serverId: settings!.serverId, file: start.file, offset: start.offset, gtid: start.gtid, skipThrough: null, epoch: this.epoch };
    // How far the rows handed on got: every checkpoint carries it, so a crash resumes (resumeSnapshot).
    const tracker = new ExportedSnapshotTracker();
    const state: InitialSnapshot<MysqlSnapshotRow, SourceBatch> = {
      reader,
      buffer,
      markers: new SnapshotMarkers(tables.length),
      controller: new AbortController(),
      event: (row) => {
        if (row.event.op === "r") tracker.taken(tableName(row.event.schema), row.key);
        return row.event;
      },
      batch: (events, finished) => {
        if (!finished) {
          tracker.handedOn(events);
          const token = { ...base, snapshotThresholds: Object.fromEntries(reader.thresholds()), snapshotIncomplete: true, exportedProgress: tracker.progress() };
          return this.batch(events, { ...position, resume: encodeResumeToken(token) });
        }
        const thresholds = reader.thresholds();
        const checkpoint = { ...position, resume: encodeResumeToken({ ...base, snapshotThresholds: Object.fromEntries(thresholds), snapshotIncomplete: false }) };
        this.beginStreaming({ coordinates: start, skipThrough: null, thresholds, lastCheckpoint: checkpoint });
        return this.batch(events, checkpoint);
      },
    };
    this.loop.holdSnapshot(state);
    this.loop.runSnapshot();
  }

  private beginStreaming(start: StreamStart): void {
    this.pendingStream = start;
    this.loop.streamNext();
    this.online.start();
  }

  /** The decompression limit the options set, for table bindings (undefined: the default). */
  private limits(): { decompressionLimit?: number } {
    const limit = this.options.decompressionLimit;
    return limit === undefined ? {} : { decompressionLimit: limit };
  }

  private parser(settings: ServerSettings): EventParser {
    const parser = new EventParser(this.collations!, settings.binlogChecksum === "CRC32");
    if (this.options.decompressionLimit !== undefined) parser.decompressionLimit = this.options.decompressionLimit;
    return parser;
  }

  private openStream(): StreamState {
    const { config, logger, context } = this;
    const settings = this.settings!;
    const start = this.pendingStream!;
    const { coordinates } = start;
    const startAt = binlogAt(binlogFileIndex(coordinates.file, this.epoch), coordinates.offset);
    // Whatever the server sends from before the start point (a GTID start may begin earlier in the file) is skipped.
    const floor = throughPosition(startAt);
    const skipThrough = start.skipThrough !== null && start.skipThrough.commit >= floor.commit ? start.skipThrough : floor;
    const buffer = this.loop.readAheadBuffer<Buffer>();
    const heartbeatArrivals = new HeartbeatArrivals();
    const decoder = new StreamDecoder({
      sourceName: config.name,
      flavor: settings.flavor,
      parser: this.parser(settings),
      tracker: this.tracker!,
      start: coordinates,
      epoch: this.epoch,
      skipThrough,
      ...(skipThrough === start.skipThrough ? { skipPositionsKey: start.skipPositionsKey } : {}),
      // The captured tables decide which rows of a compressed transaction take positions (StreamDecoder.positionsKey).
      positionsConfig: JSON.stringify([config.tables, watermarkTableOf(config)]),
      snapshotThresholds: start.thresholds,
      interleave: this.online.start(),
      heartbeatArrivals,
      transactionMetadata: config.transaction_metadata,
      skippedOperations: skippedOperations(config),
      stepPayloads: true,
      // Awaited by the decoder before it goes past the statement, so every checkpoint past it carries the requests.
      onRenamed: (from, to, at) => backfillRenamed(from, to, config.snapshot.mode, (table) => this.queueReread(table, "table-renamed", at), logger, at, context),
      onReread: (table, columns, at, rowsChanged) =>
        rowsChanged === undefined
          ? backfillColumns(table, columns, config.snapshot.mode, () => this.queueReread(table, "columns-changed", at), logger, at, context)
          : this.partitionRows(table, rowsChanged, at),
      ...(start.preparedXa === undefined ? {} : { preparedXa: start.preparedXa }),
      onXaRolledBack: (xid, tables, at, removable) => this.xaRolledBack(xid, tables, at, removable),
      onSavepointRolledBack: (tables, at) => backfillRolledBackSavepoint(tables, config.snapshot.mode, (table) => this.queueReread(table, "savepoint-rolled-back", at), logger, at, context),
      logger,
      context,
    });
    const batcher = new StreamBatcher({
      buffer,
      decoder,
      flavor: settings.flavor,
      serverId: settings.serverId,
      epoch: this.epoch,
      maxBatchEvents: this.options.maxBatchEvents ?? 4096,
      progressIntervalMs: config.heartbeat_interval,
      lastCheckpoint: start.lastCheckpoint,
    });
    const stream = new BinlogStream({
      connection: connectionOptions(config, "binlog"),
      serverId: config.server_id,
      flavor: settings.flavor,
      start: { file: coordinates.file, offset: coordinates.offset, gtid: coordinates.gtid, useGtid: !this.gtidStartRefused && canResumeByGtid(settings, coordinates.gtid) },
      heartbeatMs: config.heartbeat_interval,
      onGtidStartRefused: () => {
        this.gtidStartRefused = true;
      },
      buffer,
      heartbeatArrivals,
      logger,
      context,
    });
    return {
      stream,
      buffer,
      decoder,
      pauses: () => stream.pauseCount,
      start: async () => {
        const catalog = this.catalog === null ? null : sqlOf(this.catalog);
        // A dump of this server_id that a former process left (a frozen capture leader) can hold the new one back: end it (replaced-dump.ts).
        const before = catalog === null ? [] : await userDumpThreads(catalog).catch(() => []);
        await stream.start();
        if (catalog !== null) await endReplacedDumps({ sql: catalog, before, done: () => stream.receivedBytes > 0 || buffer.failed !== null, logger, serverId: config.server_id });
      },
      next: async (signal) => {
        const batch = await batcher.next(signal);
        const events = decoder.partialImagesSeen ? await this.completeCreates(batch.events) : batch.events;
        return this.batch(events, batch.checkpoint, batch.throughTimeMs, batch.transactions);
      },
      stop: async () => {
        const thread = stream.threadId;
        await stream.stop();
        // The server notices a closed replica only when it next writes to it; end its dump thread now.
        if (thread !== null) await this.catalog?.query(`KILL CONNECTION ${thread}`).catch(() => undefined);
      },
    };
  }

  /**
   * An XA transaction rolled back after its prepare: its rows reached the targets at the prepare, though they never
   * were rows of the table. A table read with a reset loses them there. A system-versioned one (or one the catalog
   * cannot say of) cannot be, so the decoder removes by key the rows the prepare handed on, when it knows them all
   * (`removable`), and the read, with no reset, brings back the current rows the transaction had changed. Returns
   * the tables whose rows the decoder removes: none when nothing is read again (snapshot.mode never).
   */
  private async xaRolledBack(xid: string, tables: readonly string[] | null, at: string, removable: readonly string[]): Promise<readonly string[]> {
    const { config, logger, context } = this;
    const removed = new Set<string>();
    // Asked inside the request, so a catalog that fails is retried and reported as any failed request.
    const request = async (table: string): Promise<unknown> => {
      if (!removable.includes(table)) return this.queueReread(table, "xa-rolled-back", at);
      const definition = this.tracker?.definitionOf(table) ?? null;
      const versioning = definition === null ? null : await this.versioning(definition.database, definition.table);
      if (versioning?.versioned === false) return this.queueReread(table, "xa-rolled-back", at, null, true);
      const queued = await this.queueReread(table, "xa-rolled-back", at, "TRUE");
      removed.add(table);
      return queued;
    };
    await backfillRolledBackXa(xid, tables, config.snapshot.mode, request, logger, at, context);
    if (removed.size > 0) logger.warn({ xid, tables: [...removed] }, `the rows XA transaction ${xid} handed on at its prepare are removed from the targets of ${[...removed].join(", ")} by key, as a system-versioned table is read again with no reset`);
    return [...removed];
  }

  /**
   * A table a statement at `at` ("file:offset") asks to read again, named by both: decoded again after a reconnect, it is queued once.
   * `where` null: a read whose closing reset removes the rows the table no longer has, unless the table is
   * system-versioned or the catalog cannot say (`resetChecked` false: not asked yet): a snapshot reads current rows only,
   * and its reset would remove every history row the binlog brought while the server still has them.
   */
  private async queueReread(table: string, origin: string, at: string, where: string | null = null, resetChecked = false): Promise<unknown> {
    if (where === null && !resetChecked) {
      const definition = this.tracker?.definitionOf(table) ?? null;
      const versioning = definition === null ? null : await this.versioning(definition.database, definition.table);
      if (versioning?.versioned !== false) {
        this.logger.warn(
          { table, origin, versioned: versioning?.versioned ?? "unknown" },
          `${table} is ${versioning === null ? "a table the catalog cannot say is not system-versioned" : "system-versioned"}: it is read again with no reset, as a reset would remove every history row its targets hold; rows it no longer has stay in the targets (remove them there, or rebuild the targets if history is not kept)`,
        );
        where = "TRUE";
      }
    }
    return this.snapshots.queue(table, origin, `${origin}@${at}/${table}`, where);
  }

  /** A partition operation moved rows of `table` with no row event: read it again, or not, by `partition_drops` and its versioning (partition-drops.ts). */
  private async partitionRows(table: string, change: RowsChange, at: string): Promise<void> {
    const { config, logger, context } = this;
    const statement = change.what;
    const versioning = await this.versioning(change.database, change.table);
    const plan = partitionRowsPlan(change, config.partition_drops, versioning);
    const versionedText = versioning === null ? "a table the catalog cannot say is not system-versioned" : "a system-versioned table";
    switch (plan) {
      case "skip-history":
        logger.info({ table, statement, partitions: change.partitions }, `${statement} of ${table} removed only history rows of a system-versioned table: nothing is read (a read gives the current rows alone, and its reset would remove every history row the targets hold); the targets keep the history rows it held`);
        return;
      case "keep":
        logger.info({ table, statement, partitions: change.partitions }, `rows of ${table} were removed by ${statement}, which no row event carries: the targets keep them (partition_drops: keep)`);
        return;
      case "keep-versioned":
        logger.warn(
          { table, statement, partitions: change.partitions, versioned: versioning?.versioned ?? "unknown" },
          `rows of ${table} were removed by ${statement}, which no row event carries; it is ${versionedText}, so it is not read again (a read gives the current rows alone, and its reset would remove every history row the targets hold): the targets keep the removed rows, remove them there if they must mirror the server`,
        );
        return;
      case "read-added":
        if (versioning?.versioned !== false) logger.warn({ table, statement }, `${table} is ${versionedText}: it is read again with no reset, as a reset would remove every history row the targets hold`);
        return backfillChangedRows(table, statement, config.snapshot.mode, () => this.queueReread(table, "rows-added", at, "TRUE"), logger, at, context, false);
      case "read-all":
        return backfillChangedRows(table, statement, config.snapshot.mode, () => this.queueReread(table, "rows-changed", at, null, true), logger, at, context);
    }
  }

  /**
   * Whether a table is system-versioned, asked of the catalog when capture reaches the statement; the tracked key
   * (row_end in it) only when the catalog does not list the table (versioningOf).
   * Null: neither can say. A failed read throws a retriable error: capture waits it out rather than guess.
   */
  private async versioning(database: string, table: string): Promise<TableVersioning | null> {
    const name = tableKey(database, table);
    let versioning: TableVersioning | null;
    try {
      if (this.catalog === null) throw new Error("no catalog connection");
      versioning = await tableVersioning(sqlOf(this.catalog), database, table);
    } catch (error) {
      throw new SluiceError(`cannot tell whether ${name} is system-versioned (${(error as Error).message}): it is not read again until the catalog answers, as a read's reset would remove the history rows of a versioned table`, {
        code: "MYSQL_VERSIONING_UNKNOWN",
        retriable: true,
        cause: error,
        context: { ...this.context, table: name },
      });
    }
    return versioningOf(versioning, this.tracker?.definition(database, table)?.key ?? null);
  }

  /** Creates whose row image left columns out (binlog_row_image MINIMAL in a session), completed from the table (partial-images.ts). */
  private async completeCreates(events: readonly ChangeEvent[]): Promise<readonly ChangeEvent[]> {
    const { catalog } = this;
    if (catalog === null) return events;
    try {
      return await completePartialCreates(events, catalog, this.config.zero_dates);
    } catch (error) {
      throw toSluiceError(error, "cannot read the columns a create's row image left out", this.context);
    }
  }

  private batch(events: readonly ChangeEvent[], position: Position, throughTimeMs?: number, transactions: readonly TransactionMarker[] = []): SourceBatch {
    return {
      events,
      checkpoint: { source: this.name, position: this.online.checkpoint(position) },
      ...(throughTimeMs === undefined ? {} : { throughTimeMs }),
      ...(transactions.length === 0 ? {} : { transactions }),
      // The server keeps its binlog regardless of replicas: acknowledging only records progress.
      ack: async () => {
        if (this.acknowledged === null || position.change >= this.acknowledged.change) this.acknowledged = position;
      },
    };
  }

  private async release(): Promise<void> {
    const { catalog } = this;
    this.catalog = null;
    this.pendingStream = null;
    await closeQuietly(catalog);
  }
}

/** GTID resume needs GTIDs on the server and, for MySQL, a set without tags (COM_BINLOG_DUMP_GTID's untagged form). */
function canResumeByGtid(settings: ServerSettings, gtid: string | null): boolean {
  if (gtid === null || gtid.trim() === "") return false;
  if (settings.flavor === "mariadb") return true;
  if (settings.gtidMode !== "ON") return false;
  try {
    return !MysqlGtidSet.parse(gtid).hasTags;
  } catch {
    return false;
  }
}
