/**
 * Creates whose row image left columns out (a session logged with binlog_row_image=MINIMAL, or a
 * key-changing update under NOBLOB): an insert's image lacks the columns it did not set, and no
 * sink holds an earlier row to keep them from. Those columns are read from the table by the key.
 * The value read is the row's current one: if the row changed again since, its later changes
 * follow, so a sink may show a newer value early but never keeps a wrong one; a row gone since
 * stays incomplete (its delete follows). Updates and deletes are left as they are (an update's
 * left-out columns are unchanged ones).
 */
import type { Connection } from "mysql2/promise";
import type { ChangeEvent, ColumnSchema, ColumnValue, Row } from "../contracts.ts";
import { civilDate } from "../common/civil-calendar.ts";
import { parseDbType } from "../../schema-registry/db-type.ts";
import { quoteIdentifier } from "./connection-settings.ts";
import type { ColumnDefinition } from "./schema/table-definition.ts";
import { selectExpression, snapshotDecoder } from "./values/snapshot-values.ts";
import type { ZeroDates } from "./values/column-decoder.ts";

const rawBytes = { typeCast: (field: { buffer(): Buffer | null }) => field.buffer() };

/** How often a row not found is looked for again: the binlog can reach Sluice a moment before the commit is visible. */
const ATTEMPTS = 10;

export async function completePartialCreates(events: readonly ChangeEvent[], connection: Connection, zeroDates: ZeroDates): Promise<readonly ChangeEvent[]> {
  let completed: ChangeEvent[] | null = null;
  for (let i = 0; i < events.length; i++) {
    const event = events[i]!;
    if (event.op !== "c" || event.after === null) continue;
    const after = event.after;
    const missing = event.schema.columns.filter((column) => after[column.name] === undefined);
    if (missing.length === 0 || event.schema.key.length === 0) continue;
    const read = await readColumns(connection, event, missing, zeroDates);
    if (read === null) continue;
    completed ??= [...events];
    completed[i] = { ...event, after: { ...after, ...read } };
  }
  return completed ?? events;
}

async function readColumns(connection: Connection, event: ChangeEvent, missing: readonly ColumnSchema[], zeroDates: ZeroDates): Promise<Row | null> {
  const { schema } = event;
  const byName = new Map(schema.columns.map((column) => [column.name, column]));
  const conditions: string[] = [];
  for (const name of schema.key) {
    const literal = valueLiteral(byName.get(name)!, event.key[name]);
    if (literal === null) return null;
    conditions.push(`${quoteIdentifier(name)} = ${literal}`);
  }
  const definitions = missing.map((column): ColumnDefinition => ({ name: column.name, dbType: column.dbType, nullable: column.nullable, charset: null }));
  const sql = `SELECT ${definitions.map(selectExpression).join(", ")} FROM ${quoteIdentifier(schema.database)}.${quoteIdentifier(schema.table)} WHERE ${conditions.join(" AND ")}`;
  let row: (Buffer | null)[] | undefined;
  for (let attempt = 0; attempt < ATTEMPTS && row === undefined; attempt++) {
    if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, 10 * attempt));
    const [rows] = await connection.query({ sql, rowsAsArray: true, ...rawBytes });
    row = (rows as (Buffer | null)[][])[0];
  }
  if (row === undefined) return null;
  const values: Record<string, ColumnValue> = {};
  definitions.forEach((definition, i) => {
    const raw = row[i];
    values[definition.name] = raw === null || raw === undefined ? null : snapshotDecoder(definition, zeroDates)(raw);
  });
  return values;
}

const pad = (n: number, width = 2) => String(n).padStart(width, "0");

/** A SQL literal of a key value as Sluice decoded it, for its declared type; null when it cannot be written. */
function valueLiteral(column: ColumnSchema, value: ColumnValue | undefined): string | null {
  if (value === undefined || value === null) return null;
  const name = parseDbType(column.dbType, { postgresArrays: false }).name;
  if (typeof value === "boolean") return value ? "b'1'" : "b'0'";
  if (value instanceof Uint8Array) return `X'${Buffer.from(value).toString("hex")}'`;
  if (typeof value === "bigint" && (name === "datetime" || name === "timestamp")) return `'${datetimeText(value)}'`;
  if (typeof value === "number" && name === "date") return `'${civilDate(value)}'`;
  if (typeof value === "number" && name === "time") return `'${timeText(value)}'`;
  if (typeof value === "number" || typeof value === "bigint") return String(value);
  // A decimal compared with a string would be compared as a double.
  if (typeof value === "string" && name === "decimal" && /^-?\d+(\.\d+)?$/.test(value)) return value;
  if (typeof value === "string") return `_utf8mb4 X'${Buffer.from(value, "utf8").toString("hex")}'`;
  return null;
}

function datetimeText(micros: bigint): string {
  const days = micros >= 0n ? micros / 86_400_000_000n : -((-micros + 86_400_000_000n - 1n) / 86_400_000_000n);
  const inDay = Number(micros - days * 86_400_000_000n);
  const seconds = Math.floor(inDay / 1_000_000);
  return `${civilDate(Number(days))} ${pad(Math.floor(seconds / 3600))}:${pad(Math.floor(seconds / 60) % 60)}:${pad(seconds % 60)}.${pad(inDay % 1_000_000, 6)}`;
}

function timeText(micros: number): string {
  const sign = micros < 0 ? "-" : "";
  const abs = Math.abs(micros);
  const seconds = Math.floor(abs / 1_000_000);
  return `${sign}${pad(Math.floor(seconds / 3600))}:${pad(Math.floor(seconds / 60) % 60)}:${pad(seconds % 60)}.${pad(abs % 1_000_000, 6)}`;
}
