/**
 * MariaDB's COMPRESSED columns (VARCHAR … COMPRESSED, BLOB/TEXT … COMPRESSED) as MariaDB 10.11
 * logged them: their own binlog types with the metadata of VARCHAR and BLOB, counted among the
 * character columns of the charset metadata, and values that carry a header byte (stored as is,
 * or zlib-compressed with the original length).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { hex } from "../../postgres/protocol/hex-fixture.ts";
import { bindTableMap } from "../schema/table-binding.ts";
import { CollationTable } from "../values/charsets.ts";
import { BinaryReader } from "./binary-reader.ts";
import { ColumnType, EventType } from "./constants.ts";
import { DEFAULT_FORMAT } from "./event-header.ts";
import { readRowChanges, readRowsHeader } from "./rows-event.ts";
import { readTableMap } from "./table-map.ts";

const MARIADB = { ...DEFAULT_FORMAT, serverVersion: "10.11.19-MariaDB-0+deb12u1-log", mariadb: true };

// (id INT PRIMARY KEY, v VARCHAR(50) COMPRESSED, l VARCHAR(300) COMPRESSED CHARACTER SET latin1,
//  b BLOB COMPRESSED, t TEXT COMPRESSED, k CHAR(2) CHARACTER SET latin1), utf8mb4, binlog_row_metadata=FULL.
const TABLE_MAP = hex(`
  47 01 00 00 00 00  01 00                          # table id 327, flags
  10 61 75 64 69 74 5f 64 75 6d 70 5f 32 35 33 31 33 00   # "audit_dump_25313"
  01 63 00                                          # "c"
  06  03 8d 8d 8c 8c fe                             # INT VARCHAR_COMPRESSED×2 BLOB_COMPRESSED×2 STRING
  08  c9 00  2d 01  02  02  fe 02                   # 201 and 301 bytes (a header byte more than 200 and 300), 2-byte lengths, char(2)
  3e                                                # nullable: all but id
  01 01 00                                          # SIGNEDNESS: id signed
  03 05 2d 08 3f 2d 08                              # COLUMN_CHARSET: v 45, l 8, b 63, t 45, k 8
  04 0d 02 69 64 01 76 01 6c 01 62 01 74 01 6b      # COLUMN_NAME id v l b t k
  08 01 00                                          # SIMPLE_PRIMARY_KEY id
`);

const ROW_1 = hex(`
  47 01 00 00 00 00  01 00  06  3f  c0              # table 327, STMT_END, 6 columns, all present, no nulls
  01 00 00 00                                       # id 1
  33 00 ${"61 ".repeat(50)}                         # v: 51 bytes, header 00 (stored as is), 'a'×50
  0a 00  8a 01 2c 4b 4a 1a 05 c4 02 00              # l: 10 bytes, header 8a (zlib, raw deflate, 2 length bytes) 300, deflated 'b'×300
  08 00  89 64 4b 4e a6 3d 00 00                    # b: 8 bytes, header 89 (zlib, raw deflate, 1 length byte) 100, deflated 'c'×100
  02 00  00 78                                      # t: 'x' as is
  01 ff                                             # k: latin1 ÿ
`);

const ROW_2 = hex(`47 01 00 00 00 00  01 00  06  3f  c0  02 00 00 00  00  00 00  00 00  00 00  00`);

test("reads the table map of COMPRESSED columns: VARCHAR and BLOB metadata, and the CHAR after them keeps its own charset", () => {
  const map = readTableMap(new BinaryReader(TABLE_MAP), MARIADB, CollationTable.builtIn());
  assert.deepEqual(
    map.columns.map((c) => [c.name, c.type, c.realType, c.length, c.collation, c.compressed === true]),
    [
      ["id", ColumnType.LONG, ColumnType.LONG, 0, undefined, false],
      ["v", ColumnType.MARIADB_VARCHAR_COMPRESSED, ColumnType.VARCHAR, 201, 45, true],
      ["l", ColumnType.MARIADB_VARCHAR_COMPRESSED, ColumnType.VARCHAR, 301, 8, true],
      ["b", ColumnType.MARIADB_BLOB_COMPRESSED, ColumnType.BLOB, 2, 63, true],
      ["t", ColumnType.MARIADB_BLOB_COMPRESSED, ColumnType.BLOB, 2, 45, true],
      ["k", ColumnType.STRING, ColumnType.STRING, 2, 8, false],
    ],
  );
});

test("decodes COMPRESSED values, stored as is or zlib-compressed, and empty ones; the schema from the table map alone names the declared types", () => {
  const collations = CollationTable.builtIn();
  const map = readTableMap(new BinaryReader(TABLE_MAP), MARIADB, collations);
  const bound = bindTableMap(map, null, { sourceName: "s", collations, zeroDates: "null", mariadb: true });
  assert.ok(bound.ok);
  assert.deepEqual(bound.binding.schema.columns.map((c) => [c.name, c.dbType]), [["id", "int"], ["v", "varchar(50)"], ["l", "varchar(300)"], ["b", "blob"], ["t", "text"], ["k", "char(2)"]]);
  const rows = [ROW_1, ROW_2].map((event) => {
    const reader = new BinaryReader(event);
    const header = readRowsHeader(reader, MARIADB, EventType.WRITE_ROWS_V1);
    return readRowChanges(reader, header, bound.binding.columns)[0]!.after;
  });
  assert.deepEqual(rows, [
    { id: 1, v: "a".repeat(50), l: "b".repeat(300), b: new Uint8Array(100).fill(0x63), t: "x", k: "ÿ" },
    { id: 2, v: "", l: "", b: new Uint8Array(0), t: "", k: "" },
  ]);
});

test("a COMPRESSED value over the decompression limit is left out as null and named; the rest of its row and the next rows still read", () => {
  const collations = CollationTable.builtIn();
  const map = readTableMap(new BinaryReader(TABLE_MAP), MARIADB, collations);
  // l states 300 bytes, b 100: only l is over.
  const bound = bindTableMap(map, null, { sourceName: "s", collations, zeroDates: "null", mariadb: true, decompressionLimit: 200 });
  assert.ok(bound.ok);
  // One event: ROW_1's row, then ROW_2's (after its 10-byte header).
  const reader = new BinaryReader(Buffer.concat([ROW_1, ROW_2.subarray(10)]));
  const header = readRowsHeader(reader, MARIADB, EventType.WRITE_ROWS_V1);
  const changes = readRowChanges(reader, header, bound.binding.columns);
  assert.deepEqual(changes.map((c) => c.after), [
    { id: 1, v: "a".repeat(50), l: null, b: new Uint8Array(100).fill(0x63), t: "x", k: "ÿ" },
    { id: 2, v: "", l: "", b: new Uint8Array(0), t: "", k: "" },
  ]);
  assert.deepEqual(changes[0]!.tooLarge?.map((v) => [v.column, v.error.stated, v.error.compressedBytes, v.error.limit]), [["l", 300, 10, 200]]);
  assert.equal(changes[1]!.tooLarge, undefined);
});
