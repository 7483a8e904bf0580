/**
 * The latest offset of every key of the compacted topics (`latest_keys`), which compaction asks
 * record by record. Appends do not upsert it: they add their keys to `pending_keys`, a table only
 * ever appended to (its pages are written once, at its end), and the pending keys are folded into
 * `latest_keys` in one sorted statement every FOLD_AT keys and before compaction reads the index.
 * Upserting every record's key at once dirtied a page of the index per key, so each commit wrote
 * most of the index to the WAL again, a cost that grew with the number of keys. Both tables are
 * written in the callers' transactions, so a crash leaves them as consistent as the records.
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import type { ProducedRecord } from "../topics/contract.ts";

/** Keys added per statement (?1 topic, ?2 partition, ?3 base offset, then one key each). */
const KEYS_PER_INSERT = 128;
/** Pending keys that trigger a fold within an append. */
export const FOLD_AT = 32_768;
/**
 * Or pending bytes (keys plus ~32 bytes a row): the fold's sort stays within the memory SQLite
 * sorts in (at least 250 pages, 2 MiB here) instead of spilling to a temporary file.
 */
export const FOLD_AT_BYTES = 1.5 * 2 ** 20;
const ROW_OVERHEAD = 32;

const TABLE = "CREATE TABLE IF NOT EXISTS pending_keys (topic_id INTEGER NOT NULL, partition INTEGER NOT NULL, key BLOB NOT NULL, offset INTEGER NOT NULL)";

/** Creates `pending_keys` in a file written before it existed (writable opens only). */
export function ensureKeyIndexTables(db: DatabaseSync): void {
  db.exec(TABLE);
}

function insertSql(rows: number): string {
  const values = Array.from({ length: rows }, (_, k) => `(?1, ?2, ?${k + 4}, ?3 + ${k})`).join(", ");
  return `INSERT INTO pending_keys (topic_id, partition, key, offset) VALUES ${values}`;
}

export class KeyIndex {
  private readonly db: DatabaseSync;
  private statements: { insertMany: StatementSync; insertOne: StatementSync; fold: StatementSync; clear: StatementSync; deleteTopic: StatementSync; count: StatementSync } | undefined;
  private readonly params: (number | Uint8Array)[] = new Array<number | Uint8Array>(KEYS_PER_INSERT + 3);
  /** Keys (and their bytes) pending as far as this connection knows (another writer's folds only make it high, so a fold comes early). */
  private pending = -1;
  private pendingBytes = 0;

  constructor(db: DatabaseSync) {
    this.db = db;
  }

  /** Adds the keys of records stored at offsets base, base + 1, ...; folds when FOLD_AT keys or FOLD_AT_BYTES are pending. Inside a write transaction. */
  add(topicId: number, partition: number, records: readonly ProducedRecord[], base: number): void {
    const s = this.prepared();
    let i = 0;
    const params = this.params;
    params[0] = topicId;
    params[1] = partition;
    for (; i + KEYS_PER_INSERT <= records.length; i += KEYS_PER_INSERT) {
      params[2] = base + i;
      for (let k = 0; k < KEYS_PER_INSERT; k++) params[k + 3] = records[i + k]!.key!;
      s.insertMany.run(...params);
    }
    for (; i < records.length; i++) s.insertOne.run(topicId, partition, base + i, records[i]!.key!);
    let bytes = records.length * ROW_OVERHEAD;
    for (const record of records) bytes += record.key!.length;
    this.pending += records.length;
    this.pendingBytes += bytes;
    if (this.pending >= FOLD_AT || this.pendingBytes >= FOLD_AT_BYTES) this.fold();
  }

  /**
   * Moves the pending keys into `latest_keys`, each key's highest offset, sorted. Inside a write
   * transaction; compaction calls it before it reads the index, so no record newer than the
   * index's entry for its key is taken for superseded.
   */
  fold(): void {
    const s = this.prepared();
    // Always run: the count is a hint (a rolled-back transaction may have folded), the table is the truth.
    s.fold.run();
    s.clear.run();
    this.pending = 0;
    this.pendingBytes = 0;
  }

  /** Whether this connection added keys not folded since (as far as it knows). */
  hasPending(): boolean {
    return this.pending > 0;
  }

  deleteTopic(topicId: number): void {
    this.prepared().deleteTopic.run(topicId);
  }

  private prepared() {
    if (!this.statements) {
      this.statements = {
        insertMany: this.db.prepare(insertSql(KEYS_PER_INSERT)),
        insertOne: this.db.prepare(insertSql(1)),
        // An entry only moves forward: keys an older Sluice left pending never undo a newer entry.
        fold: this.db.prepare(
          "INSERT INTO latest_keys (topic_id, partition, key, offset) SELECT topic_id, partition, key, max(offset) FROM pending_keys WHERE true GROUP BY topic_id, partition, key ORDER BY topic_id, partition, key ON CONFLICT DO UPDATE SET offset = excluded.offset WHERE excluded.offset > latest_keys.offset",
        ),
        clear: this.db.prepare("DELETE FROM pending_keys"),
        deleteTopic: this.db.prepare("DELETE FROM pending_keys WHERE topic_id = ?"),
        count: this.db.prepare(`SELECT count(*) AS n, coalesce(sum(length(key)), 0) + ${ROW_OVERHEAD} * count(*) AS bytes FROM pending_keys`),
      };
    }
    if (this.pending < 0) {
      const { n, bytes } = this.statements.count.get() as { n: number; bytes: number };
      this.pending = n;
      this.pendingBytes = bytes;
    }
    return this.statements;
  }
}
