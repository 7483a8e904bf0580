/**
 * Turns a batch of SinkChanges into what a sink applies: per table, the newest truncate and the
 * last change per key. "Last" is by version (`source.position.change`), never by arrival order
 * or topic offset. Folding keeps unchanged-TOAST columns right: when a later change leaves a
 * column UNCHANGED, the value of an earlier change of the same key in the batch fills it in.
 */
import type { ChangeEvent, ColumnValue, Position, Row, SinkChange, TableId, TableSchema } from "../contracts.ts";
import { UNCHANGED } from "../contracts.ts";
import { ValueRejected } from "./errors.ts";
import { keyId, keyOf } from "./keys.ts";

export interface RowChange {
  /** The key's text (keys.ts). */
  readonly id: string;
  readonly key: Row;
  readonly version: bigint;
  readonly position: Position;
  readonly deleted: boolean;
  /** The row after the change; UNCHANGED where neither the change nor an earlier one in the batch had the value. Null for deletes. */
  readonly row: Row | null;
  /** The schema the winning change was read under. */
  readonly schema: TableSchema;
  /** Indices (into the batch) of every change folded into this one: they succeed or fail together. */
  readonly indices: readonly number[];
}

export interface TruncateChange {
  readonly version: bigint;
  readonly position: Position;
  /** The truncate events and every change of the table older than the newest truncate. */
  readonly indices: readonly number[];
}

export interface TableChanges {
  readonly table: TableId;
  /** Distinct schemas of the table's changes, oldest version first. */
  readonly schemas: readonly TableSchema[];
  readonly truncate: TruncateChange | null;
  /** Last change per key, newer than the truncate; in version order. */
  readonly rows: readonly RowChange[];
  /** Changes that cannot be applied as they are (no key, no row), with why. */
  readonly invalid: readonly { readonly index: number; readonly error: ValueRejected }[];
}

export function tableKey(table: TableId): string {
  return `${table.source}\u0000${table.schema}\u0000${table.table}`;
}

export function versionOf(event: ChangeEvent): bigint {
  return event.source.position.change;
}

export function schemaFingerprint(schema: TableSchema): string {
  return `${schema.columns.map((c) => `${c.name}:${c.dbType}:${c.primaryKeyIndex ?? ""}`).join("|")}#${schema.key.join(",")}`;
}

interface Entry {
  readonly index: number;
  readonly event: ChangeEvent;
}

interface Folded {
  id: string;
  key: Row;
  version: bigint;
  position: Position;
  deleted: boolean;
  row: Row | null;
  schema: TableSchema;
  indices: number[];
}

/** Groups `changes` per table (in first-seen order) and collapses each; `accept` filters tables (others are skipped as applied). */
export function collapseChanges(changes: readonly SinkChange[], accept: (table: TableId) => boolean = () => true): { tables: TableChanges[]; skipped: number[] } {
  const groups = new Map<string, { table: TableId; entries: Entry[] }>();
  const skipped: number[] = [];
  changes.forEach(({ event }, index) => {
    const table = event.schema;
    if (!accept(table)) {
      skipped.push(index);
      return;
    }
    const k = tableKey(table);
    let group = groups.get(k);
    if (!group) {
      group = { table: { source: table.source, database: table.database, schema: table.schema, table: table.table }, entries: [] };
      groups.set(k, group);
    }
    group.entries.push({ index, event });
  });
  return { tables: [...groups.values()].map(({ table, entries }) => collapseTable(table, entries)), skipped };
}

