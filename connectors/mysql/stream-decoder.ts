/**
 * Turns binlog events, in order, into ChangeEvents: follows files (ROTATE), transactions (GTID,
 * BEGIN, XID, COMMIT, standalone DDL), table maps and schema changes, decodes the rows of captured
 * tables and stamps each change with its position (positions.ts). Changes at or below the resume
 * checkpoint, and changes a table's snapshot already holds, are dropped.
 */
import { createHash } from "node:crypto";
import type { Logger } from "pino";
import { comparePositions } from "../contracts.ts";
import { tableName } from "../contracts.ts";
import type { BinlogCoordinates, ChangeEvent, ColumnValue, Op, Position, Row, SourceRefusal, TableSchema, TransactionMarker } from "../contracts.ts";
import { SluiceError } from "../errors.ts";
import type { ErrorContext } from "../errors.ts";
import { sameValue } from "../postgres/change-events.ts";
import { GtidState, gtidText } from "./gtid-state.ts";
import { isHeartbeat } from "./heartbeat-arrivals.ts";
import type { HeartbeatArrivals } from "./heartbeat-arrivals.ts";
import { isRetriableMysqlError, toSluiceError } from "./mysql-errors.ts";
import { binlogAt, binlogFileIndex, formatAt, isThroughPosition, offsetOf, rowPosition, throughPosition } from "./positions.ts";
import { ARTIFICIAL_FLAG, EVENT_HEADER_BYTES, readEventHeader } from "./protocol/event-header.ts";
import type { EventHeader } from "./protocol/event-header.ts";
import { DecompressionLimitError } from "./protocol/decompression-limit.ts";
import { ChecksumError } from "./protocol/event-parser.ts";
import { streamPayloadEvents } from "./protocol/payload-stream.ts";
import type { OversizedEvent } from "./protocol/payload-stream.ts";
import { MARIADB_GTID_PREPARED_XA } from "./protocol/events.ts";
import type { AlterPhase, TransactionPayload } from "./protocol/events.ts";
import type { EventBody, EventParser } from "./protocol/event-parser.ts";
import { readRowChanges, readRowsHeader } from "./protocol/rows-event.ts";
import type { RowColumn, RowsEventHeader } from "./protocol/rows-event.ts";
import type { TableMap } from "./protocol/table-map.ts";
import { BinaryReader, bitsSet } from "./protocol/binary-reader.ts";
import type { Flavor } from "./resume-token.ts";
import { dmlTarget } from "./schema/dml-target.ts";
import { MAX_PREPARED_XA_WITH_ROWS, newXaRows, noteXaRow } from "./xa-rows.ts";
import { rowsTooLarge, valueTooLarge } from "./oversized-changes.ts";
import type { XaRows } from "./xa-rows.ts";
import type { RowsChange, SchemaTracker } from "./schema/schema-tracker.ts";
import { applySavepoint, rollBackToSavepoint, savepointStatement } from "./savepoints.ts";
import type { Savepoint, SavepointStatement } from "./savepoints.ts";
import type { TableBinding } from "./schema/table-binding.ts";
import { tableKey, toTableSchema } from "./schema/table-definition.ts";
import { ZeroDateError } from "./values/column-decoder.ts";

/** The transaction a change belongs to: where to resume to read it again. */
export interface TransactionContext {
  /** Position of its first event. */
  readonly start: bigint;
  readonly file: string;
  readonly offset: number;
  /** GTID state before it. */
  readonly gtidBefore: string | null;
  /** Debezium's transaction id: the GTID, or without GTIDs `file=<binlog file>,pos=<offset of BEGIN>`; null for a statement outside BEGIN/COMMIT without a GTID. */
  readonly id: string | null;
  readonly commitTimeMs: number;
}

export interface DecodedEvent {
  readonly event: ChangeEvent;
  readonly transaction: TransactionContext;
  /** The transaction's BEGIN marker, on its first change (config transaction_metadata). */
  readonly begin?: TransactionMarker;
}

/** A point between transactions through which everything has been decoded. */
export interface ThroughPoint {
  readonly position: Position;
  readonly file: string;
  readonly offset: number;
  readonly gtid: string | null;
}

/** Online snapshots woven into the binlog (incremental-snapshot.ts): the watermark table's rows in binlog order, and every change handed on. */
export interface BinlogInterleave {
  /** How to read the rows of `map` when it is the watermark table; null for any other table. */
  watermarkColumns(map: TableMap): readonly RowColumn[] | null;
  /** A watermark row written (its after image) at `position`; returns whether a chunk's rows were handed on into `out`. */
  watermark(row: Row, position: Position, transaction: TransactionContext, out: DecodedEvent[]): boolean;
  changed(event: ChangeEvent): void;
}

