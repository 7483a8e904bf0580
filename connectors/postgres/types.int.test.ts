/**
 * Every type Sluice decodes, through both paths (snapshot SELECT and pgoutput stream): insert a
 * row of tricky values, capture it, compare exactly; and the dbType of every column.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type pg from "pg";
import { pino } from "pino";
import type { ColumnValue, Row } from "../contracts.ts";
import { createAvroType } from "../../schema-registry/avro-runtime.ts";
import { mapTable } from "../../schema-registry/table-mapping.ts";
import { adminClient, byId, cleanUp, newSource, randomName, readUntil, snapshotFinished, sourceConfig } from "./int-test-support.ts";
import { daysFromCivil } from "../common/civil-calendar.ts";
import { DATE_INFINITY, DATE_MINUS_INFINITY, TIMESTAMP_INFINITY } from "./values/civil-time.ts";

const schema = randomName("types");
const bigNumeric = `${"9".repeat(500)}.${"0123456789".repeat(50)}`;

interface Case {
  readonly column: string;
  readonly type: string;
  readonly literal: string;
  readonly expected: ColumnValue;
  readonly dbType: string;
}

const micros = (iso: string) => BigInt(Date.parse(iso)) * 1000n;

const cases: Case[] = [
  { column: "c_int2", type: "int2", literal: "-32768", expected: -32768, dbType: "smallint" },
  { column: "c_int4", type: "int4", literal: "2147483647", expected: 2147483647, dbType: "integer" },
  { column: "c_int8", type: "int8", literal: "-9223372036854775808", expected: -9223372036854775808n, dbType: "bigint" },
  { column: "c_numeric_scaled", type: "numeric(10,4)", literal: "-12.34", expected: "-12.3400", dbType: "numeric(10,4)" },
  { column: "c_numeric_big", type: "numeric", literal: `'${bigNumeric}'`, expected: bigNumeric, dbType: "numeric" },
  { column: "c_numeric_nan", type: "numeric", literal: "'NaN'", expected: "NaN", dbType: "numeric" },
  { column: "c_numeric_specials", type: "numeric[]", literal: "'{Infinity,-Infinity,0.000001,NULL}'", expected: ["Infinity", "-Infinity", "0.000001", null], dbType: "numeric[]" },
  { column: "c_float4", type: "float4", literal: "1.1", expected: Math.fround(1.1), dbType: "real" },
  { column: "c_float8", type: "float8", literal: "0.1", expected: 0.1, dbType: "double precision" },
  {
    column: "c_float8_specials",
    type: "float8[]",
    literal: "'{NaN,Infinity,-Infinity,-0,1.7976931348623157e308,5e-324}'",
    expected: [NaN, Infinity, -Infinity, -0, Number.MAX_VALUE, Number.MIN_VALUE],
    dbType: "double precision[]",
  },
  { column: "c_bool", type: "bool", literal: "true", expected: true, dbType: "boolean" },
  { column: "c_text", type: "text", literal: "E'h\\u00e9llo \"w\\u00f6rld\"\\n\\t\\\\ \\U0001F600'", expected: 'héllo "wörld"\n\t\\ 😀', dbType: "text" },
  { column: "c_varchar", type: "varchar(20)", literal: "'abc'", expected: "abc", dbType: "character varying(20)" },
  { column: "c_char", type: "char(5)", literal: "'ab'", expected: "ab   ", dbType: "character(5)" },
  { column: "c_bytea", type: "bytea", literal: "'\\x00ff10'", expected: new Uint8Array([0, 255, 16]), dbType: "bytea" },
  { column: "c_date", type: "date", literal: "'2024-02-29'", expected: daysFromCivil(2024, 2, 29), dbType: "date" },
  { column: "c_date_bc", type: "date", literal: "'0044-03-15 BC'", expected: daysFromCivil(-43, 3, 15), dbType: "date" },
  { column: "c_dates", type: "date[]", literal: "'{infinity,-infinity,1970-01-01}'", expected: [DATE_INFINITY, DATE_MINUS_INFINITY, 0], dbType: "date[]" },
  { column: "c_time", type: "time", literal: "'13:45:07.123456'", expected: ((13 * 60 + 45) * 60 + 7) * 1e6 + 123456, dbType: "time without time zone" },
  { column: "c_time_end", type: "time", literal: "'24:00:00'", expected: 86_400_000_000, dbType: "time without time zone" },
  { column: "c_timetz", type: "timetz", literal: "'10:23:54.5+05:30'", expected: "10:23:54.5+05:30", dbType: "time with time zone" },
  { column: "c_timestamp", type: "timestamp", literal: "'9999-12-31 23:59:59.999999'", expected: micros("9999-12-31T23:59:59.999Z") + 999n, dbType: "timestamp without time zone" },
  { column: "c_timestamp_inf", type: "timestamp", literal: "'infinity'", expected: TIMESTAMP_INFINITY, dbType: "timestamp without time zone" },
  { column: "c_timestamp_bc", type: "timestamp(3)", literal: "'0044-03-15 10:00:00.5 BC'", expected: BigInt(daysFromCivil(-43, 3, 15)) * 86_400_000_000n + 36_000_500_000n, dbType: "timestamp(3) without time zone" },
  { column: "c_timestamptz", type: "timestamptz", literal: "'2024-01-02 03:04:05.123456+02'", expected: micros("2024-01-02T01:04:05.123Z") + 456n, dbType: "timestamp with time zone" },
  { column: "c_timestamptz_bc", type: "timestamptz", literal: "'0044-03-15 10:00:00+00 BC'", expected: BigInt(daysFromCivil(-43, 3, 15)) * 86_400_000_000n + 36_000_000_000n, dbType: "timestamp with time zone" },
  { column: "c_interval", type: "interval", literal: "'1 year 2 months 3 days 04:05:06.789'", expected: "P1Y2M3DT4H5M6.789S", dbType: "interval" },
  { column: "c_interval_neg", type: "interval", literal: "'-1 days -00:00:01'", expected: "P-1DT-1S", dbType: "interval" },
  { column: "c_uuid", type: "uuid", literal: "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", expected: "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", dbType: "uuid" },
  { column: "c_json", type: "json", literal: `'{"b": 1,  "a": [1,2]}'`, expected: '{"b": 1,  "a": [1,2]}', dbType: "json" },
  { column: "c_jsonb", type: "jsonb", literal: `'{"b": 1, "a": [1,2], "s": "\\u00e9"}'`, expected: '{"a": [1, 2], "b": 1, "s": "é"}', dbType: "jsonb" },
  { column: "c_int_matrix", type: "int4[][]", literal: "'{{1,NULL},{3,4}}'", expected: [[1, null], [3, 4]], dbType: "integer[]" },
  { column: "c_int_lower", type: "int4[]", literal: "'[0:1]={7,8}'", expected: [7, 8], dbType: "integer[]" },
  { column: "c_text_array", type: "text[]", literal: `'{"a b","c\\"d",NULL,"NULL","{}",""}'`, expected: ["a b", 'c"d', null, "NULL", "{}", ""], dbType: "text[]" },
  { column: "c_bytea_array", type: "bytea[]", literal: "ARRAY['\\x0102'::bytea, NULL]", expected: [new Uint8Array([1, 2]), null], dbType: "bytea[]" },
  { column: "c_int8_array", type: "int8[]", literal: "'{9007199254740993}'", expected: [9007199254740993n], dbType: "bigint[]" },
  { column: "c_mood", type: `"${schema}".mood`, literal: "'very happy'", expected: "very happy", dbType: "enum" },
  { column: "c_moods", type: `"${schema}".mood[]`, literal: "'{sad,\"very happy\"}'", expected: ["sad", "very happy"], dbType: "enum[]" },
  { column: "c_positive", type: `"${schema}".positive`, literal: "42", expected: 42, dbType: "integer" },
  { column: "c_short_text", type: `"${schema}".short_text`, literal: "'dom'", expected: "dom", dbType: "character varying(10)" },
  { column: "c_short_texts", type: `"${schema}".short_text[]`, literal: "'{x,y}'", expected: ["x", "y"], dbType: "character varying(10)[]" },
  { column: "c_inet", type: "inet", literal: "'192.168.0.1/24'", expected: "192.168.0.1/24", dbType: "inet" },
  { column: "c_cidr", type: "cidr", literal: "'10.0.0.0/8'", expected: "10.0.0.0/8", dbType: "cidr" },
  { column: "c_macaddr", type: "macaddr", literal: "'08:00:2b:01:02:03'", expected: "08:00:2b:01:02:03", dbType: "macaddr" },
  { column: "c_money", type: "money", literal: "'-1234.56'", expected: "-1234.56", dbType: "money" },
  { column: "c_money_max", type: "money", literal: "'92233720368547758.07'", expected: "92233720368547758.07", dbType: "money" },
  { column: "c_bit", type: "bit(4)", literal: "B'1010'", expected: "1010", dbType: "bit(4)" },
  { column: "c_varbit", type: "varbit", literal: "B'101'", expected: "101", dbType: "bit varying" },
  { column: "c_xml", type: "xml", literal: "'<a x=\"1\">t</a>'", expected: '<a x="1">t</a>', dbType: "xml" },
  { column: "c_tsvector", type: "tsvector", literal: "'a fat cat'", expected: "'a' 'cat' 'fat'", dbType: "tsvector" },
  { column: "c_hstore", type: "hstore", literal: `'"a"=>"1", "b"=>NULL, "q\\"k"=>"v"'`, expected: '"a"=>"1", "b"=>NULL, "q\\"k"=>"v"', dbType: "hstore" },
  { column: "c_point", type: "point", literal: "'(1,2)'", expected: "(1,2)", dbType: "point" },
  { column: "c_range", type: "int4range", literal: "'[1,10)'", expected: "[1,10)", dbType: "int4range" },
  { column: "c_oid", type: "oid", literal: "4294967295", expected: 4294967295, dbType: "oid" },
  { column: "c_null", type: "text", literal: "NULL", expected: null, dbType: "text" },
];

let admin: pg.Client;
const config = sourceConfig({ tables: [`${schema}.all_types`] });

before(async () => {
  admin = await adminClient();
  await admin.query("CREATE EXTENSION IF NOT EXISTS hstore");
  await admin.query(`CREATE SCHEMA "${schema}"`);
  await admin.query(`CREATE TYPE "${schema}".mood AS ENUM ('sad', 'ok', 'very happy')`);
  await admin.query(`CREATE DOMAIN "${schema}".positive AS int4 CHECK (VALUE > 0)`);
  await admin.query(`CREATE DOMAIN "${schema}".short_text AS varchar(10)`);
  await admin.query(`CREATE TABLE "${schema}".all_types (id int PRIMARY KEY, ${cases.map((c) => `${c.column} ${c.type}`).join(", ")})`);
  await admin.query(`INSERT INTO "${schema}".all_types VALUES (1, ${cases.map((c) => c.literal).join(", ")})`);
});

after(async () => {
  await cleanUp(admin, config, schema);
  await admin.end();
});

test("every type decodes exactly, from the snapshot and from the stream, with format_type dbTypes", async () => {
  const source = newSource(config);
  await source.connect(null, AbortSignal.timeout(30_000));
  try {
    const collected = await readUntil(source, snapshotFinished);
    await admin.query(`INSERT INTO "${schema}".all_types VALUES (2, ${cases.map((c) => c.literal).join(", ")})`);
    await readUntil(source, (c) => byId(c.events, 2, "c") !== undefined, { into: collected });

    const snapshotRow = byId(collected.events, 1, "r");
    const streamRow = byId(collected.events, 2, "c");
    assert.ok(snapshotRow && streamRow);
    for (const [path, event] of [["snapshot", snapshotRow], ["stream", streamRow]] as const) {
      for (const c of cases) assert.deepEqual(event.after?.[c.column], c.expected, `${path}: ${c.column} ${c.type} ${c.literal}`);
      const dbTypes = Object.fromEntries(event.schema.columns.map((col) => [col.name, col.dbType]));
      for (const c of cases) assert.equal(dbTypes[c.column], c.dbType, `${path}: dbType of ${c.column}`);
      assert.deepEqual(event.schema.key, ["id"]);
      assert.deepEqual(event.key, { id: path === "snapshot" ? 1 : 2 });
    }
    assert.equal(snapshotRow.schema, streamRow.schema, "the stream reuses the snapshot's TableSchema when nothing changed");

    // The schema registry's Avro mapping takes every value as the source hands it on, and gives it back exactly.
    const mapping = mapTable(streamRow.schema);
    const type = createAvroType(mapping.valueSchema);
    const gaps: string[] = [];
    for (const c of cases) {
      const row: Row = { ...Object.fromEntries(cases.map((other) => [other.column, null])), id: 2, [c.column]: streamRow.after![c.column]! };
      try {
        // NaN/±Infinity of numerics travel beside the record (record headers), as the encoder writes them.
        const side = {};
        const decoded = mapping.valueCodec.fromAvro(type.fromBuffer(type.toBuffer(mapping.valueCodec.toAvro(row, side))), side) as Row;
        assert.deepEqual(decoded[c.column], c.expected);
      } catch (error) {
        gaps.push(`${c.column} (${c.dbType}): ${(error as Error).message.split("\n")[0]}`);
      }
    }
    // Multi-dimensional arrays (c_int_matrix) are nested Avro arrays: no value is left out.
    assert.deepEqual(gaps, [], `values the registry's Avro mapping does not carry exactly:\n${gaps.join("\n")}`);
  } finally {
    await source.close();
  }
});

test("stored generated columns and a missing primary key are named in a warning when capture starts", async () => {
  await admin.query(`CREATE TABLE "${schema}".gen (id int PRIMARY KEY, price numeric, doubled numeric GENERATED ALWAYS AS (price * 2) STORED)`);
  await admin.query(`CREATE TABLE "${schema}".nokey (a int, b text)`);
  await admin.query(`INSERT INTO "${schema}".gen (id, price) VALUES (1, 2.5)`);
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: "warn" }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  const warned = sourceConfig({ tables: [`${schema}.gen`, `${schema}.nokey`] });
  const source = newSource(warned, { logger });
  await source.connect(null, AbortSignal.timeout(30_000));
  try {
    const collected = await readUntil(source, snapshotFinished);
    assert.deepEqual(byId(collected.events, 1, "r")?.after, { id: 1, price: "2.5" });
    const generated = lines.find((l) => l["table"] === `${schema}.gen`);
    assert.ok(generated, `no warning for the generated column: ${JSON.stringify(lines)}`);
    assert.deepEqual(generated["columns"], ["doubled"]);
    assert.match(String(generated["msg"]), /generated columns doubled .* are not captured/);
    const keyless = lines.find((l) => l["table"] === `${schema}.nokey`);
    assert.match(String(keyless?.["msg"]), /no primary key.*sinks refuse it/);
  } finally {
    await source.close();
    await cleanUp(admin, warned);
  }
});
