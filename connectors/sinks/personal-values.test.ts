import assert from "node:assert/strict";
import { test } from "node:test";
import { SluiceError } from "../errors.ts";
import { Events, tableSchema } from "./test-events.ts";
import { holdsPersonalValues, markPersonalValues, PERSONAL_VALUE, personalValuesOf, redactErrorValues, redactPersonalValues } from "./personal-values.ts";

test("a personal value is replaced in the forms servers print it: as is, JSON-escaped, with its quotes doubled or backslashed", () => {
  const value = `o'neil "x"@example.com`;
  const texts = [
    `Duplicate key "email: ${value}" violates unique constraint.`,
    `{"reason":${JSON.stringify(`value ${value}`)}}`,
    `Cannot parse string '${value.replaceAll("'", "\\'")}' as Int64`,
    `invalid input '${value.replaceAll("'", "''")}'`,
  ];
  for (const text of texts) {
    const out = redactPersonalValues(text, [value]);
    assert.ok(out.includes(PERSONAL_VALUE), out);
    assert.ok(!out.includes("o'neil") && !out.includes("o\\'neil") && !out.includes("o''neil"), out);
  }
});

test("a value with a backslash, a tab and a newline is replaced as ClickHouse quotes it (backslash escapes)", () => {
  const value = "a\\b\tc\nd'e@example.com";
  const text = `Cannot parse string 'a\\\\b\\tc\\nd\\'e@example.com' as Int64`;
  assert.equal(redactPersonalValues(text, [value]), `Cannot parse string '${PERSONAL_VALUE}' as Int64`);
});

test("Elasticsearch's value preview is blanked even when it shows the value shortened", () => {
  const text = `failed to parse field [email.n] of type [long] in document with id '3'. Preview of field's value: 'ann@exam' (For input string: "ann@exam")`;
  const out = redactPersonalValues(text, ["ann@example.com"]);
  assert.equal(out, `failed to parse field [email.n] of type [long] in document with id '3'. Preview of field's value: '${PERSONAL_VALUE}' (For input string: "${PERSONAL_VALUE}")`);
});

test("without personal values the text is left alone, previews included; a one-character value is left", () => {
  const text = `Preview of field's value: 'abc'`;
  assert.equal(redactPersonalValues(text, []), text);
  assert.equal(redactPersonalValues("a value of F here", ["F"]).includes("F"), true);
});

test("an error is redacted in place (class and code kept): message, stack, context and causes", () => {
  const cause = new Error("server said: bob@example.com");
  const error = new SluiceError("sink rejected bob@example.com", { code: "SINK_ROW_REJECTED", context: { table: "t", detail: "bob@example.com" }, cause });
  const same = redactErrorValues(error, ["bob@example.com"]);
  assert.equal(same, error);
  assert.equal(error.code, "SINK_ROW_REJECTED");
  for (const text of [error.message, error.stack ?? "", String(error.context["detail"]), cause.message, cause.stack ?? ""]) assert.ok(!text.includes("bob@example.com"), text);
});

test("the values marked on an event are found again from it, not from a copy", () => {
  const { event } = new Events(tableSchema("customers", [["id", "int4"], ["email", "text"]])).insert(1n, { id: 1, email: "x@y.z" });
  markPersonalValues(event, ["x@y.z"]);
  assert.deepEqual(personalValuesOf([event, undefined]), ["x@y.z"]);
  assert.deepEqual(personalValuesOf([{ ...event }]), []);
  assert.equal(holdsPersonalValues(event), true);
  assert.equal(holdsPersonalValues({ ...event }), false);
});
