/**
 * Decoders of the binlog events that are not about rows: ROTATE, QUERY, XID, the GTID events of
 * both dialects, PREVIOUS_GTIDS / GTID_LIST, ANNOTATE_ROWS / ROWS_QUERY, HEARTBEAT, MySQL's
 * compressed TRANSACTION_PAYLOAD and MariaDB's QUERY_COMPRESSED. Each takes a reader positioned after the 19-byte header whose
 * `end` excludes the checksum.
 */
import { zstdDecompressSync } from "node:zlib";
import { formatUuid, MysqlGtidSet, readSerializedSigned, readSerializedUnsigned, readSerializedUnsignedBig } from "../gtid.ts";
import type { MariadbGtid, MysqlGtid } from "../gtid.ts";
import { BinaryReader } from "./binary-reader.ts";
import { EventType } from "./constants.ts";
import { postHeaderLength } from "./event-header.ts";
import { DecompressionLimitError, isOutputLimitError, MAX_EVENT_BYTES } from "./decompression-limit.ts";
import { uncompressEventData } from "./mariadb-compressed-events.ts";
import type { FormatDescription } from "./event-header.ts";

export interface RotateEvent {
  readonly position: number;
  readonly nextFile: string;
}

export function readRotate(reader: BinaryReader): RotateEvent {
  const position = reader.u64Number("rotate position");
  return { position, nextFile: reader.rest().toString("utf8") };
}

export interface QueryEvent {
  readonly threadId: number;
  readonly errorCode: number;
  /** The default database of the statement ("" when none). */
  readonly schema: string;
  readonly query: string;
}

/** QUERY, and MariaDB's QUERY_COMPRESSED (`compressed`: the statement is compressed, log_bin_compress). */
export function readQuery(reader: BinaryReader, format: FormatDescription, compressed = false, limit = MAX_EVENT_BYTES): QueryEvent {
  const postHeader = postHeaderLength(format, EventType.QUERY, 13);
  const start = reader.pos;
  const threadId = reader.u32();
  reader.skip(4);
  const schemaLength = reader.u8();
  const errorCode = reader.u16();
  const statusLength = postHeader >= 13 ? reader.u16() : 0;
  reader.pos = start + postHeader;
  reader.skip(statusLength);
  const schema = reader.utf8(schemaLength);
  reader.skip(1);
  const query = compressed ? uncompressEventData(reader.rest(), "statement", limit) : reader.rest();
  return { threadId, errorCode, schema, query: query.toString("utf8") };
}

export function readXid(reader: BinaryReader): bigint {
  return reader.u64();
}

export interface MysqlGtidEvent {
  /** Null for ANONYMOUS_GTID_LOG_EVENT (gtid_mode=OFF). */
  readonly gtid: MysqlGtid | null;
  /** immediate_commit_timestamp in microseconds since the epoch (MySQL 8.0.1+), else null. */
  readonly commitTimeMicros: bigint | null;
}

/** GTID_LOG_EVENT and ANONYMOUS_GTID_LOG_EVENT. */
export function readMysqlGtid(reader: BinaryReader, anonymous: boolean): MysqlGtidEvent {
  reader.skip(1);
  const uuid = formatUuid(reader.bytesView(16));
  const gno = reader.i64();
  let commitTimeMicros: bigint | null = null;
  if (reader.remaining >= 1 + 16 && reader.u8() === 2) {
    reader.skip(16);
    if (reader.remaining >= 7) {
      const low = BigInt(reader.u32());
      const high = BigInt(reader.u24());
      commitTimeMicros = ((high << 32n) | low) & ((1n << 55n) - 1n);
    }
  }
  return { gtid: anonymous ? null : { uuid, tag: "", gno }, commitTimeMicros };
}

