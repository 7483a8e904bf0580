import assert from "node:assert/strict";
import { test } from "node:test";
import { SluiceError } from "../errors.ts";
import { Events, tableSchema } from "./test-events.ts";
import { holdsPersonalValues, markedValues, markPersonalValues, PERSONAL_VALUE, personalValuesOf, redactErrorValues, redactFailures, Redactor, redactPersonalValues } from "./personal-values.ts";

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

test("the values marked on an event are found again from it; an unmarked event holds none", () => {
  const events = new Events(tableSchema("customers", [["id", "int4"], ["email", "text"]]));
  const { event } = events.insert(1n, { id: 1, email: "x@y.z" });
  markPersonalValues(event, ["x@y.z"]);
  assert.deepEqual(personalValuesOf([event, undefined]), ["x@y.z"]);
  assert.deepEqual(markedValues(event), ["x@y.z"]);
  assert.equal(holdsPersonalValues(event), true);
  assert.equal(holdsPersonalValues(events.insert(2n, { id: 2, email: "a@b.c" }).event), false);
  // A symbol key: JSON (the records written to topics) never carries it.
  assert.deepEqual(Object.keys(event).filter((k) => k.includes("personal")), []);
});

test("a non-ASCII value is replaced as an ASCII-only JSON encoder prints it (\\uXXXX, either case)", () => {
  const value = "jos\u00e9.m\u00fcller@example.com";
  for (const text of [`{"email":"jos\\u00e9.m\\u00fcller@example.com"}`, `{"email":"jos\\u00E9.m\\u00FCller@example.com"}`]) {
    assert.equal(redactPersonalValues(text, [value]), `{"email":"${PERSONAL_VALUE}"}`);
  }
});

test("Elasticsearch's immense term prefix (the value's first bytes as decimals) is blanked", () => {
  const text = `Document contains at least one immense term in field="bio" (whose UTF8 encoding is longer than the max length 32766), all of which were skipped. The prefix of the first immense term is: '[90, 111, 195, 169, 32, 115, 101]...', original message: bytes can be at most 32766 in length; got 40000`;
  const out = redactPersonalValues(text, ["Zo\u00e9 s".repeat(5000)]);
  assert.ok(out.includes(`The prefix of the first immense term is: '${PERSONAL_VALUE}'`), out);
  assert.ok(!out.includes("195, 169"), out);
});

test("values of 1-3 characters are left (they would be blanked inside table and column names), previews are still blanked", () => {
  const text = `column "usa_region" of table "us_bob" refused 'US' for bob: Preview of field's value: 'US'`;
  assert.equal(redactPersonalValues(text, ["US", "bob", "u"]), `column "usa_region" of table "us_bob" refused 'US' for bob: Preview of field's value: '${PERSONAL_VALUE}'`);
  assert.equal(redactPersonalValues("for abcd here", ["abcd"]), `for ${PERSONAL_VALUE} here`);
});

test("a text redacted twice is unchanged the second time, even for a value found inside the placeholder", () => {
  const once = redactPersonalValues("refused 'value' and 'personal'", ["value", "personal"]);
  assert.equal(once, `refused '${PERSONAL_VALUE}' and '${PERSONAL_VALUE}'`);
  assert.equal(redactPersonalValues(once, ["value", "personal"]), once);
  assert.equal(redactPersonalValues("ab-abc-abcd", ["abcd", "bc-abcd"]), `ab-a${PERSONAL_VALUE}`);
});

test("a whole batch's 5,000 long values with quotes and newlines: one redactor, built once, redacts every text of the error", () => {
  // Before: one alternation regex of every spelling, compiled again for each text (a 5,000 x 1.2 KB pattern ran V8 out of memory).
  const values = Array.from({ length: 5_000 }, (_v, i) => `row ${i} said "it's"\n${"x".repeat(1_200)}`);
  const redactor = new Redactor(values);
  const quoted = values[4_321]!;
  const cause = new Error(`server: ${JSON.stringify(quoted)}`);
  const error = new SluiceError(`refused '${quoted.replaceAll("'", "''")}'`, { code: "SINK_WRITE_FAILED", context: { detail: quoted }, cause });
  redactor.error(error);
  for (const text of [error.message, error.stack ?? "", String(error.context["detail"]), cause.message, cause.stack ?? ""]) {
    assert.ok(!text.includes("xxxxxxxxxx"), text.slice(0, 200));
    assert.ok(text.includes(PERSONAL_VALUE), text.slice(0, 200));
  }
});

test("each row's failure is redacted with its own row's values; one naming no row of the batch with the batch's", () => {
  const events = new Events(tableSchema("customers", [["id", "int4"], ["email", "text"]]));
  const changes = [1, 2].map((id) => {
    const change = events.insert(BigInt(id), { id, email: `p${id}@example.com` });
    markPersonalValues(change.event, [`p${id}@example.com`]);
    return change;
  });
  const failures = [0, 1, 7].map((index) => ({ index, error: new Error("p1@example.com p2@example.com"), retriable: false }));
  redactFailures(failures, changes);
  assert.deepEqual(
    failures.map((f) => f.error.message),
    [`${PERSONAL_VALUE} p2@example.com`, `p1@example.com ${PERSONAL_VALUE}`, `${PERSONAL_VALUE} ${PERSONAL_VALUE}`],
  );
});
