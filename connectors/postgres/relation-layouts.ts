/**
 * What capture last published of each captured relation (relation id → schema, table and columns by attnum, name and
 * type), kept with the checkpoints. PostgreSQL's WAL has no record of a rename: a table or column renamed while
 * Sluice was stopped reaches it only as a Relation message with the new name, so without what was published before
 * the restart the table would be captured under its new name with none of its rows read again.
 *
 * The record is kept beside the checkpoints as entries of their own (Checkpoint.entries: the embedded log's
 * checkpoints table, Kafka's checkpoint topic), a version each time it changes, split into chunks of at most
 * CHUNK_BYTES, so it has no limit in tables and a checkpoint does not repeat it: the checkpoint's resume text only
 * names the version (`relations:@<version>.<chunks>`). A new version's entries are written with the checkpoints
 * that name it, in the same atomic step (a Kafka transaction, a SQLite transaction; at-least-once Kafka: before the
 * checkpoint), until one of them is acknowledged; a version is deleted once a checkpoint naming a later one is
 * acknowledged, so the stored checkpoint's version is always there, also after a kill -9 between the entries and
 * the checkpoint (at-least-once). Checkpoints of an older Sluice carried the record in the resume text
 * (`relations:[…]`): still read, and the next checkpoint moves it to entries.
 *
 * A layout counts in a checkpoint once the change that published it is at or before the checkpoint's position and
 * whatever it set off (a rename's emptying and its online snapshot's request, which counts in every checkpoint from
 * then on) is done: a crash before that resumes with the layout before, and tells the rename again (a read again at
 * worst, never a rename missed).
 */
import type { Logger } from "pino";
import { comparePositions } from "../contracts.ts";
import type { Checkpoint, Position } from "../contracts.ts";
import { decodeResume } from "../common/incremental-snapshot-state.ts";

export interface LayoutColumn {
  /** The column's attnum: a column renamed keeps it, one dropped and added again gets a new one. */
  readonly number: number;
  readonly name: string;
  readonly typeOid: number;
  readonly typeModifier: number;
}

export interface RelationLayout {
  readonly schema: string;
  readonly table: string;
  readonly columns: readonly LayoutColumn[];
}

/** Resume text of a checkpoint with the record: older Sluice `relations:[…]` (inline), this one `relations:@<version>.<chunks>`. */
const MARK = "relations:";
const REFERENCE = /^relations:@([1-9][0-9]{0,14})\.([1-9][0-9]{0,8})$/;
const ENTRY_PREFIX = "relation-layouts/";
const ENTRY_NAME = /^relation-layouts\/([1-9][0-9]{0,14})\/(0|[1-9][0-9]{0,8})$/;
/** A chunk's JSON in UTF-8 bytes, a relation more only when alone (1,600 columns of 63-byte names fit Kafka's default 1 MB record). */
export const CHUNK_BYTES = 256 * 1024;

type StoredColumn = [number, string, number, number];
type StoredRelation = [number, string, string, StoredColumn[]];

const entryName = (version: number, chunk: number): string => `${ENTRY_PREFIX}${version}/${chunk}`;

/** The record as chunks of JSON arrays of relations, each within CHUNK_BYTES unless one relation alone is larger. */
export function encodeChunks(layouts: ReadonlyMap<number, RelationLayout>): string[] {
  const chunks: string[] = [];
  let parts: string[] = [];
  let bytes = 2;
  for (const [relid, l] of layouts) {
    const text = JSON.stringify([relid, l.schema, l.table, l.columns.map((c): StoredColumn => [c.number, c.name, c.typeOid, c.typeModifier])] satisfies StoredRelation);
    const size = Buffer.byteLength(text) + 1;
    if (parts.length > 0 && bytes + size > CHUNK_BYTES) {
      chunks.push(`[${parts.join(",")}]`);
      parts = [];
      bytes = 2;
    }
    parts.push(text);
    bytes += size;
  }
  if (parts.length > 0) chunks.push(`[${parts.join(",")}]`);
  return chunks;
}

const isInteger = (value: unknown): value is number => Number.isSafeInteger(value);

