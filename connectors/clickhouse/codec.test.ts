/**
 * RowBinary encoding of every column type the sink creates, without a server. The fixtures for
 * Decimal, UUID, String and arrays are bytes ClickHouse 18.16 accepted and printed back as the
 * values here (checked once with curl); floats are checked bit for bit, edge values included.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { ColumnValue } from "../contracts.ts";
import type { LogicalType } from "../sinks/logical-type.ts";
import { keyLiteral, readValue, skipValue, writeValue } from "./codec.ts";
import { RowBinaryReader, RowBinaryWriter } from "./rowbinary.ts";
import { clickhouseType, dialectFor } from "./types.ts";

const old = dialectFor("18.16.1", false);
const recent = dialectFor("24.3", false);

function encode(type: LogicalType, value: ColumnValue, nullable = false, dialect = old): string {
  const writer = new RowBinaryWriter();
  writeValue(writer, type, dialect, nullable, value);
  return writer.endRow().toString("hex");
}

/** Decodes `hex` as one field, checking that skipValue measures it the same. */
function decode(type: LogicalType, hex: string, nullable = false): ColumnValue {
  const data = Buffer.from(hex, "hex");
  const skipper = new RowBinaryReader(data);
  skipValue(skipper, type, nullable);
  assert.equal(skipper.pos, data.length, "skipValue measures the whole field");
  const reader = new RowBinaryReader(data);
  const value = readValue(reader, type, nullable);
  assert.equal(reader.pos, data.length, "readValue reads the whole field");
  return value;
}

const int = (bits: 8 | 16 | 24 | 32 | 64, unsigned = false): LogicalType => ({ kind: "integer", bits, unsigned });
const f64: LogicalType = { kind: "float", bits: 64 };
const f32: LogicalType = { kind: "float", bits: 32 };

function float64Bits(n: number): string {
  const b = Buffer.alloc(8);
  b.writeDoubleLE(n);
  return b.toString("hex");
}

