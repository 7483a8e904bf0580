/**
 * The error a Kafka write fails with when its committed records do not become visible to
 * read_committed readers: it names each partition, the offset of the write's last record there and
 * the partition's last stable offset, which stays at the first offset of a transaction left open on
 * it. Kafka 4.3.1 (checked against a real broker holding a commit it left hanging) releases such a
 * partition only when the open transaction's transactional id commits to that partition again, also
 * after a new InitProducerId, or when an operator aborts it (kafka-transactions.sh abort); neither a
 * broker restart nor a commit by another producer does. docs/topics.md has the steps.
 */
import { SluiceError } from "../errors.ts";
import type { WrittenOffset } from "./batching-producer.ts";
import { partitionKey } from "./stable-offsets.ts";

export const KAFKA_COMMIT_NOT_VISIBLE = "KAFKA_COMMIT_NOT_VISIBLE";

export interface CommitNotVisible {
  readonly hidden: readonly WrittenOffset[];
  /** The partitions' last stable offsets (keyed by partitionKey) as last seen; none when never asked successfully. */
  readonly stableEnds: ReadonlyMap<string, bigint>;
  /** Why the last ask failed, or null when it was answered. */
  readonly failure: unknown;
  readonly brokers: readonly string[];
  readonly transactionalId: string | null;
  readonly waitedMs: number;
}

export function commitNotVisibleError(args: CommitNotVisible): SluiceError {
  const brokers = args.brokers.join(",");
  const stuck = args.hidden.map((o) => ({ ...o, stable: args.stableEnds.get(partitionKey(o.topic, o.partition)) }));
  const where = stuck
    .map((o) => `${o.topic} partition ${o.partition} (record at offset ${o.offset}, ${o.stable === undefined ? "last stable offset unknown" : `last stable offset stuck at ${o.stable}`})`)
    .join(", ");
  const head = `records of a committed Kafka transaction are not visible to read_committed readers after ${args.waitedMs / 1000} s: ${where}; they are not acknowledged as durable, and capture reads its checkpoint again`;
  const context = { component: "kafka", brokers };
  if (args.failure !== null) {
    const reason = args.failure instanceof Error ? args.failure.message : String(args.failure);
    return new SluiceError(`${head} (asking for the partitions' last stable offsets failed: ${reason})`, { code: KAFKA_COMMIT_NOT_VISIBLE, retriable: true, context });
  }
  const own = args.transactionalId === null ? "" : ` One of this deployment's own (transactional id ${args.transactionalId}) is completed by its next commit to the partition, which the retry makes.`;
  const tool = `kafka-transactions.sh --bootstrap-server ${brokers}`;
  const aborts = stuck
    .filter((o) => o.stable !== undefined)
    .map((o) => `${tool} abort --topic ${o.topic} --partition ${o.partition} --start-offset ${o.stable}`)
    .join("; ");
  const finds = [...new Set(stuck.map((o) => o.topic))].map((topic) => `${tool} find-hanging --topic ${topic}`).join("; ");
  const describe = args.transactionalId === null ? "" : ` (${tool} describe --transactional-id ${args.transactionalId} shows this deployment's)`;
  return new SluiceError(
    `${head}. A transaction left open on these partitions holds their last stable offset back: another writer's, or one Kafka left hanging (a commit acknowledged without its commit markers, as a broker in controlled shutdown can do).${own} ` +
      `If this repeats, find it with ${finds} (add --max-transaction-timeout 1 for one open less than 15 min), and when its producer id is not this deployment's${describe}, abort it: ${aborts}`,
    { code: KAFKA_COMMIT_NOT_VISIBLE, retriable: true, context },
  );
}
