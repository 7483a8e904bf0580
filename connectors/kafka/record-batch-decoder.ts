/**
 * A record batch (message format v2) decoder for kafkajs's fetch responses that makes less per record.
 *
 * kafkajs 2.2 decodes each record through a Buffer slice and a Decoder of its own, reads each
 * varlong as a chain of Long objects, parses the batch's first offset and timestamp from text
 * for every record to add its deltas, and builds the headers by spreading an object per header:
 * ~1.8 KB allocated per record of ~270 bytes, in a sink's thread about a fifth of what a change
 * allocates besides, every byte of it young garbage that brings the next scavenge nearer. This
 * decoder reads the records with one cursor over the batch and adds the deltas to numbers; its
 * messages (FetchedMessage) read as kafkajs's do (fields, types, text of offsets and timestamps),
 * each made when read from the record's place in the batch, so kafkajs's consumer and partition
 * reader take them as before (record-batch-decoder.test.ts compares the two on the same bytes).
 *
 * kafkajs offers no hook for it, so, like emptied-batches.ts, this replaces a module in kafkajs's
 * module cache: the record batch decoder, which the fetch responses' decodeMessages takes when it
 * loads: emptied-batches.ts imports this first, and a decodeMessages loaded earlier is loaded again.
 */
import { createRequire } from "node:module";
import { ATTRIBUTES_AT, FIRST_SEQUENCE_AT, FIRST_TIMESTAMP_AT, HEADER_BYTES, LAST_OFFSET_DELTA_AT, LEADER_EPOCH_AT, LENGTH_AT, MAX_TIMESTAMP_AT, PRODUCER_EPOCH_AT, PRODUCER_ID_AT, RECORD_COUNT_AT } from "./record-batch-v2.ts";

interface KafkaDecoder {
  readonly buffer: Buffer;
  readonly offset: number;
  forward(bytes: number): void;
}

type Headers = Record<string, Buffer | null | (Buffer | null)[]>;

export interface DecodedMessage {
  readonly magicByte: number;
  readonly attributes: number;
  readonly timestamp: string;
  readonly offset: string;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers: Headers;
  readonly isControlRecord: boolean;
  readonly batchContext: BatchContext;
}

interface BatchContext {
  readonly firstOffset: string;
  readonly firstTimestamp: string;
  readonly partitionLeaderEpoch: number;
  readonly inTransaction: boolean;
  readonly isControlBatch: boolean;
  readonly lastOffsetDelta: number;
  readonly producerId: string;
  readonly producerEpoch: number;
  readonly firstSequence: number;
  readonly maxTimestamp: string;
  readonly timestampType: number;
}

export type DecodedBatch = BatchContext & { readonly records: DecodedMessage[] };
type DecodeBatch = (decoder: KafkaDecoder) => Promise<DecodedBatch>;
interface Codec {
  decompress(buffer: Buffer): Promise<Buffer>;
}

const require = createRequire(import.meta.url);
export const RECORD_BATCH_DECODER = "kafkajs/src/protocol/recordBatch/v0/decoder.js";
const DECODE_MESSAGES = "kafkajs/src/protocol/requests/fetch/v4/decodeMessages.js";
const { lookupCodecByAttributes } = require("kafkajs/src/protocol/message/compression/index.js") as { lookupCodecByAttributes(attributes: number): Codec | null };
const { KafkaJSPartialMessageError } = require("kafkajs/src/errors.js") as { KafkaJSPartialMessageError: new (message: string) => Error };
const PATCHED = Symbol.for("sluice:kafkajs:record-batch-decoder");

const MAGIC = 2;
/** Bytes before the length field counts: the base offset and the length itself. */
const LOG_OVERHEAD = 12;
const LOG_APPEND_TIME = 1;
const CREATE_TIME = 0;
const TIMESTAMP_TYPE_FLAG = 0x08;
const TRANSACTIONAL_FLAG = 0x10;
const CONTROL_FLAG = 0x20;
/** A record without headers: shared (nothing that reads messages writes to their headers). */
const NO_HEADERS: Headers = Object.freeze({}) as Headers;

/** Where an absent (null) key or value starts. */
const ABSENT = -1;

/**
 * A record as kafkajs's message, its key, value, offset and time made when read: kafkajs reads only a
 * message's offset (and a control record's key), and a sink's consumer copies the key and value out
 * of the batch's bytes by their ranges (kafka-consumer.ts inPlaceRecordsOf). Two views and two
 * decimal texts per record, made for every record of a fetch at once, were garbage that lived as long
 * as the fetch's last partition waited for its turn.
 */
