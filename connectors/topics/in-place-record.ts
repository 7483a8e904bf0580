/**
 * Stored records kept as positions in the batch they were fetched with, instead of an object with
 * two Buffer views each.
 *
 * A sink thread draining a backlog keeps ~12,000 records alive at once (its read-ahead, the batch
 * being staged and the one being written), long enough for every object of them to be promoted to
 * the old generation, whose growth sets how often V8 marks the thread's whole heap. A record with
 * its two views, its offset and its time was ~300 bytes of that heap, and each view kept a whole
 * fetch response (1 MiB and more) alive for a few records. The Kafka consumer copies a fetched
 * batch's keys and values into one buffer of their size and keeps the batch's offsets, times and
 * ranges in typed arrays (outside the heap); a record is the batch and its index (connectors/kafka/
 * kafka-consumer.ts), and the fetch response is free as soon as kafkajs lets go of it.
 *
 * Every field of StoredRecord is there for any reader, as a getter (`key` and `value` make a view
 * on each read, `offset` a bigint); the hot paths read in place: `storedBytes` for byte counts, the
 * change decoder through `bytes` and the ranges. A spread (`{ ...record }`) has none of them.
 */
import type { StoredRecord } from "./contract.ts";

/** Where a null key or value "starts". */
export const ABSENT = -1;

/** The records of one fetched batch of a partition. */
export class FetchedBatch {
  readonly topic: string;
  readonly partition: number;
  /** The records' keys and values, one after the other. */
  readonly bytes: Buffer;
  /** Per record: key start, key end, value start, value end in `bytes` (a start of ABSENT: null). */
  readonly ranges: Int32Array;
  readonly offsets: BigInt64Array;
  /** Milliseconds since the epoch. */
  readonly timestamps: Float64Array;
  /** Per record its headers (undefined: none); null when no record of the batch has any. */
  readonly headers: (Readonly<Record<string, Uint8Array>> | undefined)[] | null;

  constructor(
    topic: string,
    partition: number,
    bytes: Buffer,
    ranges: Int32Array,
    offsets: BigInt64Array,
    timestamps: Float64Array,
    headers: (Readonly<Record<string, Uint8Array>> | undefined)[] | null,
  ) {
    this.topic = topic;
    this.partition = partition;
    this.bytes = bytes;
    this.ranges = ranges;
    this.offsets = offsets;
    this.timestamps = timestamps;
    this.headers = headers;
  }
}

export class InPlaceRecord implements StoredRecord {
  readonly batch: FetchedBatch;
  readonly index: number;

  constructor(batch: FetchedBatch, index: number) {
    this.batch = batch;
    this.index = index;
  }

  get topic(): string {
    return this.batch.topic;
  }

  get partition(): number {
    return this.batch.partition;
  }

  get offset(): bigint {
    return this.batch.offsets[this.index]!;
  }

  get timestamp(): number {
    return this.batch.timestamps[this.index]!;
  }

  get headers(): Readonly<Record<string, Uint8Array>> | undefined {
    return this.batch.headers?.[this.index];
  }

  get bytes(): Buffer {
    return this.batch.bytes;
  }

  get keyStart(): number {
    return this.batch.ranges[4 * this.index]!;
  }

  get keyEnd(): number {
    return this.batch.ranges[4 * this.index + 1]!;
  }

  get valueStart(): number {
    return this.batch.ranges[4 * this.index + 2]!;
  }

  get valueEnd(): number {
    return this.batch.ranges[4 * this.index + 3]!;
  }

  /** A view of the key (a new one on each read). */
  get key(): Buffer | null {
    const start = this.keyStart;
    return start === ABSENT ? null : this.batch.bytes.subarray(start, this.keyEnd);
  }

  /** A view of the value (a new one on each read); null for a tombstone. */
  get value(): Buffer | null {
    const start = this.valueStart;
    return start === ABSENT ? null : this.batch.bytes.subarray(start, this.valueEnd);
  }
}

/** The bytes of a record's key and value, counted without making views. */
export function storedBytes(record: StoredRecord): number {
  if (!(record instanceof InPlaceRecord)) return (record.key?.length ?? 0) + (record.value?.length ?? 0);
  const { ranges } = record.batch;
  const at = 4 * record.index;
  return (ranges[at] === ABSENT ? 0 : ranges[at + 1]! - ranges[at]!) + (ranges[at + 2] === ABSENT ? 0 : ranges[at + 3]! - ranges[at + 2]!);
}
