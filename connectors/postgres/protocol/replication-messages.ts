/**
 * The CopyBoth messages of PostgreSQL's streaming replication protocol that a logical
 * replication client exchanges after START_REPLICATION: XLogData ('w') and primary keepalive
 * ('k') from the server, standby status update ('r') to it.
 */
import { ByteReader } from "./byte-reader.ts";

export interface XLogData {
  readonly kind: "xlogdata";
  /** LSN of the WAL record the payload was decoded from (the change's own LSN). */
  readonly walStart: bigint;
  /** Server's current end of WAL. */
  readonly walEnd: bigint;
  /** Server clock at sending, microseconds since 2000-01-01. */
  readonly sendTime: bigint;
  /** One logical decoding output message (pgoutput). A view into the received bytes. */
  readonly payload: Buffer;
}

export interface PrimaryKeepalive {
  readonly kind: "keepalive";
  readonly walEnd: bigint;
  readonly sendTime: bigint;
  /** The server asks for a status update now, or it will time the connection out. */
  readonly replyRequested: boolean;
}

export type ReplicationMessage = XLogData | PrimaryKeepalive;

/** Bytes before the payload of an XLogData message: tag, walStart, walEnd, sendTime. */
export const XLOGDATA_HEADER_BYTES = 25;
/** The tag byte of XLogData ('w'). */
export const XLOGDATA_TAG = 0x77;

export function decodeReplicationMessage(bytes: Buffer): ReplicationMessage {
  const reader = new ByteReader(bytes);
  const tag = reader.uint8();
  if (tag === XLOGDATA_TAG) {
    const walStart = reader.uint64();
    const walEnd = reader.uint64();
    const sendTime = reader.int64();
    return { kind: "xlogdata", walStart, walEnd, sendTime, payload: bytes.subarray(XLOGDATA_HEADER_BYTES) };
  }
  if (tag === 0x6b) {
    const walEnd = reader.uint64();
    const sendTime = reader.int64();
    const replyRequested = reader.uint8() === 1;
    return { kind: "keepalive", walEnd, sendTime, replyRequested };
  }
  throw new RangeError(`unknown replication message type 0x${tag.toString(16).padStart(2, "0")}`);
}

export interface StandbyStatus {
  /** Everything before this LSN was received. */
  readonly written: bigint;
  /** Everything before this LSN is durable downstream: the slot's confirmed_flush_lsn becomes this. */
  readonly flushed: bigint;
  readonly applied: bigint;
  /** Client clock, microseconds since 2000-01-01. */
  readonly clock: bigint;
  readonly replyRequested: boolean;
}

export function encodeStandbyStatusUpdate(status: StandbyStatus): Buffer {
  const bytes = Buffer.alloc(34);
  bytes.writeUInt8(0x72, 0);
  bytes.writeBigUInt64BE(status.written, 1);
  bytes.writeBigUInt64BE(status.flushed, 9);
  bytes.writeBigUInt64BE(status.applied, 17);
  bytes.writeBigInt64BE(status.clock, 25);
  bytes.writeUInt8(status.replyRequested ? 1 : 0, 33);
  return bytes;
}
