/**
 * The PostgreSQL source: connect (publication, slot, snapshot or resume), read batches (snapshot
 * rows, then the pgoutput stream), acknowledge what is durable, close. See docs/postgres.md.
 */
import pg from "pg";
import type { Logger } from "pino";
import type { PostgresSourceConfig } from "../../config/schema.ts";
import { captureBatchBytes, onlineChunkBytes, STANDALONE_READ_AHEAD_BYTES } from "../../config/memory.ts";
import { tableName, UNCHANGED } from "../contracts.ts";
import type { ChangeEvent, Checkpoint, ColumnValue, Position, Source, SourceBatch } from "../contracts.ts";
import { SluiceError } from "../errors.ts";
import type { ErrorContext } from "../errors.ts";
import { AckTracker } from "./ack-tracker.ts";
import { CaptureLoop, CaptureSource } from "../common/capture-loop.ts";
import type { CapturePhase, CaptureStats, InitialSnapshot, OpenedStream } from "../common/capture-loop.ts";
import { CapturedTables } from "./captured-tables.ts";
import { RepublishTries } from "./republish-tries.ts";
import type { CapturedTable } from "./captured-tables.ts";
import type { RelationMessage } from "./protocol/pgoutput.ts";
import { attachedLeaves, leafPartitions, listTables, loadTypeCatalog, publicationInfo, publishedTables, relationInfo, relationsNow, serverInfo, slotInfo, slotLag } from "./catalog.ts";
import type { PublishedTable, ServerInfo, SlotLag, TableRef } from "./catalog.ts";
import { clientConfig, quoteIdent } from "./connection-settings.ts";
import { checkPrivileges } from "./privileges.ts";
import { Heartbeat } from "./heartbeat.ts";
import { SeenPartitions, TableDiscovery } from "./table-discovery.ts";
import { readMovedRow, TRANSACTION_VISIBLE_SQL } from "./moved-row.ts";
import { oneQueryAtATime } from "./serial-queries.ts";
import { formatLsn } from "./lsn.ts";
import { toSluiceError } from "./pg-errors.ts";
import { endClient } from "./end-client.ts";
import { exportedSnapshotMarks, flushLsnFor, snapshotIncompleteResume, snapshotPosition } from "./positions.ts";
import { ExportedSnapshotTracker, resumedSnapshotTasks } from "../common/exported-snapshot-progress.ts";
import type { TableLeft } from "../common/exported-snapshot-progress.ts";
import { ReplicationStream } from "./replication-stream.ts";
import type { WalMessage } from "./replication-stream.ts";
import { WalBuffer } from "./wal-buffer.ts";
import { SnapshotMarkers } from "../common/snapshot-markers.ts";
import { SnapshotReader, snapshotRowKey } from "./snapshot-reader.ts";
import type { SnapshotRow, TableSnapshotProgress } from "./snapshot-reader.ts";
import { insertEvent, truncateEvent } from "./change-events.ts";
import { snapshotResetPosition } from "../common/snapshot-reset.ts";
import type { EventOrigin } from "./change-events.ts";
import { addedTablesStatement, captureNames, createSlot, dropSlot, ensurePublication, freshSnapshotPlan, settleStart } from "./slot-setup.ts";
import { describeSlotWaits } from "./slot-wait.ts";
import { EnumLabels } from "./enum-labels.ts";
import { gapKey, gapWarning, publicationGap, publicationMembers, publicationMemberships, publicationOptions } from "./publication-actions.ts";
import type { PublicationGap } from "./publication-actions.ts";
import { PUBLICATION_INCOMPLETE } from "../common/source-warnings.ts";
import type { SourceWarning } from "../common/source-warnings.ts";
import type { CaptureNames, StandbyCatchUp, StartPlan } from "./slot-setup.ts";
import { StreamBatcher } from "./stream-batcher.ts";
import { BACKFILL_PREFIX, emptyTargetsStatement, StreamDecoder } from "./stream-decoder.ts";
import type { BackfillRequest, TransactionEvent } from "./stream-decoder.ts";
import { tableMatcher } from "../common/table-patterns.ts";
import type { SnapshotLedger } from "../common/incremental-snapshot-state.ts";
import { backfillColumns, backfillRenamed, OnlineSnapshotRunner, requestBackfills } from "../common/online-snapshot-runner.ts";
import type { OnlineSnapshotSession } from "../common/online-snapshot-runner.ts";
import { IncrementalSnapshots } from "./incremental-snapshot.ts";
import { OnlineSnapshotRequests } from "./online-snapshot-requests.ts";
import { SignalTable } from "./signal-table.ts";
import { RelationLayouts } from "./relation-layouts.ts";
import { compareMemberships, decodeCatalogMarks, encodeCatalogMarks, markedOut } from "./catalog-marks.ts";
import type { CatalogMarks, PublicationMarks } from "./catalog-marks.ts";
import type { RelationLayout } from "./relation-layouts.ts";
import { skippedOperations } from "../common/skipped-operations.ts";

export type { SlotLag } from "./catalog.ts";
export type { TableSnapshotProgress } from "./snapshot-reader.ts";
export type { TransactionEvent } from "./stream-decoder.ts";

export interface PostgresSourceOptions {
  readonly logger: Logger;
  /** Most events per batch (default 4096): per batch stored, when capture joins the stream's slices (sliceEvents). */
  readonly maxBatchEvents?: number;
  /**
   * Events per batch the stream hands on while more is already read (default 64, at most
   * maxBatchEvents): capture encodes each as it comes and stores a run of them, up to
   * maxBatchEvents and the batch byte bound, in one write, so decoded changes die young.
   */
  readonly sliceEvents?: number;
  /** Standby status updates at least this often, also while paused (default 10 s; keep below wal_sender_timeout). */
  readonly statusIntervalMs?: number;
  /** Called as the snapshot progresses (after every chunk): for metrics and a terminal display. */
  readonly onSnapshotProgress?: (progress: readonly TableSnapshotProgress[]) => void;
  /** How often the catalog is looked at for new tables while streaming (default 10 s). */
  readonly tableDiscoveryMs?: number;
  /** With heartbeats off, how often the server's keepalives move the acknowledged position on (default 10 s). */
  readonly keepaliveProgressMs?: number;
  /** The catalog connections' lock_timeout (default 30 s, connection-settings.ts; tests set less). */
  readonly catalogLockTimeoutMs?: number;
  /** How long a table the catalog look failed to put in the publication waits before it is tried again (default 5 minutes). */
  readonly republishRetryMs?: number;
  /** How long the creation of the slot runs before a warning names the transactions it waits for (default 10 s; again every minute). */
  readonly slotWaitWarnMs?: number;
  /** Largest logical message content decoded whole: outbox.max_message_bytes, or the deployment's topics.max_record_bytes when that is not set. */
  readonly outboxMaxMessageBytes?: number;
}

/** A batch of the PostgreSQL source: the transaction markers ride along for the transaction topic. */
export interface PostgresSourceBatch extends SourceBatch {
  /** BEGIN/END markers of the transactions in this batch (config transaction_metadata; otherwise empty). */
  readonly transactions: readonly TransactionEvent[];
}

export type PostgresSourcePhase = CapturePhase;

export interface PostgresSourceStats extends CaptureStats {
  /** Latest WAL position received, and the position reported as flushed (durable). */
  readonly receivedLsn: bigint | null;
  readonly flushedLsn: bigint;
}

interface SnapshotState extends InitialSnapshot<SnapshotRow, PostgresSourceBatch> {
  readonly reader: SnapshotReader;
  /** Where every snapshot row sits: position, no transaction, the snapshot's time. */
  readonly origin: EventOrigin;
  /** Where each table's reset sits: one version below its rows. */
  readonly resetOrigin: EventOrigin;
  /** How far the rows handed on got: every checkpoint carries it, so a crash resumes (resumeSnapshot). */
  readonly tracker: ExportedSnapshotTracker;
}

/** What connect reads from the catalog before it needs the checkpoint (prepare). */
interface Inspection {
  readonly catalog: pg.Client;
  readonly server: ServerInfo;
  readonly types: Awaited<ReturnType<typeof loadTypeCatalog>>;
  readonly matches: ReturnType<typeof tableMatcher>;
  readonly tables: readonly TableRef[];
}

interface StreamStart {
  readonly startLsn: bigint;
  readonly flushedLsn: bigint;
  readonly skipThrough: Position | null;
}

interface StreamState extends OpenedStream<PostgresSourceBatch> {
  readonly stream: ReplicationStream;
}

/**
 * With heartbeats off, how often the server's keepalives still move the acknowledged position over
 * WAL without captured changes, so the slot does not pin WAL that only other tables wrote.
 */
const KEEPALIVE_PROGRESS_MS = 10_000;
/** How often the catalog is looked at for new tables matching `tables` while capture streams. */
const TABLE_DISCOVERY_MS = 10_000;
/** A table the catalog look failed to put back in the publication is tried again after this long. */
const REPUBLISH_RETRY_MS = 5 * 60_000;
/** A slot's creation that has run this long is waiting for open transactions: they are named, and again every SLOT_WAIT_REPEAT_MS. */
const SLOT_WAIT_WARN_MS = 10_000;
const SLOT_WAIT_REPEAT_MS = 60_000;
/**
 * Events per stream batch while more is read: small, so capture encodes them while young and they
 * die in the young generation. Measured: batches of 512 were promoted as much as of 4,096, of 64 half.
 */
const SLICE_EVENTS = 64;
const NO_ACK = (): void => undefined;
/** Renames whose truncate is remembered for a request told again (takeUpRenamed). */
const EMPTIED_KEPT = 256;

