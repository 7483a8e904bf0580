import { test } from "node:test";
import assert from "node:assert/strict";
import { tableMatcher } from "./table-patterns.ts";

test("exact names, * and ? wildcards, case-sensitive, regex characters literal", () => {
  const matches = tableMatcher(["public.orders", "sales.*", "audit.log_202?", "we$ird.a-b"]);
  assert.equal(matches("public", "orders"), true);
  assert.equal(matches("public", "orders2"), false);
  assert.equal(matches("public", "Orders"), false);
  assert.equal(matches("sales", "anything_at_all"), true);
  assert.equal(matches("audit", "log_20245"), false);
  assert.equal(matches("audit", "log_2023"), true);
  assert.equal(matches("we$ird", "a-b"), true);
  assert.equal(matches("weXird", "a-b"), false);
});

test('a pattern starting with "!" excludes what it matches from what the others include', () => {
  const matches = tableMatcher(["shop.*", "!shop._*", "!shop.*_old", "audit.log"]);
  assert.equal(matches("shop", "orders"), true);
  assert.equal(matches("shop", "_orders_gho"), false);
  assert.equal(matches("shop", "orders_old"), false);
  assert.equal(matches("audit", "log"), true);
  assert.equal(matches("audit", "other"), false);
  assert.equal(tableMatcher(["!shop._*"])("shop", "orders"), false, "exclusions alone include nothing");
});

test("* and ? match any character, a line break too: a table named with one is not left out of its schema's capture", () => {
  const match = tableMatcher(["shop.*", "!shop.tmp?"]);
  assert.equal(match("shop", "new\nline"), true);
  assert.equal(match("shop", "\n"), true);
  assert.equal(match("shop", "tmp\n"), false);
  assert.equal(tableMatcher(["*.orders"])("a\nb", "orders"), true);
});
