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

export interface XaTableRows {
  readonly schema: TableSchema;
  /** Key (as JSON) -> the key and the last image the transaction handed on for it. */
  readonly rows: Map<string, { readonly key: Row; readonly image: Row | null }>;
}

export interface XaRows {
  readonly tables: Map<string, XaTableRows>;
  count: number;
  complete: boolean;
}

export function newXaRows(): XaRows {
  return { tables: new Map(), count: 0, complete: true };
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
  entry.rows.set(id, { key: change.key, image: change.after ?? change.before });
  if (rows.count > MAX_XA_ROWS) forget(rows);
}

function forget(rows: XaRows): void {
  rows.complete = false;
  rows.tables.clear();
  rows.count = 0;
}
