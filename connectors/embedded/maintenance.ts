/**
 * The periodic retention and compaction job of the embedded log. Each run does bounded work
 * (`budget` batch rows examined, and at most `maxBytes` of them read, one at a time, by each of
 * indexing and compaction in a partition) in short transactions, so writers are never held up for
 * long and memory stays bounded.
 *
 * Compaction keeps the latest record of every key (as Kafka's log cleaner does), judging by the key
 * index (key-index.ts), which each run first brings forward over the records appended since: records younger
 * than `minCompactionLagMs` are left alone, and a tombstone is dropped once it is older than
 * `tombstoneRetentionMs` and every sink's consumer group with an offset in the partition has read
 * past it (a sink that still has the row must see its delete, even while it is stopped). It never moves a partition's first offset:
 * only retention by age or size does (compact,delete topics), so a partition that starts at offset
 * 0 still holds the current state of every key.
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { keyString } from "./key-index.ts";
import type { IndexedRange, KeyIndex } from "./key-index.ts";
import { decodeBatch, encodeBatch } from "./record-codec.ts";
import { releaseLargeValue } from "../../runtime/large-values.ts";

export interface MaintenanceResult {
  /** Batch rows deleted by retention or emptied by compaction. */
  readonly deletedBatches: number;
  /** Records removed by compaction (superseded values and expired tombstones). */
  readonly compactedRecords: number;
  /**
   * The largest batch payload this pass read for the first time (the key index catching up) or
   * rewrote or deleted, in bytes; let go of with a collection when large. A batch compaction only
   * scans again (it starts again from the log's first batch each time it reaches the indexed head)
   * is not counted: a kept large record would otherwise cost a collection every pass.
   */
  readonly largestPayloadLetGo: number;
}

interface PartitionRow {
  topic_id: number;
  partition: number;
  start_offset: number;
  next_offset: number;
  bytes: number;
  cleaned_offset: number;
  indexed_offset: number;
  retention_ms: number | null;
  retention_bytes: number | null;
  compacted: number;
}

interface BatchRow {
  id: number;
  base_offset: number;
  last_offset: number;
  max_timestamp: number;
  bytes: number;
}

export class Maintenance {
  private readonly db: DatabaseSync;
  private readonly keyIndex: KeyIndex;
  private readonly tombstoneRetentionMs: number;
  private readonly minCompactionLagMs: number;
  /** The current pass's MaintenanceResult.largestPayloadLetGo. */
  private largestRead = 0;
  private readonly maxBytes: number;
  private readonly payloadOf: StatementSync;
  private readonly slowestGroup: StatementSync;
  private readonly partitions: StatementSync;
  private readonly oldestBatches: StatementSync;
  private readonly indexedBatchesFrom: StatementSync;
  private readonly deleteBatch: StatementSync;
  private readonly rewriteBatch: StatementSync;
  private readonly firstOffset: StatementSync;
  private readonly updatePartition: StatementSync;
  private readonly latestKey: StatementSync;

