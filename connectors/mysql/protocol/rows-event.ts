/**
 * WRITE/UPDATE/DELETE_ROWS events (v1 and v2) and PARTIAL_UPDATE_ROWS: the table id, which
 * columns each image carries, then the row images -- per image a null bitmap over the present
 * columns and the values of the non-null ones. Every image starts at its own byte offset in the
 * event, which Sluice uses to give each row change its own position.
 */
import type { ColumnValue } from "../../contracts.ts";
import { applyJsonDiffs, readJsonDiffs } from "../values/json-diff.ts";
import type { JsonDiff } from "../values/json-diff.ts";
import { decodeJsonBinary, printJson } from "../values/json-binary.ts";
import type { ValueDecoder } from "../values/column-decoder.ts";
import type { BinaryReader } from "./binary-reader.ts";
import { DecompressionLimitError } from "./decompression-limit.ts";
import { bitIsSet, bitsSet } from "./binary-reader.ts";
import { ROWS_EVENTS } from "./constants.ts";
import type { RowsKind } from "./constants.ts";
import { postHeaderLength } from "./event-header.ts";
import type { FormatDescription } from "./event-header.ts";

export interface RowsEventHeader {
  readonly kind: RowsKind;
  readonly partial: boolean;
  /** MariaDB's log_bin_compress: the row images are compressed (the event parser hands on a reader of them inflated). */
  readonly compressed: boolean;
  readonly tableId: number;
  readonly flags: number;
  readonly columnCount: number;
  /** Columns present in the (before) image. */
  readonly present: Uint8Array;
  /** Columns present in the after image of updates. */
  readonly presentAfter: Uint8Array | null;
}

/** STMT_END_F: the last rows event of its statement (the table maps may be dropped after it). */
export const STMT_END_FLAG = 0x1;

export function readRowsHeader(reader: BinaryReader, format: FormatDescription, type: number): RowsEventHeader {
  const spec = ROWS_EVENTS.get(type);
  if (spec === undefined) throw new RangeError(`event type ${type} is not a rows event`);
  const postHeader = postHeaderLength(format, type, spec.v2 ? 10 : 8);
  const tableId = postHeader === 6 ? reader.u32() : reader.u48();
  const flags = reader.u16();
  if (spec.v2) {
    const extraLength = reader.u16();
    reader.skip(extraLength - 2);
  }
  const columnCount = reader.lenenc();
  const present = reader.bitmap(columnCount);
  const presentAfter = spec.kind === "update" ? reader.bitmap(columnCount) : null;
  return { kind: spec.kind, partial: spec.partial, compressed: spec.compressed, tableId, flags, columnCount, present, presentAfter };
}

/** How to read one column of the table's row images. */
export interface RowColumn {
  readonly name: string;
  readonly decode: ValueDecoder;
  /** MySQL JSON column (a partial update may carry diffs for it). */
  readonly json: boolean;
  /** Bytes of the JSON length prefix. */
  readonly jsonLengthBytes: number;
  /** Read past, not delivered (MariaDB's hidden hash columns, TableDefinition.hiddenColumns). */
  readonly hidden?: boolean;
}

export interface RowChange {
  readonly before: Record<string, ColumnValue> | null;
  readonly after: Record<string, ColumnValue> | null;
  /** Offset in the event of the first image of this change. */
  readonly offset: number;
  /** Offset in the event of the after image (updates), else `offset`. */
  readonly afterOffset: number;
  /**
   * Partial JSON updates whose document is not in the before image (binlog_row_image other than
   * FULL), left out of `after`; only with `keepUnappliedJsonDiffs`, otherwise they are an error.
   */
  readonly unappliedJsonDiffs?: Readonly<Record<string, readonly JsonDiff[]>>;
  /** COMPRESSED values over the decompression limit, left out of the images as null: the change cannot be delivered whole. */
  readonly tooLarge?: readonly TooLargeValue[];
}

/** A MariaDB COMPRESSED value whose stated size is over the decompression limit (decompression-limit.ts). */
export interface TooLargeValue {
  readonly column: string;
  readonly error: DecompressionLimitError;
}

export interface ReadRowsOptions {
  readonly keepUnappliedJsonDiffs?: boolean;
}

