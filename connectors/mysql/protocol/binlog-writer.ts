/**
 * Writes binlog events byte by byte -- MariaDB-style GTID events, QUERY, XID, TABLE_MAP with
 * optional metadata, v1/v2 rows events -- with real headers, positions and CRC32s. For unit tests of
 * the decoders and for the decode benchmark; Sluice itself never writes binlogs.
 */
import { crc32 } from "node:zlib";
import { BINLOG_MAGIC } from "./binlog-file.ts";
import { EventType } from "./constants.ts";

export interface WriterOptions {
  readonly serverId?: number;
  readonly checksum?: boolean;
  readonly timestamp?: number;
}

/** A length-encoded integer. */
export function lenenc(value: number): Buffer {
  if (value < 0xfb) return Buffer.from([value]);
  if (value <= 0xffff) return Buffer.from([0xfc, value & 0xff, value >> 8]);
  if (value <= 0xffffff) return Buffer.from([0xfd, value & 0xff, (value >> 8) & 0xff, value >> 16]);
  const out = Buffer.alloc(9);
  out[0] = 0xfe;
  out.writeBigUInt64LE(BigInt(value), 1);
  return out;
}

export function lenencString(text: string | Buffer): Buffer {
  const bytes = typeof text === "string" ? Buffer.from(text, "utf8") : text;
  return Buffer.concat([lenenc(bytes.length), bytes]);
}

/** Post-header lengths of MariaDB 10.11 (index = type - 1), as its FORMAT_DESCRIPTION_EVENT lists them. */
const POST_HEADER_LENGTHS = (() => {
  const lengths = new Uint8Array(EventType.MARIADB_DELETE_ROWS_COMPRESSED);
  lengths[EventType.QUERY - 1] = 13;
  lengths[EventType.ROTATE - 1] = 8;
  lengths[EventType.FORMAT_DESCRIPTION - 1] = 84;
  lengths[EventType.TABLE_MAP - 1] = 8;
  for (const type of [EventType.WRITE_ROWS_V1, EventType.UPDATE_ROWS_V1, EventType.DELETE_ROWS_V1]) lengths[type - 1] = 8;
  for (const type of [EventType.WRITE_ROWS_V2, EventType.UPDATE_ROWS_V2, EventType.DELETE_ROWS_V2]) lengths[type - 1] = 10;
  lengths[EventType.MARIADB_GTID - 1] = 19;
  lengths[EventType.MARIADB_GTID_LIST - 1] = 4;
  return lengths;
})();

export class BinlogWriter {
  readonly serverId: number;
  readonly checksum: boolean;
  timestamp: number;
  /** Offset of the next event in the file. */
  offset = BINLOG_MAGIC.length;

  constructor(options: WriterOptions = {}) {
    this.serverId = options.serverId ?? 1;
    this.checksum = options.checksum ?? true;
    this.timestamp = options.timestamp ?? 1_700_000_000;
  }

  /** A whole event: header (with the end position), body, CRC32. */
  event(type: number, body: Buffer, flags = 0): Buffer {
    const size = 19 + body.length + (this.checksum ? 4 : 0);
    const out = Buffer.alloc(size);
    out.writeUInt32LE(this.timestamp, 0);
    out.writeUInt8(type, 4);
    out.writeUInt32LE(this.serverId, 5);
    out.writeUInt32LE(size, 9);
    out.writeUInt32LE(this.offset + size, 13);
    out.writeUInt16LE(flags, 17);
    body.copy(out, 19);
    if (this.checksum) out.writeUInt32LE(crc32(out.subarray(0, size - 4)), size - 4);
    this.offset += size;
    return out;
  }

  formatDescription(serverVersion = "10.11.19-MariaDB-log"): Buffer {
    const version = Buffer.alloc(50);
    version.write(serverVersion, "latin1");
    const head = Buffer.alloc(2 + 50 + 4 + 1);
    head.writeUInt16LE(4, 0);
    version.copy(head, 2);
    head.writeUInt32LE(this.timestamp, 52);
    head.writeUInt8(19, 56);
    const algorithm = Buffer.from([this.checksum ? 1 : 0]);
    // Without a checksum the FDE still ends with the algorithm byte and four (unused) bytes.
    const body = Buffer.concat([head, Buffer.from(POST_HEADER_LENGTHS), algorithm, this.checksum ? Buffer.alloc(0) : Buffer.alloc(4)]);
    return this.event(EventType.FORMAT_DESCRIPTION, body);
  }

  rotate(nextFile: string, position = 4): Buffer {
    const body = Buffer.alloc(8 + Buffer.byteLength(nextFile));
    body.writeBigUInt64LE(BigInt(position), 0);
    body.write(nextFile, 8);
    return this.event(EventType.ROTATE, body);
  }

