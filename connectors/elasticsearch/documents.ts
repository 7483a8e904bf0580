/**
 * The bulk `index` operation of one change: the action line and the document line, written as
 * bytes straight from the change into the write's operations (what encodeJson of the document
 * object gives, field for field), without building the document object, its action object, their
 * JSON or a text of the operation for every row. What does not change between rows (field names
 * as bytes, each column's value writer, the index's action prefix, its key columns) is prepared
 * once per index and column list.
 */
import type { ColumnValue } from "../contracts.ts";
import { UNCHANGED } from "../contracts.ts";
import type { StagedChange } from "../sinks/batch.ts";
import { DELETED_COLUMN, VERSION_COLUMN } from "../sinks/columns.ts";
import type { TargetColumn } from "../sinks/columns.ts";
import { ValueRejected } from "../sinks/errors.ts";
import { keyId } from "../sinks/keys.ts";
import { integerRange } from "../sinks/logical-type.ts";
import type { LogicalType } from "../sinks/logical-type.ts";
import { cellOf } from "../sinks/rows.ts";
import { booleanValue, checkedInteger, decimalText, formatDate, formatTimestamp, stringText } from "../sinks/values.ts";
import { encodeJson } from "./json.ts";
import { documentValue } from "./mapping.ts";
import type { NdjsonOperations } from "./ndjson-operations.ts";

/** Versions Elasticsearch accepts: a Java long. */
const MAX_VERSION = 2n ** 63n - 1n;
const MAX_ID_BYTES = 512;

/** A document as stored (what an unchanged-TOAST column is filled from). */
export interface StoredDocument {
  readonly version: bigint;
  readonly deleted: boolean;
  readonly source: Readonly<Record<string, unknown>>;
}

/** Writes one column's value as JSON; throws ValueRejected for a value the column cannot take. */
type ValueWriter = (out: NdjsonOperations, value: ColumnValue) => void;

/** What one index's operations share: its column list's field names as bytes, value writers and key columns, its action's start. */
interface Layout {
  readonly columns: readonly TargetColumn[];
  /** `"<name>":` of each column, as bytes. */
  readonly fields: readonly Uint8Array[];
  readonly writers: readonly ValueWriter[];
  readonly keys: readonly string[];
  /** `{"index":{"_index":"<index>","_id":`, or `{"index":{"_id":` when the request names the index. */
  readonly actionStart: Uint8Array;
}

const bytesOf = (text: string) => new Uint8Array(Buffer.from(text));
const ACTION_VERSION = bytesOf(',"version":');
const ACTION_END = bytesOf(',"version_type":"external"}}\n{');
const VERSION_FIELD = bytesOf(`${JSON.stringify(VERSION_COLUMN)}:`);
const DELETED_FIELD = bytesOf(`,${JSON.stringify(DELETED_COLUMN)}:`);
const DOCUMENT_END = bytesOf("}\n");
const TRUE = bytesOf("true");
const FALSE = bytesOf("false");
const NULL = bytesOf("null");
const COMMA = bytesOf(",");

/** One layout per index name (null: named by the request) and column list (an index's columns are a new array after each mapping change). */
const layouts = new WeakMap<readonly TargetColumn[], Map<string | null, Layout>>();

/** The layout used last: a write's rows share one. */
let lastLayout: { readonly physical: string | null; readonly layout: Layout } | null = null;

function layoutOf(physical: string | null, columns: readonly TargetColumn[]): Layout {
  if (lastLayout !== null && lastLayout.layout.columns === columns && lastLayout.physical === physical) return lastLayout.layout;
  const layout = findLayout(physical, columns);
  lastLayout = { physical, layout };
  return layout;
}

function findLayout(physical: string | null, columns: readonly TargetColumn[]): Layout {
  let byIndex = layouts.get(columns);
  if (byIndex === undefined) {
    byIndex = new Map();
    layouts.set(columns, byIndex);
  }
  let layout = byIndex.get(physical);
  if (layout === undefined) {
    layout = {
      columns,
      fields: columns.map((column) => bytesOf(`${JSON.stringify(column.name)}:`)),
      writers: columns.map((column) => valueWriter(column.type)),
      keys: columns.filter((column) => column.key).map((column) => column.name),
      actionStart: bytesOf(physical === null ? `{"index":{"_id":` : `{"index":{"_index":${JSON.stringify(physical)},"_id":`),
    };
    byIndex.set(physical, layout);
  }
  return layout;
}

/**
 * Appends the bulk operation for one change, its two lines with their newlines: index the row (or
 * its tombstone) with the change's version as external version. `physical` is the index or alias
 * the action line names; null leaves `_index` out, for a request that names it in its path
 * (`POST /<alias>/_bulk`, BulkOptions.index: ~15 % fewer bytes for Elasticsearch to read and parse).
 * Throws ValueRejected (naming the column where one is at fault) for a row Elasticsearch cannot
 * take, with nothing of it written. Returns the document's id.
 */