export class PostgresSource extends CaptureSource<PostgresSourceBatch, StreamState> implements Source {
  readonly name: string;
  readonly kind = "postgres" as const;
  readonly names: CaptureNames;
  private readonly config: PostgresSourceConfig;
  private readonly options: PostgresSourceOptions;
  private readonly logger: Logger;
  private readonly context: ErrorContext;
  protected readonly loop: CaptureLoop<PostgresSourceBatch, StreamState>;
  private catalog: pg.Client | null = null;
  private slotLagQuery: Promise<SlotLag | null> | null = null;
  private server: ServerInfo | null = null;
  private captured: CapturedTables | null = null;
  /** The tables matching the config at the last set-up, and the matcher: new ones are looked for while streaming. */
  private matching: { readonly matches: Inspection["matches"]; readonly tables: readonly TableRef[] } | null = null;
  /** New tables found without a key, reported once each. */
  private readonly keylessNewTables = new Set<string>();
  /** Captured tables found missing from the publication and put back (or warned about): not again until they are back in it. */
  private readonly republished: RepublishTries;
  /** Why the slot cannot deliver the checkpoint's changes, learnt from its stream (a dropped publication): the next start takes a new one (when-needed). */
  private slotBrokenBy: string | null = null;
  /** What the publication's options were last told to keep from the stream (checkPublicationOptions; "" when nothing). */
  private toldPublicationOptions = "";
  private publicationGapNow: PublicationGap | null = null;
  /**
   * Tables handed back as renamed between a listing and the ALTER PUBLICATION adding them (by relid: the name listed,
   * and whether the look's republish is still to skip it under that dead name), so the next look adds them under
   * their name then and tells them as renamed, not as taken out of the publication.
   */
  private readonly renamedWhileAdded = new Map<number, { name: string; skip: boolean }>();
  private pendingStream: StreamStart | null = null;
  /** prepare()'s catalog reads, until a connect takes them up. */
  private inspecting: Promise<Inspection> | null = null;
  /** Resuming an existing slot: changes committed at or before this LSN were handed on by an earlier run (0 for a new slot). */
  private handedOnThrough = 0n;
  /**
   * The tables an exported initial snapshot read and its rows' version (the slot's first restart_lsn - 1): online
   * snapshots of them read above it, or their rows would not replace the snapshot's.
   */
  private exportedRead: { readonly tables: readonly string[]; readonly version: bigint } | null = null;
  private ackedFlush = 0n;
  private readonly acks = new AckTracker((lsn) => this.acknowledged(lsn));
  private readonly online: OnlineSnapshotRunner<IncrementalSnapshots>;
  /** What capture published of each relation, stored with the checkpoints; `restored`: what the checkpoint resumed from had (null: unknown). */
  private readonly layouts: RelationLayouts;
  private restoredLayouts: ReadonlyMap<number, RelationLayout> | null = null;
  /** What Relation messages of the stream set off (a rename's or changed columns' read), awaited before the stream goes past them. */
  private told: Promise<unknown>[] = [];
  /** Since when a standby was seen behind the checkpoint, across connect attempts (planStart). */
  private readonly standbyCatchUp: StandbyCatchUp = { behindSinceMs: null };
  /** By request id, the LSN past the truncate a rename's request wrote (takeUpRenamed), the last EMPTIED_KEPT. */
  private readonly emptiedFor = new Map<string, bigint>();
  /** The captured partitioned tables' leaf partitions at the last catalog look, kept across streams (TableDiscovery). */
  private readonly seenPartitions = new SeenPartitions();
  /** The captured tables' enum labels at the last catalog look, kept across streams as seenPartitions is. */
  private readonly enumLabels = new EnumLabels();
  /** The publication's membership rows at the last catalog look (readReaddedTables), kept across streams. */
  private memberships: PublicationMarks | null = null;
  /** The marks as saveMarks last encoded them: an exported snapshot's checkpoints carry them (snapshotIncompleteResume). */
  private marksText: string | null = null;
  /** Tables found taken out and put back whose read again could not be queued yet (by relid; `was`: the row before), asked for again at each look. */
  private readonly readdedPending = new Map<number, { table: TableRef; member: number; was: number; failures: number }>();
  /**
   * Whether this source object took up the catalog looks' marks (memberships, partitions, enum labels) at a connect: a
   * reconnect keeps its own then (as new as any checkpoint, their reads queued), a first connect takes the checkpoint's.
   */
  private marksTaken = false;
  /** Partitioned tables whose partitions Sluice's role may not read directly, told once (readAttachedPartitions). */
  private readonly toldUnreadablePartitions = new Set<number>();
  /** Online snapshots (sluice snapshot, the signal table, tables added later): see incremental-snapshot.ts. */
  readonly snapshots = new OnlineSnapshotRequests({
    config: () => this.config,
    publication: () => this.names.publication,
    catalog: () => this.catalog,
    captured: () => this.captured,
    serverVersion: () => this.server?.version ?? 0,
    engine: () => this.online.engine,
    queued: () => this.online.ledger.tasks,
    stored: (id) => this.online.ledger.stored(id),
    context: () => this.context,
  });

  constructor(config: PostgresSourceConfig, options: PostgresSourceOptions) {
    super();
    this.config = config;
    this.options = options;
    this.name = config.name;
    this.names = captureNames(config);
    this.logger = options.logger.child({ component: "postgres-source", source: config.name });
    this.context = { component: "postgres-source", source: config.name, server: `${config.host}:${config.port}` };
    this.online = new OnlineSnapshotRunner({ logger: this.logger, context: this.context });
    this.layouts = new RelationLayouts(this.logger);
    this.republished = new RepublishTries(options.republishRetryMs ?? REPUBLISH_RETRY_MS);
    this.loop = new CaptureLoop<PostgresSourceBatch, StreamState>({
      context: this.context,
      maxBatchEvents: options.maxBatchEvents ?? 4096,
      readAheadBytes: config.max_buffer_bytes ?? STANDALONE_READ_AHEAD_BYTES,
      toError: (error, what) => toSluiceError(error, what, this.context),
      prepare: (from) => {
        this.acks.reset();
        this.ackedFlush = 0n;
        // A reconnect keeps the requests not yet stored with a checkpoint (a backfill queued just before the connection dropped).
        this.online.restore(from);
        this.restoredLayouts = this.layouts.restore(from);
        this.told = [];
      },
      setUp: (from, signal) => this.setUp(from, signal),
      openStream: () => this.openStream(),
      online: this.online,
      release: () => this.release(),
    });
  }

  stats(): PostgresSourceStats {
    const streaming = this.loop.stream;
    return {
      ...this.loop.stats(),
      receivedLsn: streaming?.stream.received ?? null,
      flushedLsn: streaming?.stream.flushed ?? this.ackedFlush,
    };
  }

  /** The slot's lag and retained WAL on the server (sluice_postgres_slot_* metrics); null when not connected or no slot. */
  async slotMetrics(): Promise<SlotLag | null> {
    const catalog = this.catalog;
    if (catalog === null) return null;
    // One query at a time: scrapes while the server does not answer share it instead of queueing on the connection.
    this.slotLagQuery ??= slotLag(catalog, this.names.slot)
      .catch(() => null)
      .finally(() => (this.slotLagQuery = null));
    return this.slotLagQuery;
  }

  /**
   * Starts what connect does before it needs the checkpoint, reading only (the catalog connection,
   * the server's settings, its types and tables), so it overlaps the caller's own start (the
   * capture lease's fencing, the slot takeover, the checkpoint read); the next connect takes it up.
   */
  prepare(): void {
    if (this.inspecting !== null) return;
    const inspecting = this.inspect();
    inspecting.catch(() => undefined);
    this.inspecting = inspecting;
  }

  private catalogLimits(): { catalogLockTimeoutMs?: number } {
    return this.options.catalogLockTimeoutMs === undefined ? {} : { catalogLockTimeoutMs: this.options.catalogLockTimeoutMs };
  }

  private async inspect(): Promise<Inspection> {
    const { config, logger, context } = this;
    // Shared by capture's parts that query on their own (heartbeat, discovery, metrics' slot lag, moved rows).
    const catalog = oneQueryAtATime(new pg.Client(clientConfig(config, "catalog", this.catalogLimits())));
    catalog.on("error", (error) => logger.warn({ err: error.message }, "catalog connection failed"));
    try {
      await catalog.connect();
      const server = await serverInfo(catalog);
      checkServer(server, context);
      const types = await loadTypeCatalog(catalog);
      const matches = tableMatcher(config.tables);
      const tables = await listTables(catalog, matches);
      return { catalog, server, types, matches, tables };
    } catch (error) {
      await catalog.end().catch(() => undefined);
      throw error;
    }
  }

  /** Closes a preparation no connect took up, then the source. */
  override async close(): Promise<void> {
    const inspecting = this.inspecting;
    this.inspecting = null;
    await inspecting?.then((inspection) => inspection.catalog.end()).catch(() => undefined);
    await super.close();
  }