export interface StreamDecoderOptions {
  readonly sourceName: string;
  readonly flavor: Flavor;
  readonly parser: EventParser;
  readonly tracker: SchemaTracker;
  /** Where the stream starts (a transaction boundary) and the GTID state there. */
  readonly start: { readonly file: string; readonly offset: number; readonly gtid: string | null };
  /** The binlog history epoch positions are taken in (positions.ts); 0 by default. */
  readonly epoch?: number;
  /** Changes at or below this position were stored already. */
  readonly skipThrough: Position | null;
  /**
   * The positionsKey the checkpoint holding skipThrough was taken under, when skipThrough is inside a compressed
   * transaction (resume-token.ts); undefined: none recorded, so a skip inside one is not trusted.
   */
  readonly skipPositionsKey?: string | undefined;
  /**
   * What decides which rows events of a compressed transaction count for its positions besides the decompression
   * limit: the captured tables (their patterns, the watermark table). Part of positionsKey.
   */
  readonly positionsConfig?: string;
  /** "db.table" -> `change` below which the table's snapshot holds the changes. */
  readonly snapshotThresholds: ReadonlyMap<string, bigint>;
  /** Mark transactions for the transaction topic: BEGIN on a transaction's first change, END (with event counts) after its commit. */
  readonly transactionMetadata?: boolean;
  /** Operations the data topics leave out (skipped-operations.ts): not counted in a transaction's metadata. */
  readonly skippedOperations?: ReadonlySet<Op>;
  /** Online snapshots (incremental-snapshot.ts). */
  readonly interleave?: BinlogInterleave | null;
  /** When the stream received each heartbeat; without it (events fed by hand) a heartbeat counts as arriving when decoded. */
  readonly heartbeatArrivals?: HeartbeatArrivals;
  /*
   * The hooks below ask for tables to be read again. Decoding waits for what they return before it goes past the
   * statement, so every checkpoint past it carries the requests (a crash right after one stored loses none); they
   * must not wait for the stream. `at` ("file:offset" of the statement) names the requests: decoded again after a
   * reconnect from before it, a request already queued is not queued twice.
   */
  /** A table renamed to a captured name no captured table had (QueryOutcome.renamed), past the resume point. */
  readonly onRenamed?: (from: string, to: string, at: string) => Promise<void> | void;
  /** A table whose rows hold column values its targets do not have (QueryOutcome.reread), past the resume point. */
  readonly onReread?: (table: string, columns: readonly string[], at: string, rowsChanged?: RowsChange) => Promise<void> | void;
  /**
   * XA ROLLBACK of a transaction prepared earlier, past the resume point: the binlog holds its changes at its
   * prepare, and they were handed on then. `tables`: the captured tables it changed; null when its prepare was
   * not decoded in this run (before the resume point, or more prepared transactions open than are remembered).
   * `removable`: those of its tables whose rows it handed on are all known (xa-rows.ts); the tables returned are
   * those whose rows are removed by key (a delete of each, at the rollback), for tables that cannot be read again with a reset.
   */
  readonly onXaRolledBack?: (xid: string, tables: readonly string[] | null, at: string, removable: readonly string[]) => Promise<readonly string[] | void> | readonly string[] | void;
  /**
   * ROLLBACK TO SAVEPOINT of a transaction whose changes since the savepoint the binlog keeps (it also wrote a
   * non-transactional table), past the resume point: `tables`, the captured tables it changed since, are read again.
   */
  readonly onSavepointRolledBack?: (tables: readonly string[], at: string) => Promise<void> | void;
  /** XA transactions prepared before the start and open there (the checkpoint's preparedXaAt): xid -> the captured tables each changed. */
  readonly preparedXa?: Readonly<Record<string, readonly string[]>>;
  /**
   * A transaction payload's inner events are decoded one per step() call (StreamBatcher hands its changes on in batches
   * as they come, memory bounded whatever its size), not all by apply(). Default false.
   */
  readonly stepPayloads?: boolean;
  readonly logger: Logger;
  readonly context: ErrorContext;
}

interface OpenTransaction extends TransactionContext {
  /** Opened by BEGIN (ends at XID/COMMIT) rather than standing for one statement. */
  explicit: boolean;
  standalone: boolean;
  pendingGtid: Parameters<GtidState["add"]>[0] | null;
  /** The connection that wrote it, when a BEGIN statement said so (Debezium's source field `thread`). */
  thread: number | null;
  /** Captured changes so far, in all and per table, counting those stored before a resume (not those a snapshot holds). */
  eventCount: number;
  readonly tableEventCounts: Record<string, number>;
  /** Whether its BEGIN marker was handed on (or stored before a resume). */
  beginEmitted: boolean;
  /** The rows an XA transaction handed on (XA START, or MariaDB's GTID flag), for its rollback; null for any other transaction. */
  xaRows: XaRows | null;
  /** The event of MariaDB's two-phase ALTER this is, if one. */
  alterPhase: AlterPhase | null;
  /** Its savepoints in the order set, each with the captured tables changed since (savepoints.ts). */
  savepoints: Savepoint[];
  /** The captured tables it changed (counted or not). */
  changed: Set<string>;
}

type MappedTable = { readonly binding: TableBinding; readonly key: string } | { readonly watermark: readonly RowColumn[] };

/** Positions of the rows of a compressed transaction payload or rows event, which have no bytes of their own in the file. */
interface PayloadCursor {
  readonly start: number;
  readonly end: number;
  next: number;
}

/** Prepared XA transactions remembered at most (each a few table names); a rollback of one forgotten is still reported. */
const MAX_PREPARED_XA = 10_000;
/** Prepared XA transactions a checkpoint carries at most (the latest); a rollback of one left out, decoded after a resume, is reported as unknown. */
export const MAX_PREPARED_XA_IN_CHECKPOINT = 64;

export class StreamDecoder {
  private readonly options: StreamDecoderOptions;
  private readonly gtid: GtidState;
  private file: string;
  private fileIndex: number;
  private transaction: OpenTransaction | null = null;
  private readonly tables = new Map<number, MappedTable | null>();
  private throughPoint: ThroughPoint;
  private throughTime: number | null = null;
  private payload: PayloadCursor | null = null;
  /** The inner events still to decode of the transaction payload under way (step), as they are decompressed. */
  private payloadEvents: AsyncGenerator<Buffer | OversizedEvent> | null = null;
  /** Where the transaction of the last compressed transaction payload decoded begins (payloadPositionsKey). */
  private payloadTransactionStart: bigint | null = null;
  /** Whether no transaction was read since the start of a file: a file's GTID list is the state here. */
  private atFileStart: boolean;
  private skipThrough: Position | null;
  private readonly thresholds: Map<string, bigint>;
  /** END markers of transactions decoded to their commit, not yet handed on (takeEnds). */
  private ends: TransactionMarker[] = [];
  /** Set when an online snapshot chunk was handed on: the batch ends after its transaction, so a crash reads at most that chunk again. */
  chunkHandedOn = false;
  /** Set once a rows event of a captured table left columns out (binlog_row_image MINIMAL or NOBLOB in its session): its creates may need completing (partial-images.ts). */
  partialImagesSeen = false;
  /** When the heartbeat being decoded arrived (HeartbeatArrivals); null: unknown, now. */
  private heartbeatArrivedAt: number | null = null;
  /** XA transactions prepared and not yet committed or rolled back: the captured tables each changed, oldest first. */
  private readonly preparedXa = new Map<string, readonly string[]>();
  /** The rows each prepared XA transaction of preparedXa handed on, when all are known (xa-rows.ts); this run's prepares only. */
  private readonly preparedXaRows = new Map<string, XaRows>();
  /** XA rollbacks of known transactions decoded since the last checkpoint, where each starts: one past a checkpoint's resume point is decoded again from there. */
  private resolvedXa: { readonly xid: string; readonly tables: readonly string[]; readonly at: bigint }[] = [];
  /** Tables warned about for partial row images. */
  private readonly partialTables = new Set<string>();
  /** Tables warned about for changes logged as statements: when, and how many since. */
  private readonly statementChanges = new Map<string, { at: number; since: number }>();

  constructor(options: StreamDecoderOptions) {
    this.options = options;
    this.gtid = new GtidState(options.flavor, options.start.gtid);
    this.file = options.start.file;
    this.fileIndex = binlogFileIndex(options.start.file, options.epoch);
    this.skipThrough = options.skipThrough;
    this.thresholds = new Map(options.snapshotThresholds);
    this.atFileStart = options.start.offset <= 4;
    this.throughPoint = { position: throughPosition(binlogAt(this.fileIndex, options.start.offset)), file: this.file, offset: options.start.offset, gtid: options.start.gtid };
    for (const [xid, tables] of Object.entries(options.preparedXa ?? {})) this.preparedXa.set(xid, tables);
  }

