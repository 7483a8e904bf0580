import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { TableId } from "../contracts.ts";
import { SluiceError } from "../errors.ts";
import { SCHEMA_UNSUPPORTED } from "./errors.ts";
import { renderTarget } from "./naming.ts";
import { TargetClaims } from "./target-claims.ts";

const table = (schema: string, name: string): TableId => ({ source: "pg", database: "db", schema, table: name });

function refused(claims: TargetClaims, id: TableId, target: string, mentions: RegExp): void {
  assert.throws(
    () => claims.claim(id, target),
    (error: unknown) => {
      assert.ok(error instanceof SluiceError && error.code === SCHEMA_UNSUPPORTED, String(error));
      assert.equal(error.context["table"], `pg.${id.schema}.${id.table}`);
      assert.match(error.message, mentions);
      return true;
    },
  );
}

describe("TargetClaims", () => {
  it("gives each table its target and refuses a second table rendered to the same one, naming both", () => {
    const claims = new TargetClaims("duck");
    const first = table("a_b", "c");
    const second = table("a", "b_c");
    assert.equal(claims.claim(first, renderTarget("{schema}_{table}", first)), "a_b_c");
    assert.equal(claims.claim(first, "a_b_c"), "a_b_c");
    refused(claims, second, renderTarget("{schema}_{table}", second), /target "a_b_c" is the target of table pg\.a_b\.c/);
    assert.equal(claims.claim(first, "a_b_c"), "a_b_c", "the first keeps its target");
    assert.equal(claims.owned(first, "a_b_c"), "a_b_c");
    assert.equal(claims.owned(second, "a_b_c"), null);
    assert.equal(claims.owned(table("x", "y"), "x_y"), null, "not claimed yet");
  });

  it("refuses a target the sink cannot tell from another (DuckDB ignores case), also one found in its storage", () => {
    const claims = new TargetClaims("duck", { fold: (name) => name.toLowerCase(), why: " (DuckDB names ignore case)" });
    claims.know("s_Up");
    assert.equal(claims.claim(table("s", "Up"), "s_Up"), "s_Up", "the stored target's own name is its table's");
    refused(claims, table("s", "up"), "s_up", /"s_Up", the target of table pg\.s\.Up.*ignore case/);
    claims.know("s_Mixed");
    refused(claims, table("s", "MIXED"), "s_MIXED", /"s_Mixed", a target the sink holds already/);
  });

  it("names the other table's database when only the database tells the two apart", () => {
    // A PostgreSQL source whose database changed (or an erasure named with another database): same source, schema and table.
    const claims = new TargetClaims("duck");
    const before: TableId = { source: "pg", database: "db", schema: "app", table: "customers" };
    const after: TableId = { ...before, database: "app" };
    claims.claim(before, renderTarget("{schema}_{table}", before));
    refused(claims, after, "app_customers", /target "app_customers" is the target of table pg\.app\.customers in database "db" \(this one is in database "app"\)/);
    // MariaDB: a database is its schema, so the labels differ already and say no more.
    const maria = new TargetClaims("duck");
    const first: TableId = { source: "my", database: "db1", schema: "db1", table: "t" };
    const second: TableId = { source: "my", database: "db2", schema: "db2", table: "t" };
    maria.claim(first, renderTarget("{table}", first));
    assert.throws(() => maria.claim(second, renderTarget("{table}", second)), (error: unknown) => {
      assert.ok(error instanceof SluiceError);
      assert.match(error.message, /^sink "duck", table my\.db2\.t: its target "t" is the target of table my\.db1\.t; two tables/);
      return true;
    });
  });

  it("refuses a target that is a generation name of another (x__v1 beside x), whichever comes first", () => {
    const claims = new TargetClaims("ch");
    claims.claim(table("s", "x"), "s_x");
    refused(claims, table("s", "x__v1"), "s_x__v1", /generation of "s_x"/);
    const other = new TargetClaims("ch");
    other.claim(table("s", "y__v12"), "s_y__v12");
    refused(other, table("s", "y"), "s_y", /would take "s_y__v12"/);
    assert.equal(other.claim(table("s", "y__v"), "s_y__v"), "s_y__v", "not a generation name");
  });
});
