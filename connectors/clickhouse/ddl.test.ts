/** DDL and value encoding per server version, without a server (the test server is 18.16; newer dialects are checked here). */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { initialColumns } from "../sinks/columns.ts";
import { tableSchema } from "../sinks/test-events.ts";
import { createTableSql, createViewSql, ident } from "./ddl.ts";
import { escapeBytes, parseTsv, sqlString, unescapeField } from "./tsv.ts";
import { clickhouseType, dialectFor, encodeField, keyLiteral } from "./types.ts";

const schema = tableSchema("orders", [
  ["id", "bigint"],
  ["price", "numeric(10,2)"],
  ["at", "timestamp with time zone"],
  ["day", "date"],
  ["tags", "text[]"],
]);
const columns = initialColumns(schema, { sink: "s", table: "t" });

describe("ClickHouse DDL", () => {
  test("18.16: ReplacingMergeTree by version, ordered by the key, Nullable non-key columns, dates and timestamps as integers", () => {
    assert.equal(
      createTableSql("db", "public_orders__v1", columns, dialectFor("18.16.1", false)),
      "CREATE TABLE IF NOT EXISTS `db`.`public_orders__v1` (`id` Int64, `price` Nullable(Decimal(10, 2)), `at` Nullable(Int64), `day` Nullable(Int32), " +
        "`tags` Array(Nullable(String)), `_sluice_version` UInt64, `_sluice_deleted` UInt8) ENGINE = ReplacingMergeTree(`_sluice_version`) ORDER BY (`id`)",
    );
  });

  test("23.2+ with native_deletes: ReplacingMergeTree(version, is_deleted), DateTime64 and Date32", () => {
    const sql = createTableSql("db", "t__v1", columns, dialectFor("23.8.2.7", true));
    assert.match(sql, /ENGINE = ReplacingMergeTree\(`_sluice_version`, `_sluice_deleted`\) ORDER BY \(`id`\)$/);
    assert.match(sql, /`at` Nullable\(DateTime64\(6, 'UTC'\)\)/);
    assert.match(sql, /`day` Nullable\(Date32\)/);
    assert.equal(clickhouseType({ kind: "timestamp", tz: false }, dialectFor("20.3", false), false), "DateTime64(6, 'UTC')");
    assert.equal(clickhouseType({ kind: "date" }, dialectFor("20.3", false), true), "Nullable(Int32)");
  });

  test("the view filters after FINAL and by the truncate version of its physical table", () => {
    assert.equal(
      createViewSql("db", "public_orders", "public_orders__v2", columns.slice(0, 2)),
      "CREATE VIEW `db`.`public_orders` AS SELECT `id`, `price` FROM `db`.`public_orders__v2` FINAL WHERE `_sluice_deleted` = 0 AND `_sluice_version` > " +
        "(SELECT max(version) FROM `db`.`_sluice_truncates` WHERE physical = 'public_orders__v2')",
    );
    assert.equal(ident("we`ird\\name"), "`we\\`ird\\\\name`");
  });
});

describe("ClickHouse values", () => {
  const old = dialectFor("18.16.1", false);
  const recent = dialectFor("24.3", false);
  const field = (buffer: Buffer) => buffer.toString("latin1");

  test("exact TSV fields; out-of-range values rejected before sending", () => {
    assert.equal(field(encodeField({ kind: "decimal", precision: 10, scale: 2 }, old, "1.5")), "1.50");
    assert.equal(field(encodeField({ kind: "integer", bits: 64, unsigned: true }, old, 18446744073709551615n)), "18446744073709551615");
    assert.throws(() => encodeField({ kind: "integer", bits: 16, unsigned: false }, old, 40_000), /out of range/);
    assert.equal(field(encodeField({ kind: "timestamp", tz: true }, old, -1n)), "-1");
    assert.equal(field(encodeField({ kind: "timestamp", tz: true }, recent, -1n)), "1969-12-31 23:59:59.999999");
    assert.throws(() => encodeField({ kind: "date" }, recent, -30_000), /Date32/);
    assert.equal(field(encodeField({ kind: "float", bits: 64 }, old, Number.NaN)), "nan");
    assert.equal(field(encodeField({ kind: "string" }, old, null)), "\\N");
    assert.equal(field(encodeField({ kind: "array", element: { kind: "string" } }, old, null)), "[]");
    assert.equal(field(encodeField({ kind: "array", element: { kind: "string" } }, old, ["a'b", null, "t\tx"])), "['a\\'b',NULL,'t\\tx']");
    assert.equal(field(encodeField({ kind: "string" }, old, "a\tb\nc\\d")), "a\\tb\\nc\\\\d");
  });

  test("key literals: integers bare, anything else a string the server converts", () => {
    assert.equal(keyLiteral({ kind: "integer", bits: 32, unsigned: false }, old, 5), "5");
    assert.equal(keyLiteral({ kind: "decimal", precision: 10, scale: 2 }, old, "1.5"), "'1.50'");
    assert.equal(keyLiteral({ kind: "string" }, old, "it's é"), "'it\\'s \\xc3\\xa9'");
    assert.equal(sqlString(new Uint8Array([0, 255])), "'\\x00\\xff'");
  });

  test("TSV escaping round-trips any bytes", () => {
    const bytes = Buffer.from([0, 8, 9, 10, 12, 13, 39, 92, 200, 255, 65]);
    const line = Buffer.concat([escapeBytes(bytes), Buffer.from("\t\\N\n")]);
    const [row] = parseTsv(line);
    assert.equal(row?.length, 2);
    assert.deepEqual(unescapeField(row![0]!), bytes);
  });
});