  /**
   * The prepared XA transactions a checkpoint resuming at `resumeAt` carries, so that their rollback,
   * decoded after a restart or a reconnect from it, still names the tables to read again (a failed
   * request reconnects from the checkpoint before the rollback): those open now, and those whose
   * rollback starts at or after `resumeAt` (decoded again from there); at most
   * MAX_PREPARED_XA_IN_CHECKPOINT, the latest; undefined when none. Rollbacks before `resumeAt` are forgotten.
   */
  preparedXaAt(resumeAt: bigint): Record<string, readonly string[]> | undefined {
    this.resolvedXa = this.resolvedXa.filter((r) => r.at >= resumeAt);
    if (this.preparedXa.size === 0 && this.resolvedXa.length === 0) return undefined;
    const entries: [string, readonly string[]][] = [...this.preparedXa, ...this.resolvedXa.map((r): [string, readonly string[]] => [r.xid, r.tables])];
    return Object.fromEntries(entries.slice(-MAX_PREPARED_XA_IN_CHECKPOINT));
  }

  /** Everything up to here is decoded and no transaction is open. */
  get through(): ThroughPoint {
    return this.throughPoint;
  }

  /**
   * The time through which everything is decoded, ms since the epoch: the commit time of the last
   * transaction read past, or when a heartbeat said the server had sent everything (caught up);
   * null before either. Never goes back.
   */
  get throughTimeMs(): number | null {
    return this.throughTime;
  }

  get inTransaction(): boolean {
    return this.transaction !== null;
  }

  /**
   * What the positions of a compressed transaction's changes depend on besides the binlog: they count only the rows
   * decoded (a table not captured takes none, a rows event over the decompression limit one), so a checkpoint inside
   * one is resumed with its skip only under the same key.
   */
  get positionsKey(): string {
    const what = `${this.options.parser.decompressionLimit}\n${this.options.positionsConfig ?? ""}`;
    return createHash("sha256").update(what).digest("base64url").slice(0, 16);
  }

  /** positionsKey when the transaction beginning at `transactionStart` was a compressed one (a checkpoint inside it carries it), else undefined. */
  payloadPositionsKey(transactionStart: bigint): string | undefined {
    return this.payloadTransactionStart === transactionStart ? this.positionsKey : undefined;
  }

  /** Whether inner events of a transaction payload are left to decode with step() (options.stepPayloads). */
  get payloadPending(): boolean {
    return this.payloadEvents !== null;
  }

  /**
   * Decodes the next inner event of the transaction payload under way, appending its changes to `out`; returns the
   * event's size, 0 once the payload is done (payloadPending is then false).
   */
  async step(out: DecodedEvent[]): Promise<number> {
    const events = this.payloadEvents!;
    const at = binlogAt(this.fileIndex, this.payload!.start);
    try {
      const next = await events.next();
      if (next.done === true) {
        this.endPayload();
        return 0;
      }
      if (!Buffer.isBuffer(next.value)) {
        this.oversizedInner(next.value, out);
        return next.value.error.stated ?? 0;
      }
      let parsed;
      try {
        parsed = this.options.parser.parse(next.value, true);
      } catch (error) {
        throw this.failure(error, null, at);
      }
      const pending = this.handle(parsed.header, parsed.body, out);
      if (pending !== undefined) await pending;
      if (this.transaction !== null) this.payloadTransactionStart = this.transaction.start;
      return next.value.length;
    } catch (error) {
      this.endPayload();
      throw this.failure(error, null, at);
    }
  }

  /**
   * The END markers decoded since the last call. A transaction's END is decoded after all its
   * changes, so it belongs to the batch that holds (or follows) them, whose checkpoint passes the commit.
   */
  takeEnds(): TransactionMarker[] {
    const ends = this.ends;
    this.ends = [];
    return ends;
  }

  /** Snapshot thresholds still ahead of the stream. */
  pendingThresholds(): Record<string, bigint> {
    const at = this.throughPoint.position.change;
    const pending: Record<string, bigint> = {};
    for (const [table, threshold] of this.thresholds) {
      if (threshold > at) pending[table] = threshold;
      else this.thresholds.delete(table);
    }
    return pending;
  }

  /** Decodes one whole event (as received, checksum included), appending changes to `out`. */
  apply(raw: Buffer, out: DecodedEvent[]): void | Promise<void> {
    // Taken before parsing, so the arrivals stay in step with the heartbeats even when one does not parse.
    if (isHeartbeat(raw)) this.heartbeatArrivedAt = this.options.heartbeatArrivals?.take() ?? null;
    let parsed;
    try {
      parsed = this.options.parser.parse(raw);
    } catch (error) {
      throw this.failure(error, raw);
    }
    return this.handle(parsed.header, parsed.body, out);
  }

  private handle(header: EventHeader, body: EventBody, out: DecodedEvent[]): void | Promise<void> {
    const start = this.payload !== null ? this.payload.start : header.logPos - header.size;
    const end = this.payload !== null ? this.payload.end : header.logPos;
    switch (body.kind) {
      case "rotate":
        return this.rotate(header, body.rotate.nextFile, body.rotate.position);
      case "mysql-gtid":
        this.begin(start, body.gtid.gtid === null ? null : gtidText(body.gtid.gtid), body.gtid.commitTimeMicros === null ? header.timestamp * 1000 : Number(body.gtid.commitTimeMicros / 1000n), body.gtid.gtid, false);
        return;
      case "mariadb-gtid":
        this.begin(start, gtidText(body.gtid.gtid), header.timestamp * 1000, body.gtid.gtid, body.gtid.standalone);
        if ((body.gtid.flags & MARIADB_GTID_PREPARED_XA) !== 0) this.transaction!.xaRows = newXaRows();
        this.transaction!.alterPhase = body.gtid.alterPhase;
        return;
      case "previous-gtids":
        if (this.atFileStart) this.gtid.adoptFileStart(body.set);
        return;
      case "gtid-list":
        if (this.atFileStart) this.gtid.adoptFileStart(body.list);
        return;
      case "query":
        return this.query(header, body.query.query, body.query.schema, start, end, out, body.query.threadId);
      case "xid":
        this.end(end);
        return;
      case "xa-prepare":
        this.prepared(body.xid, body.onePhase);
        this.end(end);
        return;
      case "table-map":
        return this.tableMap(body, start);
      case "unreadable-table-map":
        // Tables Sluice does not capture may use what it cannot read; their rows are skipped anyway.
        if (this.options.tracker.captured(body.database, body.table)) throw this.failure(body.error, null, binlogAt(this.fileIndex, start), tableKey(body.database, body.table));
        this.tables.set(body.tableId, null);
        return;
      case "rows":
        this.rows(header, body.rows, body.reader, start, out);
        return;
      case "rows-too-large":
        this.rowsTooLarge(header, body.rows, body.error, start, out);
        return;
      case "heartbeat":
        // The server is idle at body.position: everything before it has been sent, so the stream is caught up through the heartbeat's arrival.
        if (this.transaction === null && body.file === this.file) {
          const at = binlogAt(this.fileIndex, body.position);
          if (at > this.throughPoint.position.change) {
            this.throughPoint = { position: throughPosition(at), file: this.file, offset: body.position, gtid: this.gtid.toString() };
          }
          if (at >= this.throughPoint.position.change) this.advanceThroughTime(this.heartbeatArrivedAt ?? Date.now());
        }
        return;
      case "payload":
        return this.transactionPayload(body.payload, start, end, out);
      default:
        return;
    }
  }

