import assert from "node:assert/strict";
import { test } from "node:test";
import { keepsValues } from "./kept-values.ts";
import type { ColumnDefinition } from "./table-definition.ts";

const TEXTUAL = /char|text|enum|set/;
const column = (dbType: string, charset: string | null = TEXTUAL.test(dbType) ? "utf8mb4" : null, nullable = true): ColumnDefinition => ({ name: "c", dbType, nullable, charset });

test("a redefinition that holds every value it held keeps them", () => {
  const kept: [string, string][] = [
    ["int", "bigint"],
    ["int unsigned", "bigint"],
    ["smallint unsigned", "int unsigned"],
    ["decimal(10,2)", "decimal(12,4)"],
    ["datetime(3)", "datetime(6)"],
    ["time", "time(6)"],
    ["varchar(10)", "varchar(20)"],
    ["char(10)", "varchar(10)"],
    ["varchar(100)", "text"],
    ["text", "mediumtext"],
    ["varbinary(8)", "blob"],
    ["enum('a','b')", "enum('a','b','c')"],
    ["enum('a','b')", "enum('b','x','a')"],
    ["set('a','b')", "set('a','b','c')"],
  ];
  for (const [from, to] of kept) assert.ok(keepsValues(column(from), column(to)), `${from} -> ${to}`);
  assert.ok(keepsValues(column("varchar(10)", "latin1"), column("varchar(10)", "utf8mb4")), "latin1 -> utf8mb4");
  assert.ok(keepsValues(column("int", null, false), column("int", null, true)), "NOT NULL -> NULL");
});

test("a redefinition that rounds, cuts, clamps or converts values does not keep them", () => {
  const changed: [string, string][] = [
    ["bigint", "int"],
    ["int", "int unsigned"],
    ["int unsigned", "int"],
    ["int", "decimal(20,0)"],
    ["decimal(10,4)", "decimal(10,2)"],
    ["decimal(10,2)", "decimal(6,2)"],
    ["datetime(6)", "datetime"],
    ["timestamp", "datetime"],
    ["double", "float"],
    ["float", "double"],
    ["varchar(10)", "varchar(3)"],
    ["varchar(10)", "char(10)"],
    ["text", "varchar(100)"],
    ["varchar(100)", "tinytext"],
    ["enum('a','b','c')", "enum('a','b')"],
    ["set('a','b')", "set('b','a')"],
    ["set('a','b')", "set('a','bc')"],
    ["bit(1)", "bit(8)"],
    ["date", "datetime"],
    ["year", "int"],
  ];
  for (const [from, to] of changed) assert.ok(!keepsValues(column(from), column(to)), `${from} -> ${to}`);
  assert.ok(!keepsValues(column("varchar(10)", "utf8mb4"), column("varchar(10)", "latin1")), "utf8mb4 -> latin1");
  assert.ok(!keepsValues(column("varchar(10)", "utf8mb4"), column("varchar(10)", "utf8mb3")), "utf8mb4 -> utf8mb3");
  assert.ok(!keepsValues(column("int", null, true), column("int", null, false)), "NULL -> NOT NULL");
});

test("a shrink to a byte-sized TEXT type counts the target charset's widest character, and 4 bytes for a charset not known", () => {
  // VARCHAR(200) gbk holds 400 bytes; TINYTEXT holds 255 (127 gbk characters): MariaDB without strict mode cut it.
  assert.ok(!keepsValues(column("varchar(200)", "gbk"), column("tinytext", "gbk")), "gbk varchar(200) -> tinytext");
  assert.ok(!keepsValues(column("varchar(200)", "sjis"), column("tinytext", "sjis")), "sjis varchar(200) -> tinytext");
  assert.ok(!keepsValues(column("varchar(40000)", "sjis"), column("text", "sjis")), "sjis varchar(40000) -> text");
  assert.ok(!keepsValues(column("varchar(100)", "ujis"), column("tinytext", "ujis")), "ujis varchar(100) -> tinytext");
  // Same width: 127 gbk characters fit 254 bytes; 200 latin1 characters fit 255.
  assert.ok(keepsValues(column("varchar(127)", "gbk"), column("tinytext", "gbk")), "gbk varchar(127) -> tinytext");
  assert.ok(keepsValues(column("varchar(200)", "latin1"), column("tinytext", "latin1")), "latin1 varchar(200) -> tinytext");
  assert.ok(keepsValues(column("varchar(30000)", "gbk"), column("text", "gbk")), "gbk varchar(30000) -> text");
  // A charset neither map knows is taken as 4 bytes a character.
  assert.ok(!keepsValues(column("varchar(100)", "newcharset"), column("tinytext", "newcharset")), "unknown varchar(100) -> tinytext");
  assert.ok(keepsValues(column("varchar(63)", "newcharset"), column("tinytext", "newcharset")), "unknown varchar(63) -> tinytext");
});

test("ascii widens only into a charset known to hold it; an ENUM list not read as quoted members reads again", () => {
  assert.ok(keepsValues(column("varchar(10)", "ascii"), column("varchar(10)", "gbk")), "ascii -> gbk");
  assert.ok(!keepsValues(column("varchar(10)", "ascii"), column("varchar(10)", "swe7")), "ascii -> swe7");
  assert.ok(!keepsValues(column("varchar(10)", "ascii"), column("varchar(10)", "newcharset")), "ascii -> unknown");
  assert.ok(!keepsValues(column("enum(a,b)"), column("enum('x')")), "unquoted members");
});
