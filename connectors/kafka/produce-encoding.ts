/**
 * kafkajs encodes a produce request record by record: a zero-filled 512-byte buffer per record,
 * each varint through a temporary array and Buffer, every level (record, batch body, batch,
 * partition, topic) copied into the next one's growing buffer, and the batch's CRC32C in
 * JavaScript. On the capture path that was over a fifth of the main thread's busy time, and much
 * of its garbage. This module puts in kafkajs's place (its produce request v3, which v4-v7 reuse)
 * an encoder that sizes the request first and writes it into one buffer, with a native CRC32C
 * (`@node-rs/crc32`; kafkajs's own when that cannot load). The bytes are the same as kafkajs's
 * (produce-encoding.test.ts compares them); a request it does not handle (compression, keys or
 * values that are not Buffers, other header values, timestamps that are not whole milliseconds)
 * goes to kafkajs's own encoder.
 *
 * Installed when this module is first imported, before any producer sends: kafkajs loads its
 * produce request modules on first use, and v4-v7 take v3 from the module cache then.
 *
 * kafkajs then frames every request (its protocol/request.js): a new encoder with the request
 * header, the encoded request copied after it, and another new encoder with the size, the whole
 * copied again -- for a produce request of a few MiB, two zero-filled buffers of the next power of
 * two and two copies, and the external memory they count towards V8's full collections. This
 * encoder leaves room in front of the request for the frame, and the framing writes its few bytes
 * there instead of copying the request (framePrepending).
 */
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);

interface KafkaMessage {
  readonly key?: Buffer | string | null;
  readonly value: Buffer | string | null;
  readonly headers?: Record<string, unknown>;
  readonly timestamp?: string | number | null;
}

interface PartitionData {
  readonly partition: number;
  readonly firstSequence?: number;
  readonly messages: readonly KafkaMessage[];
}

interface TopicData {
  readonly topic: string;
  readonly partitions: readonly PartitionData[];
}

export interface ProduceRequestArgs {
  readonly acks: number;
  readonly timeout: number;
  readonly transactionalId?: string | null;
  readonly producerId?: unknown;
  readonly producerEpoch?: number;
  readonly compression?: number;
  readonly topicData: readonly TopicData[];
}

interface KafkajsEncoder {
  buf: Buffer;
  offset: number;
}

export interface ProduceRequest {
  readonly apiKey: number;
  readonly apiVersion: number;
  readonly apiName: string;
  expectResponse(): boolean;
  encode(): Promise<KafkajsEncoder>;
}

type ProduceRequestV3 = (args: ProduceRequestArgs) => ProduceRequest;

interface Long {
  getHighBits(): number;
  getLowBits(): number;
}

const Encoder = require("kafkajs/src/protocol/encoder.js") as new (initialSize?: number) => KafkajsEncoder;
const Long = require("kafkajs/src/utils/long.js") as { fromValue(value: unknown): Long; fromInt(value: number): Long };
const jsCrc32c = require("kafkajs/src/protocol/recordBatch/crc32C/index.js") as (buffer: Buffer) => number;

/** CRC32C (Castagnoli) of a record batch: native when @node-rs/crc32 loads on this platform, kafkajs's JavaScript otherwise. */
export const crc32c: (buffer: Buffer) => number = loadNativeCrc32c() ?? jsCrc32c;

function loadNativeCrc32c(): ((buffer: Buffer) => number) | undefined {
  try {
    const native = (require("@node-rs/crc32") as { crc32c(input: Uint8Array): number }).crc32c;
    return native(Buffer.from("123456789")) === 0xe3069283 ? (buffer) => native(buffer) : undefined;
  } catch {
    return undefined;
  }
}

