/**
 * Every PostgreSQL and MySQL type: its Avro schema, and values through Avro binary and back.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ColumnValue, SourceKind, TableSchema } from "../connectors/contracts.ts";
import { parseSchema } from "./avro-parse.ts";
import { createAvroType } from "./avro-runtime.ts";
import type { AvroSchemaJson } from "./avro-schema.ts";
import { assertRowWriterAgrees } from "./fast-path-test-support.ts";
import { EARLIER_TYPE_MODES } from "./postgres-types.ts";
import type { NumericMode, TypeModes } from "./postgres-types.ts";
import { SPECIAL_FIELD } from "./row-codec.ts";
import { mapTable } from "./table-mapping.ts";

interface MappedColumn {
  readonly fieldType: AvroSchemaJson;
  /** The compiled writers (capture's fast path) write the general path's bytes. */
  assertFastWriter(value: ColumnValue): void;
  roundTrip(value: ColumnValue): ColumnValue | undefined;
  encode(value: ColumnValue): Record<string, unknown>;
}

/** The type tables below are of the `avro` time precision (Sluice's earlier types); the Debezium modes have their own section. */
function mapColumn(kind: SourceKind, dbType: string, numericMode?: NumericMode, modes: TypeModes = EARLIER_TYPE_MODES): MappedColumn {
  const mapping = mapTable(
    { source: "src", database: "db", schema: "sc", table: "t", sourceKind: kind, key: [], columns: [{ name: "c", dbType, nullable: true }] },
    { ...(numericMode === undefined ? {} : { numericMode }), ...modes },
  );
  parseSchema(mapping.envelopeSchema);
  const type = createAvroType(mapping.valueSchema);
  const field = mapping.valueSchema.fields[0];
  assert.ok(field && Array.isArray(field.type) && field.type[0] === "null", `${dbType}: nullable field is ["null", T]`);
  assert.equal(field.default, null);
  return {
    fieldType: (field.type as AvroSchemaJson[])[1] as AvroSchemaJson,
    assertFastWriter: (value) => assertRowWriterAgrees(mapping, { c: value }, `${dbType}: ${String(value)}`),
    roundTrip: (value) => {
      // The bookkeeping (NaN of precise numerics) travels beside the record, in the record headers.
      const side = {};
      return mapping.valueCodec.fromAvro(type.fromBuffer(type.toBuffer(mapping.valueCodec.toAvro({ c: value }, side))), side).c;
    },
    encode: (value) => {
      const side: { special?: Record<string, string> } = {};
      const record = mapping.valueCodec.toAvro({ c: value }, side);
      return side.special ? { ...record, [SPECIAL_FIELD]: side.special } : record;
    },
  };
}

type Case = readonly [input: ColumnValue, output?: ColumnValue];

function checkType(kind: SourceKind, dbTypes: readonly string[], expectedType: AvroSchemaJson, cases: readonly Case[], numericMode?: NumericMode, modes?: TypeModes): void {
  for (const dbType of dbTypes) {
    it(`${kind} ${dbType}${numericMode ? ` (${numericMode})` : ""}${modes ? ` (${modes.timePrecision}, decimals ${modes.decimals})` : ""} → ${JSON.stringify(expectedType)}`, () => {
      const column = mapColumn(kind, dbType, numericMode, modes);
      assert.deepEqual(column.fieldType, expectedType);
      for (const [input, output = input] of [...cases, [null] as Case]) {
        assert.deepEqual(column.roundTrip(input), output, `${dbType}: ${String(input)}`);
        column.assertFastWriter(input);
      }
    });
  }
}

const INT: AvroSchemaJson = "int";
const LONG: AvroSchemaJson = "long";
const STRING: AvroSchemaJson = "string";
const BYTES: AvroSchemaJson = "bytes";
const DATE: AvroSchemaJson = { type: "int", logicalType: "date" };
const TIME_MICROS: AvroSchemaJson = { type: "long", logicalType: "time-micros" };
const TIMESTAMP_MICROS: AvroSchemaJson = { type: "long", logicalType: "timestamp-micros" };
const JSON_STRING: AvroSchemaJson = { type: "string", "connect.name": "io.debezium.data.Json" };
const decimal = (precision: number, scale: number): AvroSchemaJson => ({ type: "bytes", logicalType: "decimal", precision, scale });
const VARIABLE_SCALE_DECIMAL: AvroSchemaJson = {
  type: "record",
  name: "io.debezium.data.VariableScaleDecimal",
  fields: [
    { name: "scale", type: "int" },
    { name: "value", type: "bytes" },
  ],
  "connect.name": "io.debezium.data.VariableScaleDecimal",
};
const bytes = (...values: number[]): Uint8Array => new Uint8Array(values);

/** PostgreSQL arrays: items are ["null", T, array<items one level down>], 6 levels deep (PostgreSQL's most dimensions). */
function pgArray(element: AvroSchemaJson): AvroSchemaJson {
  const named = typeof element === "object" && !Array.isArray(element) && "name" in element ? String(element.name) : null;
  const items = (level: number): AvroSchemaJson[] => {
    const here: AvroSchemaJson[] = ["null", level === 1 || named === null ? element : named];
    if (level < 6) here.push({ type: "array", items: items(level + 1) });
    return here;
  };
  return { type: "array", items: items(1) };
}
const THOUSAND_DIGITS = `-${"1234567890".repeat(60)}.${"0987654321".repeat(40)}`;

