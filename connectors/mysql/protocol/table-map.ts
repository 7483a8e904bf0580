/**
 * TABLE_MAP_EVENT: which table a table id stands for, its column types with their per-type
 * metadata, nullability, and -- with binlog_row_metadata -- the optional metadata (signedness,
 * charsets, column names, ENUM/SET members, primary key, visibility).
 */
import { charsetNamed } from "../values/charsets.ts";
import type { CollationTable } from "../values/charsets.ts";
import { BinaryReader } from "./binary-reader.ts";
import { BINARY_COLLATION, ColumnType, EventType, isCharacterType, isEnumOrSet, isNumericType } from "./constants.ts";
import { postHeaderLength } from "./event-header.ts";
import type { FormatDescription } from "./event-header.ts";

export interface TableMapColumn {
  /** The type code as logged (STRING also stands for ENUM and SET). */
  readonly type: number;
  /** For STRING: STRING, ENUM or SET; otherwise `type`. */
  readonly realType: number;
  readonly nullable: boolean;
  /** STRING/VARCHAR: most bytes; BLOB/JSON/GEOMETRY/VECTOR/ENUM/SET/FLOAT/DOUBLE: bytes of the length or value. */
  readonly length: number;
  /** NEWDECIMAL precision and scale. */
  readonly precision: number;
  readonly scale: number;
  /** MariaDB COMPRESSED column (logged with its own type, decoded as `realType` VARCHAR or BLOB). */
  readonly compressed?: boolean;
  /** TIME2/DATETIME2/TIMESTAMP2 fractional digits. */
  readonly fsp: number;
  /** BIT: number of bits. */
  readonly bits: number;
  // From optional metadata, when logged:
  readonly name?: string;
  readonly unsigned?: boolean;
  readonly collation?: number;
  readonly members?: readonly string[];
  readonly geometryType?: number;
  readonly visible?: boolean;
  readonly dimensions?: number;
}

export interface TableMap {
  readonly tableId: number;
  readonly database: string;
  readonly table: string;
  readonly columns: readonly TableMapColumn[];
  /** Primary key column indexes from SIMPLE_PRIMARY_KEY / PRIMARY_KEY_WITH_PREFIX; null when not logged. */
  readonly primaryKey: readonly number[] | null;
  /** Whether COLUMN_NAME metadata was logged (binlog_row_metadata=FULL). */
  readonly hasNames: boolean;
  /** Whether SIGNEDNESS metadata was logged (MINIMAL or FULL). */
  readonly hasSignedness: boolean;
  /** Whether charset metadata was logged (MINIMAL or FULL). */
  readonly hasCharsets: boolean;
}

const Metadata = {
  SIGNEDNESS: 1,
  DEFAULT_CHARSET: 2,
  COLUMN_CHARSET: 3,
  COLUMN_NAME: 4,
  SET_STR_VALUE: 5,
  ENUM_STR_VALUE: 6,
  GEOMETRY_TYPE: 7,
  SIMPLE_PRIMARY_KEY: 8,
  PRIMARY_KEY_WITH_PREFIX: 9,
  ENUM_AND_SET_DEFAULT_CHARSET: 10,
  ENUM_AND_SET_COLUMN_CHARSET: 11,
  COLUMN_VISIBILITY: 12,
  VECTOR_DIMENSIONALITY: 13,
} as const;

type MutableColumn = { -readonly [K in keyof TableMapColumn]: TableMapColumn[K] };

/** The table id alone, to skip rows of tables that are not captured without decoding the map. */
export function readTableId(reader: BinaryReader, format: FormatDescription, type: number): number {
  return postHeaderLength(format, type, 8) === 6 ? reader.u32() : reader.u48();
}

/** The table a table map names, read before its columns (which may be what cannot be read). */
export function readTableMapName(reader: BinaryReader, format: FormatDescription): { readonly tableId: number; readonly database: string; readonly table: string } {
  const postHeader = postHeaderLength(format, EventType.TABLE_MAP, 8);
  const tableId = postHeader === 6 ? reader.u32() : reader.u48();
  reader.skip(2);
  const database = reader.utf8(reader.u8());
  reader.skip(1);
  const table = reader.utf8(reader.u8());
  reader.skip(1);
  return { tableId, database, table };
}