  private rotate(header: EventHeader, nextFile: string, position: number): void {
    const artificial = header.logPos === 0 || (header.flags & ARTIFICIAL_FLAG) !== 0;
    const index = binlogFileIndex(nextFile, this.options.epoch);
    if (nextFile !== this.file) this.tables.clear();
    this.file = nextFile;
    this.fileIndex = index;
    if (!artificial) this.atFileStart = true;
    if (!artificial && this.transaction === null) {
      this.throughPoint = { position: throughPosition(binlogAt(index, position)), file: nextFile, offset: position, gtid: this.gtid.toString() };
      if (header.timestamp > 0) this.advanceThroughTime(header.timestamp * 1000);
    }
  }

  private advanceThroughTime(ms: number): void {
    if (this.throughTime === null || ms > this.throughTime) this.throughTime = ms;
  }

  private begin(start: number, id: string | null, commitTimeMs: number, gtid: OpenTransaction["pendingGtid"], standalone: boolean): void {
    this.atFileStart = false;
    this.transaction = {
      start: binlogAt(this.fileIndex, start),
      file: this.file,
      offset: start,
      gtidBefore: this.gtid.toString(),
      id,
      commitTimeMs,
      explicit: false,
      standalone,
      pendingGtid: gtid,
      eventCount: 0,
      tableEventCounts: {},
      beginEmitted: false,
      thread: null,
      xaRows: null,
      alterPhase: null,
      savepoints: [],
      changed: new Set(),
    };
  }

  private end(end: number): void {
    const transaction = this.transaction;
    const through = throughPosition(binlogAt(this.fileIndex, end));
    // Not for a transaction stored whole before the resume point (a GTID start may send earlier ones).
    const stored = this.storedThrough(end);
    if (this.options.transactionMetadata && transaction !== null && transaction.id !== null && transaction.eventCount > 0 && !stored) {
      this.ends.push({
        status: "END",
        txId: transaction.id,
        position: through,
        commitTimeMs: transaction.commitTimeMs,
        eventCount: transaction.eventCount,
        tableEventCounts: { ...transaction.tableEventCounts },
      });
    }
    const pending = this.transaction?.pendingGtid;
    if (pending != null) this.gtid.add(pending);
    if (this.transaction !== null) this.advanceThroughTime(this.transaction.commitTimeMs);
    this.transaction = null;
    this.throughPoint = { position: throughPosition(binlogAt(this.fileIndex, end)), file: this.file, offset: end, gtid: this.gtid.toString() };
  }

  /** Whether everything through `end` of the current file was stored before the resume point. */
  private storedThrough(end: number): boolean {
    return this.options.skipThrough !== null && comparePositions(throughPosition(binlogAt(this.fileIndex, end)), this.options.skipThrough) <= 0;
  }