const COMPRESSION_NONE = 0;
const MAGIC_BYTE = 2;
const TRANSACTIONAL_FLAG = 16;
/** Batch body before the records: attributes, lastOffsetDelta, two timestamps, producer id and epoch, first sequence, record count. */
const BATCH_BODY_HEADER_BYTES = 2 + 4 + 8 + 8 + 8 + 2 + 4 + 4;
/** firstOffset, batch length, partitionLeaderEpoch, magic, CRC. */
const BATCH_HEADER_BYTES = 8 + 4 + 4 + 1 + 4;

const varIntSize = (zigzag: number): number => (zigzag < 0x80 ? 1 : zigzag < 0x4000 ? 2 : zigzag < 0x200000 ? 3 : zigzag < 0x10000000 ? 4 : 5);
const zigzag32 = (value: number): number => ((value << 1) ^ (value >> 31)) >>> 0;
/** ZigZag of a safe integer as a (non-negative) double: 2n, or -2n - 1 for negatives. */
const zigzag64 = (value: number): number => (value >= 0 ? value * 2 : -value * 2 - 1);

function varLongSize(zigzag: number): number {
  let size = 1;
  while (zigzag >= 0x80) {
    zigzag = Math.floor(zigzag / 128);
    size++;
  }
  return size;
}

/** One partition's record batch, measured. */
interface PlannedBatch {
  readonly partition: PartitionData;
  readonly deltas: Float64Array;
  readonly bodySizes: Int32Array;
  readonly firstTimestamp: unknown;
  readonly maxTimestamp: unknown;
  /** Record batch bytes after the partition's int32 size (firstOffset through the last record). */
  readonly size: number;
}

/** Measures a partition's records the way kafkajs encodes them, or returns undefined for a request this encoder leaves to kafkajs. */
function planBatch(partition: PartitionData, now: number): PlannedBatch | undefined {
  const { messages } = partition;
  // kafkajs's first and max timestamps: the first and last of the set ones after a default (stable, as strings) sort.
  let firstTimestamp: unknown = now;
  let maxTimestamp: unknown = now;
  let firstText: string | undefined;
  let maxText: string | undefined;
  // A timestamp equal to the one before changes neither (its text compares equal): a transaction's records share theirs.
  let previous: unknown;
  // Indexed loops: once a request, a for-of allocated an iterator result per record (runtime/arrays.ts).
  for (let m = 0; m < messages.length; m++) {
    const timestamp = messages[m]!.timestamp;
    if (timestamp == null || timestamp === previous) continue;
    previous = timestamp;
    const text = String(timestamp);
    // Among equal texts the sort keeps the input order: the first is the earliest of them, the max the last.
    if (firstText === undefined || text < firstText) {
      firstText = text;
      firstTimestamp = timestamp;
    }
    if (maxText === undefined || text >= maxText) {
      maxText = text;
      maxTimestamp = timestamp;
    }
  }
  const deltas = new Float64Array(messages.length);
  const bodySizes = new Int32Array(messages.length);
  let size = BATCH_HEADER_BYTES + BATCH_BODY_HEADER_BYTES;
  let stampSeen: unknown;
  let stampDelta = Number.NaN;
  for (let i = 0; i < messages.length; i++) {
    const message = messages[i]!;
    const { key, value, headers } = message;
    if (!(key == null || Buffer.isBuffer(key)) || !(value == null || Buffer.isBuffer(value))) return undefined;
    // kafkajs's delta, the timestamps' texts subtracted (each parsed again): worked out once per run of records with the same one (a transaction's).
    const stamp = message.timestamp || now;
    if (stamp !== stampSeen) {
      stampSeen = stamp;
      stampDelta = (stamp as number) - (firstTimestamp as number);
    }
    const delta = stampDelta;
    if (!Number.isSafeInteger(delta) || Math.abs(delta) > 2 ** 51) return undefined;
    let body = 1 + varLongSize(zigzag64(delta)) + varIntSize(zigzag32(i));
    body += key == null ? 1 : varIntSize(zigzag32(key.length)) + key.length;
    body += value == null ? 1 : varIntSize(zigzag32(value.length)) + value.length;
    let headerCount = 0;
    if (headers !== undefined) {
      if (headers === null || typeof headers !== "object") return undefined;
      for (const name of Object.keys(headers)) {
        const headerValue = headers[name];
        if (!Buffer.isBuffer(headerValue)) return undefined;
        const nameBytes = Buffer.byteLength(name, "utf8");
        body += varIntSize(zigzag32(nameBytes)) + nameBytes + varIntSize(zigzag32(headerValue.length)) + headerValue.length;
        headerCount++;
      }
    }
    body += varIntSize(zigzag32(headerCount));
    deltas[i] = delta;
    bodySizes[i] = body;
    size += varIntSize(zigzag32(body)) + body;
  }
  return { partition, deltas, bodySizes, firstTimestamp, maxTimestamp, size };
}

