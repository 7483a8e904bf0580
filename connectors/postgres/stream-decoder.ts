/**
 * Turns the pgoutput messages of the replication stream into ChangeEvents, in order: tracks the
 * open transaction (every change carries its commit LSN, own LSN, xid and commit time), the
 * relations, the position through which everything has been seen, and the optional
 * transaction-metadata markers. Changes at or before `skipThrough` (already durable before a
 * reconnect) are dropped.
 */
import { comparePositions } from "../contracts.ts";
import type { ChangeEvent, Op, Position, TableSchema, TransactionMarker } from "../contracts.ts";
import { SluiceError } from "../errors.ts";
import { tableReadings } from "../common/table-label.ts";
import { jsonShapeProblem } from "../../runtime/json-shape.ts";
import type { JsonShapeLimits } from "../../runtime/json-shape.ts";
import type { CapturedTable, CapturedTables } from "./captured-tables.ts";
import { deleteEvent, insertEvent, insertEventOfRow, truncateEvent, updateEvents, updateEventsOfRows, wholeRowFromTupleBytes } from "./change-events.ts";
import type { EventOrigin } from "./change-events.ts";
import { quoteLiteral } from "./connection-settings.ts";
import { formatLsn, postgresMicrosToEpochMs } from "./lsn.ts";
import { throughPosition } from "./positions.ts";
import { logicalMessageEvent, logicalMessageTable } from "./logical-messages.ts";
import { decodePgoutput } from "./protocol/pgoutput.ts";
import type { RelationMessage } from "./protocol/pgoutput.ts";
import type { WalMessage } from "./replication-stream.ts";

/** A transaction boundary for the transaction-metadata topic (config transaction_metadata). */
export type TransactionEvent = TransactionMarker;

export interface DecodedOutput {
  readonly events: ChangeEvent[];
  readonly transactions: TransactionEvent[];
  /** Set when an online snapshot chunk was handed on: the batch ends after its transaction, so a crash reads at most that chunk again. */
  chunkHandedOn?: boolean;
}

interface OpenTransaction {
  readonly commitLsn: bigint;
  readonly txId: string;
  readonly commitTimeMs: number;
  eventCount: number;
  readonly tableEventCounts: Record<string, number>;
  beginEmitted: boolean;
  /** The origin of the transaction's changes; its position is set for each change (originAt). */
  readonly origin: { -readonly [K in keyof EventOrigin]: EventOrigin[K] };
}

/** Online snapshots woven into the stream (incremental-snapshot.ts): watermarks in commit order, and every change handed on. */
export interface StreamInterleave {
  watermark(content: string, commitLsn: bigint, out: DecodedOutput): void;
  changed(event: ChangeEvent): void;
}

/** Largest content of a message with one of Sluice's own prefixes (watermark, recreated, backfill) that is read. */
export const OWN_MESSAGE_MAX_BYTES = 64 * 1024;

/** Prefix of the transactional logical messages that mark an online snapshot chunk's window. */
export const WATERMARK_PREFIX = "sluice.watermark";
/**
 * Prefix of the transactional logical message a source writes when it finds a captured table dropped and created
 * again under its name (TableDiscovery): WAL has no record of a DROP TABLE, so the targets would keep the dropped
 * table's rows. The message stands for a truncate of the name, ordered before anything of the new table.
 */
export const RECREATED_PREFIX = "sluice.recreated";

/** The statement writing a RECREATED_PREFIX message of `slot` for `table` (schema.table): a truncate of it where it commits. */
export function emptyTargetsStatement(slot: string, table: string): string {
  return `SELECT pg_logical_emit_message(true, ${quoteLiteral(RECREATED_PREFIX)}, ${quoteLiteral(JSON.stringify({ slot, table }))})`;
}

/**
 * Prefix of the transactional logical message a source writes in the transaction that adds a table to its publication:
 * its rows predate its capture and need a backfill. Written with the ALTER PUBLICATION, it commits with it or not at
 * all, and the stream replays it after a crash until a checkpoint past it (which carries the request) is stored.
 */
export const BACKFILL_PREFIX = "sluice.backfill";

/**
 * The statement writing a BACKFILL_PREFIX message of `slot` for `table` (schema.table, relation `relid`). `emptied`: the
 * same transaction writes the table's truncate (emptyTargetsStatement) first, so its rows are read at versions above
 * that transaction.
 */
