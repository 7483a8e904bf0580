/**
 * What capture last published of each captured relation (relation id -> schema, table and columns by attnum, name and
 * type), kept with the checkpoints. PostgreSQL's WAL has no record of a rename: a table or column renamed while
 * Sluice was stopped reaches it only as a Relation message with the new name, so without what was published before
 * the restart the table would be captured under its new name with none of its rows read again.
 *
 * The record is kept beside the checkpoints as entries of their own (Checkpoint.entries: the embedded log's
 * checkpoints table, Kafka's checkpoint topic), so it has no limit in tables and a checkpoint does not repeat it:
 * the checkpoint's resume text only names a manifest (`relations:@<hash>`), which lists the record's chunks (JSON
 * arrays of relations, at most CHUNK_BYTES each). Entries are named by their content's hash, and a relation stays in
 * its chunk while it fits, so a layout change writes the chunk holding it and a new manifest, not the whole record.
 * A version's new entries are written with the checkpoints that name it, in the same atomic step (a Kafka
 * transaction, a SQLite transaction; at-least-once Kafka: before the checkpoint), until one of them is acknowledged;
 * an entry is deleted once a checkpoint naming a version without it is acknowledged and no version in flight has
 * it, so the stored checkpoint's entries are always there, also after a kill -9 between the entries and the
 * checkpoint (at-least-once). Checkpoints of an older Sluice carried the record in the resume text
 * (`relations:[...]`), or named numbered chunks (`relations:@<version>.<chunks>`, 9c06198): both still read, and the
 * next checkpoint moves the record to this form.
 *
 * A layout counts in a checkpoint once the change that published it is at or before the checkpoint's position and
 * whatever it set off (a rename's emptying and its online snapshot's request, which counts in every checkpoint from
 * then on) is done: a crash before that resumes with the layout before, and tells the rename again (a read again at
 * worst, never a rename missed).
 *
 * The record also carries the source's catalog marks (catalog-marks.ts), an entry of their own named by the manifest;
 * they count in the next checkpoint once set (setMarks).
 */
import { createHash } from "node:crypto";
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

/** Resume text of a checkpoint with the record: `relations:@<manifest hash>`; older forms `relations:[...]` (inline), `relations:@<version>.<chunks>`. */
const MARK = "relations:";
const MANIFEST_REFERENCE = /^relations:@([0-9a-f]{32})$/;
const NUMBERED_REFERENCE = /^relations:@([1-9][0-9]{0,14})\.([1-9][0-9]{0,8})$/;
const ENTRY_PREFIX = "relation-layouts/";
/**
 * A chunk's JSON in UTF-8 bytes, a relation more only when alone (1,600 columns of 63-byte names fit Kafka's default
 * 1 MB record). Small, so a layout change writes little, and below the checkpoint topic's max.message.bytes
 * (topics.max_record_bytes) unless that was set under it.
 */
export const CHUNK_BYTES = 64 * 1024;

type StoredColumn = [number, string, number, number];
type StoredRelation = [number, string, string, StoredColumn[]];

const hashOf = (text: string): string => createHash("sha256").update(text).digest("hex").slice(0, 32);
const manifestName = (hash: string): string => `${ENTRY_PREFIX}m/${hash}`;
const chunkName = (hash: string): string => `${ENTRY_PREFIX}c/${hash}`;
/** The catalog marks' entry (catalog-marks.ts), named by its content's hash like a chunk. */
const marksName = (hash: string): string => `${ENTRY_PREFIX}k/${hash}`;
const HASH = /^[0-9a-f]{32}$/;

/** UTF-16 units of the marks' text per entry: at most 48 KiB of UTF-8, below CHUNK_BYTES like a chunk of layouts. */
const MARKS_PIECE = 16 * 1024;

/** The marks' text in pieces of at most MARKS_PIECE units, never splitting a surrogate pair. */
export function marksPieces(text: string, piece: number = MARKS_PIECE): string[] {
  const pieces: string[] = [];
  for (let start = 0; start < text.length; ) {
    let end = Math.min(text.length, start + piece);
    const code = text.charCodeAt(end - 1);
    // A piece ending in a high surrogate ends before it (or, one unit long, takes its pair: a lone one does not survive UTF-8).
    if (end < text.length && code >= 0xd800 && code <= 0xdbff) end += end - start > 1 ? -1 : 1;
    pieces.push(text.slice(start, end));
    start = end;
  }
  return pieces;
}

/**
 * A manifest's text: the chunk hashes as a JSON array, or, with catalog marks, `{"chunks": [...], "marks": [<hashes of
 * the marks' pieces>]}` (an older Sluice reads that as no record, as after an upgrade).
 */
