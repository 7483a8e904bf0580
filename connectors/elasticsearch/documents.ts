/**
 * The bulk `index` operation of one change: the action line and the document line, written as
 * text straight from the change (what encodeJson of the document object gives, field for field),
 * without building the document object, its action object and their JSON separately for every
 * row. What does not change between rows (field names, the index's action prefix, its key
 * columns) is prepared once per index and column list.
 */
import type { RowChange } from "../sinks/batch.ts";
import { DELETED_COLUMN, VERSION_COLUMN } from "../sinks/columns.ts";
import type { TargetColumn } from "../sinks/columns.ts";
import { ValueRejected } from "../sinks/errors.ts";
import { keyId } from "../sinks/keys.ts";
import { cellOf } from "../sinks/rows.ts";
import { UNCHANGED } from "../contracts.ts";
import { encodeJson } from "./json.ts";
import { documentValue } from "./mapping.ts";

/** Versions Elasticsearch accepts: a Java long. */
const MAX_VERSION = 2n ** 63n - 1n;
const MAX_ID_BYTES = 512;

/** A document as stored (what an unchanged-TOAST column is filled from). */
export interface StoredDocument {
  readonly version: bigint;
  readonly deleted: boolean;
  readonly source: Readonly<Record<string, unknown>>;
}

/** What one index's operations share: its column list's field prefixes and key columns, its action's start. */
interface Layout {
  readonly columns: readonly TargetColumn[];
  /** `"<name>":` of each column. */
  readonly fields: readonly string[];
  readonly keys: readonly string[];
  readonly actionStart: string;
}

const VERSION_FIELD = `${JSON.stringify(VERSION_COLUMN)}:`;
const DELETED_FIELD = `${JSON.stringify(DELETED_COLUMN)}:`;

/** One layout per index name and column list (an index's columns are a new array after each mapping change). */
const layouts = new WeakMap<readonly TargetColumn[], Map<string, Layout>>();

function layoutOf(physical: string, columns: readonly TargetColumn[]): Layout {
  let byIndex = layouts.get(columns);
  if (byIndex === undefined) {
    byIndex = new Map();
    layouts.set(columns, byIndex);
  }
  let layout = byIndex.get(physical);
  if (layout === undefined) {
    layout = {
      columns,
      fields: columns.map((column) => `${JSON.stringify(column.name)}:`),
      keys: columns.filter((column) => column.key).map((column) => column.name),
      actionStart: `{"index":{"_index":${JSON.stringify(physical)},"_id":`,
    };
    byIndex.set(physical, layout);
  }
  return layout;
}

/**
 * The bulk operation for one change, its two lines with their newlines: index the row (or its
 * tombstone) with the change's version as external version. Throws ValueRejected (naming the
 * column where one is at fault) for a row Elasticsearch cannot take.
 */
export function indexOperation(physical: string, columns: readonly TargetColumn[], change: RowChange, stored: StoredDocument | undefined): string {
  if (change.version < 0n || change.version > MAX_VERSION) throw new ValueRejected(`version ${change.version} is outside Elasticsearch's external versions (0..2^63-1)`);
  const layout = layoutOf(physical, columns);
  const id = keyId(change.key, layout.keys);
  if (Buffer.byteLength(id) > MAX_ID_BYTES) throw new ValueRejected(`the key is longer than Elasticsearch's ${MAX_ID_BYTES}-byte document id limit`);
  let document = "{";
  for (let i = 0; i < columns.length; i++) {
    const column = columns[i]!;
    if (change.deleted && !column.key) continue;
    document += `${layout.fields[i]!}${encodeJson(fieldValue(column, change, stored))},`;
  }
  document += `${VERSION_FIELD}${change.version},${DELETED_FIELD}${change.deleted ? "true" : "false"}}`;
  const action = `${layout.actionStart}${JSON.stringify(id)},"version":${change.version},"version_type":"external"}}`;
  return `${action}\n${document}\n`;
}

function fieldValue(column: TargetColumn, change: RowChange, stored: StoredDocument | undefined): unknown {
  const value = cellOf(change, column);
  if (value === UNCHANGED) {
    if (column.key) throw new ValueRejected("a key column cannot be unchanged-TOAST", column.name);
    return stored && !stored.deleted ? (stored.source[column.name] ?? null) : null;
  }
  try {
    return documentValue(column.type, value);
  } catch (error) {
    if (error instanceof ValueRejected) throw new ValueRejected(error.message, column.name);
    throw error;
  }
}
