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