function manifestText(hashes: readonly string[], marks: readonly string[] | null): string {
  return marks === null ? JSON.stringify(hashes) : JSON.stringify({ chunks: hashes, marks });
}

function readManifest(text: string | undefined): { hashes: string[]; marks: string[] | null } | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text ?? "null");
  } catch {
    return null;
  }
  const isHashes = (value: unknown): value is string[] => Array.isArray(value) && value.every((h) => typeof h === "string" && HASH.test(h));
  if (isHashes(parsed)) return { hashes: parsed, marks: null };
  if (typeof parsed !== "object" || parsed === null) return null;
  const { chunks, marks } = parsed as { chunks?: unknown; marks?: unknown };
  if (!isHashes(chunks) || !isHashes(marks)) return null;
  return { hashes: chunks, marks };
}
const numberedName = (version: number, chunk: number): string => `${ENTRY_PREFIX}${version}/${chunk}`;

function encodeRelation(relid: number, l: RelationLayout): string {
  return JSON.stringify([relid, l.schema, l.table, l.columns.map((c): StoredColumn => [c.number, c.name, c.typeOid, c.typeModifier])] satisfies StoredRelation);
}

const isInteger = (value: unknown): value is number => Number.isSafeInteger(value);

function decodeColumn(value: unknown): LayoutColumn | null {
  if (!Array.isArray(value) || value.length !== 4) return null;
  const [number, name, typeOid, typeModifier] = value as unknown[];
  if (!isInteger(number) || typeof name !== "string" || !isInteger(typeOid) || !isInteger(typeModifier)) return null;
  return { number, name, typeOid, typeModifier };
}

/** The relations of one JSON array (a chunk, or an older Sluice's inline record); null when unreadable. */
function decodeRelations(text: string | null | undefined): Map<number, RelationLayout> | null {
  if (typeof text !== "string") return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return null;
  }
  if (!Array.isArray(parsed)) return null;
  const layouts = new Map<number, RelationLayout>();
  for (const entry of parsed as unknown[]) {
    if (!Array.isArray(entry) || entry.length !== 4) return null;
    const [relid, schema, table, columns] = entry as unknown[];
    if (!isInteger(relid) || typeof schema !== "string" || typeof table !== "string" || !Array.isArray(columns)) return null;
    const decoded = columns.map(decodeColumn);
    if (decoded.some((c) => c === null)) return null;
    layouts.set(relid, { schema, table, columns: decoded as LayoutColumn[] });
  }
  return layouts;
}

/** A chunk of the record as read: its entry's name and its relations. */
interface ReadChunk {
  readonly name: string;
  readonly bytes: number;
  readonly layouts: Map<number, RelationLayout>;
}

/**
 * The record a checkpoint names: its chunks (none for an inline or numbered one, whose chunks are not kept as they
 * are), the layouts, and the manifest's name; null when it names none, undefined when it names one that is missing
 * or unreadable.
 */
function readRecord(
  checkpoint: Checkpoint | null | undefined,
): { layouts: Map<number, RelationLayout>; chunks: ReadChunk[]; manifest: string | null; marks: { names: string[]; text: string } | null } | null | undefined {
  const base = decodeResume(checkpoint?.position.resume).base;
  if (base === undefined || !base.startsWith(MARK)) return null;
  const entries = checkpoint?.entries ?? {};
  const manifestMatch = MANIFEST_REFERENCE.exec(base);
  if (manifestMatch !== null) {
    const manifest = manifestName(manifestMatch[1]!);
    const listed = readManifest(entries[manifest] ?? undefined);
    if (listed === null) return undefined;
    const layouts = new Map<number, RelationLayout>();
    const chunks: ReadChunk[] = [];
    for (const hash of listed.hashes) {
      const name = chunkName(hash);
      const text = entries[name];
      const chunk = decodeRelations(text);
      if (chunk === null) return undefined;
      chunks.push({ name, bytes: Buffer.byteLength(text!), layouts: chunk });
      for (const [relid, layout] of chunk) layouts.set(relid, layout);
    }
    // Marks with an entry missing are unknown (the looks start over from the catalog); the layouts still count.
    const names = (listed.marks ?? []).map(marksName);
    const pieces = names.map((name) => entries[name]);
    const marks = listed.marks !== null && pieces.every((p) => typeof p === "string") ? { names, text: pieces.join("") } : null;
    return { layouts, chunks, manifest, marks };
  }
  const numbered = NUMBERED_REFERENCE.exec(base);
  if (numbered !== null) {
    const layouts = new Map<number, RelationLayout>();
    for (let chunk = 0; chunk < Number(numbered[2]); chunk++) {
      const decoded = decodeRelations(entries[numberedName(Number(numbered[1]), chunk)]);
      if (decoded === null) return undefined;
      for (const [relid, layout] of decoded) layouts.set(relid, layout);
    }
    return { layouts, chunks: [], manifest: null, marks: null };
  }
  const inline = decodeRelations(base.slice(MARK.length));
  return inline === null ? undefined : { layouts: inline, chunks: [], manifest: null, marks: null };
}

