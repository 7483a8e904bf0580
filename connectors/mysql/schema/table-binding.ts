/**
 * Binds a TABLE_MAP event to what Sluice knows of the table, giving the row decoders and the
 * TableSchema of the events. The binlog's own metadata wins for what it carries (signedness,
 * charsets, ENUM/SET members); the table definition from the schema history supplies the rest.
 * A definition that does not fit the table map is stale: with binlog_row_metadata=FULL the table
 * map alone defines the table; otherwise the caller must find a definition that fits.
 */
import type { TableSchema } from "../../contracts.ts";
import { ColumnType, isCharacterType, isEnumOrSet } from "../protocol/constants.ts";
import type { RowColumn } from "../protocol/rows-event.ts";
import type { TableMap, TableMapColumn } from "../protocol/table-map.ts";
import { charsetNamed } from "../values/charsets.ts";
import type { Charset, CollationTable } from "../values/charsets.ts";
import { valueDecoder, zeroDatesOf } from "../values/column-decoder.ts";
import type { ZeroDates } from "../values/column-decoder.ts";
import { isUnsigned, membersOf, typeFitsTableMap, typeFromTableMap } from "./column-types.ts";
import { toTableSchema } from "./table-definition.ts";
import type { ColumnDefinition, TableDefinition } from "./table-definition.ts";

export interface BindingContext {
  readonly sourceName: string;
  readonly collations: CollationTable;
  readonly zeroDates: ZeroDates;
  readonly mariadb: boolean;
  /** The most bytes a COMPRESSED value may inflate to (default: protocol/decompression-limit.ts's). */
  readonly decompressionLimit?: number;
}

export interface TableBinding {
  readonly definition: TableDefinition;
  readonly schema: TableSchema;
  readonly columns: readonly RowColumn[];
}

export type BindResult =
  | { readonly ok: true; readonly binding: TableBinding; /** The definition came from the table map, not the history. */ readonly fromBinlog: boolean }
  | { readonly ok: false; readonly reason: string };

const UTF8MB4 = charsetNamed("utf8mb4");

export function definitionFitsTableMap(definition: TableDefinition, map: TableMap): string | null {
  const hidden = definition.hiddenColumns ?? 0;
  if (definition.columns.length + hidden !== map.columns.length) {
    return `the table map has ${map.columns.length} columns, the known definition ${definition.columns.length}${hidden > 0 ? ` and ${hidden} hidden` : ""}`;
  }
  for (let i = 0; i < definition.columns.length; i++) {
    const column = map.columns[i]!;
    const known = definition.columns[i]!;
    if (map.hasNames && column.name !== known.name) return `column ${i + 1} is ${column.name} in the table map, ${known.name} in the known definition`;
    if (!typeFitsTableMap(known.dbType, column)) return `column ${known.name} (${known.dbType}) does not fit its logged type`;
  }
  return null;
}

export function bindTableMap(map: TableMap, definition: TableDefinition | null, context: BindingContext): BindResult {
  const misfit = definition === null ? "the table is not in the schema history" : definitionFitsTableMap(definition, map);
  if (misfit === null) return { ok: true, binding: bind(map, definition!, context), fromBinlog: false };
  if (!map.hasNames) return { ok: false, reason: misfit };
  const fromMap = definitionFromTableMap(map, definition, context);
  return { ok: true, binding: bind(map, fromMap, context), fromBinlog: true };
}

function columnCharset(column: TableMapColumn, known: ColumnDefinition | undefined, context: BindingContext): Charset {
  if (column.collation !== undefined && context.collations.has(column.collation)) return context.collations.charset(column.collation);
  if (known?.charset != null) return charsetNamed(known.charset);
  return UTF8MB4;
}

function isTextual(column: TableMapColumn): boolean {
  return isCharacterType(column.realType) || isEnumOrSet(column.realType);
}

/** MariaDB's hidden hash columns of long UNIQUE keys, as the binlog names them: the last ones. */
const HIDDEN_HASH_COLUMN = /^DB_ROW_HASH_\d+$/;

function hiddenTrailingColumns(map: TableMap, context: BindingContext): number {
  if (!context.mariadb) return 0;
  let hidden = 0;
  while (hidden < map.columns.length && HIDDEN_HASH_COLUMN.test(map.columns[map.columns.length - 1 - hidden]!.name ?? "")) hidden++;
  return hidden;
}

function definitionFromTableMap(map: TableMap, previous: TableDefinition | null, context: BindingContext): TableDefinition {
  const hidden = hiddenTrailingColumns(map, context);
  const columns = map.columns.slice(0, map.columns.length - hidden).map((column): ColumnDefinition => {
    const name = column.name!;
    const charset = isTextual(column) ? columnCharset(column, undefined, context) : null;
    const binary = charset?.binary === true;
    return {
      name,
      dbType: typeFromTableMap(column, charset?.maxBytesPerChar ?? 1, binary, context.mariadb),
      nullable: column.nullable,
      charset: charset === null ? null : charset.name,
    };
  });
  const names = new Set(columns.map((c) => c.name));
  const key =
    map.primaryKey !== null
      ? map.primaryKey.map((index) => columns[index]?.name).filter((n): n is string => n !== undefined)
      : (previous?.key ?? []).filter((name) => names.has(name));
  return { database: map.database, table: map.table, columns, key, defaultCharset: previous?.defaultCharset ?? null, ...(hidden > 0 ? { hiddenColumns: hidden } : {}) };
}

function bind(map: TableMap, definition: TableDefinition, context: BindingContext): TableBinding {
  const columns = map.columns.map((column, i): RowColumn => {
    const known = definition.columns[i];
    if (known === undefined) return hiddenColumn(column, i, context);
    const charset = isTextual(column) ? columnCharset(column, known, context) : UTF8MB4;
    const decode = valueDecoder(
      column,
      {
        name: known.name,
        dbType: known.dbType,
        unsigned: map.hasSignedness ? column.unsigned === true : isUnsigned(known.dbType),
        charset,
        members: column.members ?? membersOf(known.dbType),
      },
      zeroDatesOf(context.zeroDates, definition.key, known.name),
      context.decompressionLimit,
    );
    return { name: known.name, decode, json: column.realType === ColumnType.JSON, jsonLengthBytes: column.length };
  });
  return { definition, schema: toTableSchema(context.sourceName, definition), columns };
}

/** A hidden column (TableDefinition.hiddenColumns): read as the binlog logs it, not delivered. */
function hiddenColumn(column: TableMapColumn, index: number, context: BindingContext): RowColumn {
  const name = column.name ?? `hidden ${index + 1}`;
  const decode = valueDecoder(column, { name, dbType: "", unsigned: column.unsigned === true, charset: UTF8MB4, members: column.members ?? [] }, context.zeroDates);
  return { name, decode, json: false, jsonLengthBytes: 0, hidden: true };
}