describe("PostgreSQL types", () => {
  checkType("postgres", ["int2", "smallint", "smallserial"], INT, [[0], [-32768], [32767]]);
  checkType("postgres", ["int4", "integer", "int", "serial"], INT, [[-2147483648], [2147483647], ["42", 42]]);
  checkType("postgres", ["int8", "bigint", "bigserial"], LONG, [
    [2n ** 63n - 1n],
    [-(2n ** 63n)],
    [2n ** 53n + 1n],
    [5, 5n],
  ]);
  checkType("postgres", ["numeric(10,2)", "decimal(10,2)"], decimal(10, 2), [["-12.34"], ["0.00"], ["99999999.99"], ["7", "7.00"], [12n, "12.00"]]);
  checkType("postgres", ["numeric(5)"], decimal(5, 0), [["12345"], ["-1"]]);
  checkType("postgres", ["numeric", "decimal", "numeric(3,-2)"], VARIABLE_SCALE_DECIMAL, [
    ["1.5"],
    ["-0.000001"],
    ["123456789012345678901234567890.123"],
    [THOUSAND_DIGITS],
    ["NaN"],
    ["Infinity"],
    ["-Infinity"],
  ]);
  checkType("postgres", ["numeric"], STRING, [[THOUSAND_DIGITS], ["NaN"], ["Infinity"], ["-Infinity"], ["0.10"]], "string");
  checkType("postgres", ["numeric"], "double", [["1.5"], ["NaN"], ["Infinity"], ["-Infinity"], ["-0.25"]], "double");
  checkType("postgres", ["real", "float4"], "float", [[1.5], [Number.NaN], [Number.POSITIVE_INFINITY], ["-Infinity", Number.NEGATIVE_INFINITY]]);
  checkType("postgres", ["double precision", "float8", "float"], "double", [[0.1], [Number.NaN], [Number.NEGATIVE_INFINITY], ["1e300", 1e300]]);
  checkType("postgres", ["boolean", "bool"], "boolean", [[true], [false]]);
  checkType("postgres", ["text", "varchar(255)", "character varying(10)", "char(3)", "character(3)", "bpchar", "name", "citext"], STRING, [[""], ["héllo ✓"]]);
  checkType("postgres", ["bytea"], BYTES, [[bytes(0, 255, 1)], [bytes()]]);
  checkType("postgres", ["date"], DATE, [[0], [-719162], [2932896]]);
  checkType("postgres", ["time", "time(6) without time zone"], TIME_MICROS, [[0], [86_399_999_999], [86_400_000_000], [12n, 12]]);
  checkType("postgres", ["timetz", "time with time zone"], STRING, [["12:34:56.789+02"]]);
  checkType("postgres", ["timestamp", "timestamp(3) without time zone", "timestamptz", "timestamp with time zone"], TIMESTAMP_MICROS, [
    [1_700_000_000_000_000n],
    [1_700_000_000_000_000, 1_700_000_000_000_000n],
    [-62_135_596_800_000_000n],
    [253_402_300_799_999_999n],
  ]);
  checkType("postgres", ["interval"], STRING, [["1 year 2 mons 3 days 04:05:06.78"]]);
  checkType("postgres", ["uuid"], { type: "string", logicalType: "uuid" }, [["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"]]);
  checkType("postgres", ["json", "jsonb"], JSON_STRING, [['{"a":[1,2,{"b":null}]}'], ["[]"]]);
  checkType("postgres", ["xml"], { type: "string", "connect.name": "io.debezium.data.Xml" }, [["<a>1</a>"]]);
  checkType("postgres", ["inet", "cidr", "macaddr", "macaddr8", "tsvector", "tsquery", "point", "polygon", "int4range", "pg_lsn", "mood", "public.mood"], STRING, [
    ["192.168.0.1/24"],
    ["08:00:2b:01:02:03"],
    ["'a' 'fat' 'cat'"],
    ["(1,2)"],
    ["[1,10)"],
    ["happy"],
  ]);
  checkType("postgres", ["bit(3)", "bit varying(8)", "varbit"], STRING, [["101"], [""]]);
  checkType("postgres", ["money"], decimal(19, 2), [["-12.30"], ["$1,234.56", "1234.56"], ["-$0.99", "-0.99"]]);
  checkType("postgres", ["hstore", "public.hstore"], { type: "map", values: ["null", "string"] }, [['"a"=>"1", "b"=>NULL, "q\\"uote"=>"x, y"'], [""]]);
  checkType("postgres", ["oid", "xid"], LONG, [[4294967295], ["12", 12]]);
  checkType("postgres", ["xid8"], decimal(20, 0), [[18446744073709551615n]]);
  checkType("postgres", ["_int4", "integer[]", "int4[]", "integer[][]"], pgArray("int"), [[[1, null, 3]], [[]], [[[1, 2], [3, null]]], [[[[1], [2]], [[3], [4]]]]]);
  checkType("postgres", ["_text", "text[]"], pgArray("string"), [[["a", null, ""]], [[["a", "b"], ["c", "d"]]]]);
  checkType("postgres", ["_uuid"], pgArray({ type: "string", logicalType: "uuid" }), [[["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"]]]);
  checkType("postgres", ["_numeric"], pgArray(VARIABLE_SCALE_DECIMAL), [[["1.5", "NaN", null, "-Infinity", "2"]], [[["1.5", "NaN"], [null, "Infinity"]]]]);
  checkType("postgres", ["numeric(10,2)[]"], pgArray(decimal(10, 2)), [[["1.50", null]], [[["1.50"], ["NaN"]]]]);
  checkType("postgres", ["_timestamptz"], pgArray(TIMESTAMP_MICROS), [[[1n, null]]]);
  checkType("postgres", ["_jsonb"], pgArray(JSON_STRING), [[['{"a":1}']]]);

  it("gives the text form to unknown types (enums, domains over them, extensions)", () => {
    for (const dbType of ["mood", "public.mood", "ltree", "tsvector", "point", "int4range"]) {
      assert.deepEqual(mapColumn("postgres", dbType).fieldType, "string", dbType);
    }
  });

  it("records NaN and ±Infinity of precise numerics beside the record, leaving the field null", () => {
    const encoded = mapColumn("postgres", "numeric(10,2)").encode("NaN");
    assert.equal(encoded.c, null);
    assert.deepEqual(encoded[SPECIAL_FIELD], { c: "NaN" });
    const array = mapColumn("postgres", "_numeric").encode(["1", "Infinity"]);
    assert.deepEqual(array[SPECIAL_FIELD], { "c[1]": "Infinity" });
    assert.deepEqual((array.c as unknown[])[1], null);
  });

  it("rejects values that do not fit, naming the column", () => {
    assert.throws(() => mapColumn("postgres", "int4").encode(2 ** 31), /column `c`.*out of range/);
    assert.throws(() => mapColumn("postgres", "numeric(10,2)").encode("1.234"), /column `c`.*more than 2 digits/);
    assert.throws(() => mapColumn("postgres", "bytea").encode("abc"), /column `c`.*expected bytes/);
    assert.throws(() => mapColumn("postgres", "_int4").encode([[[[[[[1]]]]]]]), /column `c`.*more than 6 dimensions/);
    assert.throws(() => mapColumn("postgres", "int8").encode(2n ** 63n), /out of range/);
  });

  it("refuses timestamps past what timestamp-micros holds, naming the timestamp (PostgreSQL reaches 294276 AD, a long of µs since 1970 only 294247 AD)", () => {
    // 294276-12-31 23:59:59 as the PostgreSQL decoder gives it: microseconds since 1970 beyond 2^63.
    const micros = 9_224_318_015_999_000_000n;
    assert.ok(micros > 2n ** 63n - 1n);
    assert.throws(
      () => mapColumn("postgres", "timestamp").encode(micros),
      (error: Error & { code?: string; context?: Record<string, unknown> }) => {
        assert.equal(error.code, "AVRO_VALUE_INVALID");
        assert.match(error.message, /column `c`.*294276-12-31T23:59:59Z is beyond what timestamp-micros/);
        assert.equal(error.context?.["column"], "c");
        assert.equal(error.context?.["value"], "timestamp 294276-12-31T23:59:59Z");
        return true;
      },
    );
    // The last timestamp that fits, and infinity / -infinity (PostgreSQL's sentinels, the int64 extremes) still encode.
    assert.equal(mapColumn("postgres", "timestamptz").roundTrip(2n ** 63n - 1n), 2n ** 63n - 1n);
    assert.equal(mapColumn("postgres", "timestamptz").roundTrip(-(2n ** 63n)), -(2n ** 63n));
    assert.equal(mapColumn("postgres", "date").roundTrip(2_147_483_647), 2_147_483_647);
    assert.throws(() => mapColumn("postgres", "date").encode(2 ** 31), /column `c`.*5881580-07-12 is beyond what the Avro date type/);
  });

  it("refuses the finite timestamp at 2^63 - 1 µs after 1970 (the decoder keeps its text) in every time precision, never writing infinity", () => {
    for (const timePrecision of ["avro", "adaptive", "connect"] as const) {
      for (const [dbType, text] of [["timestamp", "294247-01-10 04:00:54.775807"], ["timestamp(3)", "294247-01-10 04:00:54.775807"], ["timestamptz", "294247-01-10 04:00:54.775807+00"], ["timestamp[]", "294247-01-10 04:00:54.775807"]] as const) {
        const value = dbType.endsWith("[]") ? [text] : text;
        assert.throws(
          () => mapColumn("postgres", dbType, undefined, { ...EARLIER_TYPE_MODES, timePrecision }).encode(value),
          (error: Error & { code?: string }) => error.code === "AVRO_VALUE_INVALID" && /2\^63-1 microseconds after 1970.*infinity/.test(error.message),
          `${timePrecision} ${dbType}`,
        );
      }
    }
  });

  it("writes one-dimensional arrays in the same bytes as the one-dimensional layout, so consumers of earlier schemas read them", () => {
    const table = { source: "src", database: "db", schema: "sc", table: "t", sourceKind: "postgres" as const, key: [], columns: [{ name: "c", dbType: "integer[]", nullable: true }] };
    const nested = mapTable(table);
    const flat = mapTable(table, { arrayLayout: "flat" });
    assert.deepEqual((flat.valueSchema.fields[0]!.type as AvroSchemaJson[])[1], { type: "array", items: ["null", "int"] });
    const row = { c: [1, null, -7] };
    const nestedBytes = createAvroType(nested.valueSchema).toBuffer(nested.valueCodec.toAvro(row));
    const flatBytes = createAvroType(flat.valueSchema).toBuffer(flat.valueCodec.toAvro(row));
    assert.deepEqual(nestedBytes, flatBytes);
    assert.deepEqual(flat.valueCodec.fromAvro(createAvroType(flat.valueSchema).fromBuffer(nestedBytes)), row);
    assert.throws(() => flat.valueCodec.toAvro({ c: [[1, 2], [3, 4]] }), (error: Error & { context?: Record<string, unknown> }) => {
      assert.match(error.message, /column `c`.*more than 1 dimension.*one-dimensional layout/);
      assert.equal(error.context?.["value"], "[[1,2],[3,4]]");
      return true;
    });
  });
});