/**
 * The layouts a checkpoint carries (from the entries its resume text names, or an older Sluice's inline record);
 * null when it carries none (stored before layouts were, during an initial snapshot, or unreadable, e.g. its
 * entries missing): unknown, so nothing is told as renamed.
 */
export function relationLayoutsOf(checkpoint: Checkpoint | null | undefined): Map<number, RelationLayout> | null {
  return readRecord(checkpoint)?.layouts ?? null;
}

/** A version of the record: the resume text naming it and its entries. */
interface Version {
  readonly reference: string | undefined;
  /** Every entry it is made of (its manifest, chunks and catalog marks). */
  readonly names: ReadonlySet<string>;
  /** The entries it has that were not known stored when it was made: written with the checkpoints naming it until one is acknowledged. */
  written: Readonly<Record<string, string>>;
}

/** What a checkpoint's acknowledgement tells RelationLayouts.durable. */
export interface LayoutsWritten {
  /** The version the checkpoint names; null: none (a checkpoint of the initial snapshot). */
  readonly version: object | null;
  /** Entries it deleted. */
  readonly deleted: readonly string[];
}

/** A chunk as the record is being kept: the relations in it and, once encoded, its entry's name. */
interface Chunk {
  readonly relids: Set<number>;
  bytes: number;
  /** null: changed since it was last encoded. */
  name: string | null;
  text: string | null;
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
  /** The record in chunks, and which chunk holds each relation. */
  private chunks: Chunk[] = [];
  private readonly chunkOf = new Map<number, Chunk>();
  /** Each relation's JSON in its chunk. */
  private readonly encoded = new Map<number, string>();
  /** Relations changed (or gone) since the current version was made. */
  private readonly dirty = new Set<number>();
  /** The version of `stored` checkpoints name; null: `stored` changed, a new one is made at the next checkpoint. */
  private current: Version | null = null;
  /** The version the last checkpoint named (null: none, a checkpoint of the initial snapshot). */
  private named: Version | null = null;
  /** The version the last acknowledged checkpoint named (or the one restored): its entries are stored. */
  private durableVersion: Version | null = null;
  /** Versions made since, oldest first: checkpoints naming them may be in flight. */
  private inFlight: Version[] = [];
  /** Entries that may be stored: deleted once no version stored or in flight has them. */
  private readonly kept = new Set<string>();
  /** Entries the next checkpoints delete, until one of them is acknowledged. */
  private deleting = new Set<string>();
  /** The stored version changed (or was restored): the next acknowledgement looks for entries to delete. */
  private sweep = false;
  /** The catalog marks the record carries (catalog-marks.ts: what the source's catalog looks compare with), as text; null: none. */
  private marks: string | null = null;

  constructor(logger: Logger) {
    this.logger = logger;
  }

  /**
   * Before a connect: the layouts of the checkpoint it resumes from (what the stream from there is compared with);
   * null when unknown. What was published after that checkpoint is published again by the stream.
   */
  restore(from: Checkpoint | null): ReadonlyMap<number, RelationLayout> | null {
    const record = readRecord(from);
    if (record === undefined) {
      this.logger.warn(
        { resume: decodeResume(from?.position.resume).base },
        "the checkpoint's record of the tables' layouts is missing or unreadable: a table or column renamed while Sluice was stopped is not read again (sluice snapshot --table T --execute reads it)",
      );
    }
    // Whatever may be stored is deleted in time: the checkpoint's entries, and those this process wrote or was deleting (a write may still land).
    for (const name of Object.keys(from?.entries ?? {})) if (name.startsWith(ENTRY_PREFIX)) this.kept.add(name);
    for (const version of this.inFlight) for (const name of version.names) this.kept.add(name);
    for (const name of this.deleting) this.kept.add(name);
    this.inFlight = [];
    this.deleting = new Set();
    this.stored = new Map(record?.layouts ?? []);
    this.marks = record?.marks?.text ?? null;
    this.changes = [];
    this.seeds = [];
    this.named = null;
    this.current = null;
    this.durableVersion = null;
    this.chunks = [];
    this.chunkOf.clear();
    this.encoded.clear();
    this.dirty.clear();
    // Chunks as stored: a change later writes only the chunk holding the relation. The same encoding gives the same JSON.
    for (const chunk of record?.chunks ?? []) {
      const kept: Chunk = { relids: new Set(chunk.layouts.keys()), bytes: 0, name: chunk.name, text: null };
      for (const [relid, layout] of chunk.layouts) {
        const text = encodeRelation(relid, layout);
        this.encoded.set(relid, text);
        kept.bytes += Buffer.byteLength(text) + 1;
        this.chunkOf.set(relid, kept);
      }
      this.chunks.push(kept);
    }
    for (const relid of this.stored.keys()) if (!this.chunkOf.has(relid)) this.dirty.add(relid);
    if (record?.manifest != null && this.dirty.size === 0) {
      const names = [record.manifest, ...record.chunks.map((c) => c.name), ...(record.marks?.names ?? [])];
      const restored: Version = { reference: decodeResume(from?.position.resume).base, names: new Set(names), written: {} };
      this.current = restored;
      this.durableVersion = restored;
    }
    this.sweep = true;
    return record?.layouts ?? null;
  }

