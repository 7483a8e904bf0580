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
