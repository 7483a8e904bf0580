/**
 * A consumer of the embedded log. It reads every partition of its topics (an embedded group has one
 * running member at a time; the sink lease says which) straight from the log's connection.
 */
import { SluiceError } from "../errors.ts";
import type { PollOptions, SeekTarget, SkippedRecords, StoredRecord, TopicConsumer, TopicPartition, TopicPartitionOffset } from "../topics/contract.ts";
import type { EmbeddedStatements, EmbeddedTopicLog, TopicMeta } from "./embedded-log.ts";
import { toSafeOffset } from "./embedded-log.ts";
import { decodeBatch } from "./record-codec.ts";
import type { DecodedRecord } from "./record-codec.ts";
import { waitForAppend } from "./wakeup.ts";

interface LoadedBatch {
  readonly baseOffset: number;
  readonly lastOffset: number;
  readonly records: DecodedRecord[];
  /** Index of the next record to hand out. */
  index: number;
}

interface Cursor {
  readonly topic: TopicMeta;
  readonly partition: number;
  /** Next offset to read; undefined until first read from the group's committed offset. */
  next: number | undefined;
  batch: LoadedBatch | undefined;
}

export class EmbeddedConsumer implements TopicConsumer {
  private readonly log: EmbeddedTopicLog;
  private readonly statements: EmbeddedStatements;
  private readonly group: string;
  private readonly cursors: Cursor[];
  private readonly onClose: (consumer: EmbeddedConsumer) => void;
  private rotation = 0;
  private closed = false;
  private skipped: SkippedRecords[] = [];

  constructor(log: EmbeddedTopicLog, statements: EmbeddedStatements, group: string, topics: readonly TopicMeta[], onClose: (consumer: EmbeddedConsumer) => void) {
    this.log = log;
    this.statements = statements;
    this.group = group;
    this.onClose = onClose;
    this.cursors = topics.flatMap((topic) => Array.from({ length: topic.spec.partitions }, (_, partition) => ({ topic, partition, next: undefined, batch: undefined })));
  }

  async poll(options: PollOptions): Promise<StoredRecord[]> {
    const deadline = Date.now() + options.maxWaitMs;
    for (;;) {
      this.assertOpen();
      const records = this.readAvailable(options.maxRecords, options.maxBytes);
      if (records.length > 0 || Date.now() >= deadline || options.signal?.aborted) return records;
      await waitForAppend(this.log.notifier, this.log.crossProcessPollMs, deadline, options.signal);
    }
  }

  async commit(offsets: readonly TopicPartitionOffset[]): Promise<void> {
    this.assertOpen();
    await this.log.setCommittedOffsets(this.group, offsets);
  }

  async seek(topic: string, partition: number, target: SeekTarget): Promise<void> {
    this.assertOpen();
    const cursor = this.cursors.find((c) => c.topic.spec.name === topic && c.partition === partition);
    if (!cursor) {
      throw new SluiceError(`cannot seek ${topic}/${partition}: not read by this consumer`, { code: "PARTITION_NOT_ASSIGNED", context: { component: "embedded-log", topic, partition } });
    }
    const bounds = this.bounds(cursor);
    switch (target.kind) {
      case "earliest":
        cursor.next = bounds.start;
        break;
      case "latest":
        cursor.next = bounds.end;
        break;
      case "offset":
        cursor.next = toSafeOffset(target.offset);
        break;
      case "timestamp":
        cursor.next = this.log.offsetForTimestamp(cursor.topic, partition, target.timestampMs) ?? bounds.end;
        break;
    }
    cursor.batch = undefined;
  }

  position(topic: string, partition: number): bigint | null {
    const next = this.cursors.find((c) => c.topic.spec.name === topic && c.partition === partition)?.next;
    return next === undefined ? null : BigInt(next);
  }

  assignment(): readonly TopicPartition[] {
    return this.cursors.map((c) => ({ topic: c.topic.spec.name, partition: c.partition }));
  }

  takeSkipped(): SkippedRecords[] {
    const taken = this.skipped;
    this.skipped = [];
    return taken;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.onClose(this);
  }

  private assertOpen(): void {
    if (this.closed) throw new SluiceError(`consumer of group "${this.group}" is closed`, { code: "CONSUMER_CLOSED", context: { component: "embedded-log", group: this.group } });
  }