  /** The catalog marks of the checkpoint restore() read (null: none), until setMarks. */
  restoredMarks(): string | null {
    return this.marks;
  }

  /**
   * The catalog marks the next checkpoints carry (catalog-marks.ts), counting at once: the source sets them only once
   * what the catalog change it saw set off is queued (the online snapshots ride in the same checkpoints), and keeps the
   * marks of before for a change whose read could not be queued yet. Nothing is written while they stay the same.
   */
  setMarks(text: string | null): void {
    if (text === this.marks) return;
    this.marks = text;
    this.current = null;
  }

  /** Forgets relations `keep` does not keep (dropped while Sluice was stopped). */
  prune(keep: (relid: number) => boolean): void {
    for (const relid of [...this.stored.keys()]) if (!keep(relid)) this.set(relid, null);
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
    this.named = this.current;
    return this.current.reference;
  }

  /**
   * What the checkpoint just rebased writes beside it (Checkpoint.entries): the entries of the version it names not
   * known stored, until a checkpoint carrying them is acknowledged, and the deletion of entries no version stored or
   * in flight has; `written` goes to durable() once the checkpoint is acknowledged. Usually nothing.
   */
  entries(): { readonly entries: Readonly<Record<string, string | null>> | undefined; readonly written: LayoutsWritten } {
    const named = this.named;
    const deleted = [...this.deleting];
    const written: LayoutsWritten = { version: named, deleted };
    // A version's `written` is emptied once a checkpoint naming it is acknowledged.
    const writing = named !== null && Object.keys(named.written).length > 0;
    if (!writing && deleted.length === 0) return { entries: undefined, written };
    const entries: Record<string, string | null> = {};
    for (const name of deleted) entries[name] = null;
    if (writing) Object.assign(entries, named.written);
    return { entries, written };
  }

  /** A checkpoint was acknowledged (durable): entries no version stored or in flight has are deleted by the next ones. */
  durable(written: LayoutsWritten): void {
    for (const name of written.deleted) this.deleting.delete(name);
    const version = written.version;
    if (version === null) return;
    const at = this.inFlight.findIndex((v) => v === version);
    if (at >= 0) {
      const now = this.inFlight[at]!;
      now.written = {};
      this.durableVersion = now;
      this.inFlight = this.inFlight.slice(at + 1);
      this.sweep = true;
    } else if (version !== this.durableVersion) {
      return;
    }
    const stored = this.durableVersion;
    if (!this.sweep || stored === null) return;
    this.sweep = false;
    const live = new Set(stored.names);
    for (const version of this.inFlight) for (const name of version.names) live.add(name);
    for (const name of this.kept) {
      if (live.has(name)) continue;
      this.kept.delete(name);
      this.deleting.add(name);
    }
  }

  /** Sets a relation's layout in the record (null: removes it). */
  private set(relid: number, layout: RelationLayout | null): void {
    const had = this.stored.get(relid);
    if (layout === null) {
      if (had === undefined) return;
      this.stored.delete(relid);
    } else {
      if (had !== undefined && sameLayout(had, layout)) return;
      this.stored.set(relid, layout);
    }
    this.dirty.add(relid);
    this.current = null;
  }

