/**
 * Decoder for the messages of PostgreSQL's built-in `pgoutput` logical decoding plugin,
 * protocol version 1 ("Logical Replication Message Formats" in the PostgreSQL manual).
 * Column values stay raw here (text or the markers for NULL and unchanged TOAST); turning text
 * into typed values is the job of ../values/.
 */
import { UNCHANGED } from "../../contracts.ts";
import type { Unchanged } from "../../contracts.ts";
import { ByteReader } from "./byte-reader.ts";

/** A column of a TupleData: its text, NULL, UNCHANGED (unchanged TOAST, not sent) or binary bytes. */
export type RawColumn = string | null | Unchanged | { readonly binary: Buffer };
export type TupleData = readonly RawColumn[];

export interface BeginMessage {
  readonly tag: "begin";
  /** LSN of the transaction's commit record. */
  readonly finalLsn: bigint;
  /** Microseconds since 2000-01-01. */
  readonly commitTime: bigint;
  readonly xid: number;
}

export interface CommitMessage {
  readonly tag: "commit";
  readonly flags: number;
  readonly commitLsn: bigint;
  /** LSN just past the commit record. */
  readonly endLsn: bigint;
  readonly commitTime: bigint;
}

export interface OriginMessage {
  readonly tag: "origin";
  readonly originLsn: bigint;
  readonly name: string;
}

export interface RelationColumn {
  /** Part of the replica identity (flag 1). */
  readonly isKey: boolean;
  readonly name: string;
  readonly typeOid: number;
  readonly typeModifier: number;
}

export interface RelationMessage {
  readonly tag: "relation";
  readonly relationId: number;
  /** Schema name; "pg_catalog" is sent as the empty string and decoded back. */
  readonly namespace: string;
  readonly name: string;
  /** pg_class.relreplident: "d" default, "n" nothing, "f" full, "i" index. */
  readonly replicaIdentity: string;
  readonly columns: readonly RelationColumn[];
}

export interface TypeMessage {
  readonly tag: "type";
  readonly typeOid: number;
  readonly namespace: string;
  readonly name: string;
}

export interface InsertMessage {
  readonly tag: "insert";
  readonly relationId: number;
  readonly newTuple: TupleData;
}

export interface UpdateMessage {
  readonly tag: "update";
  readonly relationId: number;
  /** Old values of the replica identity columns ('K'), when the key changed. */
  readonly oldKey: TupleData | null;
  /** Whole old row ('O'), with REPLICA IDENTITY FULL. */
  readonly oldTuple: TupleData | null;
  readonly newTuple: TupleData;
}

export interface DeleteMessage {
  readonly tag: "delete";
  readonly relationId: number;
  readonly oldKey: TupleData | null;
  readonly oldTuple: TupleData | null;
}

export interface TruncateMessage {
  readonly tag: "truncate";
  readonly cascade: boolean;
  readonly restartIdentity: boolean;
  readonly relationIds: readonly number[];
}

export interface LogicalMessage {
  readonly tag: "message";
  readonly transactional: boolean;
  readonly lsn: bigint;
  readonly prefix: string;
  readonly content: Buffer;
}

export type PgoutputMessage =
  | BeginMessage
  | CommitMessage
  | OriginMessage
  | RelationMessage
  | TypeMessage
  | InsertMessage
  | UpdateMessage
  | DeleteMessage
  | TruncateMessage
  | LogicalMessage;

const TUPLE_NEW = 0x4e; // 'N'
const TUPLE_OLD_KEY = 0x4b; // 'K'
const TUPLE_OLD_FULL = 0x4f; // 'O'

