/**
 * Snapshot rows arrive as text (and bytes for binary columns) from SELECT; these decoders turn them
 * into exactly the values the binlog decoders give for the same row, per declared type. The
 * snapshot connection's session is UTC (TIMESTAMP text) and utf8mb4 (all text); FLOAT columns are
 * selected as DOUBLE (`col + 0e0`) so their text keeps every bit of the float.
 */
import type { ColumnValue } from "../../contracts.ts";
import { daysFromCivil, isCivilDate } from "../../common/civil-calendar.ts";
import { parseDbType } from "../../../schema-registry/db-type.ts";
import type { ColumnDefinition } from "../schema/table-definition.ts";
import { quoteIdentifier } from "../connection-settings.ts";
import { ZERO_DATE_TEXT } from "./column-decoder.ts";
import type { ZeroDates } from "./column-decoder.ts";

export type SnapshotDecoder = (raw: Buffer) => ColumnValue;

const INTEGER = new Set(["tinyint", "smallint", "mediumint", "int", "year"]);
const BINARY = new Set(["binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob", "vector"]);
const GEOMETRY = new Set(["geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon", "geometrycollection"]);

/** The SELECT expression of a column. */
export function selectExpression(column: ColumnDefinition): string {
  const name = parseDbType(column.dbType, { postgresArrays: false }).name;
  const quoted = quoteIdentifier(column.name);
  if (name === "float") return `(${quoted} + 0e0)`;
  if (name === "year") return yearExpression(quoted);
  return quoted;
}

/**
 * MariaDB's YEAR(2) (normalized to "year" like YEAR(4)) prints two digits ("24", "00" for both 2000
 * and the zero year) where the binlog logs the stored year; YEAR() reads the stored year, as
 * 1900 + the stored byte, so the zero year comes out as 1900, which no YEAR column can hold
 * (1901-2155 or 0). YEAR(4) text has four digits and is selected as it is.
 */
function yearExpression(quoted: string): string {
  return `(CASE WHEN CHAR_LENGTH(${quoted}) <> 2 THEN ${quoted} WHEN YEAR(${quoted}) = 1900 THEN 0 ELSE YEAR(${quoted}) END)`;
}

export function snapshotDecoder(column: ColumnDefinition, zeroDates: ZeroDates): SnapshotDecoder {
  const type = parseDbType(column.dbType, { postgresArrays: false });
  const zero = (): string | null => (zeroDates === "null" ? null : ZERO_DATE_TEXT);
  const text = (raw: Buffer) => raw.toString("utf8");
  if (INTEGER.has(type.name) || (type.name === "int" && type.unsigned)) return (raw) => Number(text(raw));
  if (type.name === "bigint") return (raw) => BigInt(text(raw));
  if (type.name === "float") return (raw) => Math.fround(Number(text(raw)));
  if (type.name === "double") return (raw) => Number(text(raw));
  // ZEROFILL pads the text SELECT returns ("00000012.30"); the binlog's digits have no padding.
  if (type.name === "decimal") return (raw) => text(raw).replace(/^(-?)0+(?=\d)/, "$1");
  if (type.name === "bit") {
    const bits = Number(type.args[0] ?? 1);
    const length = (bits + 7) >> 3;
    return bits === 1 ? (raw) => raw.some((b) => b !== 0) : (raw) => {
      const value = new Uint8Array(length);
      value.set(raw.subarray(Math.max(0, raw.length - length)), Math.max(0, length - raw.length));
      return value;
    };
  }
  if (type.name === "date") return (raw) => parseDate(text(raw)) ?? zero();
  if (type.name === "datetime" || type.name === "timestamp") return (raw) => parseDatetime(text(raw)) ?? zero();
  if (type.name === "time") return (raw) => parseTime(text(raw));
  if (BINARY.has(type.name)) return (raw) => new Uint8Array(raw);
  if (GEOMETRY.has(type.name)) return (raw) => new Uint8Array(raw);
  return text;
}

function parseDate(value: string): number | null {
  const match = /^(\d{4})-(\d{2})-(\d{2})/.exec(value);
  if (match === null) throw new RangeError(`cannot read the date "${value}"`);
  const [year, month, day] = [Number(match[1]), Number(match[2]), Number(match[3])];
  if (!isCivilDate(year, month, day)) return null;
  return daysFromCivil(year, month, day);
}

function parseDatetime(value: string): bigint | null {
  const match = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?/.exec(value);
  if (match === null) throw new RangeError(`cannot read the datetime "${value}"`);
  const [year, month, day, hour, minute, second] = match.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  if (!isCivilDate(year, month, day)) return null;
  const micros = Number((match[7] ?? "").padEnd(6, "0"));
  return BigInt(daysFromCivil(year, month, day)) * 86_400_000_000n + BigInt((hour * 3600 + minute * 60 + second) * 1_000_000 + micros);
}

function parseTime(value: string): number {
  const match = /^(-)?(\d+):(\d{2}):(\d{2})(?:\.(\d{1,6}))?$/.exec(value);
  if (match === null) throw new RangeError(`cannot read the time "${value}"`);
  const total = (Number(match[2]) * 3600 + Number(match[3]) * 60 + Number(match[4])) * 1_000_000 + Number((match[5] ?? "").padEnd(6, "0"));
  return match[1] === "-" ? -total : total;
}

/**
 * A SQL literal of a key value as SELECT returned it, for keyset pagination. Text keys are utf8mb4
 * literals, which compare in the column's own collation (as ORDER BY does); keys in other charsets
 * are converted to the column's charset first.
 */
export function keyLiteral(column: ColumnDefinition, raw: Buffer): string {
  const name = parseDbType(column.dbType, { postgresArrays: false }).name;
  if (INTEGER.has(name) || name === "bigint" || name === "decimal" || name === "double" || name === "float") return raw.toString("latin1");
  if (BINARY.has(name) || name === "bit") return `X'${raw.toString("hex")}'`;
  const literal = `_utf8mb4 X'${raw.toString("hex")}'`;
  const charset = column.charset ?? "utf8mb4";
  return charset.startsWith("utf8") ? literal : `CONVERT(${literal} USING ${charset})`;
}
