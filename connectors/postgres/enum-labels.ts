/**
 * Enum labels renamed while capture runs. ALTER TYPE ... RENAME VALUE changes what every row holding the label reads
 * as, with no change in the WAL and no Relation message: the targets would keep the old label in every row not
 * changed since, silently. Each look records the labels of the enum types the captured tables' columns use (directly,
 * as arrays, through domains) by their pg_enum oid, which a rename keeps; a label oid whose text changed since the
 * last look tells the tables to read again. A label added (ADD VALUE) is in no row yet and tells nothing. A table's
 * renames are kept until its read again is settled, so a request that fails (for this table or one before it) is made
 * again at the next look instead of the rename being forgotten.
 */
import type pg from "pg";
import type { TableRef } from "./catalog.ts";

type Queryable = Pick<pg.Client, "query">;

export interface RenamedLabels {
  readonly table: TableRef;
  /** "old -> new" of each renamed label the table's columns use. */
  readonly labels: readonly string[];
}

/**
 * Kept by the source across streams (as SeenPartitions): a look after a reconnect compares with the last one before
 * it. Across restarts the labels ride the checkpoints (catalog-marks.ts: restore, saved), so the first look after a
 * start compares with what the last process saw; with none stored (a first start) it compares with those read at start.
 */
export class EnumLabels {
  /** pg_enum oid -> label, of the enum types the known tables used at the last look; null before the first. */
  private labels: Map<number, string> | null = null;
  /**
   * By relid, the renames a table was told of and whose read again is not settled yet (its request failed: the source
   * not streaming, the table out of the publication for a moment): told again at each look until settled.
   */
  private readonly unsettled = new Map<number, { labels: Set<string>; failures: number; was: Map<number, string> }>();

  /** Takes up labels seen before (stored with a checkpoint, or read at start); null: the next look only records. */
  restore(labels: ReadonlyMap<number, string> | null): void {
    this.labels = labels === null ? null : new Map(labels);
    this.unsettled.clear();
  }

  /**
   * The labels to store with a checkpoint: those of the last look, but a label whose rename some table's read again is
   * not settled for as it was before, so a process taking over from the checkpoint is told the rename again.
   */
  saved(): ReadonlyMap<number, string> | null {
    if (this.labels === null || this.unsettled.size === 0) return this.labels;
    const saved = new Map(this.labels);
    for (const { was } of this.unsettled.values()) for (const [oid, label] of was) if (saved.has(oid)) saved.set(oid, label);
    return saved;
  }

  /**
   * The known tables using a label renamed since the last look, and those told of a rename before whose read again was
   * not settled (see settled). A table no longer known is forgotten.
   */
  async renamed(db: Queryable, known: readonly TableRef[]): Promise<RenamedLabels[]> {
    const result = await db.query<{ relid: string; label_oid: string; label: string }>(
      `WITH RECURSIVE used(relid, typid) AS (
         SELECT a.attrelid, a.atttypid FROM pg_attribute a
          WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
         UNION
         SELECT u.relid, CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.typelem END
           FROM used u JOIN pg_type t ON t.oid = u.typid
          WHERE t.typtype = 'd' OR (t.typcategory = 'A' AND t.typelem <> 0)
       )
       SELECT DISTINCT u.relid::int8::text AS relid, e.oid::int8::text AS label_oid, e.enumlabel AS label
         FROM used u JOIN pg_enum e ON e.enumtypid = u.typid`,
      [known.map((table) => table.relid)],
    );
    const before = this.labels;
    const now = new Map<number, string>();
    const renamedBy = new Map<number, Map<number, string>>();
    for (const row of result.rows) {
      const oid = Number(row.label_oid);
      now.set(oid, row.label);
      const was = before?.get(oid);
      if (was === undefined || was === row.label) continue;
      const relid = Number(row.relid);
      let labels = renamedBy.get(relid);
      if (labels === undefined) renamedBy.set(relid, (labels = new Map()));
      labels.set(oid, was);
    }
    // Labels of types no known table uses now are forgotten: a table using the type again later starts from its labels then.
    this.labels = now;
    const knownRelids = new Set(known.map((table) => table.relid));
    for (const relid of this.unsettled.keys()) if (!knownRelids.has(relid)) this.unsettled.delete(relid);
    for (const [relid, labels] of renamedBy) {
      const entry = this.unsettled.get(relid) ?? { labels: new Set<string>(), failures: 0, was: new Map<number, string>() };
      for (const [oid, was] of labels) {
        entry.labels.add(`${was} -> ${now.get(oid)!}`);
        // Renamed twice before its read was settled: the label from before the first rename is the one stored.
        if (!entry.was.has(oid)) entry.was.set(oid, was);
      }
      this.unsettled.set(relid, entry);
    }
    return known.flatMap((table) => {
      const entry = this.unsettled.get(table.relid);
      return entry === undefined ? [] : [{ table, labels: [...entry.labels] }];
    });
  }

  /** The table's read again was queued, or left to the operator: its renames are done with. */
  settled(table: TableRef): void {
    this.unsettled.delete(table.relid);
  }

  /** The table's read again could not be queued: told again at the next look. Returns how many times in a row so far. */
  failed(table: TableRef): number {
    const entry = this.unsettled.get(table.relid);
    if (entry === undefined) return 0;
    return ++entry.failures;
  }
}
