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