export function decodePgoutput(payload: Buffer): PgoutputMessage {
  const reader = new ByteReader(payload);
  const tag = reader.uint8();
  switch (tag) {
    case 0x42: // 'B'
      return { tag: "begin", finalLsn: reader.uint64(), commitTime: reader.int64(), xid: reader.uint32() };
    case 0x43: // 'C'
      return { tag: "commit", flags: reader.uint8(), commitLsn: reader.uint64(), endLsn: reader.uint64(), commitTime: reader.int64() };
    case 0x4f: // 'O'
      return { tag: "origin", originLsn: reader.uint64(), name: reader.cstring() };
    case 0x52: // 'R'
      return decodeRelation(reader);
    case 0x59: // 'Y'
      return { tag: "type", typeOid: reader.uint32(), namespace: namespaceName(reader.cstring()), name: reader.cstring() };
    case 0x49: { // 'I'
      const relationId = reader.uint32();
      expectByte(reader, TUPLE_NEW, "insert");
      return { tag: "insert", relationId, newTuple: decodeTupleData(reader) };
    }
    case 0x55: // 'U'
      return decodeUpdate(reader);
    case 0x44: { // 'D'
      const relationId = reader.uint32();
      const kind = reader.uint8();
      if (kind !== TUPLE_OLD_KEY && kind !== TUPLE_OLD_FULL) throw new RangeError(`delete: expected 'K' or 'O', got 0x${kind.toString(16)}`);
      const old = decodeTupleData(reader);
      return { tag: "delete", relationId, oldKey: kind === TUPLE_OLD_KEY ? old : null, oldTuple: kind === TUPLE_OLD_FULL ? old : null };
    }
    case 0x54: { // 'T'
      const count = reader.uint32();
      const options = reader.uint8();
      const relationIds: number[] = [];
      for (let i = 0; i < count; i++) relationIds.push(reader.uint32());
      return { tag: "truncate", cascade: (options & 1) !== 0, restartIdentity: (options & 2) !== 0, relationIds };
    }
    case 0x4d: { // 'M'
      const flags = reader.uint8();
      const lsn = reader.uint64();
      const prefix = reader.cstring();
      const length = reader.uint32();
      return { tag: "message", transactional: (flags & 1) !== 0, lsn, prefix, content: reader.slice(length) };
    }
    default:
      throw new RangeError(`unsupported pgoutput message type '${String.fromCharCode(tag)}' (0x${tag.toString(16)}); Sluice uses protocol version 1`);
  }
}

function namespaceName(sent: string): string {
  return sent === "" ? "pg_catalog" : sent;
}

function expectByte(reader: ByteReader, expected: number, what: string): void {
  const actual = reader.uint8();
  if (actual !== expected) {
    throw new RangeError(`${what}: expected '${String.fromCharCode(expected)}', got 0x${actual.toString(16)}`);
  }
}

function decodeRelation(reader: ByteReader): RelationMessage {
  const relationId = reader.uint32();
  const namespace = namespaceName(reader.cstring());
  const name = reader.cstring();
  const replicaIdentity = String.fromCharCode(reader.uint8());
  const count = reader.int16();
  const columns: RelationColumn[] = [];
  for (let i = 0; i < count; i++) {
    const flags = reader.uint8();
    columns.push({ isKey: (flags & 1) !== 0, name: reader.cstring(), typeOid: reader.uint32(), typeModifier: reader.int32() });
  }
  return { tag: "relation", relationId, namespace, name, replicaIdentity, columns };
}

function decodeUpdate(reader: ByteReader): UpdateMessage {
  const relationId = reader.uint32();
  let kind = reader.uint8();
  let oldKey: TupleData | null = null;
  let oldTuple: TupleData | null = null;
  if (kind === TUPLE_OLD_KEY || kind === TUPLE_OLD_FULL) {
    const old = decodeTupleData(reader);
    if (kind === TUPLE_OLD_KEY) oldKey = old;
    else oldTuple = old;
    kind = reader.uint8();
  }
  if (kind !== TUPLE_NEW) throw new RangeError(`update: expected 'N', got 0x${kind.toString(16)}`);
  return { tag: "update", relationId, oldKey, oldTuple, newTuple: decodeTupleData(reader) };
}

function decodeTupleData(reader: ByteReader): TupleData {
  const count = reader.int16();
  const columns: RawColumn[] = new Array<RawColumn>(count);
  for (let i = 0; i < count; i++) {
    const kind = reader.uint8();
    switch (kind) {
      case 0x6e: // 'n'
        columns[i] = null;
        break;
      case 0x75: // 'u'
        columns[i] = UNCHANGED;
        break;
      case 0x74: { // 't'
        columns[i] = reader.utf8(reader.uint32());
        break;
      }
      case 0x62: { // 'b'
        const length = reader.uint32();
        columns[i] = { binary: reader.slice(length) };
        break;
      }
      default:
        throw new RangeError(`tuple column ${i}: unknown kind 0x${kind.toString(16)}`);
    }
  }
  return columns;
}