class Writer {
  readonly buf: Buffer;
  offset: number;

  /** `headroom` bytes left unwritten in front (for kafkajs's request frame). */
  constructor(size: number, headroom = 0) {
    this.buf = Buffer.allocUnsafe(headroom + size);
    this.offset = headroom;
  }

  int8(value: number): void {
    this.buf[this.offset++] = value & 0xff;
  }

  int16(value: number): void {
    this.buf.writeInt16BE(value, this.offset);
    this.offset += 2;
  }

  int32(value: number): void {
    this.buf.writeInt32BE(value, this.offset);
    this.offset += 4;
  }

  int64(value: unknown): void {
    const long = Long.fromValue(value);
    this.buf.writeInt32BE(long.getHighBits(), this.offset);
    this.buf.writeInt32BE(long.getLowBits(), this.offset + 4);
    this.offset += 8;
  }

  /** Unsigned LEB128 of a ZigZag-encoded 32-bit value. */
  varInt(value: number): void {
    let zigzag = zigzag32(value);
    while (zigzag >= 0x80) {
      this.buf[this.offset++] = (zigzag & 0x7f) | 0x80;
      zigzag >>>= 7;
    }
    this.buf[this.offset++] = zigzag;
  }

  /** Unsigned LEB128 of a ZigZag-encoded safe integer. */
  varLong(value: number): void {
    let zigzag = zigzag64(value);
    while (zigzag >= 0x80) {
      this.buf[this.offset++] = (zigzag % 128) | 0x80;
      zigzag = Math.floor(zigzag / 128);
    }
    this.buf[this.offset++] = zigzag;
  }

  bytes(value: Buffer): void {
    value.copy(this.buf, this.offset);
    this.offset += value.length;
  }

  /** int16 length and UTF-8, or -1 for null. */
  string(value: string | null): void {
    if (value === null) return this.int16(-1);
    const length = Buffer.byteLength(value, "utf8");
    this.int16(length);
    this.buf.write(value, this.offset, length, "utf8");
    this.offset += length;
  }

  varIntBytes(value: Buffer | null | undefined): void {
    if (value == null) return this.varInt(-1);
    this.varInt(value.length);
    this.bytes(value);
  }
}