function decodeColumn(value: unknown): LayoutColumn | null {
  if (!Array.isArray(value) || value.length !== 4) return null;
  const [number, name, typeOid, typeModifier] = value as unknown[];
  if (!isInteger(number) || typeof name !== "string" || !isInteger(typeOid) || !isInteger(typeModifier)) return null;
  return { number, name, typeOid, typeModifier };
}

/** Adds the relations of one JSON array (a chunk, or an older Sluice's inline record); false when unreadable. */
function decodeInto(layouts: Map<number, RelationLayout>, text: string): boolean {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return false;
  }
  if (!Array.isArray(parsed)) return false;
  for (const entry of parsed as unknown[]) {
    if (!Array.isArray(entry) || entry.length !== 4) return false;
    const [relid, schema, table, columns] = entry as unknown[];
    if (!isInteger(relid) || typeof schema !== "string" || typeof table !== "string" || !Array.isArray(columns)) return false;
    const decoded = columns.map(decodeColumn);
    if (decoded.some((c) => c === null)) return false;
    layouts.set(relid, { schema, table, columns: decoded as LayoutColumn[] });
  }
  return true;
}

/** The version and chunk count a checkpoint's resume text names; null when it names none. */
function referenceOf(base: string | undefined): { readonly version: number; readonly chunks: number } | null {
  const match = base === undefined ? null : REFERENCE.exec(base);
  return match === null ? null : { version: Number(match[1]), chunks: Number(match[2]) };
}

/**
 * The layouts a checkpoint carries (from the entries its resume text names, or an older Sluice's inline record);
 * null when it carries none (stored before layouts were, during an initial snapshot, or unreadable, e.g. its
 * entries missing): unknown, so nothing is told as renamed.
 */
export function relationLayoutsOf(checkpoint: Checkpoint | null | undefined): Map<number, RelationLayout> | null {
  const base = decodeResume(checkpoint?.position.resume).base;
  if (base === undefined || !base.startsWith(MARK)) return null;
  const layouts = new Map<number, RelationLayout>();
  const reference = referenceOf(base);
  if (reference === null) return decodeInto(layouts, base.slice(MARK.length)) ? layouts : null;
  for (let chunk = 0; chunk < reference.chunks; chunk++) {
    const text = checkpoint?.entries?.[entryName(reference.version, chunk)];
    if (typeof text !== "string" || !decodeInto(layouts, text)) return null;
  }
  return layouts;
}

/** What a checkpoint's acknowledgement tells RelationLayouts.durable. */
export interface LayoutsWritten {
  /** The version the checkpoint names (0: the record empty); null: none (a checkpoint of the initial snapshot). */
  readonly version: number | null;
  /** Entries it deleted. */
  readonly deleted: readonly string[];
}

/** A version of the record: the resume text naming it and its entries. */
interface Version {
  readonly version: number;
  readonly reference: string | undefined;
  readonly entries: Readonly<Record<string, string>>;
  /** A checkpoint carrying its entries was acknowledged (or it was restored): later checkpoints only name it. */
  durable: boolean;
}

interface Change {
  /** The Relation message's position; null: counts at once (a table read from the catalog). */
  readonly at: Position | null;
  readonly relid: number;
  /** null: the relation is no longer captured. */
  readonly layout: RelationLayout | null;
  ready: boolean;
}

export class RelationLayouts {
  private readonly logger: Logger;
  private stored = new Map<number, RelationLayout>();
  /** Published layouts not yet in a checkpoint, in the order they were published. */
  private changes: Change[] = [];
  /** Layouts read from the catalog at `at` for relations the record lacked (seed): they count from `at` on. */
  private seeds: { readonly at: Position; readonly layouts: ReadonlyMap<number, RelationLayout> }[] = [];
  /** The version of `stored` checkpoints name; null: `stored` changed, a new version is made at the next checkpoint. */
  private current: Version | null = null;
  /** The version the last checkpoint named (null: none, a checkpoint of the initial snapshot). */
  private named: number | null = null;
  /** Versions made since the last restore whose entries no acknowledged checkpoint carried yet, oldest first. */
  private written: Version[] = [];
  /** Entries that may be stored and that no checkpoint to come names, by version: deleted once one naming another is acknowledged. */
  private readonly kept = new Map<number, string[]>();
  /** Entries the next checkpoints delete, until one of them is acknowledged. */
  private deleting = new Set<string>();
  /** Above every version seen: a version is never written twice with other layouts. */
  private nextVersion = 1;

