import assert from "node:assert/strict";
import { test } from "node:test";
import { BinaryReader } from "../protocol/binary-reader.ts";
import { ColumnType, EventType } from "../protocol/constants.ts";
import { DEFAULT_FORMAT } from "../protocol/event-header.ts";
import { readRowChanges, readRowsHeader } from "../protocol/rows-event.ts";
import type { TableMap, TableMapColumn } from "../protocol/table-map.ts";
import { CollationTable } from "../values/charsets.ts";
import { bindTableMap } from "./table-binding.ts";
import type { TableDefinition } from "./table-definition.ts";

const column = (type: number, fields: Partial<TableMapColumn> = {}): TableMapColumn => ({ type, realType: type, nullable: true, length: 0, precision: 0, scale: 0, fsp: 0, bits: 0, ...fields });
const context = { sourceName: "s", collations: CollationTable.builtIn(), zeroDates: "null" as const, mariadb: true };

test("a MariaDB table's hidden hash column (UNIQUE key on TEXT), last in the table map, is read past: known from information_schema without binlog names, or by its name", () => {
  // (id INT, b TEXT, DB_ROW_HASH_1 BIGINT UNSIGNED) as binlog_row_metadata=NO_LOG logs it: no names, no signedness.
  const map: TableMap = { tableId: 7, database: "d", table: "t", columns: [column(ColumnType.LONG), column(ColumnType.BLOB, { length: 2 }), column(ColumnType.LONGLONG)], primaryKey: null, hasNames: false, hasSignedness: false, hasCharsets: false };
  const definition: TableDefinition = { database: "d", table: "t", columns: [{ name: "id", dbType: "int", nullable: false, charset: null }, { name: "b", dbType: "text", nullable: true, charset: "utf8mb4" }], key: ["id"], defaultCharset: "utf8mb4", hiddenColumns: 1 };
  // WRITE_ROWS_V1 of (5, 'xy', hash).
  const event = Buffer.from("070000000000" + "0100" + "03" + "07" + "00" + "05000000" + "0200" + "7879" + "1122334455667788", "hex");
  const bound = bindTableMap(map, definition, context);
  assert.ok(bound.ok && !bound.fromBinlog);
  const reader = new BinaryReader(event);
  const header = readRowsHeader(reader, { ...DEFAULT_FORMAT, mariadb: true }, EventType.WRITE_ROWS_V1);
  assert.deepEqual(readRowChanges(reader, header, bound.binding.columns)[0]!.after, { id: 5, b: "xy" });
  assert.deepEqual(bound.binding.schema.columns.map((c) => c.name), ["id", "b"]);
  // With binlog_row_metadata=FULL and no known definition, the hash column is recognised by its name.
  const named: TableMap = { ...map, columns: map.columns.map((c, i) => ({ ...c, name: ["id", "b", "DB_ROW_HASH_1"][i]! })), primaryKey: [0], hasNames: true };
  const fromBinlog = bindTableMap(named, null, context);
  assert.ok(fromBinlog.ok && fromBinlog.fromBinlog);
  assert.deepEqual([fromBinlog.binding.definition.columns.map((c) => c.name), fromBinlog.binding.definition.hiddenColumns], [["id", "b"], 1]);
});
