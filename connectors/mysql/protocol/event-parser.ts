/**
 * Turns raw binlog events into typed ones: checks the CRC32 footer when the format description
 * says events carry one, keeps the current format description, and decodes every event type Sluice
 * acts on. Rows events are decoded only up to their header: their values need the table's columns.
 */
import type { MariadbGtid, MysqlGtidSet } from "../gtid.ts";
import type { CollationTable } from "../values/charsets.ts";
import { BinaryReader } from "./binary-reader.ts";
import { EventType, ROWS_EVENTS } from "./constants.ts";
import { CHECKSUM_BYTES, checksumMatches, DEFAULT_FORMAT, EVENT_HEADER_BYTES, postHeaderLength, readEventHeader, readFormatDescription } from "./event-header.ts";
import type { EventHeader, FormatDescription } from "./event-header.ts";
import {
  readAnnotateRows,
  readHeartbeat,
  readHeartbeatV2,
  readMariadbGtid,
  readMariadbGtidList,
  readMysqlGtid,
  readMysqlTaggedGtid,
  readPreviousGtids,
  readQuery,
  readRotate,
  readRowsQuery,
  readTransactionPayloadHeader,
  readXaPrepare,
  readXid,
} from "./events.ts";
import type { MariadbGtidEvent, MysqlGtidEvent, QueryEvent, RotateEvent, TransactionPayload } from "./events.ts";
import { DecompressionLimitError, defaultDecompressionLimit } from "./decompression-limit.ts";
import { uncompressEventData } from "./mariadb-compressed-events.ts";
import { readRowsHeader } from "./rows-event.ts";
import type { RowsEventHeader } from "./rows-event.ts";
import { readTableMap, readTableMapName } from "./table-map.ts";
import type { TableMap } from "./table-map.ts";

export type EventBody =
  | { readonly kind: "format"; readonly format: FormatDescription }
  | { readonly kind: "rotate"; readonly rotate: RotateEvent }
  | { readonly kind: "query"; readonly query: QueryEvent }
  | { readonly kind: "xid"; readonly xid: bigint }
  | { readonly kind: "mysql-gtid"; readonly gtid: MysqlGtidEvent }
  | { readonly kind: "mariadb-gtid"; readonly gtid: MariadbGtidEvent }
  | { readonly kind: "previous-gtids"; readonly set: MysqlGtidSet }
  | { readonly kind: "gtid-list"; readonly list: readonly MariadbGtid[] }
  /** `raw`: the event body after the table id, equal for equal table maps. */
  | { readonly kind: "table-map"; readonly map: TableMap; readonly raw: Buffer }
  /** A table map whose columns cannot be read (a column type Sluice does not know): only its table is known. */
  | { readonly kind: "unreadable-table-map"; readonly tableId: number; readonly database: string; readonly table: string; readonly error: RangeError }
  /** `reader` is positioned at the first row image (of the inflated images when `rows.compressed`: offsets in it are not the event's). */
  | { readonly kind: "rows"; readonly rows: RowsEventHeader; readonly reader: BinaryReader }
  /** A compressed rows event (MariaDB's log_bin_compress) whose row images state a size over the decompression limit: left compressed. */
  | { readonly kind: "rows-too-large"; readonly rows: RowsEventHeader; readonly error: DecompressionLimitError }
  | { readonly kind: "rows-query"; readonly query: string }
  /** `position`: where the server is in `file` (v1 heartbeats: the header's log position). */
  | { readonly kind: "heartbeat"; readonly file: string; readonly position: number }
  /** A TRANSACTION_PAYLOAD_EVENT, still compressed: its inner events without checksums (payload-stream.ts, decompressPayload). */
  | { readonly kind: "payload"; readonly payload: TransactionPayload }
  /** `xid` as XA COMMIT/ROLLBACK statements in the binlog write it (readXaPrepare); `onePhase`: it commits too. */
  | { readonly kind: "xa-prepare"; readonly xid: string; readonly onePhase: boolean }
  | { readonly kind: "stop" }
  | { readonly kind: "other" };

export interface ParsedEvent {
  readonly header: EventHeader;
  readonly body: EventBody;
}

export class ChecksumError extends RangeError {}

export class EventParser {
  format: FormatDescription = DEFAULT_FORMAT;
  /** The most bytes a compressed event may decompress to (decompression-limit.ts). */
  decompressionLimit = defaultDecompressionLimit();
  private readonly collations: CollationTable;

  /**
   * `checksummedBeforeFormat`: whether events before the first FDE carry a CRC32 -- over the network,
   * the fake ROTATE a dump starts with does when the replica announced @master_binlog_checksum and
   * the server's binlog_checksum is CRC32.
   */
  constructor(collations: CollationTable, checksummedBeforeFormat = false) {
    this.collations = collations;
    this.format = { ...DEFAULT_FORMAT, checksummed: checksummedBeforeFormat };
  }

