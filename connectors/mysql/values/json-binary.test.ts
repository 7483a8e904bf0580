import assert from "node:assert/strict";
import { test } from "node:test";
import { hex } from "../../postgres/protocol/hex-fixture.ts";
import { decodeJsonText } from "./json-binary.ts";
import { applyJsonDiffs, parseJsonPath, readJsonDiffs } from "./json-diff.ts";
import { decodeJsonBinary, printJson } from "./json-binary.ts";

test("decodes a small object with inlined and referenced values, keys in stored order", () => {
  const bytes = hex(`
    00                # small object
    02 00             # 2 members
    1f 00             # 31 bytes
    12 00 01 00       # key "a" at 18
    13 00 01 00       # key "b" at 19
    05 07 00          # int16 7, inlined
    02 14 00          # small array at 20
    61 62             # "a" "b"
    02 00 0b 00       # array: 2 elements, 11 bytes
    04 01 00          # true, inlined
    0c 0a 00          # string at 10
    01 78             # "x"
  `);
  assert.equal(decodeJsonText(bytes, 0, bytes.length), '{"a": 7, "b": [true, "x"]}');
});

test("decodes scalars: 64-bit integers exactly, doubles, escaped strings, null", () => {
  assert.equal(decodeJsonText(hex("0a ff ff ff ff ff ff ff ff"), 0, 9), "18446744073709551615");
  assert.equal(decodeJsonText(hex("09 00 00 00 00 00 00 00 80"), 0, 9), "-9223372036854775808");
  const double = Buffer.alloc(9);
  double[0] = 0x0b;
  double.writeDoubleLE(2.5, 1);
  assert.equal(decodeJsonText(double, 0, 9), "2.5");
  double.writeDoubleLE(3, 1);
  assert.equal(decodeJsonText(double, 0, 9), "3.0");
  assert.equal(decodeJsonText(hex('0c 03 22 5c 0a'), 0, 5), '"\\"\\\\\\n"');
  assert.equal(decodeJsonText(hex("04 00"), 0, 2), "null");
  assert.equal(decodeJsonText(Buffer.alloc(0), 0, 0), "null");
});

test("applies partial-update diffs: replace, insert in MySQL's key order, array insert, remove", () => {
  const documentBytes = hex("00 02 00 1f 00 12 00 01 00 13 00 01 00 05 07 00 02 14 00 61 62 02 00 0b 00 04 01 00 0c 0a 00 01 78");
  const diffBytes = hex(`
      00 03 24 2e 61 03 05 08 00        # REPLACE $.a 8
      01 04 24 2e 61 61 02 04 02        # INSERT $.aa false
      01 06 24 2e 62 5b 30 5d 02 04 00  # INSERT $.b[0] null
      02 06 24 2e 62 5b 32 5d           # REMOVE $.b[2]
      01 05 24 2e 22 20 22 02 04 01     # INSERT $." " true
    `);
  const diffs = readJsonDiffs(diffBytes, 0, diffBytes.length);
  assert.deepEqual(diffs.map((d) => [d.operation, d.path]), [[0, "$.a"], [1, "$.aa"], [1, "$.b[0]"], [2, "$.b[2]"], [1, '$." "']]);
  const after = applyJsonDiffs(decodeJsonBinary(documentBytes, 0, documentBytes.length), diffs);
  assert.equal(printJson(after), '{" ": true, "a": 8, "b": [null, true], "aa": false}');
});

test("parses JSON paths as MySQL logs them", () => {
  assert.deepEqual(parseJsonPath('$.a[3]."b c".d'), [{ key: "a" }, { index: 3 }, { key: "b c" }, { key: "d" }]);
  assert.deepEqual(parseJsonPath("$"), []);
  assert.throws(() => parseJsonPath("a.b"));
});
