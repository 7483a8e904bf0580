/** docs/sinks.md's edge-value table is the type matrix that type-matrix.int.test.ts checks: it may not go stale. */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { SINKS_DOC, withCurrentTable } from "./doc.ts";

test("docs/sinks.md shows the type matrix as it is (run `npm run docs:types` after changing test/type-matrix/cases.ts)", () => {
  const doc = readFileSync(SINKS_DOC, "utf8");
  assert.equal(doc, withCurrentTable(doc), "docs/sinks.md is stale: run `npm run docs:types`");
});