  mariadbGtid(seq: bigint, domain = 0, flags = 0): Buffer {
    const body = Buffer.alloc(8 + 4 + 1 + 6);
    body.writeBigUInt64LE(seq, 0);
    body.writeUInt32LE(domain, 8);
    body.writeUInt8(flags, 12);
    return this.event(EventType.MARIADB_GTID, body);
  }

  query(schema: string, sql: string): Buffer {
    const head = Buffer.alloc(13);
    head.writeUInt32LE(1, 0);
    head.writeUInt8(Buffer.byteLength(schema), 8);
    head.writeUInt16LE(0, 11);
    return this.event(EventType.QUERY, Buffer.concat([head, Buffer.from(schema), Buffer.from([0]), Buffer.from(sql)]));
  }

  /** HEARTBEAT_LOG_EVENT: the server is idle at the current offset of `file`; not part of the file, so the offset stays. */
  heartbeat(file: string): Buffer {
    const at = this.offset;
    const size = 19 + Buffer.byteLength(file) + (this.checksum ? 4 : 0);
    this.offset = at - size;
    try {
      return this.event(EventType.HEARTBEAT, Buffer.from(file));
    } finally {
      this.offset = at;
    }
  }

  /** XA_PREPARE_LOG_EVENT of a two-phase XA transaction (its xid: the bytes of gtrid and bqual, and formatId). */
  xaPrepare(gtrid: string, bqual = "", formatId = 1): Buffer {
    const head = Buffer.alloc(13);
    head.writeUInt8(0, 0);
    head.writeInt32LE(formatId, 1);
    head.writeUInt32LE(Buffer.byteLength(gtrid), 5);
    head.writeUInt32LE(Buffer.byteLength(bqual), 9);
    return this.event(EventType.XA_PREPARE, Buffer.concat([head, Buffer.from(gtrid), Buffer.from(bqual)]));
  }

  xid(xid: bigint): Buffer {
    const body = Buffer.alloc(8);
    body.writeBigUInt64LE(xid, 0);
    return this.event(EventType.XID, body);
  }

  /** `columns`: type code, metadata bytes, nullable. `optional`: [TLV type, value] pairs. */
  tableMap(tableId: number, database: string, table: string, columns: readonly TableMapColumnSpec[], optional: readonly [number, Buffer][] = []): Buffer {
    const head = Buffer.alloc(8);
    head.writeUIntLE(tableId, 0, 6);
    const metadata = Buffer.concat(columns.map((c) => c.meta));
    const nulls = Buffer.alloc((columns.length + 7) >> 3);
    columns.forEach((c, i) => {
      if (c.nullable) nulls[i >> 3]! |= 1 << (i & 7);
    });
    const body = Buffer.concat([
      head,
      Buffer.from([Buffer.byteLength(database)]),
      Buffer.from(database),
      Buffer.from([0]),
      Buffer.from([Buffer.byteLength(table)]),
      Buffer.from(table),
      Buffer.from([0]),
      lenenc(columns.length),
      Buffer.from(columns.map((c) => c.type)),
      lenenc(metadata.length),
      metadata,
      nulls,
      ...optional.map(([type, value]) => Buffer.concat([Buffer.from([type]), lenenc(value.length), value])),
    ]);
    return this.event(EventType.TABLE_MAP, body);
  }

  /** A v1 (MariaDB) or v2 rows event of whole-row images; each image is [null bitmap, values] already encoded. */
  rows(type: number, tableId: number, columnCount: number, images: readonly Buffer[], flags = 1): Buffer {
    const v2 = type === EventType.WRITE_ROWS_V2 || type === EventType.UPDATE_ROWS_V2 || type === EventType.DELETE_ROWS_V2;
    const head = Buffer.alloc(8 + (v2 ? 2 : 0));
    head.writeUIntLE(tableId, 0, 6);
    head.writeUInt16LE(flags, 6);
    if (v2) head.writeUInt16LE(2, 8);
    const all = Buffer.alloc((columnCount + 7) >> 3, 0xff);
    const update = type === EventType.UPDATE_ROWS_V1 || type === EventType.UPDATE_ROWS_V2;
    return this.event(type, Buffer.concat([head, lenenc(columnCount), all, ...(update ? [all] : []), ...images]));
  }
}

export interface TableMapColumnSpec {
  readonly type: number;
  readonly meta: Buffer;
  readonly nullable: boolean;
}

/** A row image: the null bitmap over `count` columns, then the encoded non-null values. */
export function rowImage(count: number, values: readonly (Buffer | null)[]): Buffer {
  const nulls = Buffer.alloc((count + 7) >> 3);
  values.forEach((value, i) => {
    if (value === null) nulls[i >> 3]! |= 1 << (i & 7);
  });
  return Buffer.concat([nulls, ...values.filter((v): v is Buffer => v !== null)]);
}
