/** What a collapsed change writes into each target column. */
import type { ColumnValue, Position } from "../contracts.ts";
import type { RowChange } from "./batch.ts";
import type { TargetColumn } from "./columns.ts";

/**
 * The value of `column` in the row `change` leaves: key columns from the key; for a delete, null
 * elsewhere (tombstones keep only key and version); a column the change's schema does not have
 * (dropped at the source, or newer than the change) is null; UNCHANGED stays UNCHANGED for the
 * sink to keep the stored value.
 */
export function cellOf(change: RowChange, column: TargetColumn): ColumnValue {
  if (column.key) {
    const value = change.key[column.name];
    if (value !== undefined) return value;
  }
  if (change.row === null) return null;
  const value = change.row[column.name];
  return value === undefined ? null : value;
}

export function positionLabel(position: Position): string {
  return `${position.commit}/${position.change}`;
}