  /** A version of `stored`: the chunks holding a changed relation encoded again, the others as they are. */
  private newVersion(): Version {
    if (this.stored.size === 0) {
      this.chunks = [];
      this.chunkOf.clear();
      this.encoded.clear();
      this.dirty.clear();
      const empty: Version = { reference: undefined, names: new Set(), written: {} };
      this.inFlight.push(empty);
      return empty;
    }
    const previous = new Map<number, Chunk>();
    for (const relid of this.dirty) {
      const chunk = this.chunkOf.get(relid);
      if (chunk === undefined) continue;
      chunk.relids.delete(relid);
      chunk.bytes -= Buffer.byteLength(this.encoded.get(relid)!) + 1;
      chunk.name = null;
      this.chunkOf.delete(relid);
      this.encoded.delete(relid);
      previous.set(relid, chunk);
    }
    const total = this.chunks.reduce((sum, c) => sum + c.bytes, 0);
    // Chunks emptied by changes: start over once there are twice as many as the record needs.
    if (this.chunks.length > 2 * Math.ceil(total / CHUNK_BYTES) + 1) {
      for (const chunk of this.chunks) for (const relid of chunk.relids) this.dirty.add(relid);
      this.chunks = [];
      this.chunkOf.clear();
      previous.clear();
    }
    for (const relid of this.dirty) {
      const layout = this.stored.get(relid);
      if (layout === undefined) continue;
      const text = encodeRelation(relid, layout);
      this.encoded.set(relid, text);
      const size = Buffer.byteLength(text) + 1;
      // Back where it was when it still fits (one chunk written for a change), else the last chunk, else a new one.
      const fits = (chunk: Chunk | undefined): chunk is Chunk => chunk !== undefined && (chunk.relids.size === 0 || 1 + chunk.bytes + size <= CHUNK_BYTES);
      const before = previous.get(relid);
      let chunk = fits(before) && this.chunks.includes(before) ? before : this.chunks.at(-1);
      if (!fits(chunk)) {
        chunk = { relids: new Set(), bytes: 0, name: null, text: null };
        this.chunks.push(chunk);
      }
      chunk.relids.add(relid);
      chunk.bytes += size;
      chunk.name = null;
      this.chunkOf.set(relid, chunk);
    }
    this.dirty.clear();
    this.chunks = this.chunks.filter((c) => c.relids.size > 0);
    const written: Record<string, string> = {};
    const known = this.durableVersion?.names ?? new Set<string>();
    const hashes: string[] = [];
    for (const chunk of this.chunks) {
      if (chunk.name === null) {
        chunk.text = this.chunkText(chunk);
        chunk.name = chunkName(hashOf(chunk.text));
      }
      hashes.push(chunk.name.slice(chunk.name.lastIndexOf("/") + 1));
      if (!known.has(chunk.name)) written[chunk.name] = chunk.text ?? this.chunkText(chunk);
    }
    const names = this.chunks.map((c) => c.name!);
    let marksHashes: string[] | null = null;
    if (this.marks !== null) {
      marksHashes = [];
      for (const piece of marksPieces(this.marks)) {
        const hash = hashOf(piece);
        const name = marksName(hash);
        marksHashes.push(hash);
        names.push(name);
        if (!known.has(name)) written[name] = piece;
      }
    }
    const manifestContent = manifestText(hashes, marksHashes);
    const manifestHash = hashOf(manifestContent);
    const manifest = manifestName(manifestHash);
    if (!known.has(manifest)) written[manifest] = manifestContent;
    const version: Version = { reference: `${MARK}@${manifestHash}`, names: new Set([manifest, ...names]), written };
    for (const name of version.names) {
      this.kept.add(name);
      this.deleting.delete(name);
    }
    // A chunk's text is kept only until its version's entries are written: the relations' JSON is kept anyway.
    for (const chunk of this.chunks) chunk.text = null;
    this.inFlight.push(version);
    return version;
  }

  /** A chunk's JSON: an array of its relations' JSON (each relation in a chunk has it in `encoded`). */
  private chunkText(chunk: Chunk): string {
    return `[${[...chunk.relids].map((relid) => this.encoded.get(relid)!).join(",")}]`;
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
      this.set(change.relid, change.layout);
    }
    if (taken > 0) this.changes = this.changes.slice(taken);
    if (through !== null) this.foldSeeds(through.at, through.strict);
  }

  /** Takes the seeds at or below `at` (below it when `strict`). */
  private foldSeeds(at: Position, strict: boolean): void {
    while (this.seeds.length > 0) {
      const order = comparePositions(this.seeds[0]!.at, at);
      if (order > 0 || (strict && order === 0)) return;
      for (const [relid, layout] of this.seeds.shift()!.layouts) this.set(relid, layout);
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