  private query(header: EventHeader, query: string, schema: string, start: number, end: number, out: DecodedEvent[], threadId: number): void | Promise<void> {
    const statement = query.trimStart();
    const head = statement.slice(0, 16).toUpperCase();
    if (head.startsWith("BEGIN") || head.startsWith("XA START") || head.startsWith("XA BEGIN") || head.startsWith("START TRANSACTION")) {
      if (this.transaction === null) this.begin(start, null, header.timestamp * 1000, null, false);
      const transaction = this.transaction!;
      transaction.explicit = true;
      transaction.thread = threadId;
      // Without GTIDs Debezium names a transaction by where its BEGIN is.
      if (transaction.id === null) this.transaction = { ...transaction, id: `file=${this.file},pos=${start}` };
      // MySQL logs XA START; MariaDB flags the GTID event instead.
      if (head.startsWith("XA")) this.transaction!.xaRows ??= newXaRows();
      return;
    }
    const closing = /^(COMMIT|ROLLBACK)\s*$/i.exec(statement.replace(/\/\*.*?\*\//gs, "").trim());
    if (closing !== null) {
      const undone = closing[1]!.toUpperCase() === "ROLLBACK" ? this.rolledBackGroup(end, `${this.file}:${start}`) : undefined;
      this.end(end);
      return undone;
    }
    const savepoint = savepointStatement(statement);
    if (savepoint !== null) return this.savepoint(savepoint, start, end);
    if (head.startsWith("XA END")) return;
    const phase = this.transaction?.alterPhase;
    if (phase === "start" || phase === "rollback") {
      // MariaDB's two-phase ALTER: the table changes at COMMIT ALTER, which logs the statement again; ROLLBACK ALTER changed nothing.
      if (!this.transaction!.explicit) this.end(end);
      return;
    }
    const at = `${this.file}:${start}`;
    let xaResolved: (() => Promise<void> | void) | null = null;
    const resolved = /^XA\s+(COMMIT|ROLLBACK)\s+X'([0-9a-f]*)'\s*,\s*X'([0-9a-f]*)'\s*,\s*(-?\d+)/i.exec(statement);
    if (resolved !== null) {
      const [, verb, gtrid, bqual, formatId] = resolved;
      const xid = `X'${gtrid!.toLowerCase()}',X'${bqual!.toLowerCase()}',${Number(formatId)}`;
      xaResolved = () => this.resolved(xid, verb!.toUpperCase() === "ROLLBACK", start, end, at, out, header.serverId);
    }
    const written = dmlTarget(statement, schema);
    if (written !== null && this.options.tracker.captured(written.database, written.table)) this.noteStatementChange(tableKey(written.database, written.table), start, statement);
    if (this.transaction === null) this.begin(start, null, header.timestamp * 1000, null, true);
    const transaction = this.transaction!;
    const closes = !transaction.explicit;
    return this.options.tracker.applyQuery(statement, schema, binlogAt(this.fileIndex, start)).then(
      async (outcome) => {
        for (const table of outcome.truncated) this.truncate(table.database, table.table, transaction, start, out, header.serverId);
        const requests = [xaResolved?.()];
        // A rename (or column change) stored before the resume point was taken care of then.
        const { onRenamed, onReread } = this.options;
        if (outcome.renamed !== undefined && onRenamed !== undefined && !this.storedThrough(end)) {
          for (const { from, to } of outcome.renamed) requests.push(onRenamed(from, tableKey(to.database, to.table), at));
        }
        if (outcome.reread !== undefined && onReread !== undefined && !this.storedThrough(end)) {
          for (const { table, columns, rowsChanged } of outcome.reread) requests.push(onReread(table, columns, at, rowsChanged));
        }
        await Promise.all(requests);
        if (closes) this.end(end);
      },
      (error: unknown) => {
        throw this.failure(error, null, binlogAt(this.fileIndex, start));
      },
    );
  }

  /**
   * SAVEPOINT, ROLLBACK TO, RELEASE SAVEPOINT. The binlog holds the changes a ROLLBACK TO undid only when the transaction
   * also wrote a non-transactional table (MyISAM, Aria) since the savepoint: the server keeps them then, for a replica to
   * replay and undo, and they were handed on. Which of them it undid (the transactional tables') the binlog does not say,
   * so the captured tables changed since the savepoint are read again.
   */
  private savepoint(statement: SavepointStatement, start: number, end: number): void | Promise<void> {
    const transaction = this.transaction;
    if (transaction === null) return;
    if (statement.kind !== "rollback") {
      applySavepoint(transaction.savepoints, statement);
      return;
    }
    const tables = rollBackToSavepoint(transaction.savepoints, statement.name, Object.keys(transaction.tableEventCounts));
    // One stored before the resume point was taken care of then.
    if (tables.length === 0 || this.options.onSavepointRolledBack === undefined || this.storedThrough(end)) return;
    return this.options.onSavepointRolledBack(tables, `${this.file}:${start}`);
  }

  /**
   * A group of row events closed by a ROLLBACK query: the server undid them (those of transactional tables) but the
   * binlog keeps them, as it does when the transaction also wrote a non-transactional table. MariaDB logs a ROLLBACK TO
   * a savepoint set first in the transaction this way (no SAVEPOINT, no ROLLBACK TO: the undone rows as a group of
   * their own), as well as a whole ROLLBACK. The rows were handed on, so the tables the group changed are read again,
   * like a ROLLBACK TO's.
   */
  private rolledBackGroup(end: number, at: string): Promise<void> | void {
    const tables = this.transaction === null ? [] : [...this.transaction.changed];
    if (tables.length === 0 || this.options.onSavepointRolledBack === undefined || this.storedThrough(end)) return;
    return this.options.onSavepointRolledBack(tables, at);
  }

  /** Remembers the captured tables an XA transaction changed (perhaps none) until it is committed or rolled back. */
  private prepared(xid: string, onePhase: boolean): void {
    if (onePhase) return;
    const tables = Object.keys(this.transaction?.tableEventCounts ?? {});
    this.preparedXa.delete(xid);
    this.preparedXa.set(xid, tables);
    this.preparedXaRows.delete(xid);
    const rows = this.transaction?.xaRows;
    if (rows?.complete === true) this.preparedXaRows.set(xid, rows);
    // Prepares never resolved (a coordinator gone) must not hold their rows for good: the oldest are known by their tables alone.
    if (this.preparedXaRows.size > MAX_PREPARED_XA_WITH_ROWS) this.preparedXaRows.delete(this.preparedXaRows.keys().next().value!);
    if (this.preparedXa.size > MAX_PREPARED_XA) {
      const oldest = this.preparedXa.keys().next().value!;
      this.preparedXa.delete(oldest);
      this.preparedXaRows.delete(oldest);
    }
  }

  private async resolved(xid: string, rolledBack: boolean, start: number, end: number, at: string, out: DecodedEvent[], serverId: number): Promise<void> {
    const tables = this.preparedXa.get(xid) ?? null;
    const rows = this.preparedXaRows.get(xid) ?? null;
    this.preparedXa.delete(xid);
    this.preparedXaRows.delete(xid);
    if (rolledBack && tables !== null) {
      this.resolvedXa.push({ xid, tables, at: binlogAt(this.fileIndex, start) });
      if (this.resolvedXa.length > MAX_PREPARED_XA_IN_CHECKPOINT) this.resolvedXa.shift();
    }
    // A rollback stored before the resume point was taken care of then.
    // One that changed no captured table is remembered too, so its rollback is not reported as unknown.
    if (!rolledBack || tables?.length === 0 || this.options.onXaRolledBack === undefined || this.storedThrough(end)) return;
    // Each removal takes an offset of the rollback's event after its first byte (removeXaRows).
    const removable = rows === null || rows.count >= end - start ? [] : [...rows.tables.keys()];
    const removed = (await this.options.onXaRolledBack(xid, tables, at, removable)) ?? [];
    if (rows !== null && removed.length > 0) this.removeXaRows(rows, removed, start, end, out, serverId);
  }

  /**
   * A delete of each row a rolled-back XA transaction handed on in `tables`, at the rollback: offsets of its query
   * event after the first byte, one per row (resolved checked there are enough).
   */
  private removeXaRows(rows: XaRows, tables: readonly string[], start: number, end: number, out: DecodedEvent[], serverId: number): void {
    const transaction = this.transaction!;
    let offset = start + 1;
    for (const table of tables) {
      const entry = rows.tables.get(table);
      if (entry === undefined) continue;
      for (const { key, image } of entry.rows.values()) {
        const position = rowPosition(transaction.start, binlogAt(this.fileIndex, offset));
        const binlog: BinlogCoordinates = { serverId, file: this.file, pos: start, row: offset - start - 1 };
        offset += 1;
        if (this.skipped(position, table, transaction, entry.schema, "d")) continue;
        this.push(out, this.event(entry.schema, "d", key, image, null, position, transaction, { binlog }), transaction);
      }
    }
  }

  private truncate(database: string, table: string, transaction: OpenTransaction, start: number, out: DecodedEvent[], serverId: number): void {
    const definition = this.options.tracker.definition(database, table);
    if (definition === null) return;
    const position = rowPosition(transaction.start, binlogAt(this.fileIndex, start + 1));
    const schema = toTableSchema(this.options.sourceName, definition);
    if (this.skipped(position, tableKey(database, table), transaction, schema, "t")) return;
    // Debezium's source block of a TRUNCATE: the statement's event, row 0.
    const binlog: BinlogCoordinates = { serverId, file: this.file, pos: start, row: 0, ...(transaction.thread === null ? {} : { thread: transaction.thread }) };
    this.push(out, this.event(schema, "t", {}, null, null, position, transaction, { binlog }), transaction);
  }

  private tableMap(body: Extract<EventBody, { kind: "table-map" }>, start: number): void | Promise<void> {
    const { map } = body;
    const tracker = this.options.tracker;
    const watermark = this.options.interleave?.watermarkColumns(map) ?? null;
    if (watermark !== null) {
      this.tables.set(map.tableId, { watermark });
      return;
    }
    if (!tracker.captured(map.database, map.table)) {
      this.tables.set(map.tableId, null);
      return;
    }
    const key = tableKey(map.database, map.table);
    const bound = tracker.bind(map, body.raw, binlogAt(this.fileIndex, start));
    if (!(bound instanceof Promise)) {
      this.tables.set(map.tableId, { binding: bound, key });
      return;
    }
    return bound.then(
      (binding) => void this.tables.set(map.tableId, { binding, key }),
      (error: unknown) => {
        throw this.failure(error, null, binlogAt(this.fileIndex, start));
      },
    );
  }

  private rows(header: EventHeader, rows: RowsEventHeader, reader: BinaryReader, start: number, out: DecodedEvent[]): void {
    const mapped = this.tables.get(rows.tableId);
    if (mapped == null) return;
    if (this.transaction === null) this.begin(start, null, header.timestamp * 1000, null, false);
    const transaction = this.transaction!;
    // Rows of a compressed event (MariaDB's log_bin_compress) have no bytes of their own in the file either: like those of a compressed transaction, they take the event's bytes in turn.
    const payload = this.payload ?? (rows.compressed ? { start, end: header.logPos, next: start + 1 } : null);
    if ("watermark" in mapped) {
      this.watermarkRows(rows, reader, start, transaction, out, mapped.watermark, payload);
      return;
    }
    const { binding, key } = mapped;
    if (!wholeImages(rows, binding.columns.length)) this.notePartialImages(key, start);
    let changes;
    try {
      changes = readRowChanges(reader, rows, binding.columns);
    } catch (error) {
      throw this.failure(error, null, binlogAt(this.fileIndex, start), key);
    }
    const eventAt = binlogAt(this.fileIndex, start);
    const at = (offset: number): bigint => {
      if (payload === null) return eventAt + BigInt(offset);
      const next = payload.next++;
      if (next >= payload.end) {
        const what = rows.compressed ? "rows event" : "transaction";
        const setting = rows.compressed ? "log_bin_compress=OFF" : "binlog_transaction_compression=OFF";
        throw new SluiceError(`the compressed ${what} at ${this.file}:${payload.start} holds more row changes than bytes, so its changes cannot get distinct positions; set ${setting}`, {
          code: "MYSQL_POSITION_OVERFLOW",
          context: { ...this.options.context, table: key, position: formatAt(eventAt, this.file, this.options.epoch ?? 0) },
        });
      }
      return binlogAt(this.fileIndex, next);
    };
    const schema = binding.schema;
    // Debezium's source fields: the server that wrote the event, the file, the rows event's offset, the row's index in it.
    const thread = transaction.thread === null ? {} : { thread: transaction.thread };
    const coordinates = (row: number): BinlogCoordinates => ({ serverId: header.serverId, file: this.file, pos: start, row, ...thread });
    for (const [index, change] of changes.entries()) {
      const binlog = coordinates(index);
      const refusal = change.tooLarge === undefined ? undefined : valueTooLarge(key, change.tooLarge, `${this.file}:${start}`, index + 1, this.options.context);
      if (rows.kind === "write") {
        const position = rowPosition(transaction.start, at(change.offset));
        if (this.skipped(position, key, transaction, schema, "c")) continue;
        this.push(out, this.event(schema, "c", this.keyOf(schema, change.after!, position), null, change.after, position, transaction, { binlog, refusal }), transaction);
      } else if (rows.kind === "delete") {
        const position = rowPosition(transaction.start, at(change.offset));
        if (this.skipped(position, key, transaction, schema, "d")) continue;
        this.push(out, this.event(schema, "d", this.keyOf(schema, change.before!, position), change.before, null, position, transaction, { binlog, refusal }), transaction);
      } else {
        const beforePosition = rowPosition(transaction.start, at(change.offset));
        const afterPosition = payload === null ? rowPosition(transaction.start, at(change.afterOffset)) : rowPosition(transaction.start, at(0));
        const after = { ...change.before, ...change.after };
        const oldKey = this.keyOf(schema, change.before!, beforePosition);
        const newKey = this.keyOf(schema, after, afterPosition);
        if (Object.keys(oldKey).some((name) => !sameValue(oldKey[name], newKey[name]))) {
          if (!this.skipped(beforePosition, key, transaction, schema, "d")) this.push(out, this.event(schema, "d", oldKey, change.before, null, beforePosition, transaction, { binlog, keyChange: { newKey }, refusal }), transaction);
          if (!this.skipped(afterPosition, key, transaction, schema, "c")) this.push(out, this.event(schema, "c", newKey, null, after, afterPosition, transaction, { binlog, keyChange: { oldKey }, refusal }), transaction);
        } else if (!this.skipped(beforePosition, key, transaction, schema, "u")) {
          this.push(out, this.event(schema, "u", newKey, change.before, after, beforePosition, transaction, { binlog, refusal }), transaction);
        }
      }
    }
  }

  /**
   * A compressed rows event whose row images are over the decompression limit: a table not captured is passed over
   * (its rows would be); a captured one gets one change with a refusal, in place of the rows, which halts it at capture.
   */
  private rowsTooLarge(header: EventHeader, rows: RowsEventHeader, error: DecompressionLimitError, start: number, out: DecodedEvent[]): void {
    const mapped = this.tables.get(rows.tableId);
    if (mapped == null) return;
    const eventAt = binlogAt(this.fileIndex, start);
    // The watermark table's rows are a snapshot's own, a few bytes each: not a table to halt.
    if ("watermark" in mapped) throw this.failure(error, null, eventAt);
    if (this.transaction === null) this.begin(start, null, header.timestamp * 1000, null, false);
    const transaction = this.transaction!;
    const { binding, key } = mapped;
    const schema = binding.schema;
    // Where its first row change would be: the next byte of the compressed transaction's, or the event's first after its start (its rows take the event's bytes in turn).
    const position = rowPosition(transaction.start, this.payload === null ? eventAt + 1n : binlogAt(this.fileIndex, this.nextPayloadByte(key)));
    const op = rows.kind === "write" ? "c" : rows.kind === "delete" ? "d" : "u";
    if (this.skipped(position, key, transaction, schema, op)) return;
    const refusal = rowsTooLarge(key, error, `${this.file}:${start}`, this.options.context, this.payload !== null);
    const binlog: BinlogCoordinates = { serverId: header.serverId, file: this.file, pos: start, row: 0, ...(transaction.thread === null ? {} : { thread: transaction.thread }) };
    this.push(out, this.event(schema, op, {}, null, null, position, transaction, { binlog, refusal }), transaction);
  }

  /**
   * A captured table's change logged as a statement (a session, or the server with SET GLOBAL,
   * set binlog_format=STATEMENT or MIXED): it has no rows to capture. Said at once, then at most once a minute per table.
   */
  private noteStatementChange(table: string, start: number, statement: string): void {
    const now = Date.now();
    const noted = this.statementChanges.get(table);
    if (noted !== undefined && now - noted.at < 60_000) {
      noted.since++;
      return;
    }
    this.statementChanges.set(table, { at: now, since: 0 });
    this.options.logger.error(
      // The statement's kind only: its text holds the row's values, which never go to the logs (they may be personal data).
      { table, position: `${this.file}:${start}`, statement: /^\s*([A-Za-z]+)/.exec(statement)?.[1]?.toUpperCase() ?? "", ...(noted === undefined ? {} : { moreSinceLastWarning: noted.since }) },
      `a change of ${table} was logged as a statement, not as rows (binlog_format=STATEMENT or MIXED, set by a session or by SET GLOBAL since Sluice connected): Sluice cannot capture it, so sinks miss it; set binlog_format=ROW (globally, and in every session that writes captured tables), and read the table again with an online snapshot`,
    );
  }

  private notePartialImages(table: string, start: number): void {
    this.partialImagesSeen = true;
    if (this.partialTables.has(table)) return;
    this.partialTables.add(table);
    this.options.logger.warn(
      { table, position: `${this.file}:${start}` },
      `changes of ${table} come with partial row images (a session set binlog_row_image=MINIMAL or NOBLOB): an update's left-out columns are delivered as unchanged, a delete's before image holds only the logged columns, and the left-out columns of an insert (or of the new key of an update) are read from the table; set binlog_row_image=FULL in every session that writes captured tables`,
    );
  }

  /** Rows of the watermark table: each row image written is a watermark, at its own position in its transaction. */
  private watermarkRows(rows: RowsEventHeader, reader: BinaryReader, start: number, transaction: OpenTransaction, out: DecodedEvent[], columns: readonly RowColumn[], payload: PayloadCursor | null): void {
    if (rows.kind === "delete") return;
    let changes;
    try {
      changes = readRowChanges(reader, rows, columns);
    } catch (error) {
      throw this.failure(error, null, binlogAt(this.fileIndex, start));
    }
    for (const change of changes) {
      const at = payload === null ? binlogAt(this.fileIndex, start) + BigInt(change.afterOffset) : binlogAt(this.fileIndex, Math.min(payload.next++, payload.end - 1));
      const row = { ...change.before, ...change.after };
      if (this.options.interleave!.watermark(row, rowPosition(transaction.start, at), transaction, out)) this.chunkHandedOn = true;
    }
  }

  /**
   * A transaction payload's inner events are decompressed as they are decoded (payload-stream.ts), never held whole:
   * with options.stepPayloads one per step() call, so the batcher hands its changes on in batches as they come;
   * otherwise all of them now.
   */
  private transactionPayload(payload: TransactionPayload, start: number, end: number, out: DecodedEvent[]): Promise<void> | void {
    this.payloadEvents = streamPayloadEvents(payload, this.options.parser.decompressionLimit);
    this.payload = { start, end, next: start + 1 };
    this.checkPayloadSkip(start);
    if (this.options.stepPayloads === true) return;
    return (async () => {
      while (this.payloadEvents !== null) await this.step(out);
    })();
  }

  /**
   * A checkpoint inside this compressed transaction taken under another positionsKey (or none) numbered its changes
   * differently: skipping through its position could pass over changes not stored (or hand on stored ones again
   * further on). The transaction is read again from its start instead: changes stored before are handed on twice, none lost.
   */
  private checkPayloadSkip(start: number): void {
    const skip = this.skipThrough;
    const transactionStart = this.transaction?.start ?? binlogAt(this.fileIndex, start);
    if (skip === null || isThroughPosition(skip) || skip.commit !== transactionStart) return;
    const key = this.positionsKey;
    if (this.options.skipPositionsKey === key) return;
    this.skipThrough = null;
    // Numbered above the stored change: the sinks apply a row's change only over a lower position, so a change read
    // again below it would be dropped there (a row's second change lost); too few bytes left stops with MYSQL_POSITION_OVERFLOW.
    this.payload!.next = Math.max(this.payload!.next, offsetOf(skip.change) + 1);
    this.options.logger.warn(
      { transaction: formatAt(transactionStart, this.file, this.options.epoch ?? 0), gtid: this.transaction?.id ?? null, checkpoint: formatAt(skip.change, this.file, this.options.epoch ?? 0) },
      `the checkpoint is inside the compressed transaction at ${formatAt(transactionStart, this.file, this.options.epoch ?? 0)}${this.transaction?.id == null ? "" : ` (${this.transaction.id})`}, taken under another decompression limit (\`memory\`) or other captured tables${this.options.skipPositionsKey === undefined ? " (or by a Sluice that did not record them)" : ""}, which number its changes differently: the transaction is read again from its start, so its changes stored before the restart are handed on twice`,
    );
  }

  /** A rows event of the payload over the limit: read up to its table id, its table halted (rowsTooLarge), the rest passed over. */
  private oversizedInner(event: OversizedEvent, out: DecodedEvent[]): void {
    let header: EventHeader;
    let rows: RowsEventHeader;
    try {
      header = readEventHeader(event.head);
      rows = readRowsHeader(new BinaryReader(event.head, EVENT_HEADER_BYTES, event.head.length), this.options.parser.format, header.type);
    } catch {
      // Its headers do not fit the bytes kept: which table is not known.
      throw event.error;
    }
    this.rowsTooLarge(header, rows, event.error, this.payload!.start, out);
  }

  /** The next byte of the compressed transaction under way, as a row change's position. */
  private nextPayloadByte(table: string): number {
    const payload = this.payload!;
    const next = payload.next++;
    if (next >= payload.end) {
      throw new SluiceError(`the compressed transaction at ${this.file}:${payload.start} holds more row changes than bytes, so its changes cannot get distinct positions; set binlog_transaction_compression=OFF`, {
        code: "MYSQL_POSITION_OVERFLOW",
        context: { ...this.options.context, table, position: `${this.file}:${payload.start}` },
      });
    }
    return next;
  }

  private endPayload(): void {
    const events = this.payloadEvents;
    this.payloadEvents = null;
    this.payload = null;
    // Frees the decompression at once when the payload ends early (an error).
    void events?.return(undefined).catch(() => undefined);
  }

  /**
   * Whether a change is left out: stored already (before the resume point; it still counts for
   * its transaction's END, and its BEGIN was stored with it), or held by its table's snapshot.
   */
  private skipped(position: Position, table: string, transaction: OpenTransaction, schema: TableSchema, op: Op): boolean {
    if (this.skipThrough !== null) {
      if (comparePositions(position, this.skipThrough) <= 0) {
        if (transaction.xaRows !== null) transaction.xaRows.complete = false;
        if (this.count(transaction, schema, op)) transaction.beginEmitted = true;
        return true;
      }
      this.skipThrough = null;
    }
    const threshold = this.thresholds.get(table);
    return threshold !== undefined && position.change < threshold;
  }

  private push(out: DecodedEvent[], change: ChangeEvent, transaction: OpenTransaction): void {
    if (transaction.xaRows !== null) noteXaRow(transaction.xaRows, change);
    const counted = this.count(transaction, change.schema, change.op);
    const event = counted && this.options.transactionMetadata === true ? this.numbered(change, transaction) : change;
    this.options.interleave?.changed(event);
    const marks = counted && this.options.transactionMetadata === true && transaction.id !== null && !transaction.beginEmitted;
    if (counted) transaction.beginEmitted = true;
    if (!marks) {
      out.push({ event, transaction });
      return;
    }
    const begin: TransactionMarker = { status: "BEGIN", txId: transaction.id!, position: event.source.position, commitTimeMs: transaction.commitTimeMs };
    out.push({ event, transaction, begin });
  }

  /** The change with its place in its transaction (just counted). */
  private numbered(event: ChangeEvent, transaction: OpenTransaction): ChangeEvent {
    const transactionOrder = { total: transaction.eventCount, inTable: transaction.tableEventCounts[tableName(event.schema)]! };
    return { ...event, source: { ...event.source, transactionOrder } };
  }

  /** Counts a change for its transaction's END, unless the data topics leave its operation out; returns whether it counted. */
  private count(transaction: OpenTransaction, schema: TableSchema, op: Op): boolean {
    const table = tableName(schema);
    for (const savepoint of transaction.savepoints) savepoint.tables.add(table);
    transaction.changed.add(table);
    if (this.options.skippedOperations?.has(op) === true) return false;
    transaction.eventCount += 1;
    transaction.tableEventCounts[table] = (transaction.tableEventCounts[table] ?? 0) + 1;
    return true;
  }

  private keyOf(schema: TableSchema, row: Row, position: Position): Record<string, ColumnValue> {
    const key: Record<string, ColumnValue> = {};
    for (const name of schema.key) {
      const value = row[name];
      if (value === undefined) {
        throw new SluiceError(`a row of ${schema.database}.${schema.table} lacks key column ${name}; set binlog_row_image=FULL`, {
          code: "MYSQL_KEY_MISSING",
          context: { ...this.options.context, table: `${schema.database}.${schema.table}`, position: formatAt(position.change, this.file, this.options.epoch ?? 0) },
        });
      }
      key[name] = value;
    }
    return key;
  }

  private event(
    schema: TableSchema,
    op: Op,
    key: Row,
    before: Row | null,
    after: Row | null,
    position: Position,
    transaction: TransactionContext,
    extra: { readonly binlog?: BinlogCoordinates; readonly keyChange?: ChangeEvent["keyChange"]; readonly refusal?: SourceRefusal | undefined } = {},
  ): ChangeEvent {
    return {
      op,
      key,
      before,
      after,
      source: {
        connector: "mysql",
        name: this.options.sourceName,
        db: schema.database,
        schema: schema.schema,
        table: schema.table,
        position,
        txId: transaction.id,
        commitTimeMs: transaction.commitTimeMs,
        snapshot: false,
        ...(extra.binlog ? { binlog: extra.binlog } : {}),
      },
      schema,
      ...(extra.keyChange ? { keyChange: extra.keyChange } : {}),
      ...(extra.refusal ? { refusal: extra.refusal } : {}),
    };
  }

  private failure(error: unknown, raw: Buffer | null, at?: bigint, table?: string): SluiceError {
    if (error instanceof SluiceError) return error;
    // A catalog query (re-reading a table) that lost its connection heals on reconnect.
    if (isRetriableMysqlError(error)) return toSluiceError(error, "cannot re-read a table definition", this.options.context);
    const where = at !== undefined ? `${this.file}:${Number(at & 0xffffffffn)}` : raw !== null && raw.length >= 17 ? `${this.file}:${raw.readUInt32LE(13)}` : this.file;
    const context: ErrorContext = { ...this.options.context, position: where, ...(table === undefined ? {} : { table }) };
    const message = (error as Error).message ?? String(error);
    if (error instanceof ChecksumError) return new SluiceError(`binlog event at ${where} fails its checksum: ${message}`, { code: "MYSQL_CHECKSUM_MISMATCH", cause: error, context });
    if (error instanceof DecompressionLimitError) {
      return new SluiceError(
        `source "${this.options.sourceName}": binlog event at ${where}: ${message}. Decompressed, it would not fit the memory budget (a quarter of the heap, at most 1 GiB). This stops the whole source: the table of a compressed statement (or of a transaction payload's event that holds no rows) is known only once decompressed, and passing over a schema change would decode later rows wrongly. Raise \`memory\`; or turn binlog_transaction_compression (MySQL) or log_bin_compress (MariaDB) off (docs/mysql.md#limits)`,
        { code: "MYSQL_EVENT_TOO_LARGE", cause: error, context: { ...context, limit: error.limit } },
      );
    }
    if (error instanceof ZeroDateError) return new SluiceError(`${table ?? "a table"} at ${where}: ${message}`, { code: "MYSQL_ZERO_DATE", cause: error, context });
    return new SluiceError(`cannot decode the binlog event at ${where}${table === undefined ? "" : ` (${table})`}: ${message}`, { code: "MYSQL_DECODE_FAILED", cause: error, context });
  }
}

/** Whether every image of a rows event holds every column of the table. */
function wholeImages(rows: RowsEventHeader, columns: number): boolean {
  if (rows.columnCount !== columns || bitsSet(rows.present, columns) !== columns) return false;
  return rows.presentAfter === null || bitsSet(rows.presentAfter, columns) === columns;
}