  private async setUp(from: Checkpoint | null, signal: AbortSignal): Promise<void> {
    const { config, logger, names, context } = this;
    // Kept in `inspecting` until it is done, so a close meanwhile still ends its connection.
    const inspecting = this.inspecting ?? this.inspect();
    this.inspecting = inspecting;
    let inspection: Inspection;
    try {
      inspection = await inspecting;
    } finally {
      if (this.inspecting === inspecting) this.inspecting = null;
    }
    const { catalog, server, types, matches, tables } = inspection;
    this.catalog = catalog;
    this.server = server;
    this.matching = { matches, tables };
    signal.throwIfAborted();
    if (tables.length === 0) {
      throw new SluiceError(`no table of database "${server.database}" matches ${config.tables.join(", ")}`, { code: "PG_NO_TABLES", context });
    }
    // A new snapshot's old slot is dropped first (settleStart): what made the plan (a publication dropped while stopped, the
    // broken slot a stream showed) is then kept by the slot's absence, whatever fails before the new slot is made.
    const plan = await settleStart(catalog, config, names, from, server, logger, context, this.standbyCatchUp, this.slotBrokenBy);
    this.slotBrokenBy = null;
    // Resuming a stream, a table the publication lacks may have been dropped and created again (or renamed away and
    // another created) while Sluice was stopped: WAL has no record of that, and its targets hold the old table's rows.
    // A table never captured has no rows there; one whose capture stopped has stale ones: all are emptied, then backfilled
    // (asked for in the ALTER PUBLICATION's transaction: the stream hands the request on, see backfillStatement).
    // But with a publication that leaves out delete or truncate (deleted rows kept in the sinks on purpose), one whose
    // relid the checkpoint knows was only taken out of the publication: not emptied, its backfill has no reset (wholeRead).
    const backfill = plan.kind === "stream" && config.snapshot.mode !== "never";
    const keptLeftOut = backfill ? (await this.wholeRead()).leftOut : [];
    const capturedBefore = keptLeftOut.length > 0 ? knownRelids(this.restoredLayouts, this.layouts.restoredMarks()) : new Set<number>();
    const emptied = (t: TableRef): boolean => backfill && !capturedBefore.has(t.relid);
    // A table the ALTER cannot lock in time (a long transaction, CREATE INDEX CONCURRENTLY, an anti-wraparound vacuum) is
    // left out while the others are captured, and tried again by the catalog looks (RepublishTries), with a backfill.
    const locked: TableRef[] = [];
    const renamed: TableRef[] = [];
    const added = await ensurePublication(catalog, config, names, tables, server.version, logger, context, emptied, backfill, (tables, why) => (why === "renamed" ? renamed : locked).push(...tables));
    this.handedBackRenamed(renamed);
    const addedEmptied = added.filter(emptied);
    if (addedEmptied.length > 0) logger.info({ tables: addedEmptied.map((t) => `${t.schema}.${t.table}`) }, "tables added to the publication: their targets are emptied, then filled with their rows");
    const addedKept = backfill ? added.filter((t) => !emptied(t)) : [];
    if (addedKept.length > 0) {
      logger.warn(
        { publication: names.publication, tables: addedKept.map((t) => `${t.schema}.${t.table}`) },
        `captured tables were out of publication "${names.publication}" (taken out while Sluice was stopped): their changes meanwhile were not streamed; put them back; their rows are read again ` +
          `by an online snapshot with no reset, as the publication leaves out ${keptLeftOut.join(" and ")}: the rows kept on purpose stay in the sinks (their targets are not emptied)`,
      );
    }
    const publication = await publicationInfo(catalog, names.publication);
    const published = new Map((await publishedTables(catalog, names.publication, server.version)).map((t) => [`${t.schema}.${t.table}`, t]));
    // The tables start could not put in the publication were warned about: the catalog looks while streaming do not again,
    // except those a lock kept out, tried again after a while, and those renamed meanwhile, at the first look.
    this.republished.clear();
    const lockedOut = new Set([...locked, ...renamed].map((t) => t.relid));
    if (!publication?.allTables) for (const t of tables) if (!published.has(`${t.schema}.${t.table}`) && !lockedOut.has(t.relid)) this.republished.markDone(t.relid);
    this.republished.tried(locked, [], Date.now());
    await checkPrivileges(catalog, publication?.allTables ? tables : tables.filter((t) => published.has(`${t.schema}.${t.table}`)), context);
    // Resuming the stream, each relation's first Relation message is compared with what was published before (renames
    // while stopped); a relation no longer listed was dropped (or renamed out of the tables): forgotten. A new snapshot
    // reads every table as it is now.
    const listed = new Set(tables.map((t) => t.relid));
    const restored = plan.kind === "stream" ? this.restoredLayouts : null;
    const previous = restored === null ? null : new Map([...restored].filter(([relid]) => listed.has(relid)));
    if (plan.kind === "stream") this.layouts.prune((relid) => listed.has(relid));
    else this.layouts.restore(null);
    // Streaming without an initial snapshot, the record may lack tables no change has published yet (a checkpoint from
    // before it was kept, snapshot.mode never): they are read from the catalog now (an initial snapshot reads them all).
    if (plan.kind === "stream" || plan.kind === "create-and-stream") await this.seedLayouts(catalog, tables, server.version);
    // Resuming an exported snapshot, the marks its checkpoints carry (read before it began): a catalog change made while
    // it was read or while Sluice was stopped is seen at the first look. The tables this start put back have no backfill
    // then (nothing is emptied or asked for): the looks compare them too.
    const snapshotMarks = plan.kind === "resume-snapshot" && from !== null ? exportedSnapshotMarks(from.position) : null;
    await this.takeUpMarks(catalog, plan.kind === "stream", tables, plan.kind === "resume-snapshot" ? [] : added, locked, publication?.allTables === true, snapshotMarks);
    this.captured = new CapturedTables({
      sourceName: config.name,
      database: server.database,
      keyColumns: config.key_columns,
      matches,
      types,
      logger,
      // Not awaited by CapturedTables: the stream waits for what they set off at their Relation message (relation()).
      onRenamed: (from, to, at) => this.takeUpRenamed(from, to, at),
      onColumnsChanged: (table, columns, at, what) => this.readColumnsAgain(table, columns, at, what),
      ...(previous === null ? {} : { previous }),
      onPublished: (relid, layout, at, settled) => {
        this.layouts.note(relid, layout, at, settled);
        if (settled !== undefined && at !== null) this.told.push(settled);
      },
    });
    signal.throwIfAborted();

    this.handedOnThrough = plan.kind === "stream" ? plan.startLsn : 0n;
    this.exportedRead = null;
    if (plan.kind === "stream") {
      this.pendingStream = plan;
      await this.loop.openStream();
      if (config.snapshot.mode === "never") this.notBackfilled(added);
    } else if (plan.kind === "create-and-stream") {
      const { consistentPoint } = await this.createSlot(server, false);
      this.pendingStream = { startLsn: consistentPoint, flushedLsn: consistentPoint, skipThrough: null };
      await this.loop.openStream();
    } else {
      const snapshotTables = publication?.allTables ? tables : tables.filter((t) => published.has(`${t.schema}.${t.table}`));
      let fresh: StartPlan = plan;
      if (plan.kind === "resume-snapshot") {
        const keyless = await this.resumeSnapshot(plan, snapshotTables);
        if (keyless === null) return;
        fresh = freshSnapshotPlan(config, names, await slotInfo(catalog, names.slot), `the initial snapshot did not finish and table ${keyless} has no primary key or replica identity index to resume by: starting over with a new slot and snapshot`, logger, context);
      }
      // A new initial snapshot reads every table: online snapshots in progress are moot.
      this.online.replace();
      // The plan's slot was dropped by settleStart; one an unresumable snapshot leaves is dropped now.
      if (fresh !== plan && fresh.kind === "snapshot" && fresh.dropExisting) await dropSlot(catalog, names);
      if (config.snapshot.method === "online") await this.startOnlineInitialSnapshot(server, snapshotTables);
      else await this.startSnapshot(server, snapshotTables, published);
    }
  }

  private async createSlot(server: ServerInfo, exportSnapshot: boolean, whileExported?: (snapshotName: string, consistentPoint: bigint) => Promise<void>) {
    const replication = new pg.Client(clientConfig(this.config, "replication"));
    replication.on("error", (error) => this.logger.warn({ err: error.message }, "replication connection failed"));
    try {
      await replication.connect();
      const stopWatching = this.watchSlotCreation();
      const created = await createSlot(replication, this.names, exportSnapshot, server.version).finally(stopWatching);
      this.logger.info({ slot: this.names.slot, consistentPoint: formatLsn(created.consistentPoint), exported: created.snapshotName }, "replication slot created");
      // The exported snapshot lives only while this connection stays idle: import it before closing.
      if (whileExported !== undefined && created.snapshotName !== null) await whileExported(created.snapshotName, created.consistentPoint);
      return created;
    } finally {
      await replication.end().catch(() => undefined);
    }
  }

  /**
   * Warns while CREATE_REPLICATION_SLOT has not returned: PostgreSQL creates a logical slot once every transaction that
   * had a transaction id when it began has ended, so one left open (idle in transaction, a forgotten prepared
   * transaction) holds the start without a word. The warning names them (slot-wait.ts), after slotWaitWarnMs and then
   * every minute. Returns what stops it.
   */
  private watchSlotCreation(): () => void {
    const began = Date.now();
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;
    const look = async (): Promise<void> => {
      const waitedSeconds = Math.floor((Date.now() - began) / 1000);
      const catalog = this.catalog;
      const open = catalog === null ? null : await describeSlotWaits(catalog, waitedSeconds).catch((error: unknown) => `(not known: ${(error as Error).message})`);
      if (stopped) return;
      this.logger.warn(
        { slot: this.names.slot, waitedSeconds, transactions: open },
        `replication slot "${this.names.slot}" is still being created after ${waitedSeconds} s: PostgreSQL creates it only once the transactions that had written when it began have ended, ` +
          (open === null
            ? "and none is seen open now (it may end soon)"
            : `and these are open: ${open}. End them (COMMIT or ROLLBACK in the session, or pg_terminate_backend(pid); COMMIT PREPARED or ROLLBACK PREPARED 'gid') and capture starts`),
      );
      timer = setTimeout(() => void look(), SLOT_WAIT_REPEAT_MS);
      timer.unref();
    };
    timer = setTimeout(() => void look(), this.options.slotWaitWarnMs ?? SLOT_WAIT_WARN_MS);
    timer.unref();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }

  private async startSnapshot(server: ServerInfo, tables: readonly TableRef[], published: ReadonlyMap<string, PublishedTable>): Promise<void> {
    const buffer = this.loop.readAheadBuffer<SnapshotRow>();
    const controller = new AbortController();
    let state: SnapshotState | null = null;
    const { consistentPoint } = await this.createSlot(server, true, async (snapshotName, consistentPoint) => {
      const slot = await slotInfo(this.catalog!, this.names.slot);
      const origin: EventOrigin = {
        sourceName: this.name,
        position: snapshotPosition(consistentPoint, slot?.restartLsn ?? consistentPoint),
        txId: null,
        commitTimeMs: Date.now(),
        snapshot: true,
      };
      const reader = new SnapshotReader({
        client: clientConfig(this.config, "snapshot"),
        snapshotName,
        startedAtMs: origin.commitTimeMs,
        tables,
        published,
        captured: this.captured!,
        buffer,
        parallelism: this.config.snapshot.parallelism,
        chunkRows: this.config.snapshot.chunk_rows,
        logger: this.logger,
        context: this.context,
        ...(this.options.onSnapshotProgress === undefined ? {} : { onProgress: this.options.onSnapshotProgress }),
      });
      const resetOrigin: EventOrigin = { ...origin, position: snapshotResetPosition(origin.position) };
      this.exportedRead = { tables: tables.map((t) => `${t.schema}.${t.table}`), version: origin.position.change };
      const tracker = new ExportedSnapshotTracker();
      state = {
        reader,
        buffer,
        origin,
        resetOrigin,
        controller,
        markers: new SnapshotMarkers(tables.length),
        tracker,
        event: (row) => {
          if (row.values !== null) tracker.taken(tableName(row.table.schema), snapshotRowKey(row));
          return row.values === null ? truncateEvent(row.table, resetOrigin) : insertEvent(row.table, row.values, origin, "r");
        },
        batch: (events, finished) => {
          if (finished) return this.batch(events, [], origin.position);
          tracker.handedOn(events);
          return this.batch(events, [], { ...origin.position, resume: snapshotIncompleteResume(tracker.progress(), this.marksText) });
        },
      };
      this.loop.holdSnapshot(state);
      await reader.importSnapshot();
    });
    if (state === null) throw new SluiceError("the server exported no snapshot", { code: "PG_SNAPSHOT_MISSING", context: this.context });
    this.pendingStream = { startLsn: consistentPoint, flushedLsn: consistentPoint, skipThrough: null };
    this.loop.runSnapshot();
  }

