/**
 * Makes kafkajs's fetch decoding keep the offsets of record batches that hold no records.
 *
 * Kafka's log cleaner keeps the header of a producer's last batch after removing every record in
 * it (the broker keeps that producer's sequence state), so a fetch of a compacted topic can answer
 * with batches of no records. kafkajs turns each batch into its records, so an emptied batch
 * becomes nothing, and a reader that learns its next offset from the records it fetched (our
 * partition reader, kafkajs's consumer) fetched the same offset again for ever when such a batch was
 * all a fetch brought (the end of a cleaned segment, a fetch's size limit).
 *
 * kafkajs 2.2 offers no hook for this, so this module replaces the module that decodes a
 * partition's record set in kafkajs's module cache with one that adds, in offset order, a control
 * record at the last offset of each emptied batch. Control records are never handed to readers:
 * the partition reader and kafkajs's consumer both step past them (the consumer's "batch empty due
 * to filtering" case), which moves their position past the batch.
 */
import { createRequire } from "node:module";
import { ATTRIBUTES_AT, FIRST_SEQUENCE_AT, FIRST_TIMESTAMP_AT, HEADER_BYTES, LAST_OFFSET_DELTA_AT, LEADER_EPOCH_AT, LENGTH_AT, MAGIC_AT, MAX_TIMESTAMP_AT, PRODUCER_EPOCH_AT, PRODUCER_ID_AT, RECORD_COUNT_AT } from "./record-batch-v2.ts";
// Replaces kafkajs's record batch decoder, which decodeMessages takes when it loads (below).
import "./record-batch-decoder.ts";

interface KafkaDecoder {
  readonly buffer: Buffer;
  readonly offset: number;
}

interface DecodedRecord {
  readonly offset: string;
}

type DecodeMessages = (decoder: KafkaDecoder) => Promise<DecodedRecord[]>;

const require = createRequire(import.meta.url);
const DECODE_MESSAGES = "kafkajs/src/protocol/requests/fetch/v4/decodeMessages.js";
/** Fetch response decoders that take decodeMessages (directly or from another version's) when they load. */
const FETCH_RESPONSES = [4, 5, 6, 7, 8, 9, 10, 11].map((version) => `kafkajs/src/protocol/requests/fetch/v${version}/response.js`);
const PATCHED = Symbol.for("sluice:kafkajs:emptied-batches");

/** Bytes before a batch's length field counts: its base offset and the length itself. */
const LOG_OVERHEAD = 12;
const TRANSACTIONAL_FLAG = 0x10;
const LOG_APPEND_TIME_FLAG = 0x08;

/**
 * A control record standing for each batch of no records in the record set at the decoder's
 * position (the int32 size then the batches), without moving the decoder. Batches of the old
 * message formats, and a batch cut off by the fetch's size, end the scan.
 */
export function emptiedBatchRecords(decoder: KafkaDecoder): DecodedRecord[] {
  const { buffer, offset } = decoder;
  if (offset + 4 > buffer.length) return [];
  const start = offset + 4;
  const stop = start + buffer.readInt32BE(offset);
  if (stop <= start || stop > buffer.length) return [];
  const out: DecodedRecord[] = [];
  for (let at = start; at + HEADER_BYTES <= stop; ) {
    const next = at + LOG_OVERHEAD + buffer.readInt32BE(at + LENGTH_AT);
    if (next > stop || buffer.readInt8(at + MAGIC_AT) !== 2) break;
    if (buffer.readInt32BE(at + RECORD_COUNT_AT) === 0) out.push(standIn(buffer, at));
    at = next;
  }
  return out;
}

/** What kafkajs's record decoder makes of a record, for the batch at `at`'s last offset, as a control record with no key or value. */
function standIn(buffer: Buffer, at: number): DecodedRecord {
  const attributes = buffer.readInt16BE(at + ATTRIBUTES_AT);
  const firstOffset = buffer.readBigInt64BE(at);
  const lastOffsetDelta = buffer.readInt32BE(at + LAST_OFFSET_DELTA_AT);
  const maxTimestamp = buffer.readBigInt64BE(at + MAX_TIMESTAMP_AT).toString();
  const batchContext = {
    firstOffset: firstOffset.toString(),
    firstTimestamp: buffer.readBigInt64BE(at + FIRST_TIMESTAMP_AT).toString(),
    partitionLeaderEpoch: buffer.readInt32BE(at + LEADER_EPOCH_AT),
    inTransaction: (attributes & TRANSACTIONAL_FLAG) !== 0,
    isControlBatch: true,
    lastOffsetDelta,
    producerId: buffer.readBigInt64BE(at + PRODUCER_ID_AT).toString(),
    producerEpoch: buffer.readInt16BE(at + PRODUCER_EPOCH_AT),
    firstSequence: buffer.readInt32BE(at + FIRST_SEQUENCE_AT),
    maxTimestamp,
    timestampType: (attributes & LOG_APPEND_TIME_FLAG) !== 0 ? 1 : 0,
    magicByte: 2,
  };
  return { magicByte: 2, attributes: 0, timestamp: maxTimestamp, offset: (firstOffset + BigInt(lastOffsetDelta)).toString(), key: null, value: null, headers: {}, isControlRecord: true, batchContext } as DecodedRecord;
}

/** kafkajs's records, with the emptied batches' stand-ins merged in by offset. */
function withEmptiedBatches(decode: DecodeMessages): DecodeMessages {
  return async (decoder) => {
    const emptied = emptiedBatchRecords(decoder);
    const records = await decode(decoder);
    if (emptied.length === 0) return records;
    return [...records, ...emptied].sort((a, b) => {
      const [x, y] = [BigInt(a.offset), BigInt(b.offset)];
      return x < y ? -1 : x > y ? 1 : 0;
    });
  };
}

function patch(): void {
  const path = require.resolve(DECODE_MESSAGES);
  const original = require(path) as DecodeMessages & { [PATCHED]?: true };
  if (original[PATCHED]) return;
  const cached = require.cache[path];
  if (cached === undefined) throw new Error(`kafkajs's ${DECODE_MESSAGES} is not in the module cache`);
  cached.exports = Object.assign(withEmptiedBatches(original), { [PATCHED]: true as const });
  // kafkajs requires a fetch's response decoder at every fetch: one a fetch before this loaded loads again, with the wrapper.
  for (const response of FETCH_RESPONSES) delete require.cache[require.resolve(response)];
}

patch();