  constructor(logger: Logger) {
    this.logger = logger;
  }

  /**
   * Before a connect: the layouts of the checkpoint it resumes from (what the stream from there is compared with);
   * null when unknown. What was published after that checkpoint is published again by the stream.
   */
  restore(from: Checkpoint | null): ReadonlyMap<number, RelationLayout> | null {
    const restored = relationLayoutsOf(from);
    const base = decodeResume(from?.position.resume).base;
    const reference = referenceOf(base);
    if (restored === null && reference !== null) {
      this.logger.warn(
        { version: reference.version, chunks: reference.chunks },
        "the checkpoint names a record of the tables' layouts that is missing or unreadable beside it: a table or column renamed while Sluice was stopped is not read again (sluice snapshot --table T --execute reads it)",
      );
    }
    // Whatever may be stored is deleted once a checkpoint naming another version is acknowledged: versions of the checkpoint's entries, and those this process wrote or was deleting (a write may still land).
    for (const name of Object.keys(from?.entries ?? {})) this.keep(name);
    for (const version of this.written) for (const name of Object.keys(version.entries)) this.keep(name);
    for (const name of this.deleting) this.keep(name);
    this.written = [];
    this.deleting = new Set();
    this.stored = new Map(restored ?? []);
    this.changes = [];
    this.seeds = [];
    this.named = null;
    this.current = null;
    if (restored !== null && reference !== null) {
      this.current = { version: reference.version, reference: base, entries: {}, durable: true };
      this.nextVersion = Math.max(this.nextVersion, reference.version + 1);
    }
    return restored;
  }

  /** Forgets relations `keep` does not keep (dropped while Sluice was stopped). */
  prune(keep: (relid: number) => boolean): void {
    for (const relid of [...this.stored.keys()]) {
      if (!keep(relid)) {
        this.stored.delete(relid);
        this.current = null;
      }
    }
  }

  /** The relations `relids` lists that the record has no layout of. */
  missing(relids: readonly number[]): number[] {
    return relids.filter((relid) => !this.stored.has(relid));
  }

  /**
   * Layouts of relations the record lacks (a checkpoint stored before the record was kept, or a quiet table never
   * published since), read from the catalog when the server's WAL was at `at`: they count in checkpoints from `at` on,
   * between the stream's changes by position, so a table with no change is in the record too and a rename of it while
   * Sluice is stopped is seen. Below `at` they do not count: a checkpoint there may precede a rename the catalog
   * already shows, and its stream would tell the old name as a rename.
   */
  seed(layouts: ReadonlyMap<number, RelationLayout>, at: Position): void {
    if (layouts.size > 0) this.seeds.push({ at, layouts });
  }

  /** Capture published `layout` of a relation at `at`; it counts once `settled` (what it set off) is done. */
  note(relid: number, layout: RelationLayout | null, at: Position | null, settled?: Promise<unknown>): void {
    const change: Change = { at, relid, layout, ready: settled === undefined };
    this.changes.push(change);
    if (settled !== undefined) {
      const ready = () => {
        change.ready = true;
      };
      settled.then(ready, ready);
    }
  }

  /**
   * The resume text of a checkpoint at `position` (PostgreSQL's own: none while streaming, the exported snapshot's
   * progress while one runs): the version of the record it names. Its entries: `entries()`, right after.
   */
  rebase(base: string | undefined, position: Position): string | undefined {
    if (base !== undefined && !base.startsWith(MARK)) {
      this.named = null;
      return base;
    }
    this.fold(position);
    this.current ??= this.newVersion();
    this.named = this.current.version;
    return this.current.reference;
  }