export function backfillStatement(slot: string, table: string, relid: number, emptied: boolean): string {
  return `SELECT pg_logical_emit_message(true, ${quoteLiteral(BACKFILL_PREFIX)}, ${quoteLiteral(JSON.stringify({ slot, table, emptied, relid }))})`;
}

/** A RECREATED_PREFIX or BACKFILL_PREFIX message is one flat object of four fields. */
const TABLE_MESSAGE_SHAPE: JsonShapeLimits = { maxDepth: 1, maxValues: 16 };

/** What a RECREATED_PREFIX or BACKFILL_PREFIX message says (`emptied` and `relid`: a backfill's). */
export interface TableMessage {
  readonly slot: string;
  readonly table: string;
  readonly emptied: boolean;
  readonly relid: number | null;
}

/**
 * The content of a RECREATED_PREFIX or BACKFILL_PREFIX message; null for one that is neither form. A JSON object, as a table's
 * name may hold any character: the lines these messages were written in before (slot, table, "emptied" or "", relid) broke
 * on a name with a newline, its rows never read. Lines are still read: messages an earlier version wrote are decoded
 * again after an upgrade (a name with a newline among them stays misread).
 */
export function parseTableMessage(content: string): TableMessage | null {
  if (content.startsWith("{")) {
    // Anyone connected may write a message with the prefix: one holding more than the four fields is none of ours, and is not parsed (runtime/json-shape.ts).
    if (jsonShapeProblem(content, TABLE_MESSAGE_SHAPE) !== null) return null;
    let parsed: unknown;
    try {
      parsed = JSON.parse(content);
    } catch {
      return null;
    }
    const { slot, table, emptied, relid } = parsed as Record<string, unknown>;
    if (typeof slot !== "string" || typeof table !== "string") return null;
    return { slot, table, emptied: emptied === true, relid: typeof relid === "number" ? relid : null };
  }
  const [slot, table, emptied, relid] = content.split("\n");
  if (slot === undefined || table === undefined) return null;
  return { slot, table, emptied: emptied === "emptied", relid: relid === undefined || relid === "" ? null : Number(relid) };
}

/** What a BACKFILL_PREFIX message asks for. */
export interface BackfillRequest {
  /** schema.table when the message was written. */
  readonly table: string;
  /** The table's relation id: it may have another name by the time the message is decoded (null: not in the message). */
  readonly relid: number | null;
  /** The same for the message read again (after a reconnect). */
  readonly id: string;
  /** A truncate of the table sits below this LSN. */
  readonly above: bigint | undefined;
}

export interface StreamDecoderOptions {
  readonly sourceName: string;
  readonly tables: Pick<CapturedTables, "get">;
  /** Resolves a Relation message against the catalog (async: it may query the database); `at`: where the message is, the change it precedes. */
  readonly resolveRelation: (message: RelationMessage, at: Position) => Promise<CapturedTable | null>;
  readonly transactionMetadata: boolean;
  /** Operations the data topics leave out (skipped-operations.ts): not counted in a transaction's metadata. */
  readonly skippedOperations?: ReadonlySet<Op>;
  readonly skipThrough: Position | null;
  readonly interleave?: StreamInterleave;
  /** Logical messages with this prefix become events of the pseudo-table pg_logical_message.<prefix> (outbox.message_prefix). */
  readonly outboxMessages?: { readonly prefix: string; readonly database: string; readonly maxBytes?: number };
  /**
   * RECREATED_PREFIX messages: their content is `<slot>\n<schema>.<table>`; one of this slot's becomes a truncate of
   * the table (the captured table of that name, read when none is known), others are ignored.
   */
  readonly recreated?: { readonly slot: string; readonly table: (schema: string, table: string) => Promise<CapturedTable | null> };
  /**
   * BACKFILL_PREFIX messages of this slot not yet durable: `request` queues the table's backfill before the decoder goes
   * on, so the checkpoint of any position past the message carries it.
   */
  readonly backfill?: { readonly slot: string; readonly request: (request: BackfillRequest) => Promise<void> };
}

/** "schema.table" of each table schema, made once (it keys the per-table counts of every change). */
const qualifiedNames = new WeakMap<TableSchema, string>();

