/**
 * The one SQLite file of an embedded deployment: topics and their record batches, consumer group
 * offsets and leases, source checkpoints, the schema registry's journal, and the file's identity
 * (`log_meta.log_id`, a random UUID drawn when the file is created).
 */
import { randomUUID } from "node:crypto";
import type { DatabaseSync } from "node:sqlite";
import { SluiceError } from "../errors.ts";
import { rollBackQuietly } from "./sqlite-errors.ts";

/**
 * 3: appends write no keys; compaction indexes the stored records behind `partitions.indexed_offset`
 * (key-index.ts). A Sluice that knows only 1 or 2 takes the index for whole and its compaction could
 * remove a key's newest records, so it must refuse the file. (2 had appends list their keys in
 * `pending_keys`, folded into `latest_keys` in bulk; 1 upserted `latest_keys` on every append.)
 */
const SCHEMA_VERSION = 3;
/** Versions this Sluice opens: 1 and 2 are moved to 3 on the first writable open. */
const KNOWN_VERSIONS: readonly number[] = [1, 2, SCHEMA_VERSION];

const DDL = `
CREATE TABLE topics (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  partitions INTEGER NOT NULL,
  retention_ms INTEGER,
  retention_bytes INTEGER,
  compacted INTEGER NOT NULL,
  created_at_ms INTEGER NOT NULL
);

-- Per partition: first kept offset, next offset to write, bytes kept, the compaction cursor, and
-- (compacted topics) the offset below which latest_keys holds every record's key.
CREATE TABLE partitions (
  topic_id INTEGER NOT NULL REFERENCES topics(id) ON DELETE CASCADE,
  partition INTEGER NOT NULL,
  start_offset INTEGER NOT NULL,
  next_offset INTEGER NOT NULL,
  bytes INTEGER NOT NULL,
  cleaned_offset INTEGER NOT NULL,
  indexed_offset INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (topic_id, partition)
) WITHOUT ROWID;

-- Records, one row per produced batch and partition, covering offsets base_offset..last_offset.
-- last_offset and max_timestamp stay as written even when compaction removes records, so ranges
-- never overlap and the timestamp search stays correct.
CREATE TABLE batches (
  topic_id INTEGER NOT NULL,
  partition INTEGER NOT NULL,
  base_offset INTEGER NOT NULL,
  last_offset INTEGER NOT NULL,
  max_timestamp REAL NOT NULL,
  record_count INTEGER NOT NULL,
  bytes INTEGER NOT NULL,
  payload BLOB NOT NULL
);
CREATE UNIQUE INDEX batches_by_offset ON batches (topic_id, partition, last_offset);

-- Compacted topics only: the latest offset of every key of the records below the partition's
-- indexed_offset (compaction indexes them, key-index.ts).
CREATE TABLE latest_keys (
  topic_id INTEGER NOT NULL,
  partition INTEGER NOT NULL,
  key BLOB NOT NULL,
  offset INTEGER NOT NULL,
  PRIMARY KEY (topic_id, partition, key)
) WITHOUT ROWID;

CREATE TABLE group_offsets (
  group_name TEXT NOT NULL,
  topic_id INTEGER NOT NULL REFERENCES topics(id) ON DELETE CASCADE,
  partition INTEGER NOT NULL,
  next_offset INTEGER NOT NULL,
  PRIMARY KEY (group_name, topic_id, partition)
) WITHOUT ROWID;

CREATE TABLE leases (
  group_name TEXT PRIMARY KEY,
  owner TEXT NOT NULL,
  expires_at_ms INTEGER NOT NULL
);

CREATE TABLE checkpoints (
  source TEXT PRIMARY KEY,
  checkpoint TEXT NOT NULL,
  updated_at_ms INTEGER NOT NULL
);

CREATE TABLE registry_journal (
  sequence INTEGER PRIMARY KEY AUTOINCREMENT,
  entry TEXT NOT NULL,
  appended_at_ms INTEGER NOT NULL
);
`;