  /**
   * Parses one whole event. `inPayload`: an inner event of a transaction payload, which has no
   * checksum of its own.
   */
  parse(event: Buffer, inPayload = false): ParsedEvent {
    const header = readEventHeader(event);
    if (header.size > event.length || header.size < EVENT_HEADER_BYTES) {
      throw new RangeError(`binlog event of type ${header.type} claims ${header.size} bytes, has ${event.length}`);
    }
    if (header.type === EventType.FORMAT_DESCRIPTION) {
      const format = readFormatDescription(event);
      if (format.checksummed && !checksumMatches(event, header.size)) throw new ChecksumError(`CRC32 mismatch in the format description event`);
      this.format = format;
      return { header, body: { kind: "format", format } };
    }
    const checksummed = this.format.checksummed && !inPayload;
    if (checksummed && !checksumMatches(event, header.size)) {
      throw new ChecksumError(`CRC32 mismatch in a binlog event of type ${header.type} ending at ${header.logPos}`);
    }
    const reader = new BinaryReader(event, EVENT_HEADER_BYTES, header.size - (checksummed ? CHECKSUM_BYTES : 0));
    return { header, body: this.body(header, reader) };
  }

  private body(header: EventHeader, reader: BinaryReader): EventBody {
    const { format } = this;
    switch (header.type) {
      case EventType.ROTATE:
        return { kind: "rotate", rotate: readRotate(reader) };
      case EventType.QUERY:
        return { kind: "query", query: readQuery(reader, format) };
      case EventType.MARIADB_QUERY_COMPRESSED:
        return { kind: "query", query: readQuery(reader, format, true, this.decompressionLimit) };
      case EventType.XID:
        return { kind: "xid", xid: readXid(reader) };
      case EventType.GTID:
        return { kind: "mysql-gtid", gtid: readMysqlGtid(reader, false) };
      case EventType.ANONYMOUS_GTID:
        return { kind: "mysql-gtid", gtid: readMysqlGtid(reader, true) };
      case EventType.GTID_TAGGED:
        return { kind: "mysql-gtid", gtid: readMysqlTaggedGtid(reader) };
      case EventType.PREVIOUS_GTIDS:
        return { kind: "previous-gtids", set: readPreviousGtids(reader) };
      case EventType.MARIADB_GTID:
        return { kind: "mariadb-gtid", gtid: readMariadbGtid(reader, header.serverId) };
      case EventType.MARIADB_GTID_LIST:
        return { kind: "gtid-list", list: readMariadbGtidList(reader) };
      case EventType.TABLE_MAP: {
        const start = reader.pos;
        const bodyStart = start + (postHeaderLength(format, EventType.TABLE_MAP, 8) === 6 ? 4 : 6);
        let map: TableMap;
        try {
          map = readTableMap(reader, format, this.collations);
        } catch (error) {
          if (!(error instanceof RangeError)) throw error;
          reader.pos = start;
          return { kind: "unreadable-table-map", ...readTableMapName(reader, format), error };
        }
        return { kind: "table-map", map, raw: reader.bytes.subarray(bodyStart, reader.end) };
      }
      case EventType.MARIADB_ANNOTATE_ROWS:
        return { kind: "rows-query", query: readAnnotateRows(reader) };
      case EventType.ROWS_QUERY:
        return { kind: "rows-query", query: readRowsQuery(reader) };
      case EventType.HEARTBEAT:
        return { kind: "heartbeat", file: readHeartbeat(reader), position: header.logPos };
      case EventType.HEARTBEAT_V2: {
        const heartbeat = readHeartbeatV2(reader);
        return heartbeat === null ? { kind: "other" } : { kind: "heartbeat", ...heartbeat };
      }
      case EventType.TRANSACTION_PAYLOAD:
        return { kind: "payload", payload: readTransactionPayloadHeader(reader) };
      case EventType.XA_PREPARE:
        return { kind: "xa-prepare", ...readXaPrepare(reader) };
      case EventType.STOP:
        return { kind: "stop" };
      default:
        if (ROWS_EVENTS.has(header.type)) {
          const rows = readRowsHeader(reader, format, header.type);
          if (!rows.compressed) return { kind: "rows", rows, reader };
          // The table is known from the uncompressed header: its decoder decides what an event over the limit stops.
          try {
            return { kind: "rows", rows, reader: new BinaryReader(uncompressEventData(reader.rest(), "row images", this.decompressionLimit)) };
          } catch (error) {
            if (!(error instanceof DecompressionLimitError)) throw error;
            return { kind: "rows-too-large", rows, error };
          }
        }
        return { kind: "other" };
    }
  }
}

/** The events of a transaction payload: each begins with its own header, whose size says where the next begins. */
export function* payloadEvents(payload: Buffer): Generator<Buffer> {
  let offset = 0;
  while (offset + EVENT_HEADER_BYTES <= payload.length) {
    const size = payload.readUInt32LE(offset + 9);
    if (size < EVENT_HEADER_BYTES || offset + size > payload.length) throw new RangeError(`transaction payload event of ${size} bytes at ${offset} overruns the payload`);
    yield payload.subarray(offset, offset + size);
    offset += size;
  }
}