describe("MySQL types", () => {
  checkType("mysql", ["tinyint", "tinyint(1)", "tinyint unsigned", "smallint", "smallint(6) unsigned", "mediumint", "mediumint unsigned zerofill", "year", "year(4)"], INT, [
    [0],
    [255],
    [-128],
    [16777215],
  ]);
  checkType("mysql", ["int", "int(11)", "integer"], INT, [[-2147483648], [2147483647]]);
  checkType("mysql", ["int unsigned", "int(10) unsigned"], LONG, [[4294967295], [0]]);
  checkType("mysql", ["bigint", "bigint(20)"], LONG, [[2n ** 63n - 1n], [-(2n ** 63n)]]);
  checkType("mysql", ["bigint unsigned", "bigint(20) unsigned", "serial"], decimal(20, 0), [
    [18446744073709551615n],
    [0n],
    ["18446744073709551615", 18446744073709551615n],
    [9007199254740993n],
  ]);
  checkType("mysql", ["decimal(10,2)", "numeric(10,2)", "decimal(10,2) unsigned"], decimal(10, 2), [["-12.34"], ["0.10"]]);
  checkType("mysql", ["decimal"], decimal(10, 0), [["1234567890"]]);
  checkType("mysql", ["decimal(65,30)"], decimal(65, 30), [[`${"9".repeat(35)}.${"9".repeat(30)}`]]);
  checkType("mysql", ["float", "float(10)", "float(7,3)"], "float", [[1.5], [-0.5]]);
  checkType("mysql", ["float(30)", "double", "double precision", "real"], "double", [[0.1], [1e308]]);
  checkType("mysql", ["bit(1)", "bit"], "boolean", [[true], [false], [bytes(1), true], [bytes(0), false]]);
  checkType("mysql", ["bit(10)"], BYTES, [[bytes(0x03, 0xff)], [bytes(1), bytes(0, 1)], [5, bytes(0, 5)]]);
  checkType("mysql", ["date"], DATE, [[19000], [-719162]]);
  checkType("mysql", ["time", "time(3)"], { type: "long", "connect.name": "io.debezium.time.MicroTime" }, [[-3_020_399_000_000], [3_020_399_000_000]]);
  checkType("mysql", ["datetime", "datetime(6)", "timestamp", "timestamp(3)"], TIMESTAMP_MICROS, [[1_700_000_000_123_456n], [0n]]);
  checkType("mysql", ["char(10)", "varchar(255)", "tinytext", "text", "mediumtext", "longtext"], STRING, [["héllo"], [""]]);
  checkType("mysql", ["binary(16)", "varbinary(255)", "tinyblob", "blob", "mediumblob", "longblob"], BYTES, [[bytes(1, 2, 3)]]);
  checkType("mysql", ["enum('a','B','it''s, here')"], { type: "string", "connect.name": "io.debezium.data.Enum", "connect.parameters": { allowed: "a,B,it's, here" } }, [
    ["B"],
    ["it's, here"],
  ]);
  checkType("mysql", ["set('x','y')"], { type: "string", "connect.name": "io.debezium.data.EnumSet", "connect.parameters": { allowed: "x,y" } }, [
    ["x,y"],
    [["x", "y"], "x,y"],
    [""],
  ]);
  checkType("mysql", ["json"], JSON_STRING, [['{"k":"v"}']]);
  // Debezium's Geometry {wkb, srid}; the value is MySQL's own form, a little-endian SRID then the WKB, so the SRID survives.
  const GEOMETRY: AvroSchemaJson = {
    type: "record",
    name: "io.debezium.data.geometry.Geometry",
    fields: [
      { name: "wkb", type: "bytes" },
      { name: "srid", type: ["null", "int"], default: null },
    ],
    "connect.name": "io.debezium.data.geometry.Geometry",
    "connect.doc": "Geometry in WKB with its SRID",
  };
  checkType("mysql", ["geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon", "geometrycollection"], GEOMETRY, [
    [bytes(0xe6, 0x10, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)],
    [bytes(0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)],
  ]);
  it("mysql geometry: the Avro record holds the WKB and the SRID apart, as Debezium does", () => {
    const column = mapColumn("mysql", "point");
    const encoded = column.encode(bytes(0xe6, 0x10, 0, 0, 1, 2, 3))["c"] as { wkb: Uint8Array; srid: number };
    assert.deepEqual([...encoded.wkb], [1, 2, 3]);
    assert.equal(encoded.srid, 4326);
  });

  it("rejects values that do not fit, naming the column", () => {
    assert.throws(() => mapColumn("mysql", "bigint unsigned").encode("1.5"), /column `c`/);
    assert.throws(() => mapColumn("mysql", "bit(10)").encode(bytes(1, 2, 3)), /do not fit bit\(10\)/);
    assert.throws(() => mapColumn("mysql", "bit(10)").encode(2048), /out of range/);
  });
});

