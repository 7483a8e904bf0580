import { test } from "node:test";
import assert from "node:assert/strict";
import { hstoreToJson } from "./hstore-literal.ts";

test("hstore text to a JSON object, NULL values and escapes kept", () => {
  assert.equal(hstoreToJson(""), "{}");
  assert.equal(hstoreToJson('"a"=>"1", "b"=>NULL'), '{"a":"1","b":null}');
  assert.equal(hstoreToJson('"q\\"k"=>"back\\\\slash", "NULL"=>"NULL"'), '{"q\\"k":"back\\\\slash","NULL":"NULL"}');
  assert.deepEqual(JSON.parse(hstoreToJson('"__proto__"=>"x"')), JSON.parse('{"__proto__":"x"}'));
  assert.throws(() => hstoreToJson('"a"=>'), /bad hstore/);
});