export class FetchedMessage implements DecodedMessage {
  readonly attributes: number;
  readonly headers: Headers;
  readonly isControlRecord: boolean;
  readonly batchContext: BatchContext;
  /** The bytes the record lies in: the fetch response, or its batch decompressed. */
  readonly buffer: Buffer;
  readonly keyStart: number;
  readonly keyEnd: number;
  readonly valueStart: number;
  readonly valueEnd: number;
  /** The offset, a number while exact (always, in practice), else its decimal text. */
  readonly offsetValue: number | string;
  /** The time in milliseconds, a number while exact, else its decimal text. */
  readonly timestampValue: number | string;

  constructor(attributes: number, headers: Headers, batchContext: BatchContext, buffer: Buffer, keyStart: number, keyEnd: number, valueStart: number, valueEnd: number, offsetValue: number | string, timestampValue: number | string) {
    this.attributes = attributes;
    this.headers = headers;
    this.isControlRecord = batchContext.isControlBatch;
    this.batchContext = batchContext;
    this.buffer = buffer;
    this.keyStart = keyStart;
    this.keyEnd = keyEnd;
    this.valueStart = valueStart;
    this.valueEnd = valueEnd;
    this.offsetValue = offsetValue;
    this.timestampValue = timestampValue;
  }

  get magicByte(): number {
    return MAGIC;
  }

  get offset(): string {
    return String(this.offsetValue);
  }

  get timestamp(): string {
    return String(this.timestampValue);
  }

  get key(): Buffer | null {
    return this.keyStart === ABSENT ? null : this.buffer.subarray(this.keyStart, this.keyEnd);
  }

  get value(): Buffer | null {
    return this.valueStart === ABSENT ? null : this.buffer.subarray(this.valueStart, this.valueEnd);
  }
}

/** Reads varints and bytes from a buffer, moving along it. */
class Cursor {
  readonly buffer: Buffer;
  at: number;

  constructor(buffer: Buffer, at: number) {
    this.buffer = buffer;
    this.at = at;
  }

  /** A zigzag varint of up to 64 bits, as a number (exact while within ±2^53, as every length and delta Sluice writes is). */
  varint(): number {
    const buffer = this.buffer;
    let byte = buffer[this.at++]!;
    let raw = byte & 0x7f;
    // Up to 28 bits with integer operations; beyond, multiplication keeps the number exact up to 2^53.
    for (let shift = 7; byte & 0x80; shift += 7) {
      if (this.at >= buffer.length) throw new KafkaJSPartialMessageError("a record batch ends inside a varint");
      byte = buffer[this.at++]!;
      raw = shift < 28 ? raw | ((byte & 0x7f) << shift) : raw + (byte & 0x7f) * 2 ** shift;
    }
    return raw % 2 === 0 ? raw / 2 : -(raw + 1) / 2;
  }

  /** A varint length then that many bytes as a view of the buffer; null for length -1. */
  bytes(): Buffer | null {
    const length = this.varint();
    if (length < 0) return null;
    const start = this.at;
    this.at += length;
    return this.buffer.subarray(start, this.at);
  }

  /** A varint length then that many bytes: their start (ABSENT for length -1), the cursor moved past them. */
  skipBytes(): number {
    const length = this.varint();
    if (length < 0) return ABSENT;
    const start = this.at;
    this.at += length;
    return start;
  }

  text(): string | null {
    const length = this.varint();
    if (length < 0) return null;
    const start = this.at;
    this.at += length;
    return this.buffer.toString("utf8", start, this.at);
  }
}

/** `base` (decimal text of a 64-bit integer) plus `delta`: a number while exact, else decimal text. */
function plus(base: string, baseNumber: number, delta: number): number | string {
  const sum = baseNumber + delta;
  return Number.isSafeInteger(baseNumber) && Number.isSafeInteger(sum) ? sum : (BigInt(base) + BigInt(delta)).toString();
}

function headersAt(cursor: Cursor): Headers {
  const count = cursor.varint();
  if (count <= 0) return NO_HEADERS;
  const headers: Headers = {};
  for (let i = 0; i < count; i++) {
    const key = String(cursor.text());
    const value = cursor.bytes();
    const earlier = headers[key];
    headers[key] = earlier === undefined ? value : Array.isArray(earlier) ? [...earlier, value] : [earlier, value];
  }
  return headers;
}

