/**
 * What the source's catalog looks compare with, kept with the checkpoints (in the layouts' record, relation-layouts.ts)
 * so a restart, or a standby taking capture over, compares with what the last process saw instead of starting over:
 * changes that leave no trace in the stream and were made while Sluice was stopped, or before its first look after a
 * start, are then seen like those made while it runs.
 *
 * - `publication`: the publication's oid and, by relation id, its pg_publication_rel row (a table taken out and put
 *   back has a new one; its changes in between never streamed);
 * - `partitions`: each captured partitioned table's leaf partitions and their relfilenodes (an attached partition's
 *   rows, a truncated partition's, are in no change);
 * - `attachments`: for the same leaves, the sum of the xmins of their pg_inherits rows (a partition detached and
 *   attached again, changed meanwhile, keeps its relid and relfilenode; not stored before, unknown then);
 * - `labels`: the enum labels the captured tables use, by pg_enum oid (a renamed label changes rows with no change).
 *
 * Each is null when unknown (the first look records it). The source stores what its reactions are settled for: a
 * change whose read again could not be queued yet keeps what was seen before it, so the next process sees it too.
 */

export interface PublicationMarks {
  readonly publication: number;
  /** Relation id -> its pg_publication_rel oid. */
  readonly members: ReadonlyMap<number, number>;
}

export interface CatalogMarks {
  readonly publication: PublicationMarks | null;
  /** Partitioned table's relid -> its leaf partitions' relid -> relfilenode. */
  readonly partitions: ReadonlyMap<number, ReadonlyMap<number, number>> | null;
  /** Partitioned table's relid -> its leaf partitions' relid -> the sum of their pg_inherits rows' xmins (LeafPartition.attachment). */
  readonly attachments: ReadonlyMap<number, ReadonlyMap<number, number>> | null;
  /** pg_enum oid -> label. */
  readonly labels: ReadonlyMap<number, string> | null;
}

export const NO_MARKS: CatalogMarks = { publication: null, partitions: null, attachments: null, labels: null };

/** Stored form: relids and oids as numbers, pairs flattened (`[relid, member, relid, member, ...]`). */
interface Stored {
  readonly publication: [number, number[]] | null;
  readonly partitions: [number, number[]][] | null;
  /** Left out when unknown: marks without them read as before by an older Sluice, which ignores it anyway. */
  readonly attachments?: [number, number[]][];
  readonly labels: [number, string][] | null;
}

/** By key: the same marks make the same text whatever order the catalog listed them in (a new entry is written only for a change). */
const sorted = <V>(map: ReadonlyMap<number, V>): [number, V][] => [...map].sort((a, b) => a[0] - b[0]);
const flat = (map: ReadonlyMap<number, number>): number[] => sorted(map).flat();

/** Null when every part is unknown (nothing to store). */
export function encodeCatalogMarks(marks: CatalogMarks): string | null {
  if (marks.publication === null && marks.partitions === null && marks.attachments === null && marks.labels === null) return null;
  const stored: Stored = {
    publication: marks.publication === null ? null : [marks.publication.publication, flat(marks.publication.members)],
    partitions: marks.partitions === null ? null : sorted(marks.partitions).map(([root, leaves]) => [root, flat(leaves)]),
    ...(marks.attachments === null ? {} : { attachments: sorted(marks.attachments).map(([root, leaves]) => [root, flat(leaves)]) }),
    labels: marks.labels === null ? null : sorted(marks.labels),
  };
  return JSON.stringify(stored);
}

const isId = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) >= 0;

function pairs(value: unknown): Map<number, number> | null {
  if (!Array.isArray(value) || value.length % 2 !== 0 || !value.every(isId)) return null;
  const map = new Map<number, number>();
  for (let i = 0; i < value.length; i += 2) map.set(value[i] as number, value[i + 1] as number);
  return map;
}

/** Marks as stored; a part that does not read is unknown (null), as is everything when the text does not. */
export function decodeCatalogMarks(text: string | null): CatalogMarks {
  if (text === null) return NO_MARKS;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return NO_MARKS;
  }
  if (typeof parsed !== "object" || parsed === null) return NO_MARKS;
  const stored = parsed as Record<string, unknown>;
  return {
    publication: decodePublication(stored["publication"]),
    partitions: decodePartitions(stored["partitions"]),
    attachments: decodePartitions(stored["attachments"]),
    labels: decodeLabels(stored["labels"]),
  };
}

function decodePublication(value: unknown): PublicationMarks | null {
  if (!Array.isArray(value) || value.length !== 2 || !isId(value[0])) return null;
  const members = pairs(value[1]);
  return members === null ? null : { publication: value[0], members };
}

function decodePartitions(value: unknown): Map<number, Map<number, number>> | null {
  if (!Array.isArray(value)) return null;
  const partitions = new Map<number, Map<number, number>>();
  for (const entry of value as unknown[]) {
    if (!Array.isArray(entry) || entry.length !== 2 || !isId(entry[0])) return null;
    const leaves = pairs(entry[1]);
    if (leaves === null) return null;
    partitions.set(entry[0], leaves);
  }
  return partitions;
}

function decodeLabels(value: unknown): Map<number, string> | null {
  if (!Array.isArray(value)) return null;
  const labels = new Map<number, string>();
  for (const entry of value as unknown[]) {
    if (!Array.isArray(entry) || entry.length !== 2 || !isId(entry[0]) || typeof entry[1] !== "string") return null;
    labels.set(entry[0], entry[1]);
  }
  return labels;
}

/**
 * The mark of a captured table out of the publication at the last look (pg_publication_rel oids are never 0). Kept in
 * the marks, so a table found back in the publication later (put back by hand or by a tool while Sluice's own put-back
 * waited on a lock, or while Sluice was stopped) is read again like one taken out and put back between two looks.
 */
export const OUT_OF_PUBLICATION = 0;

export interface Readded {
  readonly relid: number;
  /** Its pg_publication_rel row now. */
  readonly member: number;
  /** Its row at the last look, or OUT_OF_PUBLICATION. */
  readonly was: number;
}

export interface MembershipLook {
  /** What the next look compares with: the rows now, and the captured tables out since the last look marked out. */
  readonly seen: PublicationMarks | null;
  /** Captured tables in the publication with another row than at the last look (out in between, or out then). */
  readonly readded: readonly Readded[];
}

/**
 * Compares the publication's rows now with those of the last look, for the captured tables (`captured`, relids). A
 * captured table the last look saw (in or out) and now missing is marked out; one marked out and now back, or back
 * with a new row, is re-added. Compared only across looks of the same publication (one created again is not).
 */
export function compareMemberships(before: PublicationMarks | null, now: PublicationMarks | null, captured: Iterable<number>): MembershipLook {
  if (now === null || before === null || before.publication !== now.publication) return { seen: now, readded: [] };
  const members = new Map(now.members);
  const readded: Readded[] = [];
  for (const relid of captured) {
    const was = before.members.get(relid);
    const is = now.members.get(relid);
    if (was === undefined) continue;
    if (is === undefined) members.set(relid, OUT_OF_PUBLICATION);
    else if (is !== was) readded.push({ relid, member: is, was });
  }
  return { seen: { publication: now.publication, members }, readded };
}

/** `marks` with the tables `relids` marked out of the publication (those a start could not put back, a lock kept out). */
export function markedOut(marks: PublicationMarks, relids: Iterable<number>): PublicationMarks {
  const members = new Map(marks.members);
  for (const relid of relids) members.set(relid, OUT_OF_PUBLICATION);
  return { publication: marks.publication, members };
}