  private openStream(): StreamState {
    const start = this.pendingStream!;
    const catalog = this.catalog!;
    const captured = this.captured!;
    const buffer = this.loop.readAheadBuffer<WalMessage>((maxBytes) => new WalBuffer(maxBytes));
    const online = this.online.start((ledger, finished) => this.onlineSession(ledger, finished));
    const decoder = new StreamDecoder({
      sourceName: this.name,
      tables: captured,
      resolveRelation: (message, at) => this.relation(captured, catalog, message, at),
      transactionMetadata: this.config.transaction_metadata,
      skippedOperations: skippedOperations(this.config),
      skipThrough: start.skipThrough,
      interleave: online,
      backfill: { slot: this.names.slot, request: (request) => this.backfill(request) },
      recreated: {
        slot: this.names.slot,
        table: async (schemaName, tableName) => {
          const known = captured.find({ schema: schemaName, table: tableName });
          if (known !== undefined) return known;
          const ref = (await listTables(catalog, (s, t) => s === schemaName && t === tableName))[0];
          return ref === undefined ? null : captured.fromCatalog(catalog, ref.relid, undefined);
        },
      },
      ...(this.config.outbox?.message_prefix === undefined ? {} : { outboxMessages: { prefix: this.config.outbox.message_prefix, database: this.config.database, ...this.outboxMessageBytes() } }),
    });
    const maxBatchEvents = this.options.maxBatchEvents ?? 4096;
    const sliceEvents = Math.max(1, Math.min(this.options.sliceEvents ?? SLICE_EVENTS, maxBatchEvents));
    const maxRunBytes = captureBatchBytes(buffer.maxBytes);
    // The slices handed on since the last one without `more`: together within the batch bounds.
    const run = { open: false, events: 0, bytes: 0 };
    const batcher = new StreamBatcher({
      buffer,
      decoder,
      maxBatchEvents: sliceEvents,
      progressIntervalMs: this.config.heartbeat_interval > 0 ? this.config.heartbeat_interval : (this.options.keepaliveProgressMs ?? KEEPALIVE_PROGRESS_MS),
      lastCheckpoint: start.skipThrough,
    });
    const stream = new ReplicationStream({
      client: clientConfig(this.config, "replication"),
      slot: this.names.slot,
      publication: this.names.publication,
      startLsn: start.startLsn,
      flushedLsn: start.flushedLsn > this.ackedFlush ? start.flushedLsn : this.ackedFlush,
      buffer,
      statusIntervalMs: this.statusIntervalMs(),
      receiveTimeoutMs: this.config.wal_receiver_timeout,
      logger: this.logger,
      context: this.context,
      publicationDropped: () => {
        if (this.config.snapshot.mode !== "when-needed") return false;
        this.slotBrokenBy = `publication "${this.names.publication}" was dropped while the slot still had changes to stream, which it cannot stream now`;
        return true;
      },
    });
    const heartbeat = new Heartbeat(catalog, this.config.heartbeat_interval, this.names.slot, this.logger);
    const matching = this.matching!;
    const discovery = new TableDiscovery({
      intervalMs: this.options.tableDiscoveryMs ?? TABLE_DISCOVERY_MS,
      list: () => listTables(catalog, matching.matches),
      known: matching.tables,
      add: (tables, recreated) => this.takeUpNewTables(tables, recreated),
      vacated: (relid, name) => captured.vacate(relid, name),
      republish: (known) => this.republish(known, () => stream.publicationMissing()),
      partitions: {
        seen: this.seenPartitions,
        list: (known) => leafPartitions(catalog, known),
        attached: (table, partitions) => this.readAttachedPartitions(table, partitions),
        rewritten: (table, partitions, gone, reattached) => this.readRewrittenPartitions(table, partitions, gone, reattached),
      },
      enumLabels: (known) => this.readRenamedEnumLabels(catalog, known),
      looked: () => this.saveMarks(),
      logger: this.logger,
    });
    return {
      stream,
      buffer,
      pauses: () => stream.pauseCount,
      start: async () => {
        await stream.start();
        heartbeat.start();
        discovery.start();
      },
      next: async (signal) => {
        const batch = await batcher.next(signal, run.open);
        const bytes = batcher.lastBatchBytes;
        run.events += batch.events.length;
        run.bytes += bytes;
        // The next slice is assumed about this one's size: the run stays within the bounds of one batch.
        run.open = batch.events.length > 0 && buffer.length > 0 && run.events + sliceEvents <= maxBatchEvents && run.bytes + bytes <= maxRunBytes;
        if (!run.open) {
          run.events = 0;
          run.bytes = 0;
        }
        return this.batch(await this.fillMovedToast(batch.events), batch.transactions, batch.checkpoint, run.open);
      },
      stop: async () => {
        heartbeat.stop();
        await discovery.stop();
        await stream.stop();
      },
    };
  }

  /** Often enough that the server's wal_sender_timeout never ends a connection that is only paused. */
  private statusIntervalMs(): number {
    const wanted = this.options.statusIntervalMs ?? 10_000;
    const timeout = this.server?.walSenderTimeoutMs ?? 0;
    return timeout > 0 ? Math.max(100, Math.min(wanted, Math.floor(timeout / 3))) : wanted;
  }

  /**
   * A key-changing update arrives as a create of the new key whose unchanged TOAST columns pgoutput
   * did not send, and no sink holds a row under the new key to keep them from. Those columns are
   * read from the table by the new key. The value read is the row's current one: if the row changed
   * again since, its later events follow, so a sink may show a newer value early but never loses it.
   */
  private async fillMovedToast(events: readonly ChangeEvent[]): Promise<readonly ChangeEvent[]> {
    if (!events.some((e) => e.op === "c" && e.after !== null && hasUnchanged(e.after))) return events;
    const filled: ChangeEvent[] = [];
    for (const event of events) {
      const after = event.after;
      const missing = event.op === "c" && after ? Object.keys(after).filter((name) => after[name] === UNCHANGED) : [];
      const table = missing.length > 0 ? this.captured?.find(event.schema) : undefined;
      const keyValues = event.schema.key.map((name) => event.key[name]);
      if (!table || !after || this.catalog === null || !keyValues.every((v) => typeof v === "string" || typeof v === "number" || typeof v === "bigint")) {
        filled.push(event);
        continue;
      }
      const where = event.schema.key.map((name, i) => `${quoteIdent(name)}::text = $${i + 1}`).join(" AND ");
      const query = {
        text: `SELECT ${missing.map((name) => `${quoteIdent(name)}::text AS ${quoteIdent(name)}`).join(", ")} FROM ${quoteIdent(event.schema.schema)}.${quoteIdent(event.schema.table)} WHERE ${where}`,
        values: keyValues.map(String),
      };
      const catalog = this.catalog;
      const txId = event.source.txId;
      const row = await readMovedRow({
        find: async () => (await catalog.query<Record<string, string | null>>(query)).rows[0],
        visible: async () => txId !== null && (await catalog.query<{ visible: string }>({ text: TRANSACTION_VISIBLE_SQL, values: [txId] })).rows[0]?.visible === "true",
        sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
      });
      if (!row) {
        filled.push(event);
        continue;
      }
      const values: Record<string, ColumnValue> = { ...after };
      for (const name of missing) {
        const text = row[name];
        const column = table.columns.find((c) => c.name === name);
        if (column && text !== undefined) values[name] = text === null ? null : column.decode(text);
      }
      filled.push({ ...event, after: values });
    }
    return filled;
  }

  /**
   * snapshot.method online: no exported snapshot; the stream starts at the new slot's consistent
   * point and every table is read by an online snapshot, whose progress rides in the checkpoints,
   * so a crash resumes at the next chunk instead of starting over. Every table must have a chunk key.
   */
  private async startOnlineInitialSnapshot(server: ServerInfo, tables: readonly TableRef[]): Promise<void> {
    const { consistentPoint } = await this.createSlot(server, false);
    this.pendingStream = { startLsn: consistentPoint, flushedLsn: consistentPoint, skipThrough: null };
    await this.loop.openStream();
    const ordered = [...tables].sort((a, b) => b.estimatedRows - a.estimatedRows);
    for (const ref of ordered) await this.snapshots.request(`${ref.schema}.${ref.table}`, null, "initial");
    this.logger.info({ tables: ordered.length, slot: this.names.slot }, "initial snapshot queued as online snapshots (snapshot.method online)");
  }

  /**
   * An exported initial snapshot that did not finish goes on with the online machinery, on the same
   * slot: the stream starts at the slot's consistent point (where the stored rows meet it), the
   * tables it finished are not read again, the table part-way through goes on after its last
   * stored key, and the tables not started are read whole, each ending with its reset. Returns
   * null, or a table left that has no chunk key (then the snapshot starts over).
   */
  private async resumeSnapshot(plan: Extract<StartPlan, { kind: "resume-snapshot" }>, tables: readonly TableRef[]): Promise<string | null> {
    const done = new Set(plan.progress.done);
    const left: TableLeft[] = [];
    for (const ref of tables) {
      const name = `${ref.schema}.${ref.table}`;
      if (done.has(name)) continue;
      try {
        const { table } = await this.snapshots.resolve(name);
        left.push({ name, keyLength: table.keyIndexes.length, keyColumns: table.schema.key, estimatedRows: ref.estimatedRows });
      } catch (error) {
        if (error instanceof SluiceError && error.code === "SNAPSHOT_NO_CHUNK_KEY") return name;
        throw error;
      }
    }
    const tasks = resumedSnapshotTasks(plan.progress, left, plan.resetVersion);
    // The exported snapshot's rows are one above its resets (the tables it finished; those left are read on by the tasks).
    this.exportedRead = { tables: [...done], version: plan.resetVersion + 1n };
    this.online.replace(tasks);
    this.pendingStream = { startLsn: plan.consistentPoint, flushedLsn: plan.consistentPoint, skipThrough: null };
    await this.loop.openStream();
    this.logger.info(
      { slot: this.names.slot, consistentPoint: formatLsn(plan.consistentPoint), done: done.size, resumed: tasks.filter((t) => t.lastKey !== null).map((t) => t.table), left: tasks.length },
      "the initial snapshot did not finish: resuming it on the same slot, the tables left read online (docs/snapshots.md)",
    );
    return null;
  }