function writeBatch(writer: Writer, batch: PlannedBatch, args: ProduceRequestArgs, producerId: unknown, transactional: boolean): void {
  const { partition, deltas, bodySizes } = batch;
  const { messages } = partition;
  writer.int32(partition.partition);
  writer.int32(batch.size);
  writer.int64(0); // firstOffset
  writer.int32(batch.size - 12); // the batch's length, after firstOffset and itself
  writer.int32(0); // partitionLeaderEpoch
  writer.int8(MAGIC_BYTE);
  const crcAt = writer.offset;
  writer.offset += 4;
  const bodyStart = writer.offset;
  writer.int16(transactional ? TRANSACTIONAL_FLAG : 0); // attributes: no compression, create time
  writer.int32(messages.length - 1); // lastOffsetDelta
  writer.int64(batch.firstTimestamp);
  writer.int64(batch.maxTimestamp);
  writer.int64(producerId);
  writer.int16(args.producerEpoch === undefined ? 0 : args.producerEpoch);
  writer.int32(partition.firstSequence === undefined ? 0 : partition.firstSequence);
  writer.int32(messages.length);
  for (let i = 0; i < messages.length; i++) {
    const message = messages[i]!;
    writer.varInt(bodySizes[i]!);
    writer.int8(0); // record attributes
    writer.varLong(deltas[i]!);
    writer.varInt(i); // offsetDelta
    writer.varIntBytes(message.key as Buffer | null | undefined);
    writer.varIntBytes(message.value as Buffer | null);
    const headers = message.headers as Record<string, Buffer> | undefined;
    if (headers === undefined) {
      writer.varInt(0);
      continue;
    }
    const names = Object.keys(headers);
    writer.varInt(names.length);
    for (const name of names) {
      const length = Buffer.byteLength(name, "utf8");
      writer.varInt(length);
      writer.buf.write(name, writer.offset, length, "utf8");
      writer.offset += length;
      writer.varIntBytes(headers[name]!);
    }
  }
  writer.buf.writeUInt32BE(crc32c(writer.buf.subarray(bodyStart, writer.offset)) >>> 0, crcAt);
}

/** The request's bytes (what kafkajs's encode returns), or undefined when this encoder leaves it to kafkajs. */
export function encodeProduceRequest(args: ProduceRequestArgs): Buffer | undefined {
  return encodeWithHeadroom(args, 0)?.subarray(0);
}

/**
 * Room for kafkajs's frame in front of a request: its size (int32), API key and version (int16
 * each), correlation id (int32) and client id (int16 length and UTF-8). A longer client id is
 * framed by copying, as kafkajs does.
 */
export const FRAME_HEADROOM = 4 + 2 + 2 + 4 + 2 + 242;

/** The request's bytes after `headroom` unwritten bytes, in one buffer, or undefined when this encoder leaves it to kafkajs. */
function encodeWithHeadroom(args: ProduceRequestArgs, headroom: number): Buffer | undefined {
  if ((args.compression ?? COMPRESSION_NONE) !== COMPRESSION_NONE) return undefined;
  // kafkajs's defaults, which apply to undefined only.
  const transactionalId = args.transactionalId === undefined ? null : args.transactionalId;
  const producerId = args.producerId === undefined ? Long.fromInt(-1) : args.producerId;
  const now = Date.now();
  const planned: PlannedBatch[][] = [];
  let size = (transactionalId === null ? 2 : 2 + Buffer.byteLength(transactionalId, "utf8")) + 2 + 4 + 4;
  for (const topic of args.topicData) {
    const batches: PlannedBatch[] = [];
    size += 2 + Buffer.byteLength(topic.topic, "utf8") + 4;
    for (const partition of topic.partitions) {
      const batch = planBatch(partition, now);
      if (batch === undefined) return undefined;
      batches.push(batch);
      size += 4 + 4 + batch.size;
    }
    planned.push(batches);
  }
  const writer = new Writer(size, headroom);
  writer.string(transactionalId);
  writer.int16(args.acks);
  writer.int32(args.timeout);
  writer.int32(args.topicData.length);
  const transactional = !!transactionalId;
  for (let t = 0; t < args.topicData.length; t++) {
    writer.string(args.topicData[t]!.topic);
    writer.int32(planned[t]!.length);
    for (const batch of planned[t]!) writeBatch(writer, batch, args, producerId, transactional);
  }
  if (writer.offset !== headroom + size) throw new Error(`produce request encoder wrote ${writer.offset - headroom} bytes of the ${size} it measured`);
  return writer.buf;
}

/** The whole buffer of an encoder whose bytes have unwritten room in front of them in it (framePrepending); registered, so that two copies of this module agree. */
const FRAMED_IN = Symbol.for("sluice.produce-encoding.framed-in");

