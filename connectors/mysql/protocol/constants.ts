/** Binlog event type codes (MySQL and MariaDB) and column type codes of TABLE_MAP events. */

export const EventType = {
  QUERY: 2,
  STOP: 3,
  ROTATE: 4,
  INTVAR: 5,
  RAND: 13,
  USER_VAR: 14,
  FORMAT_DESCRIPTION: 15,
  XID: 16,
  TABLE_MAP: 19,
  WRITE_ROWS_V1: 23,
  UPDATE_ROWS_V1: 24,
  DELETE_ROWS_V1: 25,
  INCIDENT: 26,
  HEARTBEAT: 27,
  ROWS_QUERY: 29,
  WRITE_ROWS_V2: 30,
  UPDATE_ROWS_V2: 31,
  DELETE_ROWS_V2: 32,
  GTID: 33,
  ANONYMOUS_GTID: 34,
  PREVIOUS_GTIDS: 35,
  XA_PREPARE: 38,
  PARTIAL_UPDATE_ROWS: 39,
  TRANSACTION_PAYLOAD: 40,
  HEARTBEAT_V2: 41,
  GTID_TAGGED: 42,
  MARIADB_ANNOTATE_ROWS: 160,
  MARIADB_BINLOG_CHECKPOINT: 161,
  MARIADB_GTID: 162,
  MARIADB_GTID_LIST: 163,
  MARIADB_START_ENCRYPTION: 164,
  MARIADB_QUERY_COMPRESSED: 165,
  MARIADB_WRITE_ROWS_COMPRESSED_V1: 166,
  MARIADB_UPDATE_ROWS_COMPRESSED_V1: 167,
  MARIADB_DELETE_ROWS_COMPRESSED_V1: 168,
  MARIADB_WRITE_ROWS_COMPRESSED: 169,
  MARIADB_UPDATE_ROWS_COMPRESSED: 170,
  MARIADB_DELETE_ROWS_COMPRESSED: 171,
} as const;

export type RowsKind = "write" | "update" | "delete";

/**
 * The rows events Sluice decodes, with their kind, whether they carry the v2 extra-data header,
 * and whether their row images are compressed (MariaDB's log_bin_compress).
 */
export const ROWS_EVENTS: ReadonlyMap<number, { readonly kind: RowsKind; readonly v2: boolean; readonly partial: boolean; readonly compressed: boolean }> = new Map([
  [EventType.WRITE_ROWS_V1, { kind: "write", v2: false, partial: false, compressed: false }],
  [EventType.UPDATE_ROWS_V1, { kind: "update", v2: false, partial: false, compressed: false }],
  [EventType.DELETE_ROWS_V1, { kind: "delete", v2: false, partial: false, compressed: false }],
  [EventType.WRITE_ROWS_V2, { kind: "write", v2: true, partial: false, compressed: false }],
  [EventType.UPDATE_ROWS_V2, { kind: "update", v2: true, partial: false, compressed: false }],
  [EventType.DELETE_ROWS_V2, { kind: "delete", v2: true, partial: false, compressed: false }],
  [EventType.PARTIAL_UPDATE_ROWS, { kind: "update", v2: true, partial: true, compressed: false }],
  [EventType.MARIADB_WRITE_ROWS_COMPRESSED_V1, { kind: "write", v2: false, partial: false, compressed: true }],
  [EventType.MARIADB_UPDATE_ROWS_COMPRESSED_V1, { kind: "update", v2: false, partial: false, compressed: true }],
  [EventType.MARIADB_DELETE_ROWS_COMPRESSED_V1, { kind: "delete", v2: false, partial: false, compressed: true }],
  [EventType.MARIADB_WRITE_ROWS_COMPRESSED, { kind: "write", v2: true, partial: false, compressed: true }],
  [EventType.MARIADB_UPDATE_ROWS_COMPRESSED, { kind: "update", v2: true, partial: false, compressed: true }],
  [EventType.MARIADB_DELETE_ROWS_COMPRESSED, { kind: "delete", v2: true, partial: false, compressed: true }],
] as const);

export const ColumnType = {
  DECIMAL: 0,
  TINY: 1,
  SHORT: 2,
  LONG: 3,
  FLOAT: 4,
  DOUBLE: 5,
  NULL: 6,
  TIMESTAMP: 7,
  LONGLONG: 8,
  INT24: 9,
  DATE: 10,
  TIME: 11,
  DATETIME: 12,
  YEAR: 13,
  NEWDATE: 14,
  VARCHAR: 15,
  BIT: 16,
  TIMESTAMP2: 17,
  DATETIME2: 18,
  TIME2: 19,
  TYPED_ARRAY: 20,
  /** MariaDB's BLOB/TEXT ... COMPRESSED: BLOB's metadata, values with a compression header byte. */
  MARIADB_BLOB_COMPRESSED: 140,
  /** MariaDB's VARCHAR ... COMPRESSED: VARCHAR's metadata (the header byte counted in the length). */
  MARIADB_VARCHAR_COMPRESSED: 141,
  VECTOR: 242,
  JSON: 245,
  NEWDECIMAL: 246,
  ENUM: 247,
  SET: 248,
  TINY_BLOB: 249,
  MEDIUM_BLOB: 250,
  LONG_BLOB: 251,
  BLOB: 252,
  VAR_STRING: 253,
  STRING: 254,
  GEOMETRY: 255,
} as const;

export function columnTypeName(type: number): string {
  for (const [name, code] of Object.entries(ColumnType)) if (code === type) return name;
  return `type ${type}`;
}

/** Columns whose signedness the SIGNEDNESS optional metadata covers (MySQL's set; MariaDB's adds YEAR, see table-map.ts). */
export function isNumericType(type: number): boolean {
  return (
    type === ColumnType.TINY ||
    type === ColumnType.SHORT ||
    type === ColumnType.INT24 ||
    type === ColumnType.LONG ||
    type === ColumnType.LONGLONG ||
    type === ColumnType.NEWDECIMAL ||
    type === ColumnType.FLOAT ||
    type === ColumnType.DOUBLE
  );
}

/** Columns the DEFAULT_CHARSET / COLUMN_CHARSET optional metadata covers (by their real type; MariaDB's add GEOMETRY, see table-map.ts). */
export function isCharacterType(realType: number): boolean {
  return (
    realType === ColumnType.STRING ||
    realType === ColumnType.VAR_STRING ||
    realType === ColumnType.VARCHAR ||
    realType === ColumnType.BLOB ||
    realType === ColumnType.TINY_BLOB ||
    realType === ColumnType.MEDIUM_BLOB ||
    realType === ColumnType.LONG_BLOB
  );
}

export function isEnumOrSet(realType: number): boolean {
  return realType === ColumnType.ENUM || realType === ColumnType.SET;
}

export const BINARY_COLLATION = 63;
