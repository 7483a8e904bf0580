import { test } from "node:test";
import assert from "node:assert/strict";
import { parseArrayLiteral } from "./array-literal.ts";

test("flat, empty and NULL elements", () => {
  assert.deepEqual(parseArrayLiteral("{}"), []);
  assert.deepEqual(parseArrayLiteral("{1,2,3}"), ["1", "2", "3"]);
  assert.deepEqual(parseArrayLiteral("{1,NULL,null,3}"), ["1", null, null, "3"]);
  assert.deepEqual(parseArrayLiteral('{"NULL",NULL}'), ["NULL", null]);
});

test("quoting and escapes", () => {
  assert.deepEqual(parseArrayLiteral('{"a b","c\\"d","e\\\\f","",",","{}"}'), ["a b", 'c"d', "e\\f", "", ",", "{}"]);
  assert.deepEqual(parseArrayLiteral('{"\\\\x0102",\\\\x03}'), ["\\x0102", "\\x03"]);
  assert.deepEqual(parseArrayLiteral("{ a , b c }"), ["a", "b c"]);
  assert.deepEqual(parseArrayLiteral('{"  padded  "}'), ["  padded  "]);
});

test("nested and multidimensional", () => {
  assert.deepEqual(parseArrayLiteral("{{1,2},{3,4}}"), [["1", "2"], ["3", "4"]]);
  assert.deepEqual(parseArrayLiteral('{{{"x"}},{{NULL}}}'), [[["x"]], [[null]]]);
});

test("dimension decoration and other delimiters", () => {
  assert.deepEqual(parseArrayLiteral("[0:1]={7,8}"), ["7", "8"]);
  assert.deepEqual(parseArrayLiteral("[1:1][2:3]={{1,2}}"), [["1", "2"]]);
  assert.deepEqual(parseArrayLiteral("{(1,2),(0,0);(3,4),(1,1)}", ";"), ["(1,2),(0,0)", "(3,4),(1,1)"]);
});

test("malformed literals are rejected", () => {
  for (const bad of ["", "1,2", "{1,2", '{"a}', "{1,,2}", "{1}x", "{a\"b}"]) {
    assert.throws(() => parseArrayLiteral(bad), /bad array literal/, bad);
  }
});