type FramedEncoder = KafkajsEncoder & { [FRAMED_IN]?: Buffer };

/**
 * kafkajs's encoder appending an encoder that has room in front of its bytes (this module's
 * requests, and the frames made around them): its own bytes so far (a frame's header, at most
 * the room) are written into that room and it takes the other's buffer from there on, instead of
 * growing its own and copying the other's bytes after them. Any other writeEncoder is kafkajs's.
 */
export function framePrepending(writeEncoder: (this: KafkajsEncoder, value: KafkajsEncoder) => KafkajsEncoder) {
  return function prependingWriteEncoder(this: FramedEncoder, value: FramedEncoder): KafkajsEncoder {
    const whole = value?.[FRAMED_IN];
    if (whole === undefined || value.offset !== value.buf.length) return writeEncoder.call(this, value);
    const start = value.buf.byteOffset - whole.byteOffset;
    if (this.offset > start) return writeEncoder.call(this, value);
    const at = start - this.offset;
    this.buf.copy(whole, at, 0, this.offset);
    this.buf = whole.subarray(at, start + value.offset);
    this.offset = this.buf.length;
    this[FRAMED_IN] = whole;
    return this;
  };
}

const FAST = Symbol("sluice fast produce encoding");

/** kafkajs's produce request v3 with this encoder in front of its own. */
export function fastProduceRequest(original: ProduceRequestV3): ProduceRequestV3 {
  return (args) => {
    const request = original(args);
    return {
      ...request,
      [FAST]: true,
      encode: async () => {
        const whole = encodeWithHeadroom(args, FRAME_HEADROOM);
        if (whole === undefined) return request.encode();
        const encoder: FramedEncoder = new Encoder(0);
        encoder.buf = whole.subarray(FRAME_HEADROOM);
        encoder.offset = encoder.buf.length;
        encoder[FRAMED_IN] = whole;
        return encoder;
      },
    };
  };
}

const REQUEST_V3 = "kafkajs/src/protocol/requests/produce/v3/request.js";

installFramePrepending();

function installFramePrepending(): void {
  const installed = Symbol.for("sluice.produce-encoding.frame-prepending");
  const prototype = (Encoder as unknown as { prototype: { writeEncoder(this: KafkajsEncoder, value: KafkajsEncoder): KafkajsEncoder; [installed]?: true } }).prototype;
  if (prototype[installed]) return;
  prototype.writeEncoder = framePrepending(prototype.writeEncoder);
  prototype[installed] = true;
}

/** kafkajs's own produce request v3 (before this module replaced it), for comparisons. */
export const kafkajsProduceRequest: ProduceRequestV3 = installFastProduceRequest();

function installFastProduceRequest(): ProduceRequestV3 {
  const path = require.resolve(REQUEST_V3);
  const original = require(path) as ProduceRequestV3 & { fastEncoderOf?: ProduceRequestV3 };
  // Imported twice (another copy of this module): already installed.
  if (original.fastEncoderOf) return original.fastEncoderOf;
  const module = require.cache[path]!;
  module.exports = Object.assign(fastProduceRequest(original), { fastEncoderOf: original });
  return original;
}

/** True when every produce request version kafkajs may pick from v3 on goes through this encoder (none of v4-v7 took v3 before it was installed). */
export function fastProduceRequestInstalled(): boolean {
  const produce = require("kafkajs/src/protocol/requests/produce/index.js") as { protocol(version: { version: number }): (args: ProduceRequestArgs) => { request: ProduceRequest } };
  const args: ProduceRequestArgs = { acks: -1, timeout: 1000, topicData: [] };
  return [3, 4, 5, 6, 7].every((version) => {
    const request = produce.protocol({ version })(args).request as ProduceRequest & { [FAST]?: true };
    return request.apiVersion === version && request[FAST] === true;
  });
}