describe("ClickHouse RowBinary values", () => {
  test("integers: little-endian at the column's width, numbers and bigints alike, out of range rejected", () => {
    assert.equal(encode(int(8), -2), "fe");
    assert.equal(encode(int(8, true), 255), "ff");
    assert.equal(encode(int(16), -2), "feff");
    assert.equal(encode(int(16, true), 65_535), "ffff");
    assert.equal(encode(int(24), -8_388_608), "000080ff", "mediumint is an Int32 column");
    assert.equal(encode(int(32), 2_147_483_647), "ffffff7f");
    assert.equal(encode(int(32, true), 4_294_967_295), "ffffffff");
    assert.equal(encode(int(64), -1), "ffffffffffffffff");
    assert.equal(encode(int(64), Number.MAX_SAFE_INTEGER), "ffffffffffff1f00");
    assert.equal(encode(int(64), Number.MIN_SAFE_INTEGER), "010000000000e0ff");
    assert.equal(encode(int(64), -9_223_372_036_854_775_808n), "0000000000000080");
    assert.equal(encode(int(64), "42"), "2a00000000000000");
    assert.equal(encode(int(64, true), 18_446_744_073_709_551_615n), "ffffffffffffffff");
    assert.equal(encode(int(32), 5, true), "0005000000");
    assert.equal(encode(int(32), null, true), "01");
    assert.throws(() => encode(int(16), 40_000), /40000 is out of range for int16/);
    assert.throws(() => encode(int(24), 8_388_608), /out of range/);
    assert.throws(() => encode(int(64, true), -1), /out of range/);
    assert.throws(() => encode(int(64), 2n ** 63n), /out of range/);
    assert.throws(() => encode(int(32), 1.5), /expected an integer/);
    assert.deepEqual(decode(int(64, true), "ffffffffffffffff"), 18_446_744_073_709_551_615n);
    assert.equal(decode(int(16), "feff"), -2);
    assert.equal(decode(int(32), "0005000000", true), 5);
  });

  test("Float64: the value's own bits, -0, NaN, infinities, subnormals and extremes included", () => {
    const edges = [
      0,
      -0,
      Number.NaN,
      Number.POSITIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      Number.MIN_VALUE, // smallest subnormal
      2.225073858507201e-308, // largest subnormal
      2.2250738585072014e-308, // smallest normal
      Number.MAX_VALUE,
      -Number.MAX_VALUE,
      Number.EPSILON,
      4.747873547021299e-8, // 18.16's text parser lands 1 ULP off
      -2.906308874953538e-12,
    ];
    for (const n of edges) {
      assert.equal(encode(f64, n), float64Bits(n), String(n));
      assert.ok(Object.is(decode(f64, encode(f64, n)), n), String(n));
    }
    assert.equal(encode(f64, -0), "0000000000000080");
    assert.equal(encode(f64, Number.NaN), "000000000000f87f");
    assert.equal(encode(f64, Number.MIN_VALUE), "0100000000000000");
    assert.equal(encode(f64, Number.MAX_VALUE), "ffffffffffffef7f");
    assert.equal(encode(f64, "-Infinity"), "000000000000f0ff");
    assert.equal(encode(f64, "4.747873547021299e-8"), "004cbe7e6d7d693e");
    assert.equal(encode(f64, 1.5, true), "00000000000000f83f");
  });

  test("Float64: random bit patterns round-trip exactly", () => {
    const bits = Buffer.alloc(8);
    for (let i = 0; i < 20_000; i++) {
      bits.writeUInt32LE((Math.random() * 2 ** 32) >>> 0, 0);
      bits.writeUInt32LE((Math.random() * 2 ** 32) >>> 0, 4);
      const n = bits.readDoubleLE(0);
      if (Number.isNaN(n)) continue; // JS keeps one NaN
      assert.equal(encode(f64, n), bits.toString("hex"));
    }
  });

  test("Float32: values that are floats keep their bits; out-of-range values rejected, not made infinite", () => {
    const cases: [number, string][] = [
      [1.5, "0000c03f"],
      [-0, "00000080"],
      [Number.NaN, "0000c07f"],
      [Number.POSITIVE_INFINITY, "0000807f"],
      [Number.NEGATIVE_INFINITY, "000080ff"],
      [2 ** -149, "01000000"], // smallest subnormal
      [1.1754942106924411e-38, "ffff7f00"], // largest subnormal
      [1.1754943508222875e-38, "00008000"], // smallest normal
      [3.4028234663852886e38, "ffff7f7f"], // largest
      [Math.fround(-2.3671320903417836e-8), Buffer.from(new Float32Array([-2.3671320903417836e-8]).buffer).toString("hex")],
    ];
    for (const [n, hex] of cases) {
      assert.equal(encode(f32, n), hex, String(n));
      assert.ok(Object.is(decode(f32, hex), n), String(n));
    }
    const bits = Buffer.alloc(4);
    for (let i = 0; i < 20_000; i++) {
      bits.writeUInt32LE((Math.random() * 2 ** 32) >>> 0, 0);
      const n = bits.readFloatLE(0);
      if (Number.isNaN(n)) continue;
      assert.equal(encode(f32, n), bits.toString("hex"));
    }
    assert.throws(() => encode(f32, 1e39), /out of range for float32/);
    assert.throws(() => encode(f32, -Number.MAX_VALUE), /out of range for float32/);
    assert.equal(encode(f32, null, true), "01");
  });

  test("decimals: Decimal32/64/128 by precision as scaled integers; no scale or over 38 digits: text in a String", () => {
    const dec = (precision: number | null, scale: number | null): LogicalType => ({ kind: "decimal", precision, scale });
    assert.equal(encode(dec(9, 2), "-123.45"), "c7cfffff");
    assert.equal(encode(dec(9, 2), "1.5"), "96000000");
    assert.equal(encode(dec(18, 4), "12345678901234.5678"), "4ef330a64b9bb601");
    assert.equal(encode(dec(38, 10), "-1234567890123456789012345678.9012345678"), "b20cc721af6fb63becccfd0f094fb6f6");
    assert.equal(encode(dec(38, 0), "99999999999999999999999999999999999999"), "ffffffff3f228a097ac4865aa84c3b4b");
    assert.equal(encode(dec(10, 2), 7, true), "00bc02000000000000");
    assert.equal(encode(dec(null, null), "NaN"), "034e614e");
    assert.equal(encode(dec(40, 2), "1.005"), "05312e303035");
    assert.throws(() => encode(dec(9, 2), "1.005"), /more than 2 digits/);
    assert.throws(() => encode(dec(9, 2), "12345678.9"), /does not fit decimal\(9,2\)/);
    assert.throws(() => encode(dec(9, 2), "NaN"), /expected a decimal/);
    assert.equal(decode(dec(38, 10), "b20cc721af6fb63becccfd0f094fb6f6"), "-1234567890123456789012345678.9012345678");
    assert.equal(decode(dec(9, 2), "96000000"), "1.50");
    assert.equal(decode(dec(null, null), "034e614e"), "NaN");
    assert.equal(clickhouseType(dec(9, 2), old, false), "Decimal(9, 2)");
    assert.equal(clickhouseType(dec(40, 2), old, true), "Nullable(String)");
    assert.equal(clickhouseType(dec(null, null), old, true), "Nullable(String)");
  });

  test("strings, JSON, bytes: LEB128 length and raw bytes", () => {
    assert.equal(encode({ kind: "string" }, "héllo\t\n"), "0868c3a96c6c6f090a");
    assert.equal(encode({ kind: "string" }, ""), "00");
    assert.equal(encode({ kind: "string" }, "x".repeat(300)), `ac02${"78".repeat(300)}`);
    assert.equal(encode({ kind: "string" }, "a", true), "000161");
    assert.equal(encode({ kind: "json" }, '{"a":1}'), "077b2261223a317d");
    assert.throws(() => encode({ kind: "json" }, "{"), /invalid JSON/);
    assert.equal(encode({ kind: "bytes" }, new Uint8Array([0, 9, 255])), "030009ff");
    assert.equal(decode({ kind: "string" }, "0868c3a96c6c6f090a"), "héllo\t\n");
    assert.deepEqual(decode({ kind: "bytes" }, "030009ff", false), new Uint8Array([0, 9, 255]));
    assert.equal(decode({ kind: "string" }, "01", true), null);
  });

  test("UUID: each half a little-endian integer", () => {
    assert.equal(encode({ kind: "uuid" }, "6F1C8E36-6B4E-4D2E-9E3E-0C1C8D8C8C8C"), "2e4d4e6b368e1c6f8c8c8c8d1c0c3e9e");
    assert.equal(decode({ kind: "uuid" }, "2e4d4e6b368e1c6f8c8c8c8d1c0c3e9e"), "6f1c8e36-6b4e-4d2e-9e3e-0c1c8d8c8c8c");
    assert.throws(() => encode({ kind: "uuid" }, "nope"), /expected a UUID/);
  });

  test("booleans, dates, times, timestamps: the same bytes on every server, ranges per dialect", () => {
    assert.equal(encode({ kind: "boolean" }, true), "01");
    assert.equal(encode({ kind: "boolean" }, false, true), "0000");
    assert.equal(decode({ kind: "boolean" }, "01"), true);
    assert.equal(encode({ kind: "date" }, -3650), "bef1ffff");
    assert.equal(encode({ kind: "date" }, -3650, false, recent), "bef1ffff");
    assert.equal(encode({ kind: "date" }, -30_000), "d08affff", "18.16 holds any day as Int32");
    assert.throws(() => encode({ kind: "date" }, -30_000, false, recent), /Date32/);
    assert.equal(encode({ kind: "timestamp", tz: true }, -1n), "ffffffffffffffff");
    assert.equal(encode({ kind: "timestamp", tz: true }, -1n, false, recent), "ffffffffffffffff");
    assert.throws(() => encode({ kind: "timestamp", tz: true }, -3_000_000_000_000_000n, false, recent), /DateTime64/);
    // DateTime64's range is whole days 1900-01-01 .. 2299-12-31: the last microsecond of 2299 and the first of 1900 fit, one more does not.
    const day = 86_400_000_000n;
    for (const [micros, fits] of [
      [-25_567n * day, true],
      [-25_568n * day + 1n, true],
      [-25_568n * day, false],
      [120_530n * day - 1n, true],
      [120_530n * day, false],
    ] as const) {
      if (fits) assert.equal(encode({ kind: "timestamp", tz: true }, micros, false, recent), Buffer.from(BigUint64Array.of(BigInt.asUintN(64, micros)).buffer).toString("hex"), String(micros));
      else assert.throws(() => encode({ kind: "timestamp", tz: true }, micros, false, recent), /DateTime64/, String(micros));
    }
    assert.throws(() => encode({ kind: "timestamp", tz: true }, 2n ** 63n), /out of range for Int64/);
    // PostgreSQL's ±infinity are refused on every server, never stored as the sentinel microseconds.
    for (const dialect of [old, recent]) {
      assert.throws(() => encode({ kind: "timestamp", tz: false }, 2n ** 63n - 1n, false, dialect), /infinity \(PostgreSQL\) has no equivalent/);
      assert.throws(() => encode({ kind: "timestamp", tz: true }, -(2n ** 63n), false, dialect), /-infinity \(PostgreSQL\) has no equivalent/);
    }
    assert.equal(encode({ kind: "time" }, 86_400_000_000n), "0060d71d14000000");
    assert.throws(() => encode({ kind: "time" }, -1n), /outside 00:00..24:00/);
    assert.equal(encode({ kind: "duration" }, -1n, true), "00ffffffffffffffff");
    assert.equal(decode({ kind: "timestamp", tz: false }, "ffffffffffffffff"), -1n);
    assert.equal(decode({ kind: "date" }, "bef1ffff"), -3650);
  });

  test("arrays: LEB128 count of Nullable elements; NULL is []; nested arrays rejected", () => {
    const texts: LogicalType = { kind: "array", element: { kind: "string" } };
    const ints: LogicalType = { kind: "array", element: int(32) };
    assert.equal(encode(texts, ["a'b", null, ""]), "030003612762010000");
    assert.equal(encode(ints, [-7, null]), "0200f9ffffff01");
    assert.equal(encode(texts, null), "00");
    assert.equal(encode(texts, []), "00");
    assert.equal(encode({ kind: "array", element: f64 }, [-0]), "01000000000000000080");
    assert.throws(() => encode(texts, [["a"]]), /multi-dimensional/);
    assert.throws(() => encode({ kind: "array", element: texts }, [["a"]]), /multi-dimensional/);
    assert.throws(() => encode(ints, [1, 2 ** 40]), /out of range/);
    assert.deepEqual(decode(texts, "030003612762010000"), ["a'b", null, ""]);
    assert.deepEqual(decode(ints, "0200f9ffffff01"), [-7, null]);
    assert.equal(clickhouseType(ints, old, true), "Array(Nullable(Int32))");
  });

  test("NULL in a key column (not Nullable) is rejected", () => {
    assert.throws(() => encode(int(64), null), /NULL in a key column/);
  });

  test("key literals: integers bare, floats from their bits, anything else a string the server converts", () => {
    assert.equal(keyLiteral(int(32), old, 5), "5");
    assert.equal(keyLiteral({ kind: "decimal", precision: 10, scale: 2 }, old, "1.5"), "'1.50'");
    assert.equal(keyLiteral({ kind: "string" }, old, "it's é"), "'it\\'s \\xc3\\xa9'");
    assert.equal(keyLiteral(f64, old, 4.747873547021299e-8), "reinterpretAsFloat64(unhex('004cbe7e6d7d693e'))");
    assert.equal(keyLiteral(f32, old, 1.5), "reinterpretAsFloat32(unhex('0000c03f'))");
    assert.equal(keyLiteral({ kind: "date" }, old, -1), "-1");
    assert.equal(keyLiteral({ kind: "date" }, recent, -1), "'1969-12-31'");
    assert.equal(keyLiteral({ kind: "timestamp", tz: true }, recent, -1n), "'1969-12-31 23:59:59.999999'");
    assert.equal(keyLiteral({ kind: "uuid" }, old, "6F1C8E366B4E4D2E9E3E0C1C8D8C8C8C"), "'6f1c8e36-6b4e-4d2e-9e3e-0c1c8d8c8c8c'");
    assert.throws(() => keyLiteral({ kind: "array", element: int(32) }, old, [1]), /array key/);
  });
});