function qualifiedName(schema: TableSchema): string {
  let name = qualifiedNames.get(schema);
  if (name === undefined) {
    name = `${schema.schema}.${schema.table}`;
    qualifiedNames.set(schema, name);
  }
  return name;
}

/** The events with their place in the transaction after `before` (those of skipped operations are not counted). */
function numbered(events: readonly ChangeEvent[], before: { readonly total: number; readonly inTable: number }, leftOut: ReadonlySet<Op> | undefined): ChangeEvent[] {
  let n = 0;
  return events.map((event) => {
    if (leftOut?.has(event.op) === true) return event;
    n += 1;
    return { ...event, source: { ...event.source, transactionOrder: { total: before.total + n, inTable: before.inTable + n } } };
  });
}

export class StreamDecoder {
  private readonly options: StreamDecoderOptions;
  private transaction: OpenTransaction | null = null;
  private lastThrough: Position | null = null;
  private skipThrough: Position | null;

  constructor(options: StreamDecoderOptions) {
    this.options = options;
    this.skipThrough = options.skipThrough;
  }

  get inTransaction(): boolean {
    return this.transaction !== null;
  }

  /** The latest position through which every message has been decoded (a commit or a heartbeat). */
  get throughPosition(): Position | null {
    return this.lastThrough;
  }

  /** Decodes one message; returns a promise only when it must consult the catalog (Relation). */
  apply(message: WalMessage, out: DecodedOutput): void | Promise<void> {
    if (message.keepalive !== undefined) {
      this.keepalive(message.walStart);
      return;
    }
    const payload = message.payload;
    const tag = payload[0];
    // Most changes: an insert, or an update that sends no old tuple, of a captured table.
    if ((tag === 0x49 || tag === 0x55) && this.transaction !== null && this.changeFromBytes(tag, payload, message, out)) return;
    const decoded = decodePgoutput(payload);
    switch (decoded.tag) {
      case "begin": {
        const txId = String(decoded.xid);
        const commitTimeMs = postgresMicrosToEpochMs(decoded.commitTime);
        this.transaction = {
          commitLsn: decoded.finalLsn,
          txId,
          commitTimeMs,
          eventCount: 0,
          tableEventCounts: {},
          beginEmitted: false,
          origin: { sourceName: this.options.sourceName, position: { commit: decoded.finalLsn, change: decoded.finalLsn }, txId, commitTimeMs, snapshot: false },
        };
        return;
      }
      case "commit":
        this.commit(decoded.commitLsn, out);
        return;
      case "relation":
        return this.options.resolveRelation(decoded, this.transaction === null ? throughPosition(message.walStart) : { commit: this.transaction.commitLsn, change: message.walStart }).then(() => undefined);
      // Every change: no closure, array or origin object of its own (a transaction's origin is reused; makeEvent copies what it needs).
      case "insert": {
        const table = this.capturedTable(decoded.relationId, message);
        if (table !== null) this.emit(table, out, insertEvent(table, decoded.newTuple, this.originAt(message.walStart)));
        return;
      }
      case "update": {
        const table = this.capturedTable(decoded.relationId, message);
        if (table !== null) this.emit(table, out, updateEvents(table, decoded.oldKey, decoded.oldTuple, decoded.newTuple, this.originAt(message.walStart)));
        return;
      }
      case "delete": {
        const table = this.capturedTable(decoded.relationId, message);
        if (table !== null) this.emit(table, out, deleteEvent(table, decoded.oldKey, decoded.oldTuple, this.originAt(message.walStart)));
        return;
      }
      case "truncate":
        for (const relationId of decoded.relationIds) {
          const table = this.capturedTable(relationId, message);
          if (table !== null) this.emit(table, out, truncateEvent(table, this.originAt(message.walStart)));
        }
        return;
      case "message":
        // Only transactional messages are outbox events: a non-transactional one is not atomic with anything (docs/outbox.md).
        if (decoded.transactional && this.transaction !== null && decoded.prefix === this.options.outboxMessages?.prefix) {
          this.outboxMessage(decoded.content, decoded.lsn, out);
          return;
        }
        // A non-transactional message (a heartbeat) carries the LSN where its record ends, which is where
        // the next record starts: a transaction whose commit record starts there comes after it in the
        // stream, so the message is decoded through the LSN below, never through that commit.
        if (!decoded.transactional && this.transaction === null) this.advanceThrough(throughPosition(decoded.lsn - 1n));
        // Sluice's own messages are a few hundred bytes; anyone connected may write one with these prefixes (up to 1 GB):
        // a larger one is none of ours, and is not made a string on the main thread.
        else if (decoded.content.length > OWN_MESSAGE_MAX_BYTES) return;
        else if (decoded.transactional && decoded.prefix === WATERMARK_PREFIX && this.transaction !== null) {
          this.options.interleave?.watermark(decoded.content.toString("utf8"), this.transaction.commitLsn, out);
        } else if (decoded.transactional && decoded.prefix === RECREATED_PREFIX && this.transaction !== null && this.options.recreated !== undefined) {
          return this.recreatedTable(decoded.content.toString("utf8"), decoded.lsn, out);
        } else if (decoded.transactional && decoded.prefix === BACKFILL_PREFIX && this.transaction !== null && this.options.backfill !== undefined) {
          return this.backfillRequested(decoded.content.toString("utf8"), decoded.lsn);
        }
        return;
      case "type":
      case "origin":
        return;
    }
  }

