/** DDL per server version, without a server (the test server is 18.16; newer dialects are checked here). */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { initialColumns } from "../sinks/columns.ts";
import { tableSchema } from "../sinks/test-events.ts";
import { createTableSql, createViewSql, ident, viewSource } from "./ddl.ts";
import { escapeBytes, parseTsv, sqlString, unescapeField } from "./tsv.ts";
import { clickhouseType, dialectFor } from "./types.ts";

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

  test("the table a view reads, from its definition as the server prints it (18.16's create_table_query)", () => {
    const printed = (physical: string) =>
      Buffer.from(
        "CREATE VIEW db.t ( `physical = '` Int32) AS SELECT `physical = '` FROM db.t__v1 FINAL  WHERE (_sluice_deleted = 0) AND " +
          `(_sluice_version > (SELECT max(version) FROM db._sluice_truncates  WHERE physical = '${physical}'))`,
      );
    assert.equal(viewSource(printed("t__v12")), "t__v12");
    assert.equal(viewSource(printed("it\\'s\\\\é__v2")), "it's\\é__v2");
    assert.equal(viewSource(Buffer.from("CREATE VIEW db.t AS SELECT 1")), null);
    assert.equal(viewSource(Buffer.from("... WHERE physical = 'unterminated")), null);
  });
});

describe("ClickHouse TSV (bookkeeping tables)", () => {
  test("TSV escaping round-trips any bytes", () => {
    const bytes = Buffer.from([0, 8, 9, 10, 12, 13, 39, 92, 200, 255, 65]);
    const line = Buffer.concat([escapeBytes(bytes), Buffer.from("\t\\N\n")]);
    const [row] = parseTsv(line);
    assert.equal(row?.length, 2);
    assert.deepEqual(unescapeField(row![0]!), bytes);
    assert.equal(sqlString(new Uint8Array([0, 255])), "'\\x00\\xff'");
  });
});
