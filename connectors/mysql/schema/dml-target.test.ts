import assert from "node:assert/strict";
import { test } from "node:test";
import { dmlTarget } from "./dml-target.ts";

test("finds the table a data-changing statement writes, with or without its database", () => {
  const cases: [string, string | null][] = [
    ["INSERT INTO t VALUES (1)", "d.t"],
    ["insert ignore into `other`.`t 2` (a) values (1)", "other.t 2"],
    ["REPLACE LOW_PRIORITY t SET a = 1", "d.t"],
    ["UPDATE /* c */ x.t SET a = 1 WHERE b = 2", "x.t"],
    ["DELETE QUICK FROM t WHERE a = 1", "d.t"],
    ["LOAD DATA LOCAL INFILE '/tmp/f' REPLACE INTO TABLE e.t FIELDS TERMINATED BY ','", "e.t"],
    ["DELETE t1 FROM t1 JOIN t2", null],
    ["CREATE TABLE t (a INT)", null],
    ["BEGIN", null],
  ];
  for (const [statement, expected] of cases) {
    const target = dmlTarget(statement, "d");
    assert.equal(target === null ? null : `${target.database}.${target.table}`, expected, statement);
  }
  assert.equal(dmlTarget("INSERT INTO t VALUES (1)", ""), null);
});
