/**
 * A sink about to read a partition whose first records are gone, from before them (a new sink,
 * or one that fell behind retention), is told it will miss rows, and how to fill them.
 */
import type { TopicLog, TopicPartitionOffset } from "../connectors/contracts.ts";

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
