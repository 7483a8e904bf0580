/**
 * One text per primary key, the same for every event of the row whatever integer representation
 * carried it (5 and 5n): used to collapse a batch per key and as the Elasticsearch document id.
 * One key column: its value's text ("42", "alice"). Several: a JSON array of the values, strings
 * quoted and numbers bare (`[42,"alice"]`), which no two different keys share.
 */
import type { ColumnValue, Row, TableSchema } from "../contracts.ts";
import { UNCHANGED } from "../contracts.ts";
import { ValueRejected } from "./errors.ts";
import { describeValue } from "./values.ts";

export function keyId(key: Row, columns: readonly string[]): string {
  if (columns.length === 1) return scalarText(key[columns[0] as string], columns[0] as string);
  return `[${columns.map((column) => jsonElement(key[column], column)).join(",")}]`;
}

function scalarText(value: ColumnValue | undefined, column: string): string {
  if (value === undefined || value === null || value === UNCHANGED || Array.isArray(value)) {
    throw new ValueRejected(`key column has ${describeValue(value)}`, column);
  }
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("base64");
  return String(value);
}

function jsonElement(value: ColumnValue | undefined, column: string): string {
  if (typeof value === "number" || typeof value === "bigint") return String(value);
  if (typeof value === "boolean") return String(value);
  return JSON.stringify(scalarText(value, column));
}

/** The key columns of a row: from the event's `key`, else picked from the row by the schema's key. */
export function keyOf(schema: TableSchema, key: Row, row: Row | null): Row {
  if (schema.key.every((column) => key[column] !== undefined)) return key;
  if (row === null) return key;
  const out: Record<string, ColumnValue> = {};
  for (const column of schema.key) out[column] = row[column] ?? null;
  return out;
}
