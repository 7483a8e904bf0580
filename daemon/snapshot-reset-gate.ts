/**
 * Holds a table's truncate or snapshot reset (connectors/common/snapshot-reset.ts) back until the
 * sink has applied, in every partition of the table's data topic, everything written before it.
 * It holds every control record (daemon/control-records.ts: truncates and resets in the control
 * topic, the data topic named in its header), and the snapshot resets earlier Sluice versions
 * wrote into data topics (then the reset's own partition needs nothing more).
 *
 * Why: the reset sits in another topic (the control topic) or in one partition of the data topic,
 * after that partition's snapshot rows only.
 * A sink reads partitions at their own pace; applied as soon as it is read, the reset removed the
 * rows an earlier attempt wrote for keys whose new snapshot rows, in other partitions, were still
 * unread, and those rows vanished from the sink until they were read.
 *
 * How: when the reset is read, the end offset of every partition of its data topic is taken.
 * Capture stores the table's earlier rows before (or with) its reset, and a reset that can be read
 * is stored (with Kafka transactions: committed), so every end offset lies past every such row of
 * its partition. The reset
 * is applied once every partition has been applied up to that end offset, judged by what this
 * member has applied for the partitions it reads, and by the consumer group's committed offsets
 * (stored only after a batch is applied) for partitions other members read, so it stays right when
 * sink instances share a topic's partitions. Until then the reset's partition keeps its stored
 * offset at the reset: a crash or a rebalance reads it again and takes new end offsets (later ones,
 * just as safe). Records after the reset are applied meanwhile: they are newer than the snapshot,
 * and the reset only removes rows at or below its version, so applying it late removes nothing a
 * later change wrote. A reset never waits on a partition it does not need: only end offsets taken
 * after it was read count.
 */
import type { ChangeEvent, SinkChange, StoredRecord, TopicLog, TopicPartitionOffset } from "../connectors/contracts.ts";
import type { TopicConsumer } from "../connectors/topics/contract.ts";

/** A snapshot's reset: a truncate read with the snapshot flag. */
export function isSnapshotReset(event: ChangeEvent): boolean {
  return event.op === "t" && event.source.snapshot;
}

function recordKey(record: StoredRecord): string {
  return `${record.topic}\u0000${record.partition}\u0000${record.offset}`;
}

export interface PendingReset {
  readonly record: StoredRecord;
  readonly change: SinkChange;
  /** The data topic of the reset's table: the record's own topic, or the one a control record names. */
  readonly dataTopic: string;
  /** Per other partition of the topic holding records: the offset it must be applied up to (exclusive) before the reset applies. */
  readonly barrier: ReadonlyMap<number, bigint>;
  /** The data topic's identity when the barrier was taken (null: none read, or it changed meanwhile). */
  readonly dataTopicId: string | null;
}

/** How often the group's committed offsets are asked for while a reset waits on partitions this member does not read. */
const GROUP_OFFSETS_REFRESH_MS = 1_000;

export class SnapshotResetGate {
  private readonly log: Pick<TopicLog, "partitionOffsets" | "committedOffsets" | "topicIds">;
  private readonly group: string;
  private readonly pending: PendingReset[] = [];
  /** Resets an operator skipped (one per `sluice halted skip`), as recordKey. */
  private readonly skipped = new Set<string>();
  private groupOffsets: { readonly at: number; readonly offsets: ReadonlyMap<string, bigint> } | null = null;

  constructor(log: Pick<TopicLog, "partitionOffsets" | "committedOffsets" | "topicIds">, group: string) {
    this.log = log;
    this.group = group;
  }

  /** Resets waiting now. */
  get size(): number {
    return this.pending.length;
  }

  /** Forgets every waiting reset: the consumer starts over at stored offsets, which are at or before each of them. */
  clear(): void {
    this.pending.length = 0;
    this.groupOffsets = null;
  }

  /**
   * Takes a reset just read, of the table whose data topic is `dataTopic`. Returns true when it
   * must wait; false when it may apply with its batch (a reset in a data topic of one partition:
   * everything before it is read). A control record always waits, at least until its batch is applied.
   * A skipped one is taken (true) and never applied.
   */
  async hold(record: StoredRecord, change: SinkChange, dataTopic: string = record.topic): Promise<boolean> {
    if (this.isSkipped(record)) return true;
    const own = dataTopic === record.topic;
    // The identity read on both sides of the end offsets: the same twice, the offsets are that topic's.
    const idBefore = await this.topicId(dataTopic);
    const ranges = await this.log.partitionOffsets(dataTopic);
    if (own && ranges.length <= 1) return false;
    if (this.pending.some((p) => p.record.topic === record.topic && p.record.partition === record.partition && p.record.offset === record.offset)) return true;
    const idAfter = await this.topicId(dataTopic);
    // A partition holding nothing now (empty, or emptied by retention) has nothing to wait for.
    const barrier = new Map(ranges.filter((r) => !(own && r.partition === record.partition) && r.end > r.start).map((r) => [r.partition, r.end]));
    this.pending.push({ record, change, dataTopic, barrier, dataTopicId: idBefore === idAfter ? idBefore : null });
    return true;
  }