  /** What is stored now, round-robin over partitions so one busy partition cannot starve the others. */
  private readAvailable(maxRecords: number, maxBytes: number): StoredRecord[] {
    const out: StoredRecord[] = [];
    const budget = { records: maxRecords, bytes: maxBytes };
    const count = this.cursors.length;
    const first = this.rotation++ % Math.max(count, 1);
    for (let i = 0; i < count && budget.records > 0 && budget.bytes > 0; i++) {
      this.readPartition(this.cursors[(first + i) % count]!, out, budget);
    }
    return out;
  }

  private readPartition(cursor: Cursor, out: StoredRecord[], budget: { records: number; bytes: number }): void {
    const bounds = this.bounds(cursor);
    if (cursor.next === undefined) {
      const committed = this.log.read("read group offset", () => this.statements.groupOffset.get(this.group, cursor.topic.id, cursor.partition)) as { next_offset: number } | undefined;
      cursor.next = committed?.next_offset ?? bounds.start;
    }
    // Retention may have passed the position: continue at the first kept record, and say what was gone.
    if (cursor.next < bounds.start) {
      this.skipped.push({ topic: cursor.topic.spec.name, partition: cursor.partition, from: BigInt(cursor.next), to: BigInt(bounds.start) });
      cursor.next = bounds.start;
    }
    const topic = cursor.topic.spec.name;
    while (cursor.next < bounds.end && budget.records > 0 && budget.bytes > 0) {
      const batch = this.batchAt(cursor);
      if (!batch) {
        // Nothing stored from here to the end read above: compaction removed the partition's last records.
        cursor.next = bounds.end;
        return;
      }
      while (batch.index < batch.records.length && budget.records > 0) {
        const record = batch.records[batch.index]!;
        const offset = batch.baseOffset + record.offsetDelta;
        if (offset < cursor.next) {
          batch.index++;
          continue;
        }
        if (out.length > 0 && record.size > budget.bytes) {
          budget.bytes = 0;
          return;
        }
        batch.index++;
        const stored: { -readonly [K in keyof StoredRecord]: StoredRecord[K] } = { topic, partition: cursor.partition, offset: BigInt(offset), key: record.key, value: record.value, timestamp: record.timestamp };
        if (record.headers) stored.headers = record.headers;
        out.push(stored);
        cursor.next = offset + 1;
        budget.records--;
        budget.bytes -= record.size;
      }
      // Compaction leaves gaps: once a batch is read, continue after its range.
      // A batch read through is let go of (batchAt never hands it out again): its stored row may hold one large record.
      if (batch.index >= batch.records.length) {
        cursor.next = Math.max(cursor.next, batch.lastOffset + 1);
        if (cursor.batch === batch) cursor.batch = undefined;
      }
    }
  }

  /** The stored batch holding `cursor.next` (or the first after it), kept until read through. */
  private batchAt(cursor: Cursor): LoadedBatch | undefined {
    const next = cursor.next!;
    if (cursor.batch && cursor.batch.baseOffset <= next && next <= cursor.batch.lastOffset && cursor.batch.index < cursor.batch.records.length) return cursor.batch;
    const row = this.log.read("read records", () => this.statements.batchesFrom.get(cursor.topic.id, cursor.partition, next, 1)) as { base_offset: number; last_offset: number; payload: Uint8Array } | undefined;
    if (!row) {
      cursor.batch = undefined;
      return undefined;
    }
    const records = decodeBatch(row.payload);
    let index = 0;
    while (index < records.length && row.base_offset + records[index]!.offsetDelta < next) index++;
    cursor.batch = { baseOffset: row.base_offset, lastOffset: row.last_offset, records, index };
    return cursor.batch;
  }

  private bounds(cursor: Cursor): { start: number; end: number } {
    const row = this.log.read("read offsets", () => this.statements.partitionBounds.get(cursor.topic.id, cursor.partition)) as { start_offset: number; next_offset: number } | undefined;
    if (!row) throw new SluiceError(`topic "${cursor.topic.spec.name}" was deleted while being read`, { code: "TOPIC_NOT_FOUND", context: { component: "embedded-log", topic: cursor.topic.spec.name } });
    return { start: row.start_offset, end: row.next_offset };
  }
}