  /**
   * Tables created while streaming (TableDiscovery): added to the publication as at start (or already in a FOR
   * ALL TABLES one), then backfilled; changes committed after the ALTER PUBLICATION are streamed.
   */
  private async takeUpNewTables(tables: readonly TableRef[], recreated: ReadonlySet<number>): Promise<readonly TableRef[]> {
    const catalog = this.catalog!;
    const keyed: TableRef[] = [];
    for (const table of tables) {
      const info = await relationInfo(catalog, table.relid);
      if (info === null) continue;
      const name = `${table.schema}.${table.table}`;
      if (info.primaryKey !== null || info.identityIndex !== null || this.config.key_columns[name] !== undefined) keyed.push(table);
      else if (!this.keylessNewTables.has(name)) {
        // A migration often adds the key right after creating the table: taken up keyless, it could not be backfilled in chunks.
        this.keylessNewTables.add(name);
        this.logger.warn({ table: name }, `new table ${name} has no primary key or replica identity index yet: it is captured once it has one (or a key_columns entry and a restart)`);
      }
    }
    if (keyed.length === 0) return [];
    this.logger.info({ tables: keyed.map((t) => `${t.schema}.${t.table}`) }, "new tables match the source's tables: capturing them from now on and reading their rows");
    const again = keyed.filter((t) => recreated.has(t.relid));
    for (const table of again) {
      const name = `${table.schema}.${table.table}`;
      this.logger.warn({ table: name }, `table ${name} was dropped and created again: its targets are emptied, then filled with the new table's rows`);
    }
    const publication = await publicationInfo(catalog, this.names.publication);
    const backfill = this.config.snapshot.mode !== "never";
    // The truncate comes first in the stream (before the table joins the publication), then the backfill's request.
    const emptied = (t: TableRef) => recreated.has(t.relid);
    let added: readonly TableRef[] = keyed;
    if (!publication?.allTables) {
      const locked: TableRef[] = [];
      const renamed: TableRef[] = [];
      added = await ensurePublication(catalog, this.config, this.names, keyed, this.server?.version ?? 0, this.logger, this.context, emptied, backfill, (tables, why) =>
        (why === "renamed" ? renamed : locked).push(...tables),
      );
      // Those it could not add were warned about: not again as taken out of the publication (republish), except those a
      // lock kept out, tried again after a while, and those renamed meanwhile, at the next look.
      const retried = (t: TableRef) => locked.includes(t) || renamed.includes(t);
      this.handedBackRenamed(renamed);
      for (const t of keyed) if (!added.includes(t) && !retried(t)) this.republished.markDone(t.relid);
      this.republished.tried(locked, [], Date.now());
      await this.readAlreadyPublished(catalog, keyed.filter((t) => !added.includes(t) && !retried(t)), emptied, backfill);
    }
    else if (again.length > 0 || backfill) await catalog.query(addedTablesStatement(this.names.slot, keyed, "", emptied, backfill));
    if (!backfill) this.notBackfilled(added);
    return keyed;
  }

  /**
   * New tables found already in the publication: put there by hand or by a tool (Sluice's own ALTER PUBLICATION pins
   * each name to the table it listed first, sameTablesStatement, so it no longer adds one created again). No ALTER of
   * Sluice's carries a request for them, so their rows would never be read: the same messages are written on their own
   * (a truncate first for one created again, then the backfill), as for a publication of all tables.
   */
  private async readAlreadyPublished(catalog: pg.Client, tables: readonly TableRef[], emptied: (table: TableRef) => boolean, backfill: boolean): Promise<void> {
    if (tables.length === 0) return;
    const published = new Set((await publishedTables(catalog, this.names.publication, this.server?.version ?? 0)).map((t) => `${t.schema}.${t.table}`));
    const members = await publicationMembers(catalog, this.names.publication);
    const already = tables.filter((t) => published.has(`${t.schema}.${t.table}`) || members.has(t.relid));
    // Their changes stream already: with no backfill to read the rows again, a late empty request would erase the rows
    // streamed since they joined the publication. They are told as not backfilled instead.
    if (!backfill) return this.notBackfilled(already);
    const statement = addedTablesStatement(this.names.slot, already, "", emptied, backfill);
    if (statement === "") return;
    this.logger.info({ tables: already.map((t) => `${t.schema}.${t.table}`) }, "new tables are already in the publication (added by hand or by a tool): their rows are read by an online snapshot");
    await catalog.query(statement);
  }

  /**
   * Partitions attached to a captured partitioned table while capture streams: the rows an attached table held are
   * in the root from then on, but no change in the WAL carries them, so the sinks would never have them. Each one
   * holding rows is read alone by an online snapshot (FROM ONLY the leaf, its rows handed on as the root's; no reset:
   * the root's other rows stay). Not the root with a condition on tableoid, which PostgreSQL does not prune by: every
   * chunk would walk the key index of every other partition. One created empty (pg_partman's ahead) is not read.
   */
  private async readAttachedPartitions(table: TableRef, partitions: readonly number[]): Promise<void> {
    const catalog = this.catalog;
    if (catalog === null) return;
    const name = `${table.schema}.${table.table}`;
    const { held, unreadable } = await attachedLeaves(catalog, partitions);
    if (held.length === 0 && unreadable.length === 0) return;
    const leaves = [...held, ...unreadable].map((leaf) => leaf.name);
    if (this.config.snapshot.mode === "never") {
      const where = `tableoid IN (${[...held, ...unreadable].map((leaf) => `${leaf.relid}::oid`).join(", ")})`;
      this.logger.warn({ table: name, partitions: leaves }, `partitions were attached to ${name}: the rows they held are not read (snapshot.mode never); read them with sluice snapshot --table ${name} --where "${where}" --execute`);
      return;
    }
    this.logger.info({ table: name, partitions: leaves }, `partitions were attached to ${name}: the rows they held, which no change carries, are read by an online snapshot of each`);
    if (unreadable.length > 0 && !this.toldUnreadablePartitions.has(table.relid)) {
      this.toldUnreadablePartitions.add(table.relid);
      this.logger.info(
        { table: name, partitions: unreadable.map((leaf) => leaf.name) },
        `Sluice's role may not SELECT from these partitions of ${name} directly (PostgreSQL checks a partition's own grants when it is named): they are read through ${name} (slower: every chunk walks the other partitions' key indexes too); GRANT SELECT on the partitions to read them alone`,
      );
    }
    // Ids by partition: a look that fails partway and is tried again does not queue a partition's read twice.
    for (const leaf of held) await this.snapshots.queuePartition(name, leaf.relid, `tableoid = ${leaf.relid}::oid`, "partition-attached", `partition-attached-${leaf.relid}`);
    if (unreadable.length > 0) {
      const relids = unreadable.map((leaf) => leaf.relid);
      await this.snapshots.queuePartition(name, null, `tableoid IN (${relids.map((relid) => `${relid}::oid`).join(", ")})`, "partition-attached", `partition-attached-${relids.join("-")}`);
    }
  }

  /**
   * Partitions of a captured partitioned table with a new relfilenode: a TRUNCATE of one, which pgoutput does not send
   * when it publishes through the root, so its rows would stay in the sinks; or a rewrite (VACUUM FULL, CLUSTER, an
   * ALTER that rewrites), which keeps them. Or partitions `gone` from it: detached (their rows no longer the root's) or
   * dropped, which no change in the WAL tells either, so the sinks would keep their rows as the root's for good. Or
   * partitions `reattached`: detached and attached again, their changes while detached never streamed. Either way the
   * root is read again whole, and its closing reset removes the rows it no longer has; but with a publication that leaves
   * out deletes or truncates (rows kept on purpose) a gone partition's rows are kept, and the root is read with no reset.
   */
  private async readRewrittenPartitions(table: TableRef, partitions: readonly number[], gone: readonly number[], reattached: readonly number[]): Promise<void> {
    const name = `${table.schema}.${table.table}`;
    const what = [
      ...(partitions.length > 0 ? ["truncated or rewritten (a truncate of a partition is not streamed)"] : []),
      ...(gone.length > 0 ? ["detached or dropped (their rows leave it with no change streamed)"] : []),
      ...(reattached.length > 0 ? ["detached and attached again (their changes while detached were not streamed)"] : []),
    ].join(", and others ");
    const fields = { table: name, partitions, ...(gone.length > 0 ? { gone } : {}), ...(reattached.length > 0 ? { reattached } : {}) };
    const { where, leftOut } = await this.wholeRead();
    if (partitions.length === 0 && reattached.length === 0 && leftOut.length > 0) {
      // Deletes or truncates left out of the publication keep purged rows in the sinks (often a warehouse's purpose):
      // a partition detached or dropped (pg_partman's retention) is purged rows too.
      this.logger.warn(fields, `partitions of ${name} were detached or dropped: their rows stay in the sinks, as the publication leaves out ${leftOut.join(" and ")}; to remove them, read ${name} again with sluice snapshot --table ${name} --execute`);
      return;
    }
    if (this.config.snapshot.mode === "never") {
      this.logger.warn(fields, `partitions of ${name} were ${what}: ${name} is not read again (snapshot.mode never); read it with sluice snapshot --table ${name} --execute`);
      return;
    }
    const origin = partitions.length > 0 ? "partition-rewritten" : gone.length > 0 ? "partition-detached" : "partition-reattached";
    await this.snapshots.request(name, where, origin);
    // With no reset (wholeRead), a truncated partition's rows stay too.
    this.logger.warn(fields, `partitions of ${name} were ${what}: ${name} is read again by an online snapshot${readAgainHow(name, leftOut, "its reset removes the rows it no longer has")}`);
  }

