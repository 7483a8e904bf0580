/**
 * The schema history: an append-only list of table definitions, each valid from a binlog position
 * on. It is what lets Sluice decode a binlog written without column metadata
 * (binlog_row_metadata=MINIMAL) after a restart: the definitions in force at the resume position
 * are those of the last entry per table at or before it.
 *
 * The pipeline stores it durably beside the checkpoints through a SchemaHistoryStore: a file beside
 * the embedded log, a topic of the Kafka log. An entry is
 * appended (and awaited) before any event after its position is handed on, so a stored checkpoint
 * never lies beyond a definition that is not stored.
 */
import { mkdir, open, readFile } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { dirname } from "node:path";
import type { TableDefinition } from "./table-definition.ts";

export interface SchemaHistoryEntry {
  /** Binlog position (decimal of the 64-bit position, see positions.ts) from which the definition holds. */
  readonly at: string;
  /** "database.table" */
  readonly table: string;
  /** The definition from `at` on; null once the table is dropped or renamed away. */
  readonly definition: TableDefinition | null;
  /** snapshot: read at the snapshot; ddl: a parsed statement; catalog: re-read from the server; binlog: from binlog column metadata. */
  readonly cause: "snapshot" | "ddl" | "catalog" | "binlog";
  /** The statement, for ddl and catalog entries. */
  readonly statement?: string;
}

export interface SchemaHistoryStore {
  load(): Promise<SchemaHistoryEntry[]>;
  /** Stores the entries, in order, durably before it resolves (a snapshot's tables in one call). */
  append(entries: readonly SchemaHistoryEntry[]): Promise<void>;
}

export class MemorySchemaHistoryStore implements SchemaHistoryStore {
  readonly entries: SchemaHistoryEntry[] = [];

  async load(): Promise<SchemaHistoryEntry[]> {
    return [...this.entries];
  }

  async append(entries: readonly SchemaHistoryEntry[]): Promise<void> {
    this.entries.push(...entries);
  }
}

/** What a topic log offers to keep entries in (connectors/topics/contract.ts RegistryJournal). */
export interface EntryJournal {
  append(entry: unknown): Promise<void>;
  loadAll(): Promise<unknown[]>;
}

/** The bytes of JSON a journal record holds at most (well under Kafka's default 1 MB record limit). */
const JOURNAL_RECORD_BYTES = 256 * 1024;

/**
 * One source's history in a journal several sources share (Kafka's `<deployment>.sluice.schema-history`):
 * each record is `{source, entries}` (a snapshot's tables in records of at most 256 KiB, not one
 * round trip each), and a source loads its own.
 */
export class JournalSchemaHistoryStore implements SchemaHistoryStore {
  private readonly journal: EntryJournal;
  private readonly source: string;

  constructor(journal: EntryJournal, source: string) {
    this.journal = journal;
    this.source = source;
  }

  async load(): Promise<SchemaHistoryEntry[]> {
    const entries: SchemaHistoryEntry[] = [];
    for (const item of await this.journal.loadAll()) {
      const record = (item ?? {}) as { source?: unknown; entries?: unknown };
      if (record.source === this.source && Array.isArray(record.entries)) entries.push(...(record.entries as SchemaHistoryEntry[]));
    }
    return entries;
  }

  async append(entries: readonly SchemaHistoryEntry[]): Promise<void> {
    let chunk: SchemaHistoryEntry[] = [];
    let bytes = 0;
    for (const entry of entries) {
      const size = JSON.stringify(entry).length;
      if (chunk.length > 0 && bytes + size > JOURNAL_RECORD_BYTES) {
        await this.journal.append({ source: this.source, entries: chunk });
        chunk = [];
        bytes = 0;
      }
      chunk.push(entry);
      bytes += size;
    }
    if (chunk.length > 0) await this.journal.append({ source: this.source, entries: chunk });
  }
}

/** JSON lines in one file, each append written and fsynced before it resolves; a torn last line (crash mid-write) is ignored and cut off. */
export class FileSchemaHistoryStore implements SchemaHistoryStore {
  readonly path: string;

  constructor(path: string) {
    this.path = path;
  }

  async load(): Promise<SchemaHistoryEntry[]> {
    let text: string;
    try {
      text = await readFile(this.path, "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw error;
    }
    const lines = text.split("\n");
    const entries: SchemaHistoryEntry[] = [];
    lines.forEach((line, index) => {
      if (line.trim() === "") return;
      try {
        entries.push(JSON.parse(line) as SchemaHistoryEntry);
      } catch (error) {
        if (index < lines.length - 1 && lines.slice(index + 1).some((l) => l.trim() !== "")) {
          throw new Error(`schema history ${this.path} line ${index + 1} is corrupt`, { cause: error });
        }
      }
    });
    return entries;
  }

  async append(entries: readonly SchemaHistoryEntry[]): Promise<void> {
    if (entries.length === 0) return;
    await mkdir(dirname(this.path), { recursive: true });
    const handle = await open(this.path, "a+");
    try {
      await this.dropTornTail(handle);
      await handle.appendFile(entries.map((entry) => `${JSON.stringify(entry)}\n`).join(""));
      await handle.sync();
    } finally {
      await handle.close();
    }
  }

  /** A crash mid-append leaves a line without its newline: cut it off before appending. */
  private async dropTornTail(handle: FileHandle): Promise<void> {
    const { size } = await handle.stat();
    if (size === 0) return;
    const last = Buffer.alloc(1);
    await handle.read(last, 0, 1, size - 1);
    if (last[0] === 0x0a) return;
    const text = await readFile(this.path);
    await handle.truncate(text.lastIndexOf(0x0a) + 1);
  }
}
