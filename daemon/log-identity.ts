/**
 * Sink offsets are bound to the topic they were read from. A sink stores, with every offset, the
 * identity of the topic's incarnation (`TopicLog.topicIds`); at start the runtime compares it with
 * the log's: offsets taken from a replaced embedded log file, or from a topic since deleted and
 * created again under the same name, would resume in the middle of other records and skip the ones
 * before, so the sink refuses (SINK_LOG_MISMATCH) until it is rebuilt from the log as it is now.
 */
import type { TopicLog, TopicPartitionOffset } from "../connectors/contracts.ts";
import { SluiceError } from "../connectors/errors.ts";
import type { StoredSinkOffset, TransactionalSink } from "../connectors/sinks/contract.ts";

export const SINK_LOG_MISMATCH = "SINK_LOG_MISMATCH";

export interface OffsetMismatch {
  readonly topic: string;
  readonly partition: number;
  /** The stored offset (the next one the sink would read). */
  readonly offset: bigint;
  /** The identity stored with the offset; null for offsets stored before Sluice recorded identities. */
  readonly expected: string | null;
  /** The topic's identity in the log now; null when it has none recorded. */
  readonly found: string | null;
  /** The partition's end offset now. */
  readonly end: bigint | null;
}

export interface OffsetCheck {
  /** Stored offsets without an identity, to be bound to the topic's current one (upgrade from older Sluice versions). */
  readonly adopted: StoredSinkOffset[];
  readonly mismatches: OffsetMismatch[];
}

export interface PartitionRange {
  readonly start: bigint;
  readonly end: bigint;
}

export function partitionKey(topic: string, partition: number): string {
  return `${topic}\u0000${partition}`;
}

/**
 * Which stored offsets belong to the log as it is now. An offset belongs when its identity is the
 * topic's (or it has none yet: then it is adopted) and it is not past the partition's end, which
 * no offset of the same topic can be.
 */
export function checkStoredOffsets(stored: readonly StoredSinkOffset[], topicIds: ReadonlyMap<string, string>, ranges: ReadonlyMap<string, PartitionRange>): OffsetCheck {
  const adopted: StoredSinkOffset[] = [];
  const mismatches: OffsetMismatch[] = [];
  for (const offset of stored) {
    const found = topicIds.get(offset.topic) ?? null;
    const end = ranges.get(partitionKey(offset.topic, offset.partition))?.end ?? null;
    const pastEnd = end !== null && offset.offset > end;
    if (pastEnd || (offset.topicId !== null && offset.topicId !== found)) {
      mismatches.push({ topic: offset.topic, partition: offset.partition, offset: offset.offset, expected: offset.topicId, found, end });
    } else if (offset.topicId === null && found !== null) {
      adopted.push(offset);
    }
  }
  return { adopted, mismatches };
}

/** The readable range of every partition of `topics`. */
export async function partitionRanges(log: TopicLog, topics: readonly string[]): Promise<Map<string, PartitionRange>> {
  const ranges = new Map<string, PartitionRange>();
  for (const topic of topics) {
    for (const range of await log.partitionOffsets(topic)) ranges.set(partitionKey(topic, range.partition), { start: range.start, end: range.end });
  }
  return ranges;
}

function describe(m: OffsetMismatch): string {
  const where = `${m.topic} partition ${m.partition}`;
  if (m.expected !== null && m.expected !== m.found) {
    return `${where}: offset ${m.offset} was stored for topic identity ${m.expected}, the log's topic is ${m.found ?? "one without a recorded identity"}`;
  }
  return `${where}: offset ${m.offset} was stored, but the log's partition ends at ${m.end}`;
}

/** Data topics named in one rebuild command (`--table TOPIC` each); beyond them, the command rebuilds every table of the sink. */
const REBUILD_TOPICS_NAMED = 5;

/** A topic of Sluice's own (`<deployment>.sluice.*`, `<deployment>.dlq.*`): no table to rebuild. Deployment names have no dots. */
function isOwnTopic(topic: string): boolean {
  return /^[^.]+\.(sluice|dlq)\./.test(topic) || topic.startsWith("__");
}

/**
 * The refusal: names the sink, the topics, the identities stored and found, and the command that rebuilds what they cover:
 * only the tables of the topics refused when they are a few data topics (some deleted and created again by an operator; a
 * whole-sink rebuild would read every other table's history again too), else every table of the sink.
 */
export function logMismatchError(sink: string, mismatches: readonly OffsetMismatch[]): SluiceError {
  const first = mismatches[0]!;
  const topics = [...new Set(mismatches.map((m) => m.topic))];
  const listed = mismatches.slice(0, 3).map(describe).join("; ") + (mismatches.length > 3 ? `; and ${mismatches.length - 3} more` : "");
  const tables = topics.filter((topic) => !isOwnTopic(topic));
  const some = tables.length > 0 && tables.length <= REBUILD_TOPICS_NAMED;
  const command = `sluice replay -c CONFIG --sink ${sink} --from-beginning --rebuild${some ? tables.map((t) => ` --table ${t}`).join("") : ""} --execute`;
  return new SluiceError(
    `sink ${sink}: its stored offsets were taken from another topic log than the one it reads now (${listed}). ` +
      "The embedded log file was replaced, or the topics were deleted and created again under the same names: resuming there would skip records, so the sink does not start. " +
      `Rebuild ${some ? `the table${tables.length > 1 ? "s" : ""} of ${tables.length > 1 ? "these topics" : "this topic"}` : "it"} from the log as it is now: ${command} ` +
      `(works with the daemon running; the sink then reads on from where the rebuild ended${some ? "; its other tables keep what they hold" : ""}).`,
    {
      code: SINK_LOG_MISMATCH,
      context: {
        component: "sink",
        sink,
        topic: first.topic,
        partition: first.partition,
        offset: first.offset.toString(),
        expectedTopicId: first.expected ?? "(none)",
        foundTopicId: first.found ?? "(none)",
        topics: topics.join(", "),
      },
    },
  );
}

export function isLogMismatch(error: unknown): error is SluiceError {
  return error instanceof SluiceError && error.code === SINK_LOG_MISMATCH;
}

/**
 * After a rebuild filled the sink's target from `topics` up to `rebuiltTo` (next offset per
 * partition): stored offsets that do not belong to the log now are replaced by where the rebuild
 * ended (a partition it did not read: its start), bound to the current identities, so the sink
 * reads on from there. Offsets that belong are left alone. Returns the offsets stored.
 */
export async function rebindOffsets(sink: TransactionalSink, log: TopicLog, topics: readonly string[], rebuiltTo: ReadonlyMap<string, bigint>, signal: AbortSignal): Promise<TopicPartitionOffset[]> {
  const topicIds = await log.topicIds(topics);
  const ranges = await partitionRanges(log, topics);
  const stored = (await sink.committedOffsets(signal)).filter((o) => topics.includes(o.topic));
  const { mismatches } = checkStoredOffsets(stored, topicIds, ranges);
  if (mismatches.length === 0) return [];
  const offsets = mismatches.map((m) => {
    const key = partitionKey(m.topic, m.partition);
    return { topic: m.topic, partition: m.partition, offset: rebuiltTo.get(key) ?? ranges.get(key)?.start ?? 0n };
  });
  sink.useTopicIds(topicIds);
  await sink.storeOffsets(offsets, signal);
  return offsets;
}
