/**
 * ChangeEvents from decoded tuples: rows of typed values, keys, and the split of a key-changing
 * update into a delete of the old key and a create of the new one.
 */
import { UNCHANGED } from "../contracts.ts";
import type { ChangeEvent, ColumnValue, Op, Position, Row } from "../contracts.ts";
import { SluiceError } from "../errors.ts";
import type { CapturedTable } from "./captured-tables.ts";
import { formatLsn } from "./lsn.ts";
import type { RawColumn, TupleData } from "./protocol/pgoutput.ts";
import type { Utf8Slicing } from "./protocol/byte-reader.ts";
import { BYTE_DECODERS, NOT_DECODED } from "./values/scalars.ts";
import type { ByteDecoder } from "./values/scalars.ts";

export interface EventOrigin {
  readonly sourceName: string;
  readonly position: Position;
  readonly txId: string | null;
  readonly commitTimeMs: number;
  readonly snapshot: boolean;
}

function decodeColumn(table: CapturedTable, index: number, raw: RawColumn, position: Position): ColumnValue {
  if (raw === null || raw === UNCHANGED) return raw;
  const column = table.columns[index];
  if (column === undefined) {
    throw new SluiceError(`tuple has more columns than the table ${table.schema.schema}.${table.schema.table} (${table.columns.length})`, {
      code: "PG_TUPLE_MISMATCH",
      context: { component: "postgres-source", table: `${table.schema.schema}.${table.schema.table}`, position: formatLsn(position.change) },
    });
  }
  if (typeof raw !== "string") {
    throw new SluiceError(`binary column values are not supported (column ${column.name})`, {
      code: "PG_BINARY_VALUE",
      context: { component: "postgres-source", table: `${table.schema.schema}.${table.schema.table}`, column: column.name },
    });
  }
  try {
    return column.decode(raw);
  } catch (error) {
    throw new SluiceError(`cannot decode column ${column.name} (${table.schema.columns[index]?.dbType ?? column.sqlType}): ${(error as Error).message}`, {
      code: "PG_VALUE_UNDECODABLE",
      cause: error,
      context: {
        component: "postgres-source",
        source: table.schema.source,
        table: `${table.schema.schema}.${table.schema.table}`,
        column: column.name,
        position: formatLsn(position.change),
      },
    });
  }
}

/**
 * A row from tuple data. For an old key ('K') tuple only the replica identity columns are sent
 * (the others arrive as NULL and are left out).
 */
export function rowFromTuple(table: CapturedTable, tuple: TupleData, position: Position, identityOnly = false): Record<string, ColumnValue> {
  // A whole row starts as a copy of the table's empty row: one object of its final size, instead of one grown column by column.
  const row: Record<string, ColumnValue> = identityOnly || tuple.length !== table.columns.length ? {} : { ...emptyRow(table) };
  for (let i = 0; i < tuple.length; i++) {
    const raw = tuple[i]!;
    if (identityOnly && raw === null) continue;
    row[table.columns[i]?.name ?? `#${i}`] = decodeColumn(table, i, raw, position);
  }
  return row;
}

/** Each table's columns' ByteDecoders (undefined where the text is always made a string), by the columns' list. */
const byteDecoders = new WeakMap<CapturedTable["columns"], readonly (ByteDecoder | undefined)[]>();

function byteDecodersOf(table: CapturedTable): readonly (ByteDecoder | undefined)[] {
  let decoders = byteDecoders.get(table.columns);
  if (decoders === undefined) {
    decoders = table.columns.map((column) => BYTE_DECODERS.get(column.decode));
    byteDecoders.set(table.columns, decoders);
  }
  return decoders;
}

/**
 * The whole row of a pgoutput TupleData ('N' or 'O') that starts at `offset` of `bytes`, read straight from the
 * bytes: the columns whose type has a ByteDecoder are read with no string, the others as rowFromTuple reads them
 * (the same row, property order included). Undefined where the general reading (decodePgoutput, then rowFromTuple)
 * must decide instead -- a column count other than the table's, a binary column, bytes that do not hold a whole
 * tuple, a value that cannot be decoded -- so that every error is the general reading's own.
 */
export function wholeRowFromTupleBytes(table: CapturedTable, bytes: Buffer, offset: number, position: Position): Record<string, ColumnValue> | undefined {
  const columns = table.columns;
  const count = columns.length;
  const length = bytes.length;
  if (offset + 2 > length || bytes.readInt16BE(offset) !== count) return undefined;
  const decoders = byteDecodersOf(table);
  const row: Record<string, ColumnValue> = { ...emptyRow(table) };
  let at = offset + 2;
  for (let i = 0; i < count; i++) {
    if (at >= length) return undefined;
    const kind = bytes[at++];
    if (kind === 0x6e) continue; // 'n': the empty row's null
    if (kind === 0x75) { // 'u'
      row[columns[i]!.name] = UNCHANGED;
      continue;
    }
    if (kind !== 0x74 || at + 4 > length) return undefined; // 't' only; a binary column is the general reading's error
    const end = at + 4 + bytes.readUInt32BE(at);
    at += 4;
    if (end > length) return undefined;
    const decoder = decoders[i];
    let value = decoder === undefined ? NOT_DECODED : decoder(bytes, at, end);
    if (value === NOT_DECODED) {
      try {
        value = decodeColumn(table, i, (bytes as Buffer & Utf8Slicing).utf8Slice(at, end), position);
      } catch {
        return undefined;
      }
    }
    row[columns[i]!.name] = value;
    at = end;
  }
  return row;
}

