import assert from "node:assert/strict";
import { test } from "node:test";
import { jsonShapeProblem } from "./json-shape.ts";

const limits = { maxDepth: 3, maxValues: 5 };

test("jsonShapeProblem takes what is within the limits, and counts nothing inside strings", () => {
  assert.equal(jsonShapeProblem('{"tables": ["a", "b"]}', limits), null);
  assert.equal(jsonShapeProblem(`{"s": "[[[[[[,,,,,,,{{{{"}`, limits), null);
  assert.equal(jsonShapeProblem(String.raw`{"s": "\"[[[[[[\\", "t": 1}`, limits), null);
  assert.equal(jsonShapeProblem("", limits), null);
});

test("jsonShapeProblem refuses nesting deeper, or more values, than the limits", () => {
  assert.equal(jsonShapeProblem("[[[[]]]]", limits), "its arrays and objects are nested more than 3 deep");
  assert.equal(jsonShapeProblem("[1,2,3,4,5,6]", limits), "it holds more than 5 values");
  assert.equal(jsonShapeProblem("[{},{},{}]", limits), "it holds more than 5 values");
  // After a string holding an escaped backslash, the structure is counted again.
  assert.equal(jsonShapeProblem(String.raw`["\\", [[[]]]]`, limits), "its arrays and objects are nested more than 3 deep");
});
