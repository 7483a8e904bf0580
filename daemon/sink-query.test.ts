import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { DuckDBInstance } from "@duckdb/node-api";
import { checkReadOnly, formatRows, queryDuckDbFile } from "./sink-query.ts";

test("only single read statements pass the read-only check", () => {
  for (const ok of ["SELECT 1", "  with x as (select 1) select * from x;", "FROM t", "SHOW TABLES", "DESCRIBE t", "SUMMARIZE t", "EXPLAIN SELECT 1"]) checkReadOnly(ok);
  for (const bad of ["DELETE FROM t", "DROP TABLE t", "SELECT 1; DROP TABLE t", "INSERT INTO t VALUES (1)", "ATTACH 'x.db'", "COPY t TO 'x.csv'", "update t set a = 1"]) {
    assert.throws(() => checkReadOnly(bad), /only one read-only statement/, bad);
  }
});

test("a DuckDB file is queried read-only when no daemon holds it; SQL errors are clear", async () => {
  const path = join(mkdtempSync(join(tmpdir(), "sluice-query-")), "w.duckdb");
  const instance = await DuckDBInstance.create(path);
  const connection = await instance.connect();
  await connection.run("CREATE TABLE t (id INTEGER, name VARCHAR); INSERT INTO t VALUES (1, 'a'), (2, NULL)");
  connection.closeSync();
  instance.closeSync();
  const rows = await queryDuckDbFile(path, "SELECT id, name FROM t ORDER BY id");
  assert.deepEqual(rows, [{ id: 1, name: "a" }, { id: 2, name: null }]);
  assert.equal(formatRows(rows), "id  name\n--  ----\n1   a\n2   NULL\n(2 rows)\n");
  await assert.rejects(queryDuckDbFile(path, "SELECT nope FROM t"), /query failed: Binder Error/);
  await assert.rejects(queryDuckDbFile(join(path, "missing.duckdb"), "SELECT 1"), /cannot open DuckDB file/);
});