describe("Debezium's time.precision.mode and decimal.handling.mode", () => {
  const adaptive: TypeModes = { timePrecision: "adaptive", decimals: "all" };
  const connect: TypeModes = { timePrecision: "connect", decimals: "all" };
  const dbz = (name: string, type: string): AvroSchemaJson => ({ type, "connect.name": `io.debezium.time.${name}`, "connect.version": 1 });
  const kafka = (name: string, type: string, logicalType: string): AvroSchemaJson => ({ type, "connect.name": `org.apache.kafka.connect.data.${name}`, "connect.version": 1, logicalType });
  const ts = 1_700_000_000_123_456n;
  const tsMillis = 1_700_000_000_123_000n;

  // adaptive: Debezium's semantic types, the unit following the declared precision.
  checkType("postgres", ["date"], dbz("Date", "int"), [[19_000], [-719_162]], undefined, adaptive);
  checkType("postgres", ["time(3) without time zone", "time(0)"], dbz("Time", "int"), [[45_296_123_000], [0]], undefined, adaptive);
  checkType("postgres", ["time", "time(6) without time zone"], dbz("MicroTime", "long"), [[45_296_123_456], [86_400_000_000]], undefined, adaptive);
  checkType("postgres", ["timestamp(3) without time zone", "timestamp(0)"], dbz("Timestamp", "long"), [[tsMillis], [-1_000n], [2n ** 63n - 1n], [-(2n ** 63n)]], undefined, adaptive);
  checkType("postgres", ["timestamp", "timestamp(6) without time zone"], dbz("MicroTimestamp", "long"), [[ts], [-1n]], undefined, adaptive);
  checkType("postgres", ["timestamptz", "timestamp(3) with time zone"], dbz("ZonedTimestamp", "string"), [[ts], [0n], [-62_135_596_800_000_000n], [2n ** 63n - 1n], [-(2n ** 63n)], [-1n]], undefined, adaptive);
  checkType("mysql", ["datetime", "datetime(3)"], dbz("Timestamp", "long"), [[tsMillis], [0n]], undefined, adaptive);
  checkType("mysql", ["datetime(6)"], dbz("MicroTimestamp", "long"), [[ts]], undefined, adaptive);
  checkType("mysql", ["timestamp", "timestamp(6)"], dbz("ZonedTimestamp", "string"), [[ts], [0n]], undefined, adaptive);
  checkType("mysql", ["time", "time(3)"], dbz("MicroTime", "long"), [[-3_020_399_000_000], [3_020_399_000_000]], undefined, adaptive);
  checkType("mysql", ["date"], dbz("Date", "int"), [[19_000]], undefined, adaptive);

  // connect: Kafka Connect's millisecond logical types; finer digits are dropped.
  checkType("postgres", ["date"], kafka("Date", "int", "date"), [[19_000]], undefined, connect);
  checkType("postgres", ["time"], kafka("Time", "int", "time-millis"), [[45_296_123_456, 45_296_123_000]], undefined, connect);
  checkType("postgres", ["timestamp", "timestamptz"], kafka("Timestamp", "long", "timestamp-millis"), [[ts, tsMillis], [-1n, -1_000n]], undefined, connect);
  checkType("mysql", ["datetime(6)", "timestamp"], kafka("Timestamp", "long", "timestamp-millis"), [[ts, tsMillis]], undefined, connect);

  // decimal.handling.mode: the numeric mode covers every numeric.
  checkType("postgres", ["numeric(10,2)"], STRING, [["-12.34"], ["NaN"]], "string", adaptive);
  checkType("postgres", ["numeric(10,2)"], "double", [["1.5"]], "double", adaptive);
  checkType("mysql", ["decimal(10,2)"], STRING, [["-12.34"]], "string", adaptive);
  checkType("postgres", ["numeric(10,2)"], decimal(10, 2), [["-12.34"]], "precise", adaptive);

  // timetz: Debezium's ZonedTime in both modes; the value's own offset comes back from the special header.
  const timetzValues: Case[] = [["10:23:54.5+05:30"], ["04:53:54.5+00:00"], ["23:59:59.999999+14:00"], ["00:00:00-12:00"], ["24:00:00+00:00"], ["24:00:00+05:30"], ["24:00:00-12:00"], ["12:00:00+05:45:12"]];
  checkType("postgres", ["timetz", "time with time zone", "time(3) with time zone"], dbz("ZonedTime", "string"), timetzValues, undefined, adaptive);
  checkType("postgres", ["timetz"], dbz("ZonedTime", "string"), timetzValues, undefined, connect);
  it("postgres timetz[] (adaptive): ZonedTime elements, each element's offset kept", () => {
    const column = mapColumn("postgres", "timetz[]", undefined, adaptive);
    const value = ["10:00:00+02:00", null, "08:00:00+00:00", ["24:00:00-12:00"]];
    const record = column.encode(value);
    assert.deepEqual(record.c, ["08:00:00Z", null, "08:00:00Z", ["12:00:00Z"]]);
    assert.deepEqual(record[SPECIAL_FIELD], { "c[0]": "10:00:00+02:00", "c[3][0]": "24:00:00-12:00" });
    assert.deepEqual(column.roundTrip(value), value);
    column.assertFastWriter(value);
  });

  it("writes ZonedTime as Debezium does: the time in UTC, wrapping past midnight, 24:00:00 at UTC kept; the offset in the special header", () => {
    const column = mapColumn("postgres", "timetz", undefined, adaptive);
    const cases: [string, string, boolean][] = [
      ["10:23:54.5+05:30", "04:53:54.5Z", true],
      ["04:53:54.5+00:00", "04:53:54.5Z", false],
      ["10:23:54.5+14:00", "20:23:54.5Z", true],
      ["23:00:00-12:00", "11:00:00Z", true],
      ["13:00:00-12:00", "01:00:00Z", true],
      ["00:00:00+00:00", "00:00:00Z", false],
      ["24:00:00+00:00", "24:00:00Z", false],
      ["24:00:00+14:00", "10:00:00Z", true],
      ["24:00:00-12:00", "12:00:00Z", true],
      ["12:00:00.000001+05:45:12", "06:14:48.000001Z", true],
    ];
    for (const [value, zoned, special] of cases) {
      const record = column.encode(value);
      assert.equal(record.c, zoned, value);
      assert.deepEqual(record[SPECIAL_FIELD], special ? { c: value } : undefined, value);
    }
  });

  it("writes ZonedTimestamp as Debezium does: UTC, fraction without trailing zeros", () => {
    const column = mapColumn("postgres", "timestamptz", undefined, adaptive);
    assert.equal(column.encode(ts).c, "2023-11-14T22:13:20.123456Z");
    assert.equal(column.encode(1_700_000_000_100_000n).c, "2023-11-14T22:13:20.1Z");
    assert.equal(column.encode(1_700_000_000_000_000n).c, "2023-11-14T22:13:20Z");
    assert.equal(column.encode(2n ** 63n - 1n).c, "infinity");
  });
});

