/**
 * The rows an XA transaction handed on before its prepare, by table and key, so that its rollback can remove them
 * from the targets (a system-versioned table cannot be read again with a reset: stream-decoder.ts, source.ts).
 * Held in memory only, and only while few: a transaction with more rows, one part of which was stored before a
 * resume point, or one prepared before this decoder started, is known by its tables alone (`complete` false).
 */
import { tableName } from "../contracts.ts";
import type { ChangeEvent, Row, TableSchema } from "../contracts.ts";

/** Rows of one XA transaction remembered at most: its rollback, a single small query event, gives each removal a position of its own (one byte each). */
export const MAX_XA_ROWS = 64;
/** Bytes of row images one XA transaction may hold (roughly counted): beyond, it is known by its tables alone, as past MAX_XA_ROWS. */
export const MAX_XA_ROW_BYTES = 256 * 1024;
/** Prepared XA transactions whose rows are remembered at once (the oldest forgotten first): with MAX_XA_ROW_BYTES, 16 MiB at most. */
export const MAX_PREPARED_XA_WITH_ROWS = 64;

export interface XaTableRows {
  readonly schema: TableSchema;
  /** Key (as JSON) -> the key and the last image the transaction handed on for it. */
  readonly rows: Map<string, { readonly key: Row; readonly image: Row | null }>;
}

export interface XaRows {
  readonly tables: Map<string, XaTableRows>;
  count: number;
  /** Bytes of the images and keys noted, roughly (approxRowBytes), counted again for a key noted again. */
  bytes: number;
  complete: boolean;
}

export function newXaRows(): XaRows {
  return { tables: new Map(), count: 0, bytes: 0, complete: true };
}

/** A row's size as held in memory, roughly: its texts and bytes, and a few words per value. */
export function approxRowBytes(row: Row | null): number {
  if (row === null) return 0;
  let bytes = 0;
  for (const value of Object.values(row)) {
    if (typeof value === "string") bytes += 2 * value.length;
    else if (value instanceof Uint8Array) bytes += value.byteLength;
    else if (value !== null && typeof value === "object") bytes += 2 * JSON.stringify(value, (_name, v: unknown) => (typeof v === "bigint" ? String(v) : v)).length;
    bytes += 16;
  }
  return bytes;
}

/** Notes a change the transaction handed on. */
export function noteXaRow(rows: XaRows, change: ChangeEvent): void {
  if (!rows.complete) return;
  if (change.op === "t") {
    forget(rows);
    return;
  }
  const table = tableName(change.schema);
  const entry = rows.tables.get(table) ?? { schema: change.schema, rows: new Map() };
  rows.tables.set(table, entry);
  const id = JSON.stringify(change.key, (_name, value: unknown) => (typeof value === "bigint" ? `${value}n` : value));
  if (!entry.rows.has(id)) rows.count += 1;
  const image = change.after ?? change.before;
  rows.bytes += approxRowBytes(change.key) + approxRowBytes(image);
  entry.rows.set(id, { key: change.key, image });
  if (rows.count > MAX_XA_ROWS || rows.bytes > MAX_XA_ROW_BYTES) forget(rows);
}

function forget(rows: XaRows): void {
  rows.complete = false;
  rows.tables.clear();
  rows.count = 0;
  rows.bytes = 0;
}