export function readTableMap(reader: BinaryReader, format: FormatDescription, collations: CollationTable): TableMap {
  const { tableId, database, table } = readTableMapName(reader, format);
  const count = reader.lenenc();
  const types = reader.bytesView(count);
  const metadataLength = reader.lenenc();
  const metadataEnd = reader.pos + metadataLength;
  const columns: MutableColumn[] = [];
  for (let i = 0; i < count; i++) columns.push(readColumnMetadata(reader, types[i]!));
  if (reader.pos !== metadataEnd) {
    throw new RangeError(`table map of ${database}.${table}: column metadata is ${metadataLength} bytes, read ${metadataLength - (metadataEnd - reader.pos)}`);
  }
  const nullBits = reader.bitmap(count);
  columns.forEach((column, i) => (column.nullable = (nullBits[i >> 3]! & (1 << (i & 7))) !== 0));
  const optional = readOptionalMetadata(reader, columns, collations, format.mariadb);
  return { tableId, database, table, columns, ...optional };
}

function readColumnMetadata(reader: BinaryReader, type: number): MutableColumn {
  const column: MutableColumn = { type, realType: type, nullable: true, length: 0, precision: 0, scale: 0, fsp: 0, bits: 0 };
  switch (type) {
    case ColumnType.FLOAT:
    case ColumnType.DOUBLE:
    case ColumnType.BLOB:
    case ColumnType.TINY_BLOB:
    case ColumnType.MEDIUM_BLOB:
    case ColumnType.LONG_BLOB:
    case ColumnType.GEOMETRY:
    case ColumnType.JSON:
    case ColumnType.VECTOR:
      column.length = reader.u8();
      break;
    case ColumnType.TIME2:
    case ColumnType.DATETIME2:
    case ColumnType.TIMESTAMP2:
      column.fsp = reader.u8();
      break;
    case ColumnType.VARCHAR:
    case ColumnType.VAR_STRING:
      column.length = reader.u16();
      break;
    case ColumnType.MARIADB_VARCHAR_COMPRESSED:
      column.realType = ColumnType.VARCHAR;
      column.compressed = true;
      column.length = reader.u16();
      break;
    case ColumnType.MARIADB_BLOB_COMPRESSED:
      column.realType = ColumnType.BLOB;
      column.compressed = true;
      column.length = reader.u8();
      break;
    case ColumnType.BIT: {
      const partialBits = reader.u8();
      column.bits = reader.u8() * 8 + partialBits;
      break;
    }
    case ColumnType.NEWDECIMAL:
      column.precision = reader.u8();
      column.scale = reader.u8();
      break;
    case ColumnType.ENUM:
    case ColumnType.SET:
      reader.skip(1);
      column.length = reader.u8();
      break;
    case ColumnType.STRING: {
      const byte0 = reader.u8();
      const byte1 = reader.u8();
      if ((byte0 & 0x30) !== 0x30) {
        // CHAR longer than 255 bytes: two length bits hide in the type byte.
        column.realType = byte0 | 0x30;
        column.length = byte1 | (((byte0 & 0x30) ^ 0x30) << 4);
      } else {
        column.realType = byte0;
        column.length = byte1;
      }
      break;
    }
    default:
      break;
  }
  return column;
}

/** Whether a column has a bit in SIGNEDNESS: MariaDB logs one for YEAR too (its YEAR is an unsigned TINYINT inside), MySQL does not. */
function hasSignednessBit(type: number, mariadb: boolean): boolean {
  return isNumericType(type) || (mariadb && type === ColumnType.YEAR);
}