describe("Debezium's forms of PostgreSQL uuid and hstore (hstore.handling.mode)", () => {
  const debezium: TypeModes = { timePrecision: "adaptive", decimals: "all", hstore: "json", uuidMarker: true, interval: "numeric" };
  const uuid: AvroSchemaJson = { type: "string", logicalType: "uuid", "connect.version": 1, "connect.name": "io.debezium.data.Uuid" };
  const hstoreJson: AvroSchemaJson = { type: "string", "connect.version": 1, "connect.name": "io.debezium.data.Json" };
  checkType("postgres", ["uuid"], uuid, [["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"]], undefined, debezium);
  checkType("postgres", ["hstore", "public.hstore"], hstoreJson, [['"a"=>"1", "b"=>NULL, "q\\"uote"=>"x, y"'], [""], ['"z"=>"last", "a"=>"first"']], undefined, debezium);
  checkType("postgres", ["_hstore"], pgArray(hstoreJson), [[['"a"=>"1"', null, '"k"=>NULL']]], undefined, debezium);

  it("hstore is a JSON object of strings and nulls, keys in the source's order, as Debezium writes it", () => {
    const column = mapColumn("postgres", "hstore", undefined, debezium);
    assert.equal(column.encode('"b"=>"2", "a"=>NULL, "q\\"uote"=>"x, y"').c, '{"b":"2","a":null,"q\\"uote":"x, y"}');
  });

  it("a new mapping defaults to Debezium's forms; envelope sluice keeps the map and the plain uuid", () => {
    const table: TableSchema = {
      source: "src",
      database: "db",
      schema: "sc",
      table: "t",
      sourceKind: "postgres",
      key: [],
      columns: [
        { name: "u", dbType: "uuid", nullable: false },
        { name: "h", dbType: "hstore", nullable: false },
      ],
    };
    const types = (mapping: ReturnType<typeof mapTable>) => mapping.valueSchema.fields.slice(0, 2).map((field) => field.type);
    const current = mapTable(table);
    assert.deepEqual(types(current), [uuid, hstoreJson]);
    assert.equal((current.valueSchema["sluice.table"] as { hstore?: string }).hstore, "json");
    const earlier = mapTable(table, { envelope: "sluice" });
    assert.deepEqual(types(earlier), [{ type: "string", logicalType: "uuid" }, { type: "map", values: ["null", "string"] }]);
    assert.equal((earlier.valueSchema["sluice.table"] as { hstore?: string }).hstore, undefined);
    // A table without hstore columns keeps its sluice.table property (no new schema version for it).
    assert.equal("hstore" in (mapTable({ ...table, columns: [{ name: "u", dbType: "uuid", nullable: false }] }).valueSchema["sluice.table"] as object), false);
  });
});