  /**
   * An insert ('I') or an update with only its new tuple ('U', 'N') of a captured table, its row read straight from
   * the message's bytes (wholeRowFromTupleBytes: no tuple of strings first, no string for a column whose type is
   * read from its bytes); false, having handed on nothing, where decodePgoutput and rowFromTuple must read it (an old
   * tuple, a table not captured or not known, anything wholeRowFromTupleBytes leaves to them), so that their errors stand.
   */
  private changeFromBytes(tag: number, payload: Buffer, message: WalMessage, out: DecodedOutput): boolean {
    if (payload.length < 6 || payload[5] !== 0x4e) return false; // 'N'
    const table = this.options.tables.get(payload.readUInt32BE(1));
    if (table === undefined || table === null) return false;
    const origin = this.originAt(message.walStart);
    const row = wholeRowFromTupleBytes(table, payload, 6, origin.position);
    if (row === undefined) return false;
    this.emit(table, out, tag === 0x49 ? insertEventOfRow(table, row, origin) : updateEventsOfRows(table, null, row, origin));
    return true;
  }

  /** A RECREATED_PREFIX message of this slot: a truncate of the table at the message's LSN. */
  private async recreatedTable(content: string, lsn: bigint, out: DecodedOutput): Promise<void> {
    const { slot, table: tableOf } = this.options.recreated!;
    const message = parseTableMessage(content);
    if (message === null || message.slot !== slot) return;
    for (const reading of tableReadings(message.table)) {
      const table = await tableOf(reading.schema, reading.table);
      if (table === null) continue;
      this.emit(table, out, truncateEvent(table, this.originAt(lsn)));
      return;
    }
  }

  /** A BACKFILL_PREFIX message of this slot that no durable checkpoint covers yet: the table's backfill is queued. */
  private async backfillRequested(content: string, lsn: bigint): Promise<void> {
    const { slot, request } = this.options.backfill!;
    const message = parseTableMessage(content);
    if (message === null || message.slot !== slot) return;
    const commitLsn = this.transaction!.commitLsn;
    if (this.skipThrough !== null && comparePositions({ commit: commitLsn, change: lsn }, this.skipThrough) <= 0) return;
    const id = `added-${lsn.toString(16)}`;
    await request({ table: message.table, relid: message.relid, id, above: message.emptied ? commitLsn : undefined });
  }

  /** A transactional outbox message: an event at its own LSN in its transaction. */
  private outboxMessage(content: Buffer, lsn: bigint, out: DecodedOutput): void {
    const { prefix, database, maxBytes } = this.options.outboxMessages!;
    const table = logicalMessageTable(this.options.sourceName, database, prefix);
    this.emit({ schema: table } as CapturedTable, out, logicalMessageEvent(table, content, this.originAt(lsn), maxBytes));
  }

