/**
 * Changes of one table too large to decompress within the source's limit (protocol/decompression-limit.ts): a
 * MariaDB COMPRESSED value, or the compressed row images of a rows event (log_bin_compress). Their table is known
 * (the table map, the rows event's uncompressed header), so they halt that table only: the change is handed on with a
 * refusal (ChangeEvent.refusal), capture parks it and the other tables flow on. The value, or the event's rows, are
 * not kept: such a change cannot be re-published, only skipped, and the table read again.
 */
import type { SourceRefusal } from "../contracts.ts";
import type { ErrorContext } from "../errors.ts";
import type { DecompressionLimitError } from "./protocol/decompression-limit.ts";
import type { TooLargeValue } from "./protocol/rows-event.ts";

export const VALUE_TOO_LARGE = "MYSQL_VALUE_TOO_LARGE";

function advice(table: string, source: string): string {
  return (
    `decompressed, it would not fit the memory budget (a quarter of the heap, at most 1 GiB). The table is halted, its changes parked, the other tables flow on. ` +
    `Raise \`memory\` for later ones to fit; this change is parked without its values and cannot be re-published: skip it (\`sluice halted skip --source ${source} --table ${table}\`) ` +
    `and read the table again (\`sluice snapshot --table ${table} --execute\`) (docs/mysql.md#limits)`
  );
}

/** The refusal of a row change whose COMPRESSED values (the first one named) are over the limit; `row`: the change's 1-based place in its event. */
export function valueTooLarge(table: string, values: readonly TooLargeValue[], position: string, row: number, context: ErrorContext): SourceRefusal {
  const { column, error } = values[0]!;
  const others = values.length > 1 ? ` (and ${values.slice(1).map((v) => v.column).join(", ")})` : "";
  return {
    code: VALUE_TOO_LARGE,
    message: `table ${table}, column ${column}${others}: the COMPRESSED value at ${position} (row ${row} of its rows event) ${sizes(error, "states")}; ${advice(table, String(context.source))}`,
    context: definedOnly({ ...context, table, column, position, bytes: error.stated ?? error.limit, compressedBytes: error.compressedBytes, limit: error.limit }),
  };
}

/**
 * The refusal of a rows event over the limit, whose rows are not read: one change stands for them all. `inPayload`: a
 * rows event of a MySQL compressed transaction at `position`; otherwise a MariaDB rows event whose row images are compressed.
 */
export function rowsTooLarge(table: string, error: DecompressionLimitError, position: string, context: ErrorContext, inPayload = false): SourceRefusal {
  const what = inPayload
    ? `a rows event of the compressed transaction at ${position} is ${error.stated} bytes (the transaction ${error.compressedBytes} compressed), over the limit of ${error.limit} bytes (binlog_transaction_compression`
    : `the compressed row images of the rows event at ${position} ${sizes(error, "state")} (log_bin_compress`;
  return {
    code: VALUE_TOO_LARGE,
    message: `table ${table}: ${what}; its rows are not read, one parked change stands for them all); ${advice(table, String(context.source))}`,
    context: definedOnly({ ...context, table, position, bytes: error.stated ?? error.limit, compressedBytes: error.compressedBytes, limit: error.limit }),
  };
}

function sizes(error: DecompressionLimitError, verb: string): string {
  const stated = error.stated === null ? `${verb} no size and decompress to more than ${error.limit} bytes` : `${verb} ${error.stated} bytes uncompressed`;
  return `${stated} (${error.compressedBytes} compressed), over the limit of ${error.limit} bytes`;
}

function definedOnly(context: ErrorContext): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  for (const [name, value] of Object.entries(context)) if (value !== undefined) out[name] = value;
  return out;
}
