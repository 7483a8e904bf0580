/**
 * Key partitioning shared by both topic logs, identical to the Java Kafka client's default
 * partitioner for keyed records: partition = (murmur2(key) & 0x7fffffff) % partitions. Keeping
 * it identical means a topic written by Sluice and one written by a Java producer put a key in
 * the same partition, and moving between the embedded log and Kafka keeps per-key order.
 */

const SEED = 0x9747b28c;
const M = 0x5bd1e995;

/** MurmurHash2 (32-bit) as Kafka's `Utils.murmur2`, returned as a signed 32-bit integer like Java's int. */
export function murmur2(data: Uint8Array): number {
  const length = data.length;
  let h = (SEED ^ length) | 0;
  const whole = length & ~3;
  for (let i = 0; i < whole; i += 4) {
    let k = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
  }
  const rest = length & 3;
  if (rest > 0) {
    if (rest === 3) h ^= data[whole + 2]! << 16;
    if (rest >= 2) h ^= data[whole + 1]! << 8;
    h ^= data[whole]!;
    h = Math.imul(h, M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

/** The partition of a record: murmur2 of the key as the Java client does; records without a key go to partition 0. */
export function partitionForKey(key: Uint8Array | null, partitions: number): number {
  if (key === null) return 0;
  return (murmur2(key) & 0x7fffffff) % partitions;
}