/** Reads every row change of a rows event; `reader` is positioned after the header. */
export function readRowChanges(reader: BinaryReader, header: RowsEventHeader, columns: readonly RowColumn[], options: ReadRowsOptions = {}): RowChange[] {
  if (header.columnCount > columns.length) {
    throw new RangeError(`rows event has ${header.columnCount} columns, the table map ${columns.length}`);
  }
  const changes: RowChange[] = [];
  const presentCount = bitsSet(header.present, header.columnCount);
  const afterCount = header.presentAfter === null ? 0 : bitsSet(header.presentAfter, header.columnCount);
  const jsonColumns = columns.filter((c) => c.json).length;
  const jsonRanges = header.partial ? new Int32Array(header.columnCount * 2) : null;
  // Filled by readImage, emptied after each change that has any.
  const tooLarge: TooLargeValue[] = [];
  while (reader.remaining > 0) {
    const offset = reader.pos;
    let change: RowChange;
    if (header.kind === "write") {
      change = { before: null, after: readImage(reader, columns, header.columnCount, header.present, presentCount, null, null, null, tooLarge), offset, afterOffset: offset };
    } else if (header.kind === "delete") {
      change = { before: readImage(reader, columns, header.columnCount, header.present, presentCount, null, null, null, tooLarge), after: null, offset, afterOffset: offset };
    } else {
      jsonRanges?.fill(-1);
      const before = readImage(reader, columns, header.columnCount, header.present, presentCount, jsonRanges, null, null, tooLarge);
      const afterOffset = reader.pos;
      let partialBits: Uint8Array | null = null;
      if (header.partial) {
        const options = reader.lenenc();
        if (options & 1) partialBits = reader.bitmap(jsonColumns);
      }
      const unapplied: Record<string, JsonDiff[]> | null = options.keepUnappliedJsonDiffs === true ? {} : null;
      const after = readImage(reader, columns, header.columnCount, header.presentAfter!, afterCount, jsonRanges, partialBits, unapplied, tooLarge);
      change = { before, after, offset, afterOffset };
      if (unapplied !== null && Object.keys(unapplied).length > 0) change = { ...change, unappliedJsonDiffs: unapplied };
    }
    if (tooLarge.length > 0) {
      change = { ...change, tooLarge: tooLarge.splice(0) };
    }
    changes.push(change);
  }
  return changes;
}

function readImage(
  reader: BinaryReader,
  columns: readonly RowColumn[],
  columnCount: number,
  present: Uint8Array,
  presentCount: number,
  jsonRanges: Int32Array | null,
  partialBits: Uint8Array | null,
  unapplied: Record<string, JsonDiff[]> | null = null,
  tooLarge: TooLargeValue[] | null = null,
): Record<string, ColumnValue> {
  const nulls = reader.bitmap(presentCount);
  const row: Record<string, ColumnValue> = {};
  let nullIndex = 0;
  let jsonIndex = 0;
  for (let i = 0; i < columnCount; i++) {
    const column = columns[i]!;
    const partial = partialBits !== null && column.json && bitIsSet(partialBits, jsonIndex);
    if (column.json) jsonIndex++;
    if (!bitIsSet(present, i)) continue;
    if (bitIsSet(nulls, nullIndex++)) {
      if (column.hidden !== true) row[column.name] = null;
      continue;
    }
    if (partial) {
      const value = applyPartialJson(reader, column, jsonRanges!, i, unapplied);
      if (value !== null) row[column.name] = value;
      continue;
    }
    const start = reader.pos;
    let value: ColumnValue;
    try {
      value = column.decode(reader);
    } catch (error) {
      // The decoder read past the value before refusing it, so the rest of the row still reads.
      if (tooLarge === null || !(error instanceof DecompressionLimitError)) throw error;
      tooLarge.push({ column: column.name, error });
      value = null;
    }
    if (column.hidden !== true) row[column.name] = value;
    if (jsonRanges !== null && column.json && partialBits === null) {
      jsonRanges[i * 2] = start + column.jsonLengthBytes;
      jsonRanges[i * 2 + 1] = reader.pos;
    }
  }
  return row;
}

function applyPartialJson(reader: BinaryReader, column: RowColumn, jsonRanges: Int32Array, index: number, unapplied: Record<string, JsonDiff[]> | null): string | null {
  const length = reader.uintLE(column.jsonLengthBytes);
  reader.need(length, "json diff");
  const diffs = readJsonDiffs(reader.bytes, reader.pos, reader.pos + length);
  reader.pos += length;
  const start = jsonRanges[index * 2]!;
  if (start < 0 && unapplied !== null) {
    unapplied[column.name] = diffs;
    return null;
  }
  if (start < 0) throw new RangeError(`column ${column.name}: a partial JSON update whose document is not in the before image; set binlog_row_image=FULL`);
  const document = decodeJsonBinary(reader.bytes, start, jsonRanges[index * 2 + 1]!);
  return printJson(applyJsonDiffs(document, diffs));
}
