import assert from "node:assert/strict";
import { test } from "node:test";
import { checkWhere, conditionEscape, MYSQL_CONDITION, POSTGRES_CONDITION } from "./where-condition.ts";
import { SluiceError } from "../errors.ts";

test("conditions that stay one expression inside parentheses pass, whatever their quotes hold", () => {
  for (const ok of [
    "id > 5",
    "(a = 1 OR b = 2) AND c IN (1, 2, 3)",
    "name = ')' OR name = '('",
    "name = 'it''s (here'",
    `"odd)name" > 0`,
    "x ~ '^a$' AND price > 0",
    "id IN (SELECT id FROM other WHERE flag)",
  ]) {
    assert.equal(conditionEscape(ok, POSTGRES_CONDITION), null, ok);
  }
  assert.equal(conditionEscape("`odd)name` > 0 AND s = \"(\"", MYSQL_CONDITION), null);
  assert.equal(conditionEscape("price$ > 0", POSTGRES_CONDITION), null, "a $ inside a name");
});

test("a condition that could close Sluice's parenthesis, under either reading of backslashes, is named", () => {
  assert.match(conditionEscape("true) UNION ALL SELECT 1 WHERE (true", POSTGRES_CONDITION)!, /no "\(" before it/);
  assert.match(conditionEscape("true) OR (true", MYSQL_CONDITION)!, /no "\(" before it/);
  assert.match(conditionEscape("(true", POSTGRES_CONDITION)!, /not closed/);
  // A string the server may end at the backslash (standard strings) or not (E'' strings, MySQL's default).
  assert.notEqual(conditionEscape("a = E'\\') UNION SELECT 1 WHERE (''", POSTGRES_CONDITION), null);
  assert.notEqual(conditionEscape("a = 'x\\' ) OR (1=1 OR 'y'", MYSQL_CONDITION), null);
  // PostgreSQL's dollar quotes would hide a parenthesis from a reader that does not know the tag.
  assert.match(conditionEscape("x = $$($$) UNION SELECT 1 WHERE ($$)$$ = 'a'", POSTGRES_CONDITION)!, /dollar-quoted/);
  assert.match(conditionEscape("x = 'open", MYSQL_CONDITION)!, /not closed/);
});

// Before: an empty condition (an unset shell variable in --where "$COND") queued a snapshot of the whole table, whose reset removes rows.
test("an empty or blank condition given is refused, naming what to do; no condition reads the whole table", () => {
  for (const empty of ["", "   "]) {
    assert.throws(() => checkWhere(empty, "public.items", {}, POSTGRES_CONDITION), (error: unknown) => error instanceof SluiceError && error.code === "SNAPSHOT_WHERE_INVALID" && /is empty: leave --where out/.test(error.message));
  }
  assert.equal(checkWhere(null, "public.items", {}, MYSQL_CONDITION), null);
  assert.equal(checkWhere(" id > 5 ", "public.items", {}, MYSQL_CONDITION), "id > 5");
});
