/** What a collapsed change writes into each target column. */
import type { ColumnValue } from "../contracts.ts";
import { formatPosition } from "../common/position-text.ts";
import type { RowChange } from "./batch.ts";
import { defaultOf, predatesColumn } from "./columns.ts";
import type { TargetColumn } from "./columns.ts";

/**
 * The value of `column` in the row `change` leaves: key columns from the key; for a delete, null
 * elsewhere (tombstones keep only key and version); a column the change's schema does not have
 * is the column's default when the change predates the column (as Avro reads an older record with
 * the newer schema), else null (dropped at the source, or no default); UNCHANGED stays UNCHANGED
 * for the sink to keep the stored value.
 */
export function cellOf(change: Pick<RowChange, "key" | "row" | "version">, column: TargetColumn): ColumnValue {
  if (column.key) {
    const value = change.key[column.name];
    if (value !== undefined) return value;
  }
  if (change.row === null) return null;
  const value = change.row[column.name];
  if (value !== undefined) return value;
  return predatesColumn(column, change.version) ? defaultOf(column) : null;
}

/** Where a change comes from, as its source writes positions (LSN, binlog file:offset), for error contexts. */
export function positionLabel(change: Pick<RowChange, "position" | "schema">): string {
  return formatPosition(change.schema.sourceKind, change.position);
}