  constructor(db: DatabaseSync, keyIndex: KeyIndex, tombstoneRetentionMs: number, options: { minCompactionLagMs?: number; maxBytes?: number } = {}) {
    this.db = db;
    this.keyIndex = keyIndex;
    this.tombstoneRetentionMs = tombstoneRetentionMs;
    this.minCompactionLagMs = options.minCompactionLagMs ?? 0;
    this.maxBytes = options.maxBytes ?? 8 * 2 ** 20;
    this.payloadOf = db.prepare("SELECT payload FROM batches WHERE rowid = ?");
    // Sinks' groups (`<deployment>.sink.<sink>`, topics/names.ts) only: a replay's marker group (`.replay`) and a rebuild's group (`.rebuild`) do not read on from their offsets.
    this.slowestGroup = db.prepare(
      "SELECT min(next_offset) AS offset FROM group_offsets WHERE topic_id = ? AND partition = ? AND group_name LIKE '%.sink.%' AND group_name NOT LIKE '%.replay' AND group_name NOT LIKE '%.rebuild'",
    );
    this.partitions = db.prepare(`
      SELECT p.topic_id, p.partition, p.start_offset, p.next_offset, p.bytes, p.cleaned_offset, p.indexed_offset, t.retention_ms, t.retention_bytes, t.compacted
      FROM partitions p JOIN topics t ON t.id = p.topic_id
      WHERE t.compacted = 1 OR t.retention_ms IS NOT NULL OR t.retention_bytes IS NOT NULL
      ORDER BY p.topic_id, p.partition`);
    this.oldestBatches = db.prepare("SELECT rowid AS id, base_offset, last_offset, max_timestamp, bytes FROM batches WHERE topic_id = ? AND partition = ? ORDER BY last_offset LIMIT ?");
    this.indexedBatchesFrom = db.prepare("SELECT rowid AS id, base_offset, last_offset, max_timestamp, bytes FROM batches WHERE topic_id = ? AND partition = ? AND last_offset >= ? AND last_offset < ? ORDER BY last_offset LIMIT ?");
    this.deleteBatch = db.prepare("DELETE FROM batches WHERE rowid = ?");
    this.rewriteBatch = db.prepare("UPDATE batches SET payload = ?, record_count = ?, bytes = ? WHERE rowid = ?");
    this.firstOffset = db.prepare("SELECT base_offset FROM batches WHERE topic_id = ? AND partition = ? ORDER BY last_offset LIMIT 1");
    this.updatePartition = db.prepare("UPDATE partitions SET bytes = ?, start_offset = ?, cleaned_offset = ? WHERE topic_id = ? AND partition = ?");
    this.latestKey = db.prepare("SELECT offset FROM latest_keys WHERE topic_id = ? AND partition = ? AND key = ?");
  }

  run(nowMs: number, budget: number): MaintenanceResult {
    this.largestRead = 0;
    try {
      return { ...this.pass(nowMs, budget), largestPayloadLetGo: this.largestRead };
    } finally {
      // The payloads read are let go of by now (they lived in the pass): one large record's goes at once.
      releaseLargeValue(this.largestRead);
    }
  }

  private pass(nowMs: number, budget: number): Omit<MaintenanceResult, "largestPayloadLetGo"> {
    let deletedBatches = 0;
    let compactedRecords = 0;
    let remaining = budget;
    for (const row of this.partitions.all() as unknown as PartitionRow[]) {
      if (remaining <= 0) break;
      this.db.exec("BEGIN IMMEDIATE");
      try {
        const retained = row.retention_ms !== null || row.retention_bytes !== null ? this.retain(row, nowMs, remaining) : null;
        const indexed = row.compacted ? this.keyIndex.catchUp(row.topic_id, row.partition, row.indexed_offset, row.next_offset, remaining, this.maxBytes) : null;
        if (indexed) this.largestRead = Math.max(this.largestRead, indexed.largestPayload);
        const compacted = indexed ? this.compact(this.partitionAfter(row, retained), indexed, nowMs, remaining) : null;
        this.db.exec("COMMIT");
        for (const result of [retained, indexed && { examined: indexed.examined, deleted: 0, removedRecords: 0 }, compacted]) {
          if (!result) continue;
          remaining -= result.examined;
          deletedBatches += result.deleted;
          compactedRecords += result.removedRecords;
        }
      } catch (error) {
        if (this.db.isTransaction) this.db.exec("ROLLBACK");
        throw error;
      }
    }
    return { deletedBatches, compactedRecords };
  }

  /** Deletes the oldest batches while they are past the age limit or the partition is over its size limit. */
  private retain(row: PartitionRow, nowMs: number, budget: number): { examined: number; deleted: number; removedRecords: number; bytes: number } {
    const cutoff = row.retention_ms === null ? -Infinity : nowMs - row.retention_ms;
    let bytes = row.bytes;
    let deleted = 0;
    const batches = this.oldestBatches.all(row.topic_id, row.partition, budget) as unknown as BatchRow[];
    for (const batch of batches) {
      const tooOld = batch.max_timestamp < cutoff;
      const tooBig = row.retention_bytes !== null && bytes > row.retention_bytes;
      if (!tooOld && !tooBig) break;
      this.deleteBatch.run(batch.id);
      bytes -= batch.bytes;
      deleted++;
    }
    if (deleted > 0) this.updatePartition.run(bytes, this.startOffset(row), row.cleaned_offset, row.topic_id, row.partition);
    return { examined: Math.max(deleted, 1), deleted, removedRecords: 0, bytes };
  }