function collapseTable(table: TableId, entries: Entry[]): TableChanges {
  const sorted = [...entries].sort((a, b) => {
    const va = versionOf(a.event);
    const vb = versionOf(b.event);
    return va === vb ? a.index - b.index : va < vb ? -1 : 1;
  });
  const schemas: TableSchema[] = [];
  const seenSchemas = new Set<string>();
  let previous: TableSchema | null = null;
  for (const { event } of sorted) {
    // Changes decoded with one writer schema share its object: fingerprint each schema object once.
    if (event.schema === previous) continue;
    previous = event.schema;
    const fingerprint = schemaFingerprint(event.schema);
    if (!seenSchemas.has(fingerprint)) {
      seenSchemas.add(fingerprint);
      schemas.push(event.schema);
    }
  }

  let truncate: { version: bigint; position: Position; indices: number[] } | null = null;
  const truncates = sorted.filter(({ event }) => event.op === "t");
  const newest = truncates.at(-1);
  if (newest) truncate = { version: versionOf(newest.event), position: newest.event.source.position, indices: truncates.map((t) => t.index) };

  const byKey = new Map<string, Folded>();
  const invalid: { index: number; error: ValueRejected }[] = [];
  for (const { index, event } of sorted) {
    if (event.op === "t") continue;
    const version = versionOf(event);
    if (truncate !== null && version <= truncate.version) {
      truncate.indices.push(index);
      continue;
    }
    try {
      for (const step of stepsOf(event)) fold(byKey, step, index, event);
    } catch (error) {
      if (!(error instanceof ValueRejected)) throw error;
      invalid.push({ index, error });
    }
  }
  const rows = [...byKey.values()].sort((a, b) => (a.version === b.version ? 0 : a.version < b.version ? -1 : 1));
  return { table, schemas, truncate, rows, invalid };
}

interface Step {
  readonly key: Row;
  readonly deleted: boolean;
  readonly row: Row | null;
}

/** A change as row steps: an update that moves the key is a delete of the old key and an upsert of the new one. */
function stepsOf(event: ChangeEvent): Step[] {
  const schema = event.schema;
  if (event.op === "d") {
    const key = keyOf(schema, event.key, event.before);
    return [{ key, deleted: true, row: null }];
  }
  if (event.after === null) throw new ValueRejected(`a "${event.op}" change without a row`);
  const key = keyOf(schema, event.key, event.after);
  if (event.op === "u" && event.before !== null) {
    const oldKey = keyOf(schema, {}, event.before);
    const moved = schema.key.some((column) => oldKey[column] !== undefined && oldKey[column] !== UNCHANGED && !sameValue(oldKey[column], key[column]));
    if (moved) return [{ key: oldKey, deleted: true, row: null }, { key, deleted: false, row: event.after }];
  }
  return [{ key, deleted: false, row: event.after }];
}

function sameValue(a: ColumnValue | undefined, b: ColumnValue | undefined): boolean {
  if (a instanceof Uint8Array && b instanceof Uint8Array) return Buffer.compare(a, b) === 0;
  if ((typeof a === "number" || typeof a === "bigint") && (typeof b === "number" || typeof b === "bigint")) return BigInt(a) === BigInt(b);
  return a === b;
}

function fold(byKey: Map<string, Folded>, step: Step, index: number, event: ChangeEvent): void {
  const id = keyId(step.key, event.schema.key);
  const previous = byKey.get(id);
  let row = step.row;
  if (row !== null && previous && !previous.deleted && previous.row !== null) {
    const earlier = previous.row;
    let merged: Record<string, ColumnValue> | null = null;
    for (const [column, value] of Object.entries(row)) {
      if (value === UNCHANGED && earlier[column] !== undefined && earlier[column] !== UNCHANGED) {
        merged ??= { ...row };
        merged[column] = earlier[column];
      }
    }
    if (merged) row = merged;
  }
  byKey.set(id, {
    id,
    key: step.key,
    version: versionOf(event),
    position: event.source.position,
    deleted: step.deleted,
    row,
    schema: event.schema,
    indices: previous ? [...previous.indices, index] : [index],
  });
}

/** Whether any column of the row carries the UNCHANGED marker. */
export function hasUnchanged(row: Row | null): boolean {
  if (row === null) return false;
  // Without listing the values (an array per row, for every row of a batch).
  for (const column in row) if (row[column] === UNCHANGED) return true;
  return false;
}