  /**
   * What the checkpoint just rebased writes beside it (Checkpoint.entries): the entries of the version it names
   * until a checkpoint carrying them is acknowledged, and the deletion of versions no checkpoint to come names;
   * `written` goes to durable() once the checkpoint is acknowledged. Usually nothing.
   */
  entries(): { readonly entries: Readonly<Record<string, string | null>> | undefined; readonly written: LayoutsWritten } {
    const current = this.named === null ? null : this.current;
    const deleted = [...this.deleting];
    const written: LayoutsWritten = { version: this.named, deleted };
    if ((current === null || current.durable) && deleted.length === 0) return { entries: undefined, written };
    const entries: Record<string, string | null> = {};
    for (const name of deleted) entries[name] = null;
    if (current !== null && !current.durable) Object.assign(entries, current.entries);
    return { entries, written };
  }

  /** A checkpoint was acknowledged (durable): what its version makes needless is deleted by the next ones. */
  durable(written: LayoutsWritten): void {
    for (const name of written.deleted) this.deleting.delete(name);
    const { version } = written;
    if (version === null) return;
    while (this.written.length > 0 && this.written[0]!.version <= version) {
      const done = this.written.shift()!;
      done.durable = true;
      this.kept.set(done.version, Object.keys(done.entries));
    }
    if (this.current?.version === version) this.current.durable = true;
    for (const [old, names] of this.kept) {
      if (old === version) continue;
      for (const name of names) this.deleting.add(name);
      this.kept.delete(old);
    }
  }

  /** Counts an entry that may be stored (restored, or written by a run before) among those to delete in time. */
  private keep(name: string): void {
    const match = ENTRY_NAME.exec(name);
    if (match === null) return;
    const version = Number(match[1]);
    this.nextVersion = Math.max(this.nextVersion, version + 1);
    const names = this.kept.get(version) ?? [];
    if (!names.includes(name)) names.push(name);
    this.kept.set(version, names);
  }

  private newVersion(): Version {
    if (this.stored.size === 0) return { version: 0, reference: undefined, entries: {}, durable: true };
    const version = this.nextVersion++;
    const chunks = encodeChunks(this.stored);
    const made: Version = { version, reference: `${MARK}@${version}.${chunks.length}`, entries: Object.fromEntries(chunks.map((chunk, i) => [entryName(version, i), chunk])), durable: false };
    this.written.push(made);
    return made;
  }

  private fold(position: Position): void {
    let taken = 0;
    // Seeds count up to here: the checkpoint's position, or before the first change that does not count yet.
    let through: { readonly at: Position; readonly strict: boolean } | null = { at: position, strict: false };
    for (const change of this.changes) {
      if (change.at !== null && comparePositions(change.at, position) > 0) break;
      if (!change.ready) {
        through = change.at === null ? null : { at: change.at, strict: true };
        break;
      }
      if (change.at !== null) this.foldSeeds(change.at, false);
      taken++;
      const had = this.stored.get(change.relid);
      if (change.layout === null) {
        if (had !== undefined) {
          this.stored.delete(change.relid);
          this.current = null;
        }
      } else if (had === undefined || !sameLayout(had, change.layout)) {
        this.stored.set(change.relid, change.layout);
        this.current = null;
      }
    }
    if (taken > 0) this.changes = this.changes.slice(taken);
    if (through !== null) this.foldSeeds(through.at, through.strict);
  }

  /** Takes the seeds at or below `at` (below it when `strict`). */
  private foldSeeds(at: Position, strict: boolean): void {
    while (this.seeds.length > 0) {
      const order = comparePositions(this.seeds[0]!.at, at);
      if (order > 0 || (strict && order === 0)) return;
      for (const [relid, layout] of this.seeds.shift()!.layouts) {
        const had = this.stored.get(relid);
        if (had === undefined || !sameLayout(had, layout)) {
          this.stored.set(relid, layout);
          this.current = null;
        }
      }
    }
  }
}

function sameLayout(a: RelationLayout, b: RelationLayout): boolean {
  if (a.schema !== b.schema || a.table !== b.table || a.columns.length !== b.columns.length) return false;
  return a.columns.every((c, i) => {
    const d = b.columns[i]!;
    return c.number === d.number && c.name === d.name && c.typeOid === d.typeOid && c.typeModifier === d.typeModifier;
  });
}