describe("Debezium's form of PostgreSQL interval (interval.handling.mode numeric)", () => {
  const numeric: TypeModes = { timePrecision: "adaptive", decimals: "all", interval: "numeric" };
  const microDuration: AvroSchemaJson = { type: "long", "connect.name": "io.debezium.time.MicroDuration", "connect.version": 1 };
  // Sluice's sinks get the exact text back whether or not it travelled in the header.
  checkType("postgres", ["interval", "interval(3)", "interval day to second(3)", "interval year"], microDuration, [["P1Y2M3DT4H5M6.789S"], ["P-1DT-1S"], ["PT0S"], ["PT1H2M3.5S"], ["PT-1H-2M-3.5S"], ["P178000000Y"], ["P1D"], ["PT24H"]], undefined, numeric);
  checkType("postgres", ["_interval"], pgArray(microDuration), [[["P1M", null, "PT1S"]]], undefined, numeric);

  it("is Debezium's count of microseconds (a month is 30.4375 days), saturating at the long's range", () => {
    const column = mapColumn("postgres", "interval", undefined, numeric);
    assert.equal(BigInt(column.encode("P1Y2M3DT4H5M6.789S").c as number), 37_091_106_789_000n);
    assert.equal(BigInt(column.encode("P1M").c as number), 2_629_800_000_000n);
    assert.equal(BigInt(column.encode("P-1DT-1S").c as number), -86_401_000_000n);
    assert.equal(BigInt(column.encode("P178000000Y").c as bigint), 2n ** 63n - 1n);
  });

  it("sends the source's text beside the record only where the count does not give it back", () => {
    const column = mapColumn("postgres", "interval", undefined, numeric);
    assert.deepEqual(column.encode("PT1H2M3.5S"), { c: 3_723_500_000 });
    assert.deepEqual(column.encode("P1D"), { c: 86_400_000_000, [SPECIAL_FIELD]: { c: "P1D" } });
  });

  it("refuses text that is not an ISO 8601 interval, naming it", () => {
    const column = mapColumn("postgres", "interval", undefined, numeric);
    assert.throws(() => column.encode("1 day"), /ISO 8601 interval.*"1 day"/);
  });
});

describe("Debezium's form of PostgreSQL bit(1)", () => {
  const debezium: TypeModes = { timePrecision: "adaptive", decimals: "all", bitBoolean: true, bits: false };
  checkType("postgres", ["bit", "bit(1)"], "boolean", [["1"], ["0"]], undefined, debezium);
  checkType("postgres", ["bit(1)[]"], pgArray("boolean"), [[["1", null, "0"]]], undefined, debezium);
  // Without the bits mode, wider bit strings keep their 0/1 text (and exact length): see the Bits section below.
  checkType("postgres", ["_bit"], pgArray(STRING), [[["1", "0110"]]], undefined, debezium);
  checkType("postgres", ["bit(2)", "bit varying(1)", "varbit"], STRING, [["01"], ["1"]], undefined, debezium);

  it("is true for 1, refuses anything but 0 or 1, and a new mapping records it in sluice.table", () => {
    const column = mapColumn("postgres", "bit(1)", undefined, debezium);
    assert.deepEqual(column.encode("1"), { c: true });
    assert.throws(() => column.encode("10"), /bit\(1\) text 0 or 1/);
    const table: TableSchema = { source: "s", database: "d", schema: "sc", table: "t", sourceKind: "postgres", key: [], columns: [{ name: "flag", dbType: "bit(1)", nullable: true }] };
    assert.equal((mapTable(table).valueSchema["sluice.table"] as { bitBoolean?: boolean }).bitBoolean, true);
    assert.equal((mapTable(table, { envelope: "sluice" }).valueSchema["sluice.table"] as { bitBoolean?: boolean }).bitBoolean, undefined);
  });
});