  /**
   * How Sluice reads again by itself a whole captured table (an enum label renamed, columns changed, a table renamed,
   * added to the publication or taken out and put back, a partitioned table's partitions rewritten, gone or attached
   * again): `where` null, a whole read whose closing reset removes the rows the table no longer has. A publication that
   * leaves out deletes or truncates keeps purged rows in the sinks on purpose (a warehouse's history), which that reset
   * would remove: the read then has a TRUE condition, no reset (as sluice snapshot --where reads), and only adds and
   * updates rows. The publication's options are read each time (a look's may be stale, or not read yet after a start).
   */
  private async wholeRead(): Promise<{ where: "TRUE" | null; leftOut: readonly string[] }> {
    const catalog = this.catalog;
    const options = catalog === null ? null : await publicationOptions(catalog, this.names.publication);
    const leftOut = (options?.unpublished ?? this.publicationGapNow?.unpublished ?? []).filter((action) => action === "delete" || action === "truncate");
    return { where: leftOut.length > 0 ? "TRUE" : null, leftOut };
  }

  /**
   * Captured tables using enum labels renamed since the last look (ALTER TYPE ... RENAME VALUE): every row holding the
   * label reads as the new one with no change in the WAL, so each table is read again by an online snapshot (its
   * reset changes nothing else); snapshot.mode never only says so.
   */
  private async readRenamedEnumLabels(catalog: pg.Client, known: readonly TableRef[]): Promise<void> {
    for (const { table, labels } of await this.enumLabels.renamed(catalog, known)) {
      const name = `${table.schema}.${table.table}`;
      const renamed = `enum labels used by ${name} were renamed (${labels.join(", ")}), which changes its rows with no change in the WAL`;
      if (this.config.snapshot.mode === "never") {
        this.logger.warn({ table: name, labels }, `${renamed}: ${name} is not read again (snapshot.mode never); read it with sluice snapshot --table ${name} --execute`);
        this.enumLabels.settled(table);
        continue;
      }
      let leftOut: readonly string[] = [];
      try {
        const read = await this.wholeRead();
        leftOut = read.leftOut;
        await this.snapshots.request(name, read.where, "enum-renamed");
      } catch (error) {
        if (error instanceof SluiceError && error.code === "SNAPSHOT_NO_CHUNK_KEY") {
          this.logger.warn(
            { table: name, labels, code: error.code },
            `${renamed}: ${name} cannot be read again online, it has no primary key or replica identity index; its targets keep the old labels until its rows change. ` +
              `Add a primary key (or REPLICA IDENTITY USING INDEX on a unique index of NOT NULL columns) and read it with sluice snapshot --table ${name} --execute, or take a new initial snapshot of the source`,
          );
          this.enumLabels.settled(table);
          continue;
        }
        // Kept for the next look (the source not streaming yet, the table out of the publication for a moment); the tables after it are still asked for.
        if (this.enumLabels.failed(table) === 1) {
          const reason = (error as Error).message;
          this.logger.warn({ table: name, labels, err: reason }, `${renamed}: reading ${name} again could not be queued (${reason}); trying again at each look until it is`);
        }
        continue;
      }
      this.logger.warn({ table: name, labels }, `${renamed}: ${name} is read again by an online snapshot${readAgainHow(name, leftOut, "its reset changes nothing else")}`);
      this.enumLabels.settled(table);
    }
  }

  /**
   * Captured tables taken out of the publication while capture streams (ALTER PUBLICATION ... DROP TABLE or SET TABLE,
   * by hand or by a migration tool): their changes no longer reach the stream, and those made meanwhile are lost to
   * it. They are put back and read again by an online snapshot of each whole table, without emptying their targets
   * first (snapshot.mode never: put back only, warned). A publication Sluice does not own is warned about (once).
   */
  private async republish(known: readonly TableRef[], publicationMissing: () => void): Promise<void> {
    const catalog = this.catalog;
    if (catalog === null || known.length === 0) return;
    const publication = await publicationInfo(catalog, this.names.publication);
    // Gone altogether: up to PostgreSQL 17 the stream fails at its next change, PostgreSQL 18 leaves the changes out
    // without failing it. Either way capture fails with PG_PUBLICATION_DROPPED (a new slot under when-needed).
    if (publication === null) {
      publicationMissing();
      return;
    }
    await this.checkPublicationOptions(catalog, known);
    if (publication.allTables) return;
    await this.readReaddedTables(catalog, known);
    const published = new Set((await publishedTables(catalog, this.names.publication, this.server?.version ?? 0)).map((t) => `${t.schema}.${t.table}`));
    // Not via the root (Sluice does not change that), a partitioned table is listed by its partitions.
    const members = publication.viaRoot ? new Set<number>() : await publicationMembers(catalog, this.names.publication);
    const unpublished = known.filter((t) => !published.has(`${t.schema}.${t.table}`) && !(t.kind === "p" && members.has(t.relid)));
    // One this look just found renamed is listed under its dead name: not tried again under it (the next look lists its name).
    const out = unpublished.filter((t) => !this.skipRenamed(t));
    const stillOut = new Set(unpublished.map((t) => t.relid));
    for (const relid of this.renamedWhileAdded.keys()) if (!stillOut.has(relid)) this.renamedWhileAdded.delete(relid);
    const now = Date.now();
    const fresh = this.republished.due(out, now);
    if (fresh.length === 0) return;
    const backfill = this.config.snapshot.mode !== "never";
    // Their targets are not emptied first (dashboards would go empty for the whole read): the backfill asked for in
    // the ALTER's transaction reads the whole table online, and its closing reset removes the rows deleted meanwhile.
    // Told once it is done. Those ensurePublication could not add (it warned why) are tried again after a while.
    // One renamed between the listing and the ALTER is tried again under its name at the next look.
    const renamed = new Set<number>();
    const added = await ensurePublication(catalog, this.config, this.names, fresh, this.server?.version ?? 0, this.logger, this.context, () => false, backfill, (tables, why) => {
      if (why !== "renamed") return;
      for (const t of tables) renamed.add(t.relid);
      this.handedBackRenamed(tables, false);
    });
    this.republished.tried(fresh.filter((t) => !renamed.has(t.relid)), added, now);
    // Put back by Sluice itself, with its backfill: their new memberships are no one else's (those still out stay marked out).
    // A read again still pending for one of them is that backfill's.
    for (const table of added) this.readdedPending.delete(table.relid);
    if (added.length > 0) await this.compareMemberships(await publicationMemberships(catalog, this.names.publication), new Map(known.map((t) => [t.relid, t])), new Set(added.map((t) => t.relid)));
    // Their backfills read as wholeRead says; this look's check of the publication's options was just made.
    const keptLeftOut = (this.publicationGapNow?.unpublished ?? []).filter((action) => action === "delete" || action === "truncate");
    const addedRenamed = added.filter((t) => this.renamedWhileAdded.delete(t.relid));
    if (addedRenamed.length > 0) {
      this.logger.info(
        { publication: this.names.publication, tables: addedRenamed.map((t) => `${t.schema}.${t.table}`) },
        `tables renamed while being added to publication "${this.names.publication}" are added under their names now` +
          (backfill ? `; their rows are read by an online snapshot${keptLeftOut.length > 0 ? ` with no reset, as the publication leaves out ${keptLeftOut.join(" and ")}` : ""}` : ""),
      );
    }
    const putBack = added.filter((t) => !addedRenamed.includes(t));
    if (putBack.length > 0) {
      this.logger.warn(
        { publication: this.names.publication, tables: putBack.map((t) => `${t.schema}.${t.table}`) },
        `captured tables were out of publication "${this.names.publication}" (taken out while capture ran, or kept out by a lock): their changes meanwhile were not streamed; ` +
          (backfill
            ? `put them back; their rows are read again by an online snapshot${keptLeftOut.length > 0 ? ` with no reset, as the publication leaves out ${keptLeftOut.join(" and ")}: the rows kept on purpose stay in the sinks` : ", whose closing reset removes the rows deleted meanwhile (the targets keep their rows until then)"}`
            : `put them back (snapshot.mode never: their rows are not read again; read them with sluice snapshot --table T --execute)`),
      );
    }
    if (!backfill) this.notBackfilled(added);
  }

  /** Tables ensurePublication handed back as renamed (`skip`: this look's republish is still to come and lists them under their dead name). */
  private handedBackRenamed(tables: readonly TableRef[], skip = true): void {
    for (const t of tables) this.renamedWhileAdded.set(t.relid, { name: `${t.schema}.${t.table}`, skip });
  }

  /** Whether republish leaves `table` out once: just handed back as renamed, and listed under the name it no longer has. */
  private skipRenamed(table: TableRef): boolean {
    const renamed = this.renamedWhileAdded.get(table.relid);
    if (renamed === undefined || !renamed.skip) return false;
    renamed.skip = false;
    return renamed.name === `${table.schema}.${table.table}`;
  }

  /**
   * Captured tables taken out of the publication and put back between two looks (ALTER PUBLICATION ... DROP TABLE,
   * then ADD TABLE, by hand or by a tool that sets the table list again): their changes in between never reached the
   * stream, and a look that finds them in the publication again sees nothing missing. Their membership rows in
   * pg_publication_rel are new, though: each such table is read again by an online snapshot of the whole table, whose
   * closing reset removes the rows deleted meanwhile (snapshot.mode never: only warned). Compared only across looks
   * of the same publication (one dropped and created again is handled as dropped).
   */
  /** The bound on a logical message decoded whole (none known: the outbox router still refuses one over its bound). */
  private outboxMessageBytes(): { maxBytes?: number } {
    const bytes = this.options.outboxMaxMessageBytes ?? this.config.outbox?.max_message_bytes;
    return bytes === undefined ? {} : { maxBytes: bytes };
  }

  private async readReaddedTables(catalog: pg.Client, known: readonly TableRef[]): Promise<void> {
    const captured = new Map(known.map((t) => [t.relid, t]));
    for (const relid of this.readdedPending.keys()) if (!captured.has(relid)) this.readdedPending.delete(relid);
    const pending = [...this.readdedPending.values()];
    await this.compareMemberships(await publicationMemberships(catalog, this.names.publication), captured, new Set());
    for (const { table, member, was } of pending) await this.readReadded(table, member, was);
  }