function readOptionalMetadata(reader: BinaryReader, columns: MutableColumn[], collations: CollationTable, mariadb: boolean) {
  let primaryKey: number[] | null = null;
  let hasNames = false;
  let hasSignedness = false;
  let hasCharsets = false;
  // MariaDB counts GEOMETRY columns (binary charset) among the character columns its charset fields index; MySQL does not.
  const characterColumns = columns.filter((c) => isCharacterType(c.realType) || (mariadb && c.realType === ColumnType.GEOMETRY));
  const enumSetColumns = columns.filter((c) => isEnumOrSet(c.realType));
  let enumMembers: Buffer[][] = [];
  let setMembers: Buffer[][] = [];
  while (reader.remaining > 0) {
    const type = reader.u8();
    const length = reader.lenenc();
    const field = new BinaryReader(reader.bytesView(length));
    switch (type) {
      case Metadata.SIGNEDNESS: {
        hasSignedness = true;
        let bit = 0;
        for (const column of columns) {
          if (!hasSignednessBit(column.type, mariadb)) continue;
          column.unsigned = (field.bytes[bit >> 3]! & (0x80 >> (bit & 7))) !== 0;
          bit++;
        }
        break;
      }
      case Metadata.DEFAULT_CHARSET:
      case Metadata.ENUM_AND_SET_DEFAULT_CHARSET: {
        const targets = type === Metadata.DEFAULT_CHARSET ? characterColumns : enumSetColumns;
        hasCharsets ||= type === Metadata.DEFAULT_CHARSET;
        const fallback = field.lenenc();
        for (const column of targets) column.collation = fallback;
        while (field.remaining > 0) {
          const index = field.lenenc();
          const collation = field.lenenc();
          const column = targets[index];
          if (column !== undefined) column.collation = collation;
        }
        break;
      }
      case Metadata.COLUMN_CHARSET:
      case Metadata.ENUM_AND_SET_COLUMN_CHARSET: {
        const targets = type === Metadata.COLUMN_CHARSET ? characterColumns : enumSetColumns;
        hasCharsets ||= type === Metadata.COLUMN_CHARSET;
        for (const column of targets) column.collation = field.lenenc();
        break;
      }
      case Metadata.COLUMN_NAME:
        hasNames = true;
        for (const column of columns) column.name = field.lenencUtf8();
        break;
      case Metadata.SET_STR_VALUE:
      case Metadata.ENUM_STR_VALUE: {
        const lists: Buffer[][] = [];
        while (field.remaining > 0) {
          const memberCount = field.lenenc();
          const members: Buffer[] = [];
          for (let i = 0; i < memberCount; i++) members.push(field.bytesView(field.lenenc()));
          lists.push(members);
        }
        if (type === Metadata.SET_STR_VALUE) setMembers = lists;
        else enumMembers = lists;
        break;
      }
      case Metadata.GEOMETRY_TYPE:
        for (const column of columns) if (column.type === ColumnType.GEOMETRY) column.geometryType = field.lenenc();
        break;
      case Metadata.SIMPLE_PRIMARY_KEY:
        primaryKey = [];
        while (field.remaining > 0) primaryKey.push(field.lenenc());
        break;
      case Metadata.PRIMARY_KEY_WITH_PREFIX:
        primaryKey = [];
        while (field.remaining > 0) {
          primaryKey.push(field.lenenc());
          field.lenenc();
        }
        break;
      case Metadata.COLUMN_VISIBILITY:
        columns.forEach((column, i) => (column.visible = (field.bytes[i >> 3]! & (0x80 >> (i & 7))) !== 0));
        break;
      case Metadata.VECTOR_DIMENSIONALITY:
        for (const column of columns) if (column.type === ColumnType.VECTOR) column.dimensions = field.lenenc();
        break;
      default:
        break;
    }
  }
  assignMembers(columns, ColumnType.ENUM, enumMembers, collations);
  assignMembers(columns, ColumnType.SET, setMembers, collations);
  return { primaryKey, hasNames, hasSignedness, hasCharsets };
}

function assignMembers(columns: MutableColumn[], realType: number, lists: Buffer[][], collations: CollationTable): void {
  let index = 0;
  for (const column of columns) {
    if (column.realType !== realType) continue;
    const list = lists[index++];
    if (list === undefined) continue;
    const collation = column.collation;
    const charset = collation === undefined || collation === BINARY_COLLATION || !collations.has(collation) ? charsetNamed("utf8mb4") : collations.charset(collation);
    column.members = list.map((bytes) => charset.decode(bytes, 0, bytes.length));
  }
}