/** The record batch at the decoder's position (moving the decoder past it), as kafkajs's decoder returns it. */
export async function decodeRecordBatch(decoder: KafkaDecoder): Promise<DecodedBatch> {
  const { buffer } = decoder;
  const at = decoder.offset;
  const length = buffer.readInt32BE(at + LENGTH_AT);
  const end = at + LOG_OVERHEAD + length;
  decoder.forward(LOG_OVERHEAD + length);
  if (end > buffer.length) {
    throw new KafkaJSPartialMessageError(`Tried to decode a partial record batch: remainingBytes(${buffer.length - at - LOG_OVERHEAD}) < recordBatchLength(${length})`);
  }
  const attributes = buffer.readInt16BE(at + ATTRIBUTES_AT);
  const firstOffset = buffer.readBigInt64BE(at).toString();
  const firstTimestamp = buffer.readBigInt64BE(at + FIRST_TIMESTAMP_AT).toString();
  const maxTimestamp = buffer.readBigInt64BE(at + MAX_TIMESTAMP_AT).toString();
  const isControlBatch = (attributes & CONTROL_FLAG) !== 0;
  const timestampType = (attributes & TIMESTAMP_TYPE_FLAG) !== 0 ? LOG_APPEND_TIME : CREATE_TIME;
  const context: BatchContext = {
    firstOffset,
    firstTimestamp,
    partitionLeaderEpoch: buffer.readInt32BE(at + LEADER_EPOCH_AT),
    inTransaction: (attributes & TRANSACTIONAL_FLAG) !== 0,
    isControlBatch,
    lastOffsetDelta: buffer.readInt32BE(at + LAST_OFFSET_DELTA_AT),
    producerId: buffer.readBigInt64BE(at + PRODUCER_ID_AT).toString(),
    producerEpoch: buffer.readInt16BE(at + PRODUCER_EPOCH_AT),
    firstSequence: buffer.readInt32BE(at + FIRST_SEQUENCE_AT),
    maxTimestamp,
    timestampType,
  };
  const batchContext = { ...context, magicByte: MAGIC };
  const count = buffer.readInt32BE(at + RECORD_COUNT_AT);
  if (count <= 0) return { ...context, records: [] };
  const codec = lookupCodecByAttributes(attributes);
  const cursor = codec ? new Cursor(await codec.decompress(buffer.subarray(at + HEADER_BYTES, end)), 0) : new Cursor(buffer.subarray(0, end), at + HEADER_BYTES);
  const offsetBase = Number(firstOffset);
  const timestampBase = Number(firstTimestamp);
  const appendTime = timestampType === LOG_APPEND_TIME;
  const records = new Array<DecodedMessage>(count);
  const bytes = cursor.buffer;
  const maxTimestampValue = Number.isSafeInteger(Number(maxTimestamp)) ? Number(maxTimestamp) : maxTimestamp;
  for (let i = 0; i < count; i++) {
    const size = cursor.varint();
    const next = cursor.at + size;
    if (next > bytes.length) throw new KafkaJSPartialMessageError("a record runs past its batch");
    const recordAttributes = bytes.readInt8(cursor.at++);
    const timestampDelta = cursor.varint();
    const offsetDelta = cursor.varint();
    const keyStart = cursor.skipBytes();
    const keyEnd = cursor.at;
    const valueStart = cursor.skipBytes();
    const valueEnd = cursor.at;
    const headers = headersAt(cursor);
    cursor.at = next;
    const timestamp = appendTime ? maxTimestampValue : plus(firstTimestamp, timestampBase, timestampDelta);
    records[i] = new FetchedMessage(recordAttributes, headers, batchContext, bytes, keyStart, keyEnd, valueStart, valueEnd, plus(firstOffset, offsetBase, offsetDelta), timestamp);
  }
  return { ...context, records };
}

function patch(): void {
  const path = require.resolve(RECORD_BATCH_DECODER);
  const original = require(path) as DecodeBatch & { [PATCHED]?: true };
  if (original[PATCHED]) return;
  const cached = require.cache[path];
  if (cached === undefined) throw new Error(`kafkajs's ${RECORD_BATCH_DECODER} is not in the module cache`);
  cached.exports = Object.assign(decodeRecordBatch, { [PATCHED]: true as const });
  // decodeMessages takes the decoder when it loads: one loaded before this (a program that used kafkajs first) loads
  // again, and emptied-batches.ts, which imports this module first, drops the fetch responses that hold the old one.
  delete require.cache[require.resolve(DECODE_MESSAGES)];
}

patch();