/** Each table's columns in order with no values: what a whole row is copied from. */
const emptyRows = new WeakMap<CapturedTable, Record<string, ColumnValue>>();

function emptyRow(table: CapturedTable): Record<string, ColumnValue> {
  let row = emptyRows.get(table);
  if (row === undefined) {
    row = {};
    for (const column of table.columns) row[column.name] = null;
    emptyRows.set(table, row);
  }
  return row;
}

/** Key values of a row, or null when the row lacks a key column. */
export function keyOf(table: CapturedTable, row: Row, fallback: Row | null = null): Record<string, ColumnValue> | null {
  const key: Record<string, ColumnValue> = {};
  for (const name of table.schema.key) {
    let value = row[name];
    if ((value === undefined || value === UNCHANGED) && fallback !== null) value = fallback[name];
    if (value === undefined || value === UNCHANGED) return null;
    key[name] = value;
  }
  return key;
}

export function sameValue(a: ColumnValue | undefined, b: ColumnValue | undefined): boolean {
  if (a === b) return true;
  if (typeof a === "number" && typeof b === "number") return Number.isNaN(a) && Number.isNaN(b);
  if (a instanceof Uint8Array && b instanceof Uint8Array) return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((item: ColumnValue, i: number) => sameValue(item, b[i] as ColumnValue));
  return false;
}

function sameKey(a: Row, b: Row): boolean {
  const names = Object.keys(a);
  return names.length === Object.keys(b).length && names.every((name) => sameValue(a[name], b[name]));
}

export function makeEvent(table: CapturedTable, op: Op, key: Row, before: Row | null, after: Row | null, origin: EventOrigin): ChangeEvent {
  return {
    op,
    key,
    before,
    after,
    source: {
      connector: "postgres",
      name: origin.sourceName,
      db: table.schema.database,
      schema: table.schema.schema,
      table: table.schema.table,
      position: origin.position,
      txId: origin.txId,
      commitTimeMs: origin.commitTimeMs,
      snapshot: origin.snapshot,
    },
    schema: table.schema,
  };
}

function missingKey(table: CapturedTable, what: string, origin: EventOrigin): SluiceError {
  return new SluiceError(`${what} of ${table.schema.schema}.${table.schema.table} lacks key columns ${table.schema.key.join(", ")}`, {
    code: "PG_KEY_MISSING",
    context: {
      component: "postgres-source",
      source: origin.sourceName,
      table: `${table.schema.schema}.${table.schema.table}`,
      position: formatLsn(origin.position.change),
    },
  });
}

export function insertEvent(table: CapturedTable, tuple: TupleData, origin: EventOrigin, op: Op = "c"): ChangeEvent {
  return insertEventOfRow(table, rowFromTuple(table, tuple, origin.position), origin, op);
}

/** insertEvent of a row already read from its tuple. */
export function insertEventOfRow(table: CapturedTable, after: Record<string, ColumnValue>, origin: EventOrigin, op: Op = "c"): ChangeEvent {
  const key = keyOf(table, after) ?? (() => { throw missingKey(table, "insert", origin); })();
  return makeEvent(table, op, key, null, after, origin);
}

export function updateEvents(table: CapturedTable, oldKey: TupleData | null, oldTuple: TupleData | null, newTuple: TupleData, origin: EventOrigin): ChangeEvent[] {
  const after = rowFromTuple(table, newTuple, origin.position);
  const before = oldTuple !== null ? rowFromTuple(table, oldTuple, origin.position) : oldKey !== null ? rowFromTuple(table, oldKey, origin.position, true) : null;
  return updateEventsOfRows(table, before, after, origin);
}

/** updateEvents of rows already read from their tuples (`before`: the old key's or whole old row, or null). */
export function updateEventsOfRows(table: CapturedTable, before: Record<string, ColumnValue> | null, after: Record<string, ColumnValue>, origin: EventOrigin): ChangeEvent[] {
  const key = keyOf(table, after, before) ?? (() => { throw missingKey(table, "update", origin); })();
  const previousKey = before === null ? null : keyOf(table, before);
  if (previousKey !== null && !sameKey(previousKey, key)) {
    return [{ ...makeEvent(table, "d", previousKey, before, null, origin), keyChange: { newKey: key } }, { ...makeEvent(table, "c", key, null, after, origin), keyChange: { oldKey: previousKey } }];
  }
  return [makeEvent(table, "u", key, before, after, origin)];
}

export function deleteEvent(table: CapturedTable, oldKey: TupleData | null, oldTuple: TupleData | null, origin: EventOrigin): ChangeEvent {
  const before = oldTuple !== null ? rowFromTuple(table, oldTuple, origin.position) : rowFromTuple(table, oldKey ?? [], origin.position, true);
  const key = keyOf(table, before) ?? (() => { throw missingKey(table, "delete", origin); })();
  return makeEvent(table, "d", key, before, null, origin);
}

export function truncateEvent(table: CapturedTable, origin: EventOrigin): ChangeEvent {
  return makeEvent(table, "t", {}, null, null, origin);
}
