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

/** Every change of a table (its truncate's and its rows'), for a failure of the whole table. */
export function allIndices(changes: TableChanges): number[] {
  return [...(changes.truncate?.indices ?? []), ...changes.rows.flatMap((r) => r.indices)];
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

/**
 * A key's last change in the batch. Its indices are made only when asked for (a failure): most
 * rows fold one change, and an array per row is two more objects a batch keeps until its write.
 */
class Folded implements RowChange {
  readonly id: string;
  readonly key: Row;
  readonly version: bigint;
  readonly position: Position;
  readonly deleted: boolean;
  readonly row: Row | null;
  readonly schema: TableSchema;
  /** The batch index of this change. */
  readonly #index: number;
  /** The indices of the earlier changes of the key folded into this one, or null. */
  readonly #earlier: readonly number[] | null;

  constructor(id: string, key: Row, deleted: boolean, row: Row | null, index: number, event: ChangeEvent, previous: Folded | undefined) {
    this.id = id;
    this.key = key;
    this.version = versionOf(event);
    this.position = event.source.position;
    this.deleted = deleted;
    this.row = row;
    this.schema = event.schema;
    this.#index = index;
    this.#earlier = previous ? previous.indices : null;
  }

  get indices(): readonly number[] {
    return this.#earlier === null ? [this.#index] : [...this.#earlier, this.#index];
  }
}

/** Groups `changes` per table (in first-seen order) and collapses each; `accept` filters tables (others are skipped as applied). */
export function collapseChanges(changes: readonly SinkChange[], accept: (table: TableId) => boolean = () => true): { tables: TableChanges[]; skipped: number[] } {
  const groups = new Map<string, { table: TableId; indices: number[] }>();
  const skipped: number[] = [];
  // Changes decoded with one writer schema share its object: the table's filter and group are looked up once per run of it.
  let runSchema: TableSchema | null = null;
  let runGroup: number[] | null = null;
  for (let index = 0; index < changes.length; index++) {
    const table = (changes[index] as SinkChange).event.schema;
    if (table !== runSchema) {
      runSchema = table;
      if (!accept(table)) runGroup = null;
      else {
        const k = tableKey(table);
        let group = groups.get(k);
        if (!group) {
          group = { table: { source: table.source, database: table.database, schema: table.schema, table: table.table }, indices: [] };
          groups.set(k, group);
        }
        runGroup = group.indices;
      }
    }
    if (runGroup === null) skipped.push(index);
    else runGroup.push(index);
  }
  return { tables: [...groups.values()].map(({ table, indices }) => collapseTable(table, changes, indices)), skipped };
}

/** `indices` in version order, ties in batch order; the same array when it is in that order already (a partition's changes usually are). */
function inVersionOrder(changes: readonly SinkChange[], indices: number[]): number[] {
  for (let i = 1; i < indices.length; i++) {
    if (versionOf(eventAt(changes, indices[i - 1] as number)) > versionOf(eventAt(changes, indices[i] as number))) {
      return [...indices].sort((a, b) => {
        const va = versionOf(eventAt(changes, a));
        const vb = versionOf(eventAt(changes, b));
        return va === vb ? a - b : va < vb ? -1 : 1;
      });
    }
  }
  return indices;
}

function eventAt(changes: readonly SinkChange[], index: number): ChangeEvent {
  return (changes[index] as SinkChange).event;
}

function collapseTable(table: TableId, changes: readonly SinkChange[], indices: number[]): TableChanges {
  const sorted = inVersionOrder(changes, indices);
  const schemas: TableSchema[] = [];
  const seenSchemas = new Set<string>();
  let previous: TableSchema | null = null;
  let truncate: { version: bigint; position: Position; indices: number[] } | null = null;
  let truncates: number[] | null = null;
  for (const index of sorted) {
    const event = eventAt(changes, index);
    if (event.op === "t") {
      truncates ??= [];
      truncates.push(index);
      truncate = { version: versionOf(event), position: event.source.position, indices: truncates };
    }
    // Fingerprint each schema object once.
    if (event.schema === previous) continue;
    previous = event.schema;
    const fingerprint = schemaFingerprint(event.schema);
    if (!seenSchemas.has(fingerprint)) {
      seenSchemas.add(fingerprint);
      schemas.push(event.schema);
    }
  }

  const byKey = new Map<string, Folded>();
  const invalid: { index: number; error: ValueRejected }[] = [];
  // A key folded again keeps its first place in the map: only then are the rows out of version order.
  const folding = { replaced: false };
  for (const index of sorted) {
    const event = eventAt(changes, index);
    if (event.op === "t") continue;
    const version = versionOf(event);
    if (truncate !== null && version <= truncate.version) {
      truncate.indices.push(index);
      continue;
    }
    try {
      foldEvent(byKey, event, index, folding);
    } catch (error) {
      if (!(error instanceof ValueRejected)) throw error;
      invalid.push({ index, error });
    }
  }
  const rows = [...byKey.values()];
  if (folding.replaced) rows.sort((a, b) => (a.version === b.version ? 0 : a.version < b.version ? -1 : 1));
  return { table, schemas, truncate, rows, invalid };
}

/** Folds a change's row steps: an update that moves the key is a delete of the old key and an upsert of the new one. */
function foldEvent(byKey: Map<string, Folded>, event: ChangeEvent, index: number, folding: { replaced: boolean }): void {
  const schema = event.schema;
  if (event.op === "d") {
    fold(byKey, keyOf(schema, event.key, event.before), true, null, index, event, folding);
    return;
  }
  if (event.after === null) throw new ValueRejected(`a "${event.op}" change without a row`);
  const key = keyOf(schema, event.key, event.after);
  const oldKey = movedFrom(event, key);
  if (oldKey !== null) fold(byKey, oldKey, true, null, index, event, folding);
  fold(byKey, key, false, event.after, index, event, folding);
}

/** The key an update moves its row away from (`key`: the row's key after it), or null when the key stays. */
export function movedFrom(event: ChangeEvent, key: Row): Row | null {
  if (event.op !== "u" || event.before === null) return null;
  const oldKey = keyOf(event.schema, {}, event.before);
  return event.schema.key.some((column) => oldKey[column] !== undefined && oldKey[column] !== UNCHANGED && !sameValue(oldKey[column], key[column])) ? oldKey : null;
}

function sameValue(a: ColumnValue | undefined, b: ColumnValue | undefined): boolean {
  if (a instanceof Uint8Array && b instanceof Uint8Array) return Buffer.compare(a, b) === 0;
  if ((typeof a === "number" || typeof a === "bigint") && (typeof b === "number" || typeof b === "bigint")) return BigInt(a) === BigInt(b);
  return a === b;
}

function fold(byKey: Map<string, Folded>, key: Row, deleted: boolean, after: Row | null, index: number, event: ChangeEvent, folding: { replaced: boolean }): void {
  const id = keyId(key, event.schema.key);
  const previous = byKey.get(id);
  let row = after;
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
  if (previous) folding.replaced = true;
  byKey.set(id, new Folded(id, key, deleted, row, index, event, previous));
}

/** Whether any column of the row carries the UNCHANGED marker. */
export function hasUnchanged(row: Row | null): boolean {
  if (row === null) return false;
  // Without listing the values (an array per row, for every row of a batch).
  for (const column in row) if (row[column] === UNCHANGED) return true;
  return false;
}

/** What a staged write (contract.ts StagedWrite) keeps of a change: the row it leaves and its version. */
export type StagedChange = Pick<RowChange, "key" | "row" | "version" | "deleted">;

/** The row a change leaves, or null when it is not a plain upsert or delete of its key (a truncate, an unchanged-TOAST value, a moved key). */
export function stagedChange(event: ChangeEvent): StagedChange | null {
  if (event.op === "t") return null;
  const version = versionOf(event);
  if (event.op === "d") return { key: keyOf(event.schema, event.key, event.before), row: null, version, deleted: true };
  const row: Row | null = event.after;
  if (row === null || hasUnchanged(row)) return null;
  const key = keyOf(event.schema, event.key, row);
  if (movedFrom(event, key) !== null) return null;
  return { key, row, version, deleted: false };
}
