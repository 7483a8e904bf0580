import { test } from "node:test";
import assert from "node:assert/strict";
import { BUILTIN_SCALAR_DECODERS, decodeBytea, decodeMoney } from "./scalars.ts";

const decode = (oid: number, text: string) => BUILTIN_SCALAR_DECODERS.get(oid)!(text);

test("integers: int2/int4 numbers, int8 bigint", () => {
  assert.equal(decode(21, "-32768"), -32768);
  assert.equal(decode(23, "2147483647"), 2147483647);
  assert.equal(decode(20, "-9223372036854775808"), -9223372036854775808n);
  assert.equal(decode(20, "9007199254740993"), 9007199254740993n);
});

test("numeric keeps its exact digits", () => {
  assert.equal(decode(1700, "-12.3400"), "-12.3400");
  for (const special of ["NaN", "Infinity", "-Infinity"]) assert.equal(decode(1700, special), special);
  const huge = `${"9".repeat(1000)}.${"1".repeat(1000)}`;
  assert.equal(decode(1700, huge), huge);
  assert.throws(() => decode(1700, "1e5"), /cannot decode numeric/);
});

test("floats: specials and shortest texts", () => {
  assert.ok(Number.isNaN(decode(701, "NaN")));
  assert.equal(decode(701, "Infinity"), Infinity);
  assert.equal(decode(701, "-Infinity"), -Infinity);
  assert.equal(decode(701, "1.7976931348623157e+308"), Number.MAX_VALUE);
  assert.equal(decode(701, "5e-324"), Number.MIN_VALUE);
  assert.equal(decode(701, "-0"), -0);
  assert.equal(decode(700, "1.1"), Math.fround(1.1));
  assert.equal(decode(700, "3.4028235e+38"), 3.4028234663852886e38);
  assert.ok(Number.isNaN(decode(700, "NaN")));
  assert.throws(() => decode(701, "abc"), /cannot decode number/);
});

test("bool", () => {
  assert.equal(decode(16, "t"), true);
  assert.equal(decode(16, "f"), false);
  assert.throws(() => decode(16, "true"), /cannot decode boolean/);
});

test("bytea: hex and escape formats to Uint8Array", () => {
  assert.deepEqual(decodeBytea("\\x"), new Uint8Array([]));
  assert.deepEqual(decodeBytea("\\x00ff7f"), new Uint8Array([0, 255, 127]));
  assert.deepEqual(decodeBytea("a\\000\\\\b"), new Uint8Array([0x61, 0, 0x5c, 0x62]));
  assert.equal(Object.getPrototypeOf(decodeBytea("\\x01")), Uint8Array.prototype);
});

test("bytea: a value of 12 MiB decodes (its hex text of 24 MiB overflowed a regular expression's stack), and text that is not hex is refused", () => {
  const bytes = Buffer.alloc(12 * 2 ** 20);
  for (let i = 0; i < bytes.length; i += 4099) bytes[i] = i % 251;
  const decoded = decodeBytea(`\\x${bytes.toString("hex")}`) as Uint8Array;
  assert.equal(Object.getPrototypeOf(decoded), Uint8Array.prototype);
  assert.ok(Buffer.from(decoded.buffer, decoded.byteOffset, decoded.byteLength).equals(bytes));
  for (const text of ["\\x0", "\\x0g", "\\xzz00", "\\x00ff0"]) assert.throws(() => decodeBytea(text), /cannot decode bytea/, text);
});

test("money to plain decimal digits", () => {
  assert.equal(decodeMoney("$1,234.56"), "1234.56");
  assert.equal(decodeMoney("-$92,233,720,368,547,758.08"), "-92233720368547758.08");
  assert.equal(decodeMoney("$0.00"), "0.00");
});