  /**
   * Takes `now` as what the next look compares with (a captured table out of the publication since the last look
   * marked out: compareMemberships), and reads again the captured tables found re-added, but those Sluice itself put
   * back (`putBack`, read by their backfill). Stored whatever the requests do: a failed one is kept in readdedPending.
   */
  private async compareMemberships(now: PublicationMarks | null, captured: ReadonlyMap<number, TableRef>, putBack: ReadonlySet<number>): Promise<void> {
    const look = compareMemberships(this.memberships, now, captured.keys());
    this.memberships = look.seen;
    for (const { relid, member, was } of look.readded) {
      const table = captured.get(relid);
      if (table === undefined || putBack.has(relid) || this.readdedPending.has(relid)) continue;
      await this.readReadded(table, member, was);
    }
  }

  /**
   * Reads one table found taken out and put back again; a request that fails is kept for the next look, the tables after
   * it are still asked for. Queued without the planner's estimate (which locks the table), named by its new membership
   * row: asked for again at a later look, it is not queued twice.
   */
  private async readReadded(table: TableRef, member: number, was: number): Promise<void> {
    const name = `${table.schema}.${table.table}`;
    const publication = this.names.publication;
    const readded = `${name} was taken out of publication "${publication}" and put back since the last look: its changes in between were not streamed`;
    if (this.config.snapshot.mode === "never") {
      this.logger.warn({ table: name, publication }, `${readded}, and it is not read again (snapshot.mode never); read it with sluice snapshot --table ${name} --execute`);
      this.readdedPending.delete(table.relid);
      return;
    }
    let leftOut: readonly string[] = [];
    try {
      const read = await this.wholeRead();
      leftOut = read.leftOut;
      await this.snapshots.queue(name, "publication-readded", `publication-readded@${member}/${name}`, undefined, read.where);
    } catch (error) {
      if (error instanceof SluiceError && error.code === "SNAPSHOT_NO_CHUNK_KEY") {
        this.logger.warn(
          { table: name, publication, code: error.code },
          `${readded}; it cannot be read again online, it has no primary key or replica identity index, so its targets miss those changes. ` +
            `Add a primary key (or REPLICA IDENTITY USING INDEX on a unique index of NOT NULL columns) and read it with sluice snapshot --table ${name} --execute, or take a new initial snapshot of the source`,
        );
        this.readdedPending.delete(table.relid);
        return;
      }
      // Kept for the next look (the source not streaming yet, say); warned the first time only.
      const pending = this.readdedPending.get(table.relid) ?? { table, member, was, failures: 0 };
      pending.failures += 1;
      this.readdedPending.set(table.relid, pending);
      if (pending.failures === 1) {
        const reason = (error as Error).message;
        this.logger.warn({ table: name, publication, err: reason }, `${readded}; reading it again could not be queued (${reason}); trying again at each look until it is`);
      }
      return;
    }
    this.readdedPending.delete(table.relid);
    this.logger.warn({ table: name, publication }, `${readded}, so it is read again by an online snapshot${readAgainHow(name, leftOut, "its closing reset removes the rows deleted meanwhile")}`);
  }

  /**
   * The publication's options keep changes from the stream: it leaves out operations (SET (publish = 'insert')), or
   * does not publish via the partition root (a partitioned table's changes then come under its partitions' names,
   * which are not captured). That is often deliberate (deletes left out to keep purged rows in a warehouse, a native
   * subscriber needing the partitions' names) and the definition may belong to a DBA's tool, so Sluice never changes
   * it: it warns once for each state it sees (with what to run if it is not meant), and /status and the
   * sluice_source_publication_incomplete gauge show it for as long as it lasts.
   */
  private async checkPublicationOptions(catalog: pg.Client, known: readonly TableRef[]): Promise<void> {
    const options = await publicationOptions(catalog, this.names.publication);
    if (options === null) return;
    const gap = publicationGap(options, known, this.server?.version ?? 0);
    this.publicationGapNow = gap;
    const key = gapKey(gap);
    if (key === this.toldPublicationOptions) return;
    this.toldPublicationOptions = key;
    const publication = this.names.publication;
    if (gap === null) {
      this.logger.info({ publication }, `publication "${publication}" publishes every operation of the captured tables again`);
      return;
    }
    this.logger.warn({ publication, unpublished: gap.unpublished, viaRoot: gap.viaRoot, tables: gap.tables }, gapWarning(publication, gap));
  }

  /** What an operator should know of this source now (/status sources[].warnings, the sluice_source_publication_incomplete gauge). */
  warnings(): readonly SourceWarning[] {
    const gap = this.publicationGapNow;
    if (gap === null) return [];
    const publication = this.names.publication;
    return [{ code: PUBLICATION_INCOMPLETE, message: gapWarning(publication, gap), publication, unpublished: gap.unpublished, viaRoot: gap.viaRoot, tables: gap.tables }];
  }

  /**
   * The marks the catalog looks compare with (catalog-marks.ts), at a connect. Resuming the stream, a first connect takes
   * up those its checkpoint carries, so a table taken out of the publication and put back, a partition attached or
   * truncated, an enum label renamed while Sluice was stopped (or while a standby took over) is seen at the first look;
   * a reconnect keeps its own. Marks not stored (a first start, an upgrade) and a new slot's are read now (one query
   * each, only then): a change made after them is seen at the first look. The tables start put back in the publication
   * itself (`added`, their rows read by their backfill) are not compared.
   */
  private async takeUpMarks(
    catalog: pg.Client,
    resuming: boolean,
    tables: readonly TableRef[],
    added: readonly TableRef[],
    locked: readonly TableRef[],
    allTables: boolean,
    snapshotMarks: string | null,
  ): Promise<void> {
    if (!(resuming && this.marksTaken)) {
      const stored: CatalogMarks = resuming ? decodeCatalogMarks(this.layouts.restoredMarks()) : decodeCatalogMarks(snapshotMarks);
      this.readdedPending.clear();
      this.memberships = allTables ? null : (stored.publication ?? (await publicationMemberships(catalog, this.names.publication)));
      // Attachments stored without their leaves (not written so) are not taken; leaves stored without them (before they
      // were kept) compare none until the first look records them.
      const now = stored.partitions === null ? await leafPartitions(catalog, tables) : null;
      const partitions = stored.partitions ?? new Map([...now!].map(([root, leaves]) => [root, new Map(leaves.map((leaf) => [leaf.relid, leaf.filenode]))]));
      const attachments = now === null ? stored.attachments : new Map([...now].map(([root, leaves]) => [root, new Map(leaves.map((leaf) => [leaf.relid, leaf.attachment]))]));
      this.seenPartitions.leaves = new Map([...partitions].map(([root, leaves]) => [root, new Map(leaves)]));
      this.seenPartitions.attachments = attachments === null ? null : new Map([...attachments].map(([root, leaves]) => [root, new Map(leaves)]));
      this.enumLabels.restore(stored.labels);
      // Recorded, not compared (no labels before).
      if (stored.labels === null) await this.enumLabels.renamed(catalog, tables);
      this.marksTaken = true;
    }
    // Put back by this start (also at a reconnect), with their backfill: their new rows are no one else's, and a read
    // again a reconnect kept pending for them is that backfill's.
    if (this.memberships !== null && added.length > 0) {
      const members = new Map(this.memberships.members);
      for (const table of added) members.delete(table.relid);
      this.memberships = { publication: this.memberships.publication, members };
    }
    for (const table of added) this.readdedPending.delete(table.relid);
    // Kept out by a lock (tried again by the looks after a while): put back by hand meanwhile, it is read again.
    if (this.memberships !== null && locked.length > 0) this.memberships = markedOut(this.memberships, locked.map((t) => t.relid));
    this.saveMarks();
  }

  /** The marks the next checkpoints carry: as the last look saw them, but a table whose read again is not queued yet with its row from before. */
  private saveMarks(): void {
    let publication = this.memberships;
    if (publication !== null && this.readdedPending.size > 0) {
      const members = new Map(publication.members);
      for (const [relid, { was }] of this.readdedPending) members.set(relid, was);
      publication = { publication: publication.publication, members };
    }
    this.marksText = encodeCatalogMarks({ publication, partitions: this.seenPartitions.leaves, attachments: this.seenPartitions.attachments, labels: this.enumLabels.saved() });
    this.layouts.setMarks(this.marksText);
  }

  /** Adds the captured tables the layouts' record lacks, as the catalog shows them now (RelationLayouts.seed). */
  private async seedLayouts(catalog: pg.Client, tables: readonly TableRef[], serverVersion: number): Promise<void> {
    const missing = this.layouts.missing(tables.map((t) => t.relid));
    if (missing.length === 0) return;
    const now = await relationsNow(catalog, missing, serverVersion);
    if (now.lsn === 0n) return;
    this.layouts.seed(now.relations, { commit: now.lsn, change: now.lsn });
  }

  /**
   * A captured table whose columns were renamed, added again, or added with values for the rows already there (CapturedTables): read again. Not a partition, whose rows
   * its root's snapshot reads. Its rows are read above the commit of the transaction the new layout came with (`at`;
   * a Relation message's own LSN is 0): a row changed before it, in the old layout, at a version above the slot's
   * restart_lsn would otherwise outrank its read and keep the old layout in the sinks (the renamed column null).
   */
  private async readColumnsAgain(table: string, columns: readonly string[], at: Position | null, what: string): Promise<void> {
    const catalog = this.catalog;
    if (catalog === null) return;
    // Compared as the label: a schema's name may hold a dot (splitting at the first one missed such a table, read as gone).
    const listed = await listTables(catalog, (schema, name) => `${schema}.${name}` === table).catch(() => null);
    if (listed !== null && listed.length === 0) return;
    await backfillColumns(table, columns, this.config.snapshot.mode, () => this.requestAgain(table, "columns-changed", at, at === null ? undefined : at.commit), this.logger, relationAt(at), this.context, what);
  }

