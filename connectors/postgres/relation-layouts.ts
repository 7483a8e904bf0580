/**
 * What capture last published of each captured relation (relation id → schema, table and columns by attnum, name and
 * type), stored with each checkpoint. PostgreSQL's WAL has no record of a rename: a table or column renamed while
 * Sluice was stopped reaches it only as a Relation message with the new name, so without what was published before
 * the restart the table would be captured under its new name with none of its rows read again. The layouts ride in
 * the checkpoint's resume text, so a resume from any checkpoint compares with what was published through that
 * checkpoint's position.
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

const MARK = "relations:";
/** Above this the layouts are not stored (logged once): a checkpoint is written with every batch. */
const MAX_ENCODED_CHARS = 256 * 1024;

type StoredColumn = [number, string, number, number];
type StoredRelation = [number, string, string, StoredColumn[]];

function encode(layouts: ReadonlyMap<number, RelationLayout>): string {
  const stored: StoredRelation[] = [...layouts].map(([relid, l]) => [relid, l.schema, l.table, l.columns.map((c): StoredColumn => [c.number, c.name, c.typeOid, c.typeModifier])]);
  return `${MARK}${JSON.stringify(stored)}`;
}

const isInteger = (value: unknown): value is number => Number.isSafeInteger(value);

function decodeColumn(value: unknown): LayoutColumn | null {
  if (!Array.isArray(value) || value.length !== 4) return null;
  const [number, name, typeOid, typeModifier] = value as unknown[];
  if (!isInteger(number) || typeof name !== "string" || !isInteger(typeOid) || !isInteger(typeModifier)) return null;
  return { number, name, typeOid, typeModifier };
}

/**
 * The layouts a checkpoint carries; null when it carries none (stored before layouts were, during an initial
 * snapshot, or unreadable): unknown, so nothing is told as renamed.
 */
export function relationLayoutsOf(position: Position | undefined): Map<number, RelationLayout> | null {
  const base = decodeResume(position?.resume).base;
  if (base === undefined || !base.startsWith(MARK)) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(base.slice(MARK.length));
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
  /** The resume text of `stored`; null: to encode again. */
  private encoded: string | undefined | null = null;
  private warnedSize = false;

  constructor(logger: Logger) {
    this.logger = logger;
  }

  /**
   * Before a connect: the layouts of the checkpoint it resumes from (what the stream from there is compared with);
   * null when unknown. What was published after that checkpoint is published again by the stream.
   */
  restore(from: Checkpoint | null): ReadonlyMap<number, RelationLayout> | null {
    const restored = relationLayoutsOf(from?.position);
    this.stored = new Map(restored ?? []);
    this.changes = [];
    this.seeds = [];
    this.encoded = null;
    return restored;
  }

  /** Forgets relations `keep` does not keep (dropped while Sluice was stopped). */
  prune(keep: (relid: number) => boolean): void {
    for (const relid of [...this.stored.keys()]) {
      if (!keep(relid)) {
        this.stored.delete(relid);
        this.encoded = null;
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

  /** The resume text of a checkpoint at `position` (PostgreSQL's own: none while streaming, the exported snapshot's progress while one runs). */
  rebase(base: string | undefined, position: Position): string | undefined {
    if (base !== undefined && !base.startsWith(MARK)) return base;
    this.fold(position);
    if (this.encoded === null) this.encoded = this.encodeStored();
    return this.encoded;
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
          this.encoded = null;
        }
      } else if (had === undefined || !sameLayout(had, change.layout)) {
        this.stored.set(change.relid, change.layout);
        this.encoded = null;
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
          this.encoded = null;
        }
      }
    }
  }

  private encodeStored(): string | undefined {
    if (this.stored.size === 0) return undefined;
    const text = encode(this.stored);
    if (text.length <= MAX_ENCODED_CHARS) return text;
    if (!this.warnedSize) {
      this.warnedSize = true;
      this.logger.warn(
        { relations: this.stored.size, chars: text.length },
        "the captured tables' layouts are too large to store with each checkpoint: a table or column renamed while Sluice is stopped is not read again at the next start (sluice snapshot --table T --execute reads it)",
      );
    }
    return undefined;
  }
}

function sameLayout(a: RelationLayout, b: RelationLayout): boolean {
  if (a.schema !== b.schema || a.table !== b.table || a.columns.length !== b.columns.length) return false;
  return a.columns.every((c, i) => {
    const d = b.columns[i]!;
    return c.number === d.number && c.name === d.name && c.typeOid === d.typeOid && c.typeModifier === d.typeModifier;
  });
}
