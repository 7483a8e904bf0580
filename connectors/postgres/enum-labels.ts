/**
 * Enum labels renamed while capture runs. ALTER TYPE ... RENAME VALUE changes what every row holding the label reads
 * as, with no change in the WAL and no Relation message: the targets would keep the old label in every row not
 * changed since, silently. Each look records the labels of the enum types the captured tables' columns use (directly,
 * as arrays, through domains) by their pg_enum oid, which a rename keeps; a label oid whose text changed since the
 * last look tells the tables to read again. A label added (ADD VALUE) is in no row yet and tells nothing.
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
 * it. The first look only records; a rename made while Sluice was stopped, or before that look, is not seen.
 */
export class EnumLabels {
  /** pg_enum oid -> label, of the enum types the known tables used at the last look; null before the first. */
  private labels: Map<number, string> | null = null;

  /** The known tables using a label renamed since the last look. */
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
    const renamedBy = new Map<number, Set<string>>();
    for (const row of result.rows) {
      const oid = Number(row.label_oid);
      now.set(oid, row.label);
      const was = before?.get(oid);
      if (was === undefined || was === row.label) continue;
      const relid = Number(row.relid);
      let labels = renamedBy.get(relid);
      if (labels === undefined) renamedBy.set(relid, (labels = new Set()));
      labels.add(`${was} -> ${row.label}`);
    }
    // Labels of types no known table uses now are forgotten: a table using the type again later starts from its labels then.
    this.labels = now;
    return known.flatMap((table) => {
      const labels = renamedBy.get(table.relid);
      return labels === undefined ? [] : [{ table, labels: [...labels] }];
    });
  }
}