export function writeIndexOperation(out: NdjsonOperations, physical: string | null, columns: readonly TargetColumn[], change: StagedChange, stored: StoredDocument | undefined): string {
  if (change.version < 0n || change.version > MAX_VERSION) throw new ValueRejected(`version ${change.version} is outside Elasticsearch's external versions (0..2^63-1)`);
  const layout = layoutOf(physical, columns);
  const id = keyId(change.key, layout.keys);
  // Only an id of more than a third of the limit in UTF-16 units can be over it in UTF-8 bytes.
  if (id.length * 3 > MAX_ID_BYTES && Buffer.byteLength(id) > MAX_ID_BYTES) throw new ValueRejected(`the key is longer than Elasticsearch's ${MAX_ID_BYTES}-byte document id limit`);
  const version = change.version.toString();
  out.bytes(layout.actionStart);
  out.jsonString(id);
  out.bytes(ACTION_VERSION);
  out.plain(version);
  out.bytes(ACTION_END);
  try {
    for (let i = 0; i < columns.length; i++) {
      const column = columns[i]!;
      if (change.deleted && !column.key) continue;
      out.bytes(layout.fields[i]!);
      writeField(out, column, layout.writers[i]!, change, stored);
      out.bytes(COMMA);
    }
  } catch (error) {
    out.drop();
    throw error;
  }
  out.bytes(VERSION_FIELD);
  out.plain(version);
  out.bytes(DELETED_FIELD);
  out.bytes(change.deleted ? TRUE : FALSE);
  out.bytes(DOCUMENT_END);
  out.end();
  return id;
}

function writeField(out: NdjsonOperations, column: TargetColumn, writer: ValueWriter, change: StagedChange, stored: StoredDocument | undefined): void {
  const value = cellOf(change, column);
  if (value === UNCHANGED) {
    if (column.key) throw new ValueRejected("a key column cannot be unchanged-TOAST", column.name);
    out.text(encodeJson(stored && !stored.deleted ? (stored.source[column.name] ?? null) : null));
    return;
  }
  if (value === null) {
    out.bytes(NULL);
    return;
  }
  try {
    writer(out, value);
  } catch (error) {
    if (error instanceof ValueRejected) throw new ValueRejected(error.message, column.name);
    throw error;
  }
}

/**
 * A column type's writer: what encodeJson(documentValue(type, value)) gives, written without the
 * intermediate texts for the common types (integers, strings, decimals with a scale, dates,
 * timestamps, booleans); the others through documentValue and encodeJson.
 */
function valueWriter(type: LogicalType): ValueWriter {
  switch (type.kind) {
    case "integer": {
      if (type.bits === 64 && type.unsigned) break;
      const range = integerRange(type);
      // Numbers within both the type's range and the exact doubles need no bigint.
      const min = Math.max(Number(range.min), Number.MIN_SAFE_INTEGER);
      const max = Math.min(Number(range.max), Number.MAX_SAFE_INTEGER);
      return (out, value) => {
        if (typeof value === "number" && Number.isInteger(value) && value >= min && value <= max) out.plain(String(value));
        else out.plain(checkedInteger(value, type).toString());
      };
    }
    case "string":
      return (out, value) => out.jsonString(stringText(value));
    case "decimal": {
      const { precision, scale } = type;
      if (precision === null || scale === null) break;
      // Text starting with a digit is no NaN or infinity: its scaled digits need no escape.
      return (out, value) => {
        if (typeof value === "string" && isDigit(value.charCodeAt(0))) {
          out.bytes(QUOTE);
          out.plain(decimalText(value, precision, scale));
          out.bytes(QUOTE);
        } else out.text(encodeJson(documentValue(type, value)));
      };
    }
    case "timestamp": {
      const zone = type.tz ? "Z" : "";
      return (out, value) => {
        out.bytes(QUOTE);
        out.plain(formatTimestamp(value, "T"));
        if (zone !== "") out.plain(zone);
        out.bytes(QUOTE);
      };
    }
    case "date":
      return (out, value) => {
        out.bytes(QUOTE);
        out.plain(formatDate(value));
        out.bytes(QUOTE);
      };
    case "boolean":
      return (out, value) => out.bytes(booleanValue(value) ? TRUE : FALSE);
    default:
      break;
  }
  return (out, value) => out.text(encodeJson(documentValue(type, value)));
}

const QUOTE = bytesOf('"');

function isDigit(code: number): boolean {
  return code >= 48 && code <= 57;
}