  /** The partition as retention left it (bytes and first offset), for compaction in the same transaction. */
  private partitionAfter(row: PartitionRow, retained: { deleted: number; bytes: number } | null): PartitionRow {
    if (!retained || retained.deleted === 0) return row;
    return { ...row, bytes: retained.bytes, start_offset: this.startOffset(row) };
  }

  /**
   * Removes records superseded by a later record with the same key, and tombstones older than the
   * tombstone retention that every group has read. Judges only records below `indexedOffset`: a
   * later record's key may not be indexed yet, and the key's entry would then name an older record,
   * which would make the later one look superseded.
   */
  private compact(row: PartitionRow, indexed: IndexedRange, nowMs: number, budget: number): { examined: number; deleted: number; removedRecords: number } {
    const { indexedOffset, latest: justIndexed } = indexed;
    let batches = this.indexedBatchesFrom.all(row.topic_id, row.partition, row.cleaned_offset, indexedOffset, budget) as unknown as BatchRow[];
    let cursor = row.cleaned_offset;
    if (batches.length === 0 && cursor > 0) {
      // Reached the indexed head: start the next pass from the beginning, as later records may have superseded earlier ones.
      cursor = 0;
      batches = this.indexedBatchesFrom.all(row.topic_id, row.partition, 0, indexedOffset, budget) as unknown as BatchRow[];
    }
    let bytes = row.bytes;
    let deleted = 0;
    let removedRecords = 0;
    let bytesRead = 0;
    const lagCutoff = nowMs - this.minCompactionLagMs;
    const slowest = (this.slowestGroup.get(row.topic_id, row.partition) as { offset: number | null }).offset;
    let examined = 0;
    for (const batch of batches) {
      if (bytesRead >= this.maxBytes) break;
      const payload = (this.payloadOf.get(batch.id) as { payload: Uint8Array }).payload;
      bytesRead += payload.byteLength;
      examined++;
      const records = decodeBatch(payload);
      const view = justIndexed.size > 0 ? Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength) : null;
      const kept = records.filter((record) => {
        const offset = batch.base_offset + record.offsetDelta;
        // Keyless records cannot be written to a compacted topic; those of a topic written before it was compacted stay.
        if (record.key === null || record.timestamp > lagCutoff) return true;
        const start = record.key.byteOffset - payload.byteOffset;
        const latest = (view && justIndexed.get(keyString(view, start, start + record.key.length))) ?? (this.latestKey.get(row.topic_id, row.partition, record.key) as { offset: number } | undefined)?.offset;
        // No entry: the key was last written before the topic was switched to compaction, so this record may be its latest.
        if (latest === undefined) return true;
        if (latest !== offset) return false;
        // The key's entry stays when its tombstone goes: older records of the key may still be stored (lagging a pass), and must go too.
        return !(record.value === null && record.timestamp < nowMs - this.tombstoneRetentionMs && (slowest === null || offset < slowest));
      });
      cursor = batch.last_offset + 1;
      if (kept.length === records.length) continue;
      this.largestRead = Math.max(this.largestRead, payload.byteLength);
      removedRecords += records.length - kept.length;
      if (kept.length === 0) {
        this.deleteBatch.run(batch.id);
        bytes -= batch.bytes;
        deleted++;
        continue;
      }
      const size = kept.reduce((sum, record) => sum + record.size, 0);
      this.rewriteBatch.run(encodeBatch(kept, size, kept.map((record) => record.offsetDelta)), kept.length, size, batch.id);
      bytes -= batch.bytes - size;
    }
    this.updatePartition.run(bytes, row.start_offset, cursor, row.topic_id, row.partition);
    return { examined: Math.max(examined, 1), deleted, removedRecords };
  }

  private startOffset(row: PartitionRow): number {
    const first = this.firstOffset.get(row.topic_id, row.partition) as { base_offset: number } | undefined;
    return first?.base_offset ?? row.next_offset;
  }
}
