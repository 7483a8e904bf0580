/**
 * LogicalType -> Elasticsearch field mapping, and ColumnValue -> the document's JSON value.
 * Chosen so that schema evolution rarely needs a mapping change (Elasticsearch cannot change one):
 * every integer is `long`, every float `double`, every string `text` with a `keyword` subfield.
 *
 * - Decimals: the exact digits go into the document as a string (so `_source` is exact, "1.50"),
 *   mapped `double` for range queries and aggregations (coerced from the string, so approximate),
 *   with an `exact` keyword subfield for exact matches. NaN/Infinity are kept in `_source` and
 *   left out of the index (`ignore_malformed`).
 * - Timestamps: ISO-8601 strings with microseconds in `_source` ("...T12:00:00.123456Z"; no zone
 *   for timestamps without time zone), mapped `date` (indexed at millisecond precision).
 * - JSON columns: `flattened` (any keys, leaves indexed as keywords; the mapping cannot explode).
 *   Objects are stored as they are; any other JSON value (array, string, number) is wrapped as
 *   {"_value": ...}, since a flattened field only takes objects.
 * - Bytes: `binary` (base64). Times of day and MySQL TIME: keyword "HH:MM:SS.ffffff".
 */
import type { ColumnValue } from "../contracts.ts";
import type { LogicalType } from "../sinks/logical-type.ts";
import {
  arrayItems,
  booleanValue,
  bytesValue,
  checkedInteger,
  decimalText,
  formatDate,
  formatDuration,
  formatTime,
  formatTimestamp,
  jsonText,
  plainDecimalText,
  stringText,
  toFloat,
  uuidText,
} from "../sinks/values.ts";
import { RawJson } from "./json.ts";

export type FieldMapping = Readonly<Record<string, unknown>>;

const KEYWORD_IGNORE_ABOVE = 256;
const DECIMAL: FieldMapping = { type: "double", ignore_malformed: true, fields: { exact: { type: "keyword" } } };
const DATE: FieldMapping = { type: "date", format: "strict_date_optional_time||epoch_millis" };

function isUnsigned64(type: LogicalType): boolean {
  return type.kind === "integer" && type.bits === 64 && type.unsigned;
}

/** Whether a string is too long for a string field's `keyword` subfield, which leaves it out (Elasticsearch counts UTF-16 units, as String.length does). */
export function isAboveKeywordLimit(text: string): boolean {
  return text.length > KEYWORD_IGNORE_ABOVE;
}

/** Whether the field is a double with the value's exact text in its `exact` keyword subfield (DECIMAL). */
export function hasExactText(type: LogicalType): boolean {
  return type.kind === "decimal" || isUnsigned64(type);
}

export function fieldMapping(type: LogicalType): FieldMapping {
  switch (type.kind) {
    case "boolean":
      return { type: "boolean" };
    case "integer":
      // unsigned_long needs a licensed module; uint64 values beyond 2^63 are kept exact like decimals.
      return isUnsigned64(type) ? DECIMAL : { type: "long" };
    case "float":
      return { type: "double", ignore_malformed: true };
    case "decimal":
      return DECIMAL;
    case "string":
      return { type: "text", fields: { keyword: { type: "keyword", ignore_above: KEYWORD_IGNORE_ABOVE } } };
    case "uuid":
    case "time":
    case "duration":
      return { type: "keyword" };
    case "json":
      return { type: "flattened", depth_limit: 50, ignore_above: 8191 };
    case "bytes":
      return { type: "binary" };
    case "date":
    case "timestamp":
      return DATE;
    case "array":
      return fieldMapping(type.element);
  }
}

export function sameMapping(a: FieldMapping, b: FieldMapping): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** The document value of a column value (null for NULL). */
export function documentValue(type: LogicalType, value: ColumnValue): unknown {
  if (value === null) return null;
  switch (type.kind) {
    case "boolean":
      return booleanValue(value);
    case "integer": {
      const n = checkedInteger(value, type);
      return isUnsigned64(type) ? n.toString() : n;
    }
    case "float": {
      const n = toFloat(value);
      if (Number.isFinite(n)) return n;
      return Number.isNaN(n) ? "NaN" : n > 0 ? "Infinity" : "-Infinity";
    }
    case "decimal":
      // NaN and ±Infinity (PostgreSQL numeric, also with a declared scale) stay words in _source; the double field leaves them out.
      return type.precision !== null && type.scale !== null && !isSpecialDecimal(value) ? decimalText(value, type.precision, type.scale) : plainDecimalText(value);
    case "string":
      return stringText(value);
    case "uuid":
      return uuidText(value);
    case "json": {
      // Raw CR/LF in valid JSON are whitespace between tokens (inside strings they are escaped): one line for NDJSON.
      const text = jsonText(value).replace(/[\r\n]+/g, " ").trim();
      return new RawJson(text.startsWith("{") ? text : `{"_value":${text}}`);
    }
    case "bytes": {
      const bytes = bytesValue(value);
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
    }
    case "date":
      return formatDate(value);
    case "timestamp":
      return `${formatTimestamp(value, "T")}${type.tz ? "Z" : ""}`;
    case "time":
      return formatTime(value);
    case "duration":
      return formatDuration(value);
    case "array":
      // A multi-dimensional array stays nested in _source; Elasticsearch indexes its elements like a flat array's.
      return arrayItems(value).map((item) => (Array.isArray(item) ? documentValue(type, item) : documentValue(type.element, item)));
  }
}

/** Field names Elasticsearch reserves (metadata fields) or cannot map as one field. */
export function fieldNameProblem(name: string): string | null {
  if (name === "" || name.includes(".")) return "Elasticsearch field names cannot be empty or contain dots (they would become object paths)";
  if (METADATA_FIELDS.has(name)) return `"${name}" is an Elasticsearch metadata field`;
  return null;
}

const METADATA_FIELDS = new Set([
  "_id",
  "_index",
  "_source",
  "_routing",
  "_version",
  "_seq_no",
  "_primary_term",
  "_ignored",
  "_ignored_source",
  "_field_names",
  "_doc_count",
  "_tier",
  "_data_stream_timestamp",
  "_meta",
  "_size",
  "_feature",
  "_nested_path",
  "_tsid",
  "_type",
  "_uid",
  "_all",
]);

function isSpecialDecimal(value: ColumnValue): boolean {
  return (typeof value === "string" && /^[+-]?(nan|infinity|inf)$/i.test(value.trim())) || (typeof value === "number" && !Number.isFinite(value));
}
