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
  /** pg_enum oid -> label. */
  readonly labels: ReadonlyMap<number, string> | null;
}

export const NO_MARKS: CatalogMarks = { publication: null, partitions: null, labels: null };

/** Stored form: relids and oids as numbers, pairs flattened (`[relid, member, relid, member, ...]`). */
interface Stored {
  readonly publication: [number, number[]] | null;
  readonly partitions: [number, number[]][] | null;
  readonly labels: [number, string][] | null;
}

/** By key: the same marks make the same text whatever order the catalog listed them in (a new entry is written only for a change). */
const sorted = <V>(map: ReadonlyMap<number, V>): [number, V][] => [...map].sort((a, b) => a[0] - b[0]);
const flat = (map: ReadonlyMap<number, number>): number[] => sorted(map).flat();

/** Null when every part is unknown (nothing to store). */
export function encodeCatalogMarks(marks: CatalogMarks): string | null {
  if (marks.publication === null && marks.partitions === null && marks.labels === null) return null;
  const stored: Stored = {
    publication: marks.publication === null ? null : [marks.publication.publication, flat(marks.publication.members)],
    partitions: marks.partitions === null ? null : sorted(marks.partitions).map(([root, leaves]) => [root, flat(leaves)]),
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
  return { publication: decodePublication(stored["publication"]), partitions: decodePartitions(stored["partitions"]), labels: decodeLabels(stored["labels"]) };
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