describe("RowBinaryWriter and RowBinaryReader", () => {
  test("LEB128 lengths", () => {
    for (const [n, hex] of [
      [0, "00"],
      [127, "7f"],
      [128, "8001"],
      [300, "ac02"],
      [2 ** 32, "8080808010"],
    ] as const) {
      const writer = new RowBinaryWriter();
      writer.varUInt(n);
      const bytes = writer.endRow();
      assert.equal(bytes.toString("hex"), hex);
      assert.equal(new RowBinaryReader(bytes).varUInt(), n);
    }
  });

  test("64-bit integers are Buffer's bytes at their bounds and across chunks; out of range throws Buffer's RangeError", () => {
    const writer = new RowBinaryWriter();
    const signed = [0n, 1n, -1n, 2n ** 63n - 1n, -(2n ** 63n), 1_700_000_000_123_456n, -(2n ** 40n) - 7n];
    const unsigned = [0n, 1n, 2n ** 64n - 1n, 2n ** 63n, 18_000_000_000_000_000_000n];
    for (let i = 0; i < 20_000; i++) {
      const s = signed[i % signed.length]! * (i % 3 === 0 ? 1n : -1n) / (i % 5 === 0 ? 3n : 1n);
      const u = unsigned[i % unsigned.length]!;
      writer.int64(BigInt.asIntN(64, s));
      writer.uint64(u);
      const expected = Buffer.alloc(16);
      expected.writeBigInt64LE(BigInt.asIntN(64, s), 0);
      expected.writeBigUInt64LE(u, 8);
      assert.deepEqual(writer.endRow(), expected, String(i));
    }
    assert.throws(() => writer.int64(2n ** 63n), RangeError);
    assert.throws(() => writer.int64(-(2n ** 63n) - 1n), RangeError);
    assert.throws(() => writer.uint64(-1n), RangeError);
    assert.throws(() => writer.uint64(2n ** 64n), RangeError);
  });

  test("rows stay intact across chunks, rows larger than a chunk included; a dropped row leaves nothing", () => {
    const writer = new RowBinaryWriter();
    const rows: [Buffer, string][] = [];
    for (let i = 0; i < 3_000; i++) {
      const text = String(i).repeat(i % 97 === 0 ? 40_000 : 1 + (i % 50));
      writer.uint64(BigInt(i));
      if (i % 10 === 0) {
        writer.string("half a row");
        writer.dropRow();
        writer.uint64(BigInt(i));
      }
      writer.string(text);
      writer.int128(-BigInt(i));
      rows.push([writer.endRow(), text]);
    }
    rows.forEach(([row, text], i) => {
      const reader = new RowBinaryReader(row);
      assert.equal(reader.uint64(), BigInt(i));
      assert.equal(reader.bytes().toString(), text);
      assert.equal(reader.int128(), -BigInt(i));
      assert.ok(reader.done);
    });
  });

  test("kept rows read back by number, in runs across chunks, rows larger than a chunk and dropped rows included", () => {
    const writer = new RowBinaryWriter();
    const expected: Buffer[] = [];
    for (let i = 0; i < 3_000; i++) {
      const text = String(i).repeat(i % 97 === 0 ? 40_000 : 1 + (i % 50));
      const row = new RowBinaryWriter();
      row.uint64(BigInt(i));
      row.string(text);
      expected.push(row.endRow());
      writer.uint64(BigInt(i));
      if (i % 10 === 0) {
        writer.string("half a row");
        writer.dropRow();
        writer.uint64(BigInt(i));
      }
      writer.string(text);
      assert.equal(writer.keepRow(), i);
    }
    assert.equal(writer.keptRows, 3_000);
    for (const [from, to] of [[0, 3_000], [0, 1], [5, 6], [96, 98], [1_000, 2_345], [2_999, 3_000], [7, 7]] as const) {
      assert.deepEqual(Buffer.concat(writer.rows(from, to)), Buffer.concat(expected.slice(from, to)), `${from}..${to}`);
    }
    assert.ok(writer.rows(0, 3_000).length > 1, "the rows span several chunks");
    assert.throws(() => writer.rows(0, 3_001), RangeError);
  });

  test("truncated data is an error, not a short value", () => {
    assert.throws(() => new RowBinaryReader(Buffer.from("0568", "hex")).bytes(), /truncated RowBinary/);
    assert.throws(() => new RowBinaryReader(Buffer.from("0000", "hex")).float64(), /truncated RowBinary/);
  });
});