/** Sets the durability pragmas (WAL, fsync on every commit) and creates or checks the schema; read-only: only checks. */
export function prepareDatabase(db: DatabaseSync, path: string, readOnly = false): void {
  db.exec("PRAGMA busy_timeout = 5000");
  if (readOnly) {
    const version = (db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version;
    if (KNOWN_VERSIONS.includes(version)) return;
    throw new SluiceError(
      version === 0 ? `${path} is not an embedded topic log (no Sluice schema in it yet)` : `embedded topic log ${path} has schema version ${version}; this Sluice knows version ${SCHEMA_VERSION}`,
      { code: version === 0 ? "TOPIC_LOG_NOT_FOUND" : "TOPIC_LOG_VERSION", context: { component: "embedded-log", path } },
    );
  }
  const fresh = (db.prepare("SELECT count(*) AS n FROM sqlite_master").get() as { n: number }).n === 0;
  if (fresh) db.exec("PRAGMA page_size = 8192");
  const mode = (db.prepare("PRAGMA journal_mode = WAL").get() as { journal_mode: string }).journal_mode;
  if (mode !== "wal") {
    throw new SluiceError(`embedded topic log ${path}: cannot switch to WAL mode (got "${mode}")`, { code: "TOPIC_LOG_OPEN_FAILED", context: { component: "embedded-log", path } });
  }
  // FULL: every commit fsyncs the WAL, so an acknowledged produce survives power loss.
  db.exec("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA wal_autocheckpoint = 4000");
  const version = (db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version;
  if (version === SCHEMA_VERSION) {
    ensureLogId(db);
    return;
  }
  if (KNOWN_VERSIONS.includes(version)) {
    upgrade(db, version);
    ensureLogId(db);
    return;
  }
  if (version !== 0) {
    throw new SluiceError(`embedded topic log ${path} has schema version ${version}; this Sluice knows version ${SCHEMA_VERSION}`, {
      code: "TOPIC_LOG_VERSION",
      context: { component: "embedded-log", path },
    });
  }
  db.exec("BEGIN IMMEDIATE");
  try {
    if ((db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version === 0) {
      db.exec(DDL);
      db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
    }
    db.exec("COMMIT");
  } catch (error) {
    rollBackQuietly(db);
    throw error;
  }
  ensureLogId(db);
}

/** Moves a file of an earlier known version to this one, in one transaction. */
function upgrade(db: DatabaseSync, from: number): void {
  db.exec("BEGIN IMMEDIATE");
  try {
    if ((db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version === from) {
      indexWholeToNextOffset(db);
      db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`);
    }
    db.exec("COMMIT");
  } catch (error) {
    rollBackQuietly(db);
    throw error;
  }
}

/**
 * To 3 from 1 or 2: the index is whole there (2: once the keys appends listed in `pending_keys` are
 * merged in), so every partition is indexed up to its end. A topic not compacted yet gets the same
 * offset, as switching it to compaction would give it.
 */
function indexWholeToNextOffset(db: DatabaseSync): void {
  if (db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'pending_keys'").get()) {
    db.exec(`INSERT INTO latest_keys (topic_id, partition, key, offset)
      SELECT topic_id, partition, key, max(offset) FROM pending_keys WHERE true GROUP BY topic_id, partition, key
      ON CONFLICT DO UPDATE SET offset = excluded.offset WHERE excluded.offset > latest_keys.offset`);
    db.exec("DROP TABLE pending_keys");
  }
  const columns = db.prepare("SELECT name FROM pragma_table_info('partitions')").all() as { name: string }[];
  if (!columns.some((column) => column.name === "indexed_offset")) db.exec("ALTER TABLE partitions ADD COLUMN indexed_offset INTEGER NOT NULL DEFAULT 0");
  db.exec("UPDATE partitions SET indexed_offset = next_offset");
}

/**
 * Gives the file its identity once: sinks bind their stored offsets to it, so offsets taken from
 * one log file are never applied to another (a replaced file draws a new id). Files written before
 * Sluice recorded it get one on their first open.
 */
function ensureLogId(db: DatabaseSync): void {
  if (readLogId(db) !== null) return;
  db.exec("BEGIN IMMEDIATE");
  try {
    db.exec("CREATE TABLE IF NOT EXISTS log_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID");
    db.prepare("INSERT INTO log_meta (key, value) VALUES ('log_id', ?) ON CONFLICT DO NOTHING").run(randomUUID());
    db.exec("COMMIT");
  } catch (error) {
    rollBackQuietly(db);
    throw error;
  }
}

export function readLogId(db: DatabaseSync): string | null {
  const table = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'log_meta'").get();
  if (!table) return null;
  const row = db.prepare("SELECT value FROM log_meta WHERE key = 'log_id'").get() as { value: string } | undefined;
  return row?.value ?? null;
}