describe("Debezium's form of PostgreSQL point", () => {
  const debezium: TypeModes = { timePrecision: "adaptive", decimals: "all", pointRecord: true };
  const point: AvroSchemaJson = {
    type: "record",
    name: "io.debezium.data.geometry.Point",
    fields: [
      { name: "x", type: "double" },
      { name: "y", type: "double" },
      { name: "wkb", type: ["null", "bytes"], default: null },
      { name: "srid", type: ["null", "int"], default: null },
    ],
    "connect.version": 1,
    "connect.doc": "Geometry (POINT)",
    "connect.name": "io.debezium.data.geometry.Point",
  };
  // Texts x and y do not give back (-0, PostgreSQL's exponent digits) come back from the header.
  checkType("postgres", ["point"], point, [["(1.5,2)"], ["(-0,0)"], ["(1e-07,-1e+100)"], ["(NaN,-Infinity)"]], undefined, debezium);

  it("point[] elements come back exactly, -0 included", () => {
    const column = mapColumn("postgres", "_point", undefined, debezium);
    for (const value of [["(1,2)", null, "(-0,3)"], [["(1,2)"], ["(-0,0)"]]]) {
      assert.deepEqual(column.roundTrip(value), value);
      column.assertFastWriter(value);
    }
  });

  it("carries x, y and the point's WKB, as Debezium does", () => {
    const column = mapColumn("postgres", "point", undefined, debezium);
    const record = column.encode("(1.5,-2)").c as { x: number; y: number; wkb: Buffer; srid: null };
    assert.equal(record.x, 1.5);
    assert.equal(record.y, -2);
    assert.equal(record.srid, null);
    assert.equal(Buffer.from(record.wkb).toString("hex"), "0101000000000000000000f83f00000000000000c0");
    assert.throws(() => column.encode("1,2"), /expected a point/);
  });
});

describe("Debezium's form of bit strings (io.debezium.data.Bits)", () => {
  const debezium: TypeModes = { timePrecision: "adaptive", decimals: "all", bitBoolean: true, bits: true };
  const bitsType = (length: number): AvroSchemaJson => ({ type: "bytes", "connect.version": 1, "connect.parameters": { length: String(length) }, "connect.name": "io.debezium.data.Bits" });
  // Leading zeros of a bit varying, and an empty one, come back from the header.
  checkType("postgres", ["bit(12)"], bitsType(12), [["101000000011"], ["000000000000"], ["000000000101"]], undefined, debezium);
  checkType("postgres", ["bit varying(20)"], bitsType(20), [["1011"], ["0011"], [""], ["0"], ["1".repeat(20)]], undefined, debezium);
  checkType("postgres", ["varbit", "bit varying"], bitsType(2 ** 31 - 1), [["10".repeat(500)], ["0".repeat(64)]], undefined, debezium);
  // bit(1) and bit varying(1) are boolean in Debezium (an empty bit varying(1) is false, its text in the header); arrays of bit strings keep the text.
  checkType("postgres", ["bit varying(1)", "varbit(1)"], "boolean", [["1"], ["0"], [""]], undefined, debezium);
  checkType("postgres", ["bit(4)[]", "_bit", "_varbit"], pgArray(STRING), [[["1010", null]]], undefined, debezium);
  checkType("mysql", ["bit(10)"], bitsType(10), [[bytes(0x03, 0xff)], [bytes(0x01, 0x02)], [bytes(1), bytes(0, 1)], [5, bytes(0, 5)]], undefined, debezium);
  checkType("mysql", ["bit(64)"], bitsType(64), [[bytes(0x80, 0, 0, 0, 0, 0, 0, 1)]], undefined, debezium);

  it("writes the bits little-endian, as Debezium: PostgreSQL up to the highest set bit, MySQL ceil(n/8) bytes", () => {
    const pg = mapColumn("postgres", "bit(16)", undefined, debezium);
    assert.equal(Buffer.from(pg.encode("0000000100000010").c as Uint8Array).toString("hex"), "0201");
    assert.equal(Buffer.from(pg.encode("0000000000000101").c as Uint8Array).toString("hex"), "05");
    assert.equal(Buffer.from(pg.encode("0000000000000000").c as Uint8Array).toString("hex"), "");
    assert.equal(Buffer.from(pg.encode("1000000000000000").c as Uint8Array).toString("hex"), "0080");
    const varbit = mapColumn("postgres", "varbit(20)", undefined, debezium);
    assert.deepEqual(varbit.encode("0011"), { c: Buffer.from([3]), [SPECIAL_FIELD]: { c: "0011" } });
    assert.deepEqual(varbit.encode("11"), { c: Buffer.from([3]) });
    assert.throws(() => varbit.encode("102"), /bit string of 0s and 1s/);
    const my = mapColumn("mysql", "bit(16)", undefined, debezium);
    assert.equal(Buffer.from(my.encode(bytes(0x01, 0x02)).c as Uint8Array).toString("hex"), "0201");
    assert.equal(Buffer.from(my.encode(bytes(0, 0)).c as Uint8Array).toString("hex"), "0000");
    assert.throws(() => my.encode(bytes(1, 2, 3)), /do not fit bit\(16\)/);
  });

  it("records bits: true in sluice.table for tables with such columns; envelope sluice keeps the earlier forms", () => {
    const table = (sourceKind: SourceKind, dbType: string): TableSchema => ({ source: "s", database: "d", schema: "sc", table: "t", sourceKind, key: [], columns: [{ name: "b", dbType, nullable: true }] });
    const property = (mapping: ReturnType<typeof mapTable>) => (mapping.valueSchema["sluice.table"] as { bits?: boolean }).bits;
    assert.equal(property(mapTable(table("postgres", "bit(8)"))), true);
    assert.equal(property(mapTable(table("postgres", "varbit"))), true);
    assert.equal(property(mapTable(table("mysql", "bit(9)"))), true);
    assert.equal(property(mapTable(table("postgres", "bit(1)"))), undefined);
    assert.equal(property(mapTable(table("postgres", "bit varying(1)"))), true);
    assert.deepEqual(mapColumn("postgres", "bit varying(1)", undefined, debezium).encode(""), { c: false, [SPECIAL_FIELD]: { c: "" } });
    assert.equal(property(mapTable(table("mysql", "bit(1)"))), undefined);
    assert.equal(property(mapTable(table("postgres", "bit(8)"), { envelope: "sluice" })), undefined);
    assert.deepEqual(mapTable(table("postgres", "bit(8)"), { envelope: "sluice" }).valueSchema.fields[0]?.type, ["null", "string"]);
    assert.deepEqual(mapTable(table("mysql", "bit(9)"), { envelope: "sluice" }).valueSchema.fields[0]?.type, ["null", "bytes"]);
  });
});

