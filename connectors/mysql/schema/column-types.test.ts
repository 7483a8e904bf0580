import assert from "node:assert/strict";
import { test } from "node:test";
import { ColumnType } from "../protocol/constants.ts";
import type { TableMapColumn } from "../protocol/table-map.ts";
import { membersOf, normalizeColumnType, typeFitsTableMap, typeFromTableMap } from "./column-types.ts";

test("normalizes COLUMN_TYPE of MySQL 5.7, 8 and MariaDB to one form", () => {
  const cases: [string, string][] = [
    ["int(11)", "int"],
    ["INT(10) UNSIGNED ZEROFILL", "int unsigned"],
    ["tinyint(1)", "tinyint"],
    ["bigint unsigned", "bigint unsigned"],
    ["decimal(10,2) unsigned", "decimal(10,2) unsigned"],
    ["NUMERIC", "decimal(10,0)"],
    ["float(7,3)", "float"],
    ["float(30)", "double"],
    ["double precision", "double"],
    ["datetime(0)", "datetime"],
    ["timestamp(6)", "timestamp(6)"],
    ["year(4)", "year"],
    ["char", "char(1)"],
    ["enum('A','b''c')", "enum('A','b''c')"],
    ["SET('X','y')", "set('X','y')"],
    ["serial", "bigint unsigned"],
    ["geomcollection", "geometrycollection"],
    // Every spelling of CHAR and VARCHAR the DDL grammar takes (a CREATE/ALTER in the binlog is normalized the same way).
    ["national character(3)", "char(3)"],
    ["national character varying(5)", "varchar(5)"],
    ["national char varying(5)", "varchar(5)"],
    ["char varying(5)", "varchar(5)"],
    ["nchar varchar(5)", "varchar(5)"],
    ["nchar varying(5)", "varchar(5)"],
    ["long char varying", "mediumtext"],
    // MariaDB's COMPRESSED columns: COLUMN_TYPE carries the attribute in a versioned comment.
    ["varchar(50) /*M!100301 COMPRESSED*/", "varchar(50)"],
    ["blob /*M!100301 COMPRESSED*/", "blob"],
    ["varbinary(10) /*M!100301 COMPRESSED*/", "varbinary(10)"],
    // MariaDB's 5.3 format of temporal types (mysql56_temporal_format=OFF, tables from before 10.1).
    ["datetime(3) /* mariadb-5.3 */", "datetime(3)"],
    ["time /* mariadb-5.3 */", "time"],
    ["timestamp(0) /* mariadb-5.3 */", "timestamp"],
  ];
  for (const [input, expected] of cases) assert.equal(normalizeColumnType(input), expected, input);
  assert.deepEqual(membersOf("enum('a','b''c','d,e')"), ["a", "b'c", "d,e"]);
});

const column = (fields: Partial<TableMapColumn> & Pick<TableMapColumn, "type">): TableMapColumn => ({ realType: fields.type, nullable: true, length: 0, precision: 0, scale: 0, fsp: 0, bits: 0, ...fields });

test("derives declared types from TABLE_MAP metadata, and knows which declarations fit a logged type", () => {
  assert.equal(typeFromTableMap(column({ type: ColumnType.VARCHAR, length: 80 }), 4, false, false), "varchar(20)");
  assert.equal(typeFromTableMap(column({ type: ColumnType.STRING, realType: ColumnType.STRING, length: 16 }), 1, true, false), "binary(16)");
  assert.equal(typeFromTableMap(column({ type: ColumnType.BLOB, length: 4 }), 4, false, true), "longtext");
  assert.equal(typeFromTableMap(column({ type: ColumnType.NEWDECIMAL, precision: 12, scale: 3, unsigned: true }), 1, false, false), "decimal(12,3) unsigned");
  assert.equal(typeFromTableMap(column({ type: ColumnType.STRING, realType: ColumnType.ENUM, members: ["a", "it's"] }), 4, false, false), "enum('a','it''s')");
  assert.equal(typeFromTableMap(column({ type: ColumnType.JSON, length: 4 }), 1, false, true), "longtext");
  assert.equal(typeFromTableMap(column({ type: ColumnType.DATETIME2, fsp: 3 }), 1, false, false), "datetime(3)");
  assert.equal(typeFitsTableMap("int unsigned", column({ type: ColumnType.LONG })), true);
  assert.equal(typeFitsTableMap("bigint", column({ type: ColumnType.LONG })), false);
  assert.equal(typeFitsTableMap("decimal(10,2)", column({ type: ColumnType.NEWDECIMAL, precision: 10, scale: 3 })), false);
  assert.equal(typeFitsTableMap("longtext", column({ type: ColumnType.BLOB, length: 4 })), true);
});