  /**
   * Drops the waiting resets whose barrier was taken against a data topic since deleted and created again
   * (recreated-topic-follow.ts; `ids`: the identities read now): those barriers are end offsets of the deleted topic,
   * which the new one, read from its first record, would pass only later with other records, and the snapshot they close
   * wrote its rows into the deleted topic, so applied they would remove rows the sink never got back. The new topic's
   * own snapshot ends with its reset. A reset whose barrier was taken against the new topic (a TRUNCATE made after the
   * re-creation, or the closing reset of the new topic's snapshot, read before this sink noticed the change) is kept:
   * dropped, the rows it removes would stay in the sink for good. A reset read from a changed topic other than its data
   * topic (the control topic) is dropped: that topic is read again from its first record.
   */
  forgetTopics(changed: readonly string[], ids: ReadonlyMap<string, string>): void {
    for (let i = this.pending.length - 1; i >= 0; i--) {
      const { record, dataTopic, dataTopicId } = this.pending[i]!;
      const stale = changed.includes(dataTopic) && (dataTopicId === null || dataTopicId !== ids.get(dataTopic));
      if (stale || (record.topic !== dataTopic && changed.includes(record.topic))) this.pending.splice(i, 1);
    }
  }

  /** Puts back a reset taken by `due` whose table halted when it was applied: it waits again, and keeps its partition's stored offset at it. */
  restore(reset: PendingReset): void {
    if (!this.pending.includes(reset)) this.pending.push(reset);
  }

  /**
   * Drops the reset read from `record` for good (an operator skipped it): in a partition tables
   * share (the control topic) the stored offset may stay before it, so it is passed over when read again.
   */
  skip(record: StoredRecord): void {
    this.skipped.add(recordKey(record));
    const index = this.pending.findIndex((p) => recordKey(p.record) === recordKey(record));
    if (index >= 0) this.pending.splice(index, 1);
  }

  /** Whether an operator skipped the reset read from `record`. */
  isSkipped(record: StoredRecord): boolean {
    return this.skipped.size > 0 && this.skipped.has(recordKey(record));
  }

  /** Keeps each partition holding a waiting reset at or before the reset, so that it is read again after a restart. */
  holdOffsets(offsets: Map<string, TopicPartitionOffset>, keyOf: (topic: string, partition: number) => string): void {
    for (const { record } of this.pending) {
      const key = keyOf(record.topic, record.partition);
      const current = offsets.get(key);
      if (current !== undefined && current.offset > record.offset) offsets.set(key, { ...current, offset: record.offset });
    }
  }

  /**
   * The waiting resets every partition of whose topic is applied up to the barrier, removed from
   * the waiting ones. `blocked` topics (halted tables) keep theirs: their partitions were read
   * further than they were applied. Resets of partitions this member no longer reads (a
   * rebalance) are dropped: the member that reads the partition now reads them again.
   */
  async due(consumer: Pick<TopicConsumer, "assignment" | "position">, blocked: (topic: string) => boolean): Promise<PendingReset[]> {
    const assigned = new Set(consumer.assignment().map((tp) => `${tp.topic}\u0000${tp.partition}`));
    const ready: PendingReset[] = [];
    for (let i = this.pending.length - 1; i >= 0; i--) {
      const reset = this.pending[i]!;
      const { topic, partition } = reset.record;
      if (!assigned.has(`${topic}\u0000${partition}`)) {
        this.pending.splice(i, 1);
        continue;
      }
      if (blocked(topic) || blocked(reset.dataTopic)) continue;
      if (await this.passed(consumer, reset, assigned)) {
        this.pending.splice(i, 1);
        ready.unshift(reset);
      }
    }
    return ready;
  }

  private async passed(consumer: Pick<TopicConsumer, "position">, reset: PendingReset, assigned: ReadonlySet<string>): Promise<boolean> {
    const topic = reset.dataTopic;
    for (const [partition, end] of reset.barrier) {
      const own = assigned.has(`${topic}\u0000${partition}`) ? consumer.position(topic, partition) : null;
      if (own !== null && own >= end) continue;
      // Not read by this member, or not read yet in this consumer's life: what the group stored after applying.
      const committed = (await this.committed()).get(`${topic}\u0000${partition}`);
      if (committed !== undefined && committed >= end) continue;
      return false;
    }
    return true;
  }

  private async topicId(topic: string): Promise<string | null> {
    return (await this.log.topicIds([topic])).get(topic) ?? null;
  }

  private async committed(): Promise<ReadonlyMap<string, bigint>> {
    const now = Date.now();
    if (this.groupOffsets && now - this.groupOffsets.at < GROUP_OFFSETS_REFRESH_MS) return this.groupOffsets.offsets;
    const offsets = new Map((await this.log.committedOffsets(this.group)).map((o) => [`${o.topic}\u0000${o.partition}`, o.offset]));
    this.groupOffsets = { at: now, offsets };
    return offsets;
  }
}