  private capturedTable(relationId: number, message: WalMessage): CapturedTable | null {
    const table = this.options.tables.get(relationId);
    if (table === undefined) {
      throw new SluiceError(`change for relation ${relationId} before its Relation message`, {
        code: "PG_PROTOCOL",
        context: { component: "postgres-source", source: this.options.sourceName, position: formatLsn(message.walStart) },
      });
    }
    if (table !== null && this.transaction === null) {
      throw new SluiceError("change outside a transaction", {
        code: "PG_PROTOCOL",
        context: { component: "postgres-source", source: this.options.sourceName, position: formatLsn(message.walStart) },
      });
    }
    return table;
  }

  /**
   * Where the change at `changeLsn` sits in the open transaction: the transaction's one origin
   * object with this change's position (the event builders copy its fields; none keeps it).
   */
  private originAt(changeLsn: bigint): EventOrigin {
    const transaction = this.transaction!;
    const origin = transaction.origin;
    origin.position = { commit: transaction.commitLsn, change: changeLsn };
    return origin;
  }

  /** Hands on the events of one change (one, or two for a key-changing update), or drops them when they are already durable. */
  private emit(table: CapturedTable, out: DecodedOutput, built: ChangeEvent | ChangeEvent[]): void {
    const transaction = this.transaction!;
    const position = transaction.origin.position;
    const skipped = this.skipThrough !== null && comparePositions(position, this.skipThrough) <= 0;
    if (!this.options.transactionMetadata) {
      // The counts below serve only the transaction markers.
      if (skipped) return;
      if (Array.isArray(built)) for (let i = 0; i < built.length; i++) this.handOn(built[i]!, out);
      else this.handOn(built, out);
      return;
    }
    const events = Array.isArray(built) ? built : [built];
    const tableName = qualifiedName(table.schema);
    const leftOut = this.options.skippedOperations;
    const counted = leftOut === undefined || leftOut.size === 0 ? events.length : events.filter((event) => !leftOut.has(event.op)).length;
    const before = { total: transaction.eventCount, inTable: transaction.tableEventCounts[tableName] ?? 0 };
    transaction.eventCount += counted;
    if (counted > 0) transaction.tableEventCounts[tableName] = (transaction.tableEventCounts[tableName] ?? 0) + counted;
    if (skipped) {
      if (counted > 0) transaction.beginEmitted = true;
      return;
    }
    if (counted > 0 && !transaction.beginEmitted) {
      out.transactions.push({ status: "BEGIN", txId: transaction.txId, position, commitTimeMs: transaction.commitTimeMs });
    }
    if (counted > 0) transaction.beginEmitted = true;
    for (const event of numbered(events, before, leftOut)) this.handOn(event, out);
  }

  private handOn(event: ChangeEvent, out: DecodedOutput): void {
    out.events.push(event);
    this.options.interleave?.changed(event);
  }

  private commit(commitLsn: bigint, out: DecodedOutput): void {
    const transaction = this.transaction;
    this.transaction = null;
    const position = throughPosition(commitLsn);
    if (transaction !== null && this.options.transactionMetadata && transaction.eventCount > 0) {
      const alreadyDurable = this.skipThrough !== null && comparePositions(position, this.skipThrough) <= 0;
      if (!alreadyDurable) {
        out.transactions.push({
          status: "END",
          txId: transaction.txId,
          position,
          commitTimeMs: transaction.commitTimeMs,
          eventCount: transaction.eventCount,
          tableEventCounts: transaction.tableEventCounts,
        });
      }
    }
    this.advanceThrough(position);
  }

  /**
   * A keepalive says the server has sent everything before its WAL end: outside a transaction,
   * everything through the LSN just below it is decoded, and confirming that position lets the
   * slot's confirmed_flush_lsn reach the WAL end exactly (what a fast shutdown waits for). Inside a
   * transaction the keepalive says nothing about the changes still to come, so it is ignored.
   */
  private keepalive(walEnd: bigint): void {
    if (this.transaction !== null || walEnd === 0n) return;
    const position = throughPosition(walEnd - 1n);
    if (this.lastThrough !== null && comparePositions(position, this.lastThrough) <= 0) return;
    this.advanceThrough(position);
  }

  private advanceThrough(position: Position): void {
    if (this.skipThrough !== null && comparePositions(position, this.skipThrough) <= 0) return;
    this.skipThrough = null;
    this.lastThrough = position;
  }
}