/** GTID_TAGGED_LOG_EVENT (MySQL 8.3+): fields in MySQL's serialization format, by field id. */
export function readMysqlTaggedGtid(reader: BinaryReader): MysqlGtidEvent {
  const start = reader.pos;
  readSerializedUnsigned(reader); // format version
  const size = readSerializedUnsigned(reader);
  const end = Math.min(reader.end, start + size);
  readSerializedUnsigned(reader); // last non-ignorable field id
  let uuid = "";
  let gno = 0n;
  let tag = "";
  let commitTimeMicros: bigint | null = null;
  while (reader.pos < end) {
    const field = readSerializedUnsigned(reader);
    switch (field) {
      case 1: {
        const bytes = new Uint8Array(16);
        for (let i = 0; i < 16; i++) bytes[i] = readSerializedUnsigned(reader);
        uuid = formatUuid(bytes);
        break;
      }
      case 2:
        gno = readSerializedSigned(reader);
        break;
      case 3:
        tag = reader.utf8(readSerializedUnsigned(reader)).toLowerCase();
        break;
      case 4:
      case 5:
        readSerializedSigned(reader);
        break;
      case 6:
        commitTimeMicros = readSerializedUnsignedBig(reader);
        break;
      default:
        readSerializedUnsignedBig(reader);
    }
  }
  return { gtid: { uuid, tag, gno }, commitTimeMicros };
}

export function readPreviousGtids(reader: BinaryReader): MysqlGtidSet {
  return MysqlGtidSet.decode(reader);
}

/** FL_STANDALONE: the transaction is one statement without BEGIN/COMMIT (DDL). */
export const MARIADB_GTID_STANDALONE = 0x1;
const MARIADB_GTID_GROUP_COMMIT_ID = 0x2;
/** FL_PREPARED_XA: the transaction is an XA transaction's changes, up to its XA PREPARE (MariaDB logs no XA START). */
export const MARIADB_GTID_PREPARED_XA = 0x40;
const MARIADB_GTID_COMPLETED_XA = 0x80;
/** flags_extra of a two-phase ALTER (binlog_alter_two_phase): FL_START_ALTER_E1, FL_COMMIT_ALTER_E1, FL_ROLLBACK_ALTER_E1. */
const MARIADB_GTID_START_ALTER = 0x2;
const MARIADB_GTID_COMMIT_ALTER = 0x4;
const MARIADB_GTID_ROLLBACK_ALTER = 0x8;

/** Which event of MariaDB's two-phase ALTER a GTID opens: the ALTER began, took effect, or failed (each logs the statement). */
export type AlterPhase = "start" | "commit" | "rollback";

export interface MariadbGtidEvent {
  readonly gtid: MariadbGtid;
  readonly standalone: boolean;
  readonly flags: number;
  readonly alterPhase: AlterPhase | null;
}

export function readMariadbGtid(reader: BinaryReader, serverId: number): MariadbGtidEvent {
  const seq = reader.u64();
  const domain = reader.u32();
  const flags = reader.u8();
  if (flags & MARIADB_GTID_GROUP_COMMIT_ID) reader.skip(8);
  if (flags & (MARIADB_GTID_PREPARED_XA | MARIADB_GTID_COMPLETED_XA)) {
    reader.skip(4);
    const lengths = reader.u8() + reader.u8();
    reader.skip(lengths);
  }
  // MariaDB 10.8+ may follow with flags_extra (zero padding otherwise).
  const extra = reader.remaining > 0 ? reader.u8() : 0;
  const alterPhase = extra & MARIADB_GTID_START_ALTER ? "start" : extra & MARIADB_GTID_COMMIT_ALTER ? "commit" : extra & MARIADB_GTID_ROLLBACK_ALTER ? "rollback" : null;
  return { gtid: { domain, server: serverId, seq }, standalone: (flags & MARIADB_GTID_STANDALONE) !== 0, flags, alterPhase };
}

export function readMariadbGtidList(reader: BinaryReader): MariadbGtid[] {
  const count = reader.u32() & 0x0fffffff;
  const list: MariadbGtid[] = [];
  for (let i = 0; i < count; i++) list.push({ domain: reader.u32(), server: reader.u32(), seq: reader.u64() });
  return list;
}

export function readAnnotateRows(reader: BinaryReader): string {
  return reader.rest().toString("utf8");
}

export function readRowsQuery(reader: BinaryReader): string {
  reader.skip(1);
  return reader.rest().toString("utf8");
}

/**
 * XA_PREPARE_LOG_EVENT: the XID of the XA transaction it prepares (one_phase, formatID, gtrid and
 * bqual lengths, then their bytes), written as the server writes it in XA COMMIT/ROLLBACK statements
 * of the binlog: X'<gtrid hex>',X'<bqual hex>',<formatID>. One phase (XA COMMIT ... ONE PHASE): it commits too.
 */
