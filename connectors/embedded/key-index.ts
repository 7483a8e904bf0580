/**
 * The latest offset of every key of the compacted topics (`latest_keys`), which compaction asks
 * record by record. Appends do not write it: keeping it on the append path cost about 2 µs of CPU
 * a key (sorting and upserting keys that arrive in random order), most of what capture into the
 * embedded log cost beyond Kafka. Instead compaction first indexes the stored records from the
 * partition's `indexed_offset` on and moves `indexed_offset` past them, in its own transaction, so
 * a crash leaves the two consistent. The index holds the key of every record below
 * `indexed_offset` written since the topic is compacted, and compaction judges only those records.
 * A run's keys are deduplicated in memory first (a key written many times in the range costs one
 * upsert) and upserted in SQLite's blob order, so the B-tree is walked forward.
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { forEachKey } from "./record-codec.ts";

/** Keys per upsert statement (?1 topic, ?2 partition, then key and offset for each). */
const KEYS_PER_UPSERT = 64;

export interface IndexedRange {
  /** Batch rows read. */
  readonly examined: number;
  /** The partition's `indexed_offset` after the run. */
  readonly indexedOffset: number;
  /** The largest payload read, in bytes (0: none). */
  readonly largestPayload: number;
  /**
   * The latest offset of each key the run indexed (by the key's bytes as Latin-1): the index's entry
   * for it now, so compaction in the same transaction need not look it up.
   */
  readonly latest: ReadonlyMap<string, number>;
}

const NOTHING: ReadonlyMap<string, number> = new Map();

/** A key's bytes as the string `IndexedRange.latest` is keyed by. */
export function keyString(payload: Buffer, start: number, end: number): string {
  return payload.toString("latin1", start, end);
}

interface BatchRow {
  id: number;
  base_offset: number;
  last_offset: number;
  bytes: number;
}

function upsertSql(rows: number): string {
  const values = Array.from({ length: rows }, (_, k) => `(?1, ?2, ?${2 * k + 3}, ?${2 * k + 4})`).join(", ");
  // An entry only moves forward (indexing does; the guard keeps it so whatever a file holds).
  return `INSERT INTO latest_keys (topic_id, partition, key, offset) VALUES ${values} ON CONFLICT DO UPDATE SET offset = excluded.offset WHERE excluded.offset > latest_keys.offset`;
}

export class KeyIndex {
  private readonly db: DatabaseSync;
  private statements: { batchesFrom: StatementSync; payloadOf: StatementSync; upsertMany: StatementSync; upsertOne: StatementSync; setIndexed: StatementSync } | undefined;
  private readonly params = new Array<number | Uint8Array>(2 + 2 * KEYS_PER_UPSERT);

  constructor(db: DatabaseSync) {
    this.db = db;
  }

  /**
   * Indexes whole stored batches from `indexedOffset` on, at most `budget` rows and (past the
   * first) `maxBytes` of payload, and stores the partition's new `indexed_offset`. Inside a write
   * transaction. `nextOffset` is the partition's end: with no batch left to read (retention may have
   * removed the rest), everything below it counts as indexed.
   */
  catchUp(topicId: number, partition: number, indexedOffset: number, nextOffset: number, budget: number, maxBytes: number): IndexedRange {
    if (indexedOffset >= nextOffset || budget <= 0) return { examined: 0, indexedOffset, largestPayload: 0, latest: NOTHING };
    const s = this.prepared();
    const batches = s.batchesFrom.all(topicId, partition, indexedOffset, budget) as unknown as BatchRow[];
    const latest = new Map<string, number>();
    let indexed = batches.length === 0 ? nextOffset : indexedOffset;
    let bytes = 0;
    let examined = 0;
    let largestPayload = 0;
    for (const batch of batches) {
      if (examined > 0 && bytes + batch.bytes > maxBytes) break;
      const stored = (s.payloadOf.get(batch.id) as { payload: Uint8Array }).payload;
      largestPayload = Math.max(largestPayload, stored.byteLength);
      const payload = Buffer.from(stored.buffer, stored.byteOffset, stored.byteLength);
      const base = batch.base_offset;
      // Offsets rise through a batch and from batch to batch: the last one seen is the key's latest.
      forEachKey(payload, (start, end, delta) => latest.set(keyString(payload, start, end), base + delta));
      bytes += batch.bytes;
      examined++;
      indexed = batch.last_offset + 1;
    }
    this.upsert(topicId, partition, latest);
    s.setIndexed.run(indexed, topicId, partition);
    return { examined, indexedOffset: indexed, largestPayload, latest };
  }

  private upsert(topicId: number, partition: number, latest: Map<string, number>): void {
    const s = this.prepared();
    // Latin-1 maps each byte to the code unit of the same value, so string order is SQLite's blob order.
    const keys = [...latest.keys()].sort();
    const params = this.params;
    params[0] = topicId;
    params[1] = partition;
    let i = 0;
    for (; i + KEYS_PER_UPSERT <= keys.length; i += KEYS_PER_UPSERT) {
      for (let k = 0; k < KEYS_PER_UPSERT; k++) {
        const key = keys[i + k]!;
        params[2 * k + 2] = Buffer.from(key, "latin1");
        params[2 * k + 3] = latest.get(key)!;
      }
      s.upsertMany.run(...params);
    }
    for (; i < keys.length; i++) s.upsertOne.run(topicId, partition, Buffer.from(keys[i]!, "latin1"), latest.get(keys[i]!)!);
  }

  private prepared() {
    this.statements ??= {
      batchesFrom: this.db.prepare("SELECT rowid AS id, base_offset, last_offset, bytes FROM batches WHERE topic_id = ? AND partition = ? AND last_offset >= ? ORDER BY last_offset LIMIT ?"),
      payloadOf: this.db.prepare("SELECT payload FROM batches WHERE rowid = ?"),
      upsertMany: this.db.prepare(upsertSql(KEYS_PER_UPSERT)),
      upsertOne: this.db.prepare(upsertSql(1)),
      setIndexed: this.db.prepare("UPDATE partitions SET indexed_offset = ? WHERE topic_id = ? AND partition = ?"),
    };
    return this.statements;
  }
}