describe("Debezium's form of MariaDB UUID", () => {
  // Debezium's MariaDB connector: string io.debezium.data.Uuid (version 1); the Avro logical type stays, as for PostgreSQL uuid.
  const uuid: AvroSchemaJson = { type: "string", logicalType: "uuid", "connect.version": 1, "connect.name": "io.debezium.data.Uuid" };
  checkType("mysql", ["uuid"], uuid, [["123e4567-e89b-12d3-a456-426614174000"]], undefined, { timePrecision: "adaptive", decimals: "all", uuidMarker: true });
  checkType("mysql", ["uuid"], { type: "string", logicalType: "uuid" }, [["123e4567-e89b-12d3-a456-426614174000"]], undefined, { timePrecision: "adaptive", decimals: "all", uuidMarker: false });

  it("is the default of a new mapping; envelope sluice keeps the plain uuid", () => {
    const table: TableSchema = { source: "s", database: "d", schema: "d", table: "t", sourceKind: "mysql", key: [], columns: [{ name: "u", dbType: "uuid", nullable: true }] };
    assert.deepEqual(mapTable(table).valueSchema.fields[0]?.type, ["null", uuid]);
    assert.deepEqual(mapTable(table, { envelope: "sluice" }).valueSchema.fields[0]?.type, ["null", { type: "string", logicalType: "uuid" }]);
  });
});

describe("Debezium's form of PostgreSQL interval (interval.handling.mode string)", () => {
  const string: TypeModes = { timePrecision: "adaptive", decimals: "all", interval: "string", intervalText: "debezium" };
  const interval: AvroSchemaJson = { type: "string", "connect.version": 1, "connect.name": "io.debezium.time.Interval" };
  checkType("postgres", ["interval", "interval(3)", "interval day to second"], interval, [["P1Y2M3DT4H5M6.789S"], ["P-1DT-1S"], ["PT0S"], ["PT-1H-2M-3.5S"], ["P178000000Y"], ["PT100H"], ["P-1Y-2M"], ["PT0.000001S"]], undefined, string);
  checkType("postgres", ["_interval"], pgArray(interval), [[["P1M", null, "PT-0.5S"]]], undefined, string);

  it("writes every part, each with its sign, as Debezium's Interval.toIsoString", () => {
    const column = mapColumn("postgres", "interval", undefined, string);
    assert.deepEqual(column.encode("P1Y2M3DT4H5M6.789S"), { c: "P1Y2M3DT4H5M6.789S" });
    assert.deepEqual(column.encode("P-1DT-1S"), { c: "P0Y0M-1DT0H0M-1S" });
    assert.deepEqual(column.encode("PT0S"), { c: "P0Y0M0DT0H0M0S" });
    assert.deepEqual(column.encode("PT-0.5S"), { c: "P0Y0M0DT0H0M-0.5S" });
    assert.deepEqual(column.encode("P1M"), { c: "P0Y1M0DT0H0M0S" });
    assert.throws(() => column.encode("1 day"), /ISO 8601 interval.*"1 day"/);
  });

  it("is the string mode's default with envelope debezium, recorded in sluice.table; envelope sluice keeps PostgreSQL's text", () => {
    const table: TableSchema = { source: "s", database: "d", schema: "sc", table: "t", sourceKind: "postgres", key: [], columns: [{ name: "took", dbType: "interval", nullable: true }] };
    const mapping = mapTable(table, { interval: "string" });
    assert.deepEqual(mapping.valueSchema.fields[0]?.type, ["null", interval]);
    assert.equal((mapping.valueSchema["sluice.table"] as { intervalText?: string }).intervalText, "debezium");
    const earlier = mapTable(table, { envelope: "sluice", interval: "string" });
    assert.deepEqual(earlier.valueSchema.fields[0]?.type, ["null", "string"]);
    assert.equal((earlier.valueSchema["sluice.table"] as { intervalText?: string }).intervalText, undefined);
    assert.equal((mapTable(table).valueSchema["sluice.table"] as { intervalText?: string }).intervalText, undefined, "numeric mode");
  });
});
