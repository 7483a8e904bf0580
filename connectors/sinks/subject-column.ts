/**
 * Which column types can name a data subject (governance `personal.subject`, docs/governance.md).
 * A subject is known by one text: the value's text as capture names its key (an integer's digits, a
 * decimal's digits with its scale, a string as it is, a uuid in lower case). `sluice forget --subject`
 * destroys the key of that text and every sink nulls the rows whose subject column reads as exactly
 * that text. Only types every sink stores so that this text can be matched exactly qualify; the
 * others are refused at capture (the table halts) and by a sink's erasure, never matched loosely.
 */
import { SluiceError } from "../errors.ts";
import type { TargetColumn } from "./columns.ts";
import type { LogicalType } from "./logical-type.ts";

/**
 * Why a column of `type` cannot name a data subject, or null when it can. Floats have no one text
 * (DuckDB writes 5 as "5.0", capture as "5"), and dates, times and timestamps are carried as
 * integers (days, microseconds) that no sink stores as such: the key's text and the sinks' would
 * differ, so a forget would destroy a key and leave the rows, or null rows and leave the key.
 */
export function subjectTypeProblem(type: LogicalType): string | null {
  switch (type.kind) {
    case "integer":
    case "decimal":
    case "string":
    case "uuid":
      return null;
    case "float":
      return "a floating-point value has no one text to name a subject by";
    case "date":
    case "timestamp":
    case "time":
    case "duration":
      return `a ${type.kind} is carried as a number of days or microseconds, which no sink stores as such`;
    case "boolean":
    case "json":
    case "bytes":
    case "array":
      return `a ${type.kind} value cannot name a subject`;
  }
}

/** The message of a refused subject column: why, and which types can name a subject. */
export function subjectTypeRefusal(column: string, dbType: string, problem: string): string {
  return `the subject column ${column} (${dbType}) cannot name a data subject: ${problem}; name the subject by an integer, decimal, text or uuid column`;
}

/**
 * A sink's erasure in a table whose subject column is of a refused type (a table made before capture
 * refused it): an error (SINK_ERASE_UNSUPPORTED, not retriable), not a count of rows matched loosely
 * or of none, so that `sluice forget` does not report the subject erased there.
 */
export function refuseSubjectColumn(sink: string, table: string, column: TargetColumn): void {
  const problem = subjectTypeProblem(column.type);
  if (problem === null) return;
  throw new SluiceError(
    `sink ${sink}, table ${table}: cannot erase the subject's rows: ${subjectTypeRefusal(column.name, column.type.kind, problem)}. Null the subject's personal columns of this table yourself`,
    { code: "SINK_ERASE_UNSUPPORTED", context: { component: "sink", sink, table, column: column.name } },
  );
}