export function readXaPrepare(reader: BinaryReader): { readonly xid: string; readonly onePhase: boolean } {
  const onePhase = reader.uintLE(1) !== 0;
  const formatId = reader.i32();
  const gtridLength = reader.uintLE(4);
  const bqualLength = reader.uintLE(4);
  const gtrid = reader.bytesView(gtridLength).toString("hex");
  const bqual = reader.bytesView(bqualLength).toString("hex");
  return { xid: `X'${gtrid}',X'${bqual}',${formatId}`, onePhase };
}

/** HEARTBEAT_LOG_EVENT: the file the server is reading; the header's log position says where. */
export function readHeartbeat(reader: BinaryReader): string {
  return reader.rest().toString("utf8");
}

const HEARTBEAT_V2_FILE = 1;
const HEARTBEAT_V2_POSITION = 2;

/** HEARTBEAT_LOG_EVENT_V2 (MySQL 8.0.26+): type-length-value fields carrying the file and a 64-bit position. */
export function readHeartbeatV2(reader: BinaryReader): { file: string; position: number } | null {
  let file: string | null = null;
  let position: number | null = null;
  try {
    while (reader.remaining > 0) {
      const type = reader.lenenc();
      if (type === 0) break;
      const value = new BinaryReader(reader.bytesView(reader.lenenc()));
      if (type === HEARTBEAT_V2_FILE) file = value.rest().toString("utf8");
      else if (type === HEARTBEAT_V2_POSITION) position = value.lenenc();
    }
  } catch {
    return null;
  }
  return file === null || position === null ? null : { file, position };
}

const PAYLOAD_END_MARK = 0;
const PAYLOAD_COMPRESSION_TYPE = 2;
const PAYLOAD_UNCOMPRESSED_SIZE = 3;
export const COMPRESSION_ZSTD = 0;
export const COMPRESSION_NONE = 255;

/** A TRANSACTION_PAYLOAD_EVENT as it comes: its header fields and its data, still compressed. */
export interface TransactionPayload {
  readonly compression: number;
  /** The uncompressed size the header states; null when it states none. */
  readonly stated: number | null;
  readonly data: Buffer;
}

export function readTransactionPayloadHeader(reader: BinaryReader): TransactionPayload {
  let compression = COMPRESSION_NONE;
  let stated: number | null = null;
  for (;;) {
    const type = reader.lenenc();
    if (type === PAYLOAD_END_MARK) break;
    const length = reader.lenenc();
    const value = new BinaryReader(reader.bytesView(length));
    if (type === PAYLOAD_COMPRESSION_TYPE) compression = value.lenenc();
    else if (type === PAYLOAD_UNCOMPRESSED_SIZE) stated = value.lenenc();
  }
  return { compression, stated, data: reader.rest() };
}

/**
 * The inner events (without checksums) of a TRANSACTION_PAYLOAD_EVENT, decompressed whole: at most `limit` bytes
 * (decompression-limit.ts), and no more than the payload header's uncompressed size. Capture streams them instead
 * (payload-stream.ts); this is for reading binlog files in tests and tools.
 */
export function readTransactionPayload(reader: BinaryReader, limit: number): Buffer {
  return decompressPayload(readTransactionPayloadHeader(reader), limit);
}

export function decompressPayload(header: TransactionPayload, limit: number): Buffer {
  const { compression, stated, data: payload } = header;
  if (compression === COMPRESSION_NONE) return payload;
  if (compression !== COMPRESSION_ZSTD) throw new RangeError(`unknown transaction payload compression ${compression}`);
  if (stated !== null && stated > limit) {
    throw new DecompressionLimitError(`transaction payload of ${payload.length} compressed bytes states ${stated} bytes uncompressed, over the limit of ${limit}`, { limit, stated, compressedBytes: payload.length });
  }
  const bound = stated ?? limit;
  let events: Buffer;
  try {
    events = zstdDecompressSync(payload, { maxOutputLength: Math.max(1, bound) });
  } catch (error) {
    if (!isOutputLimitError(error)) throw error;
    const over = stated === null ? `more than the limit of ${limit} bytes` : `more than the ${stated} bytes its header states`;
    throw new DecompressionLimitError(`transaction payload of ${payload.length} compressed bytes decompresses to ${over}`, { limit, stated, compressedBytes: payload.length });
  }
  if (stated !== null && events.length !== stated) throw new RangeError(`transaction payload decompresses to ${events.length} bytes, its header states ${stated}`);
  return events;
}
