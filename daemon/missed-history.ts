/**
 * A sink about to read a partition whose first records are gone, from before them (a new sink,
 * or one that fell behind retention), is told it will miss rows, and how to fill them. Likewise a
 * sink that resumes further behind than a compacted Kafka topic keeps tombstones: deletes among the
 * records it has not read may be gone.
 */
import type { SkippedRecords, TopicLog, TopicPartitionOffset } from "../connectors/contracts.ts";

/** A partition a sink is about to read from before its first kept record. */
export interface MissedHistory {
  readonly topic: string;
  readonly partition: number;
  /** The first offset kept. */
  readonly start: bigint;
  /** Where the sink stood: null for a sink that never read the partition. */
  readonly from: bigint | null;
}

/**
 * Partitions of `topics` whose first records are gone, where the sink's position (`positions`:
 * its committed offsets, or those its target keeps) is before the first kept record or absent:
 * the sink misses every change retention removed before it read it.
 */
export async function missedHistory(log: TopicLog, topics: readonly string[], positions: readonly TopicPartitionOffset[]): Promise<MissedHistory[]> {
  const at = new Map(positions.map((p) => [`${p.topic}\u0000${p.partition}`, p.offset]));
  const missed: MissedHistory[] = [];
  for (const topic of topics) {
    for (const range of await log.partitionOffsets(topic)) {
      if (range.start === 0n) continue;
      const from = at.get(`${topic}\u0000${range.partition}`) ?? null;
      if (from === null || from < range.start) missed.push({ topic, partition: range.partition, start: range.start, from });
    }
  }
  return missed;
}

export function describeMissedHistory(sink: string, missed: readonly MissedHistory[]): string {
  const shown = missed.slice(0, 10).map((m) => `${m.topic}:${m.partition} starts at offset ${m.start}${m.from === null ? "" : `, the sink was at ${m.from}`}`).join("; ");
  const more = missed.length > 10 ? ` and ${missed.length - 10} more` : "";
  const fresh = missed.every((m) => m.from === null);
  return (
    `sink ${sink}: ${fresh ? "this new sink starts" : "the sink resumes"} after records retention removed (${shown}${more}): it will miss the rows whose changes are gone, ` +
    "so it will not equal the source. Re-snapshot the source to write every row again (docs/operations.md, \"Rebuilds need complete history\"); " +
    "compacted topics (topics.retention.cleanup_policy: compact) keep every row from then on"
  );
}

/** What a running sink is told when the log no longer held the records it was to read next (TopicConsumer.takeSkipped). */
export function describeSkipped(sink: string, skipped: readonly SkippedRecords[]): string {
  const deleted = skipped.filter((s) => s.to > s.from);
  const behind = skipped.filter((s) => s.to < s.from);
  const list = (items: readonly SkippedRecords[], one: (s: SkippedRecords) => string) => items.slice(0, 10).map(one).join("; ") + (items.length > 10 ? ` and ${items.length - 10} more` : "");
  const parts: string[] = [];
  if (deleted.length > 0) {
    parts.push(
      `sink ${sink}: records were deleted by retention before the sink read them (${list(deleted, (s) => `${s.topic}:${s.partition} offsets ${s.from} to ${s.to - 1n}`)}); it read on at the first record kept, ` +
        "so it misses the rows whose changes are gone and will not equal the source. Re-snapshot the source to write every row again " +
        "(docs/operations.md, \"Rebuilds need complete history\"); compacted topics (topics.retention.cleanup_policy: compact) keep every row",
    );
  }
  if (behind.length > 0) {
    parts.push(
      `sink ${sink}: the topic log no longer reaches the sink's position (${list(behind, (s) => `${s.topic}:${s.partition} ends before offset ${s.from}, read on from offset ${s.to}`)}): ` +
        "the topic was deleted and created again. Changes the old topic held that the sink had not read yet are gone from the log: " +
        "read the tables of these topics again (sluice snapshot --table T --execute) so that the sink equals the source (docs/operations.md, \"A sink refuses to start\")",
    );
  }
  return parts.join(". ");
}

/** A partition where the sink resumes before records older than the tombstone retention. */
export interface StaleTombstones {
  readonly topic: string;
  readonly partition: number;
  /** Where the sink resumes. */
  readonly from: bigint;
  /** The first record younger than the tombstone retention. */
  readonly until: bigint;
}

/**
 * Partitions of compacted Kafka topics where the sink resumes at an offset before the first record
 * younger than `tombstoneRetentionMs`: the broker may have removed the tombstones of deletes it has
 * not read (the embedded log keeps them until every sink's group read them, so it is not checked).
 */
export async function staleTombstones(log: TopicLog, topics: readonly string[], positions: readonly TopicPartitionOffset[], tombstoneRetentionMs: number, nowMs: number): Promise<StaleTombstones[]> {
  if (log.kind !== "kafka" || positions.length === 0) return [];
  const at = new Map(positions.map((p) => [`${p.topic}\u0000${p.partition}`, p.offset]));
  const stale: StaleTombstones[] = [];
  for (const spec of await log.listTopics(topics)) {
    if (!spec.compacted || ![...at.keys()].some((k) => k.startsWith(`${spec.name}\u0000`))) continue;
    for (const young of await log.offsetsForTimestamp(spec.name, nowMs - tombstoneRetentionMs)) {
      const from = at.get(`${spec.name}\u0000${young.partition}`);
      if (from !== undefined && from < young.offset) stale.push({ topic: spec.name, partition: young.partition, from, until: young.offset });
    }
  }
  return stale;
}

export function describeStaleTombstones(sink: string, stale: readonly StaleTombstones[]): string {
  const shown = stale.slice(0, 10).map((s) => `${s.topic}:${s.partition} from offset ${s.from}, older than the tombstone retention up to ${s.until}`).join("; ");
  const more = stale.length > 10 ? ` and ${stale.length - 10} more` : "";
  return (
    `sink ${sink}: resumes further behind than the topics keep tombstones (${shown}${more}; topics.retention.tombstones): ` +
    "Kafka may have removed deletes it has not read, so rows deleted at the source may stay. Rebuild it to be sure: sluice replay --sink " +
    `${sink} --from-beginning --rebuild --execute (docs/operations.md, "Adding a sink to a running deployment")`
  );
}