  /**
   * A table renamed to a name no captured table has: the name's targets may hold the rows of a table that had it and
   * is gone (dropped, no record in WAL), so they are emptied (a truncate where the message commits, after the changes
   * already streamed under the name) before the backfill reads the renamed table's rows.
   */
  private async takeUpRenamed(from: string, to: string, at: Position | null): Promise<void> {
    const catalog = this.catalog;
    // Told again (a reconnect, a restart from a checkpoint before the message): the truncate written the first time is
    // decoded again, and the request, when queued, carries its LSN. A new truncate would remove what the request read
    // below it already, so none is written once the request is queued, or once it was written for one that failed.
    const id = at === null ? null : againId("table-renamed", at, to);
    const queued = id !== null && this.online.ledger.tasks.some((task) => task.id === id);
    let emptiedAt = id === null ? undefined : this.emptiedFor.get(id);
    if (!queued && emptiedAt === undefined && this.config.snapshot.mode !== "never" && catalog !== null) {
      try {
        await catalog.query(emptyTargetsStatement(this.names.slot, to));
        emptiedAt = await currentLsn(catalog);
        if (id !== null && emptiedAt !== undefined) this.rememberEmptied(id, emptiedAt);
      } catch (error) {
        this.logger.warn({ table: to, err: (error as Error).message }, `could not empty the targets of ${to} before reading its rows: rows of a table that had the name before may stay`);
      }
    }
    await backfillRenamed(from, to, this.config.snapshot.mode, (table) => this.requestAgain(table, "table-renamed", at, emptiedAt), this.logger, relationAt(at), this.context);
  }

  /** A rename's truncate for request `id`, kept for the last EMPTIED_KEPT renames: a request that failed and is told again reuses it. */
  private rememberEmptied(id: string, lsn: bigint): void {
    this.emptiedFor.delete(id);
    this.emptiedFor.set(id, lsn);
    for (const oldest of this.emptiedFor.keys()) {
      if (this.emptiedFor.size <= EMPTIED_KEPT) break;
      this.emptiedFor.delete(oldest);
    }
  }

  /**
   * An online snapshot of a table read again for a Relation message at `at` (null: a table read from the catalog at
   * start). One the stream tells is queued without the planner's estimate, which takes a lock on the table: the stream
   * waits for the request (relation()) and must not wait behind a migration's lock; named by the message's transaction,
   * it is queued once when a reconnect tells it again. A driver's error comes back as a SluiceError saying whether
   * asking again can help.
   */
  private requestAgain(table: string, origin: string, at: Position | null, above?: bigint): Promise<unknown> {
    const asked = this.wholeRead().then(({ where }): Promise<unknown> =>
      at === null ? this.snapshots.request(table, where, origin, undefined, above) : this.snapshots.queue(table, origin, againId(origin, at, table), above, where),
    );
    return asked.catch((error: unknown) => Promise.reject(toSluiceError(error, `read the catalog for an online snapshot of ${table}`, { ...this.context, table })));
  }

  /**
   * The table a Relation message describes. The stream goes past the message once what it set off is done (a rename's
   * or changed columns' online snapshot request), so every checkpoint past it carries the request; one that fails for
   * a passing reason fails the stream here, which goes on from its last checkpoint and is told again.
   */
  private async relation(captured: CapturedTables, catalog: pg.Client, message: RelationMessage, at: Position): Promise<CapturedTable | null> {
    const table = await captured.fromRelation(catalog, message, at);
    await Promise.all(this.told.splice(0));
    return table;
  }

  private notBackfilled(added: readonly TableRef[]): void {
    if (added.length === 0) return;
    this.logger.warn({ tables: added.map((t) => `${t.schema}.${t.table}`) }, "tables added to the publication are not backfilled (snapshot.mode never): sluice snapshot --table T --execute reads one");
  }

  /**
   * A table added to the publication, its backfill asked for in the same transaction (backfillStatement) and decoded
   * from the stream: its rows predate its capture, an online snapshot reads them under the name the table has now (it
   * may have been renamed since). `id` names the request (the message read again after a reconnect is not queued
   * twice); `above`: a truncate of the table was written below this LSN, so its rows are read at versions above it
   * (sinks drop any under it).
   */
  private async backfill({ table, relid, id, above }: BackfillRequest): Promise<void> {
    if (this.online.ledger.tasks.some((task) => task.id === id)) return;
    const catalog = this.catalog;
    const now = relid === null || catalog === null ? null : await relationInfo(catalog, relid);
    if (relid !== null && catalog !== null && now === null) {
      this.logger.info({ table }, `table ${table}, added to the publication, was dropped before its rows were read: nothing to read`);
      return;
    }
    await requestBackfills(
      [now === null ? table : `${now.schema}.${now.table}`],
      (name) => this.wholeRead().then(({ where }) => this.snapshots.queue(name, "table-added", id, above, where)).catch((error: unknown) => Promise.reject(toSluiceError(error, `read the catalog for an online snapshot of ${name}`, { ...this.context, table: name }))),
      (name, error) => this.logger.error({ table: name, err: error.message }, `table added to the publication cannot be backfilled online (its changes are captured from now on): read it with sluice snapshot --table ${name} --execute`),
      `the ${BACKFILL_PREFIX} message ${id}`,
      this.context,
    );
  }

  /** The online snapshot engine, running while the stream runs; its progress rides in every checkpoint. */
  onlineSnapshots(): IncrementalSnapshots | null {
    return this.online.engine;
  }

  private onlineSession(ledger: SnapshotLedger, finished: TableSnapshotProgress[]): OnlineSnapshotSession<IncrementalSnapshots> {
    const chunksInFlight = this.config.snapshot.chunks_in_flight ?? this.config.snapshot.parallelism + 2;
    const engine = new IncrementalSnapshots({
      client: clientConfig(this.config, "snapshot"),
      sourceName: this.name,
      slot: this.names.slot,
      chunkRows: this.config.snapshot.chunk_rows,
      chunkBytes: onlineChunkBytes(this.config.max_buffer_bytes ?? STANDALONE_READ_AHEAD_BYTES, chunksInFlight),
      unseenThrough: this.handedOnThrough,
      readThrough: new Map((this.exportedRead?.tables ?? []).map((table) => [table, this.exportedRead!.version])),
      parallelism: this.config.snapshot.parallelism,
      chunksInFlight,
      ledger,
      finished,
      resolve: (table) => this.snapshots.resolve(table),
      logger: this.logger,
      context: this.context,
      ...(this.options.onSnapshotProgress === undefined ? {} : { onProgress: () => this.options.onSnapshotProgress!(this.snapshotProgress()) }),
    });
    const signalTable = this.config.snapshot.signal_table;
    if (signalTable === undefined) return { engine };
    const companion = new SignalTable({
      client: clientConfig(this.config, "catalog", this.catalogLimits()),
      table: signalTable,
      snapshots: this.snapshots,
      durable: (id) => ledger.isDurable(id),
      queued: () => ledger.tasks,
      logger: this.logger,
    });
    return { engine, companion };
  }

  private batch(events: readonly ChangeEvent[], transactions: readonly TransactionEvent[], at: Position, more = false): PostgresSourceBatch {
    // A slice with more after it confirms nothing to the server: the run's last one does (once it and those before it are acknowledged), one status update a run, not one a slice.
    const ack = more ? NO_ACK : this.acks.issue(flushLsnFor(at));
    const position = this.online.checkpoint(at, (base) => this.layouts.rebase(base, at));
    // The layouts' record rides beside the checkpoint, written only when it changed (relation-layouts.ts).
    const { entries, written } = this.layouts.entries();
    return {
      events,
      transactions,
      checkpoint: entries === undefined ? { source: this.name, position } : { source: this.name, position, entries },
      ...(more ? { more } : {}),
      ack: async () => {
        this.layouts.durable(written);
        return ack();
      },
    };
  }

  private acknowledged(lsn: bigint): void {
    if (lsn <= this.ackedFlush) return;
    this.ackedFlush = lsn;
    this.loop.stream?.stream.acknowledge(lsn);
  }

  private async release(): Promise<void> {
    const { catalog } = this;
    this.catalog = null;
    this.pendingStream = null;
    if (catalog !== null) await endClient(catalog);
  }
}

function checkServer(server: ServerInfo, context: ErrorContext): void {
  if (server.version < 100000) {
    throw new SluiceError(`PostgreSQL ${server.version} is too old: logical replication with pgoutput needs 10 or later`, { code: "PG_VERSION", context });
  }
  if (server.walLevel !== "logical") {
    throw new SluiceError(`wal_level is "${server.walLevel}"; set wal_level = logical in postgresql.conf and restart PostgreSQL`, { code: "PG_WAL_LEVEL", context });
  }
}

/** Whether a row holds an unchanged TOAST column, without a list of its values (this runs for every insert). */
function hasUnchanged(row: Readonly<Record<string, unknown>>): boolean {
  for (const name in row) if (row[name] === UNCHANGED) return true;
  return false;
}

/**
 * The server's current WAL write position: past every transaction committed so far. Undefined when it cannot be read:
 * the tables just added to the publication are then still asked for (their reads may sit under the truncate).
 */
async function currentLsn(db: pg.Client): Promise<bigint | undefined> {
  try {
    const result = await db.query<{ lsn: string }>("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::text AS lsn");
    return BigInt(result.rows[0]!.lsn);
  } catch {
    return undefined;
  }
}

/**
 * The relations a resumed checkpoint knows as captured (its layouts' record, its publication's members at the last
 * look): a table put back in the publication with one of these relids was taken out, not dropped and created again.
 */
function knownRelids(layouts: ReadonlyMap<number, RelationLayout> | null, marks: string | null): Set<number> {
  return new Set([...(layouts?.keys() ?? []), ...(decodeCatalogMarks(marks).publication?.members.keys() ?? [])]);
}

/** How a table is read again by itself (PostgresSource.wholeRead), for its warning: `reset`, what its reset does. */
function readAgainHow(name: string, leftOut: readonly string[], reset: string): string {
  if (leftOut.length === 0) return `, whose ${reset.replace(/^its /, "")}`;
  return ` with no reset, as the publication leaves out ${leftOut.join(" and ")}: the rows kept on purpose stay in the sinks; to remove the rows ${name} no longer has, read it with sluice snapshot --table ${name} --execute`;
}

/** The id of a table's read again set off by the Relation message of the transaction committed at `at`: the same when it is told again. */
function againId(origin: string, at: Position, table: string): string {
  return `${origin}@${formatLsn(at.commit)}/${table}`;
}

/** Where a Relation message told a rename or changed columns, for messages. */
function relationAt(at: Position | null): string {
  return at === null ? "the table's first read from the catalog" : `the Relation message of the transaction committed at ${formatLsn(at.commit)}`;
}
