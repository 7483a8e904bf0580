import assert from "node:assert/strict";
import { test } from "node:test";
import { hex } from "../../postgres/protocol/hex-fixture.ts";
import { CollationTable } from "../values/charsets.ts";
import { BinaryReader } from "./binary-reader.ts";
import { ColumnType } from "./constants.ts";
import { DEFAULT_FORMAT } from "./event-header.ts";
import { readTableMap } from "./table-map.ts";

test("reads column metadata and every optional metadata field", () => {
  const body = hex(`
    2a 00 00 00 00 00  0100         # table id 42, flags
    01 64 00  01 74 00              # "d", "t"
    06                              # 6 columns
    08 0f fe fe f6 fc               # LONGLONG VARCHAR STRING(enum) STRING(char 300) NEWDECIMAL BLOB
    09                              # 9 metadata bytes
    50 00                           # varchar: 80 bytes
    f7 01                           # enum, 1 byte
    ee 2c                           # char of 300 bytes: length bits in the type byte
    0a 02                           # decimal(10,2)
    02                              # blob, 2 length bytes
    06                              # null bits: columns 1 and 2 nullable
    01 01 80                        # SIGNEDNESS: first numeric column unsigned (MSB first)
    02 03 2d 01 08                  # DEFAULT_CHARSET 45, character column 1 → 8 (latin1)
    04 0d 02 69 64 01 76 01 65 01 63 01 6e 01 62   # COLUMN_NAME id v e c n b
    06 05 02 01 78 01 79            # ENUM_STR_VALUE: [x, y]
    08 01 00                        # SIMPLE_PRIMARY_KEY: column 0
    0c 01 fc                        # COLUMN_VISIBILITY: first six visible
  `);
  const map = readTableMap(new BinaryReader(body), DEFAULT_FORMAT, CollationTable.builtIn());
  assert.equal(map.tableId, 42);
  assert.deepEqual([map.database, map.table], ["d", "t"]);
  assert.deepEqual(
    map.columns.map((c) => [c.realType, c.length, c.nullable, c.unsigned, c.collation, c.name]),
    [
      [ColumnType.LONGLONG, 0, false, true, undefined, "id"],
      [ColumnType.VARCHAR, 80, true, undefined, 45, "v"],
      [ColumnType.ENUM, 1, true, undefined, undefined, "e"],
      [ColumnType.STRING, 300, false, undefined, 8, "c"],
      [ColumnType.NEWDECIMAL, 0, false, false, undefined, "n"],
      [ColumnType.BLOB, 2, false, undefined, 45, "b"],
    ],
  );
  assert.deepEqual(map.columns[2]!.members, ["x", "y"]);
  assert.deepEqual([map.columns[4]!.precision, map.columns[4]!.scale], [10, 2]);
  assert.deepEqual(map.primaryKey, [0]);
  assert.equal(map.hasNames && map.hasSignedness && map.hasCharsets, true);
});

test("MariaDB's SIGNEDNESS has a bit for each YEAR column too (MySQL's does not), so the columns after a YEAR keep their own signedness", () => {
  // A MariaDB 10.11 table map of (a YEAR, b SMALLINT UNSIGNED, c INT, d INT UNSIGNED), as the server logged it.
  const body = hex(`
    62 03 00 00 00 00  0100         # table id 866, flags
    01 64 00  01 74 00              # "d", "t"
    04                              # 4 columns
    0d 02 03 03                     # YEAR SHORT LONG LONG
    00                              # no column metadata
    0f                              # all nullable
    01 01 d0                        # SIGNEDNESS 1101: YEAR unsigned, b unsigned, c signed, d unsigned
    04 08 01 61 01 62 01 63 01 64   # COLUMN_NAME a b c d
  `);
  const mariadb = readTableMap(new BinaryReader(body), { ...DEFAULT_FORMAT, serverVersion: "10.11.6-MariaDB-0+deb12u1-log", mariadb: true }, CollationTable.builtIn());
  assert.deepEqual(mariadb.columns.map((c) => [c.name, c.unsigned === true]), [["a", true], ["b", true], ["c", false], ["d", true]]);
  // MySQL leaves YEAR out of the bitmap: 100 (b unsigned, c signed, d signed).
  const mysqlBody = Buffer.from(body);
  mysqlBody[mysqlBody.length - 11] = 0x80;
  const mysql = readTableMap(new BinaryReader(mysqlBody), DEFAULT_FORMAT, CollationTable.builtIn());
  assert.deepEqual(mysql.columns.map((c) => [c.name, c.unsigned === true]), [["a", false], ["b", true], ["c", false], ["d", false]]);
});

test("MariaDB's charset fields count GEOMETRY among the character columns, so a CHAR after a POINT keeps its own charset", () => {
  // A MariaDB 10.11 table map of (a VARCHAR(5), b JSON, c POINT, d UUID, e INET6, f CHAR(10), g BINARY(4), h ENUM('x'), i TINYTEXT, j BLOB), utf8mb4.
  const body = hex(`
    6a 03 00 00 00 00  0100         # table id 874, flags
    01 64 00  01 74 00              # "d", "t"
    0a                              # 10 columns
    0f fc ff fe fe fe fe fe fc fc   # VARCHAR BLOB GEOMETRY STRING×5 BLOB BLOB
    10                              # 16 metadata bytes
    14 00  04  04  fe 10  fe 10  fe 28  fe 04  f7 01  01  02
    ff 03                           # all nullable
    02 09 3f 00 2d 01 2e 05 2d 07 2d   # DEFAULT_CHARSET binary; character columns 0→45, 1→46, 5→45, 7→45
    07 01 01                        # GEOMETRY_TYPE: point
    04 14 01 61 01 62 01 63 01 64 01 65 01 66 01 67 01 68 01 69 01 6a   # COLUMN_NAME a…j
    0a 01 2d                        # ENUM_AND_SET_DEFAULT_CHARSET 45
    06 03 01 01 78                  # ENUM_STR_VALUE: [x]
  `);
  const map = readTableMap(new BinaryReader(body), { ...DEFAULT_FORMAT, serverVersion: "10.11.6-MariaDB-0+deb12u1-log", mariadb: true }, CollationTable.builtIn());
  const collation = Object.fromEntries(map.columns.filter((c) => c.name !== "c").map((c) => [c.name, c.collation]));
  assert.deepEqual(collation, { a: 45, b: 46, d: 63, e: 63, f: 45, g: 63, h: 45, i: 45, j: 63 });
});
