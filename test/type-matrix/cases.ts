/**
 * The type matrix: edge values of PostgreSQL and MariaDB types and what each sink stores for them.
 * type-matrix.int.test.ts captures every case through the daemon (embedded topic log) into DuckDB,
 * ClickHouse and Elasticsearch and compares each stored value with what is written here; the
 * "Edge values per sink" section of docs/sinks.md is generated from this file
 * (`npm run docs:types`) and doc.test.ts fails when it is stale.
 *
 * An expectation is the value as the sink shows it: DuckDB `CAST(column AS VARCHAR)`, ClickHouse
 * the TabSeparated text of the column (the test service is ClickHouse 18.16, which stores dates and
 * timestamps as integers), Elasticsearch the field of `_source` as JSON. SAME means exactly the
 * source's own text of the value (PostgreSQL `column::text`, MariaDB `CAST(column AS CHAR)`), read
 * from the source by the test; REJECTED means the sink refuses the row (it goes to the dead-letter
 * topic with the reason), never a silently different value.
 */

export const SAME = "= source";
export const REJECTED = "rejected";

export type Sink = "duckdb" | "clickhouse" | "elasticsearch";
export const SINKS: readonly Sink[] = ["duckdb", "clickhouse", "elasticsearch"];

export interface MatrixCase {
  readonly source: "postgres" | "mariadb";
  /** Column type as written in CREATE TABLE; `{schema}` is the test's own schema, which holds its enum, domain and composite types. */
  readonly type: string;
  /** SQL literal inserted (or an expression). */
  readonly literal: string;
  /** What the value is, for the doc; defaults to the literal. */
  readonly label?: string;
  /** PostgreSQL: after the inserts, another column of the row is updated, so the value arrives as unchanged TOAST. */
  readonly toast?: boolean;
  /**
   * The column's type in the topic, checked in the registered value schema: its `connect.name`
   * (Debezium's semantic type, e.g. `io.debezium.data.Bits`), else the Avro type (`boolean`).
   */
  readonly topic?: string;
  readonly expect: Readonly<Record<Sink, string>>;
}

const all = (value: string): Record<Sink, string> => ({ duckdb: value, clickhouse: value, elasticsearch: value });
const big = (n: number) => `'${"é漢😀x".repeat(n)}'`;

export const TOAST_REPEAT = 30_000;
const TOAST_ARRAY = 40_000;
const toastArray = Array.from({ length: TOAST_ARRAY }, (_, i) => i + 1);

export const CASES: readonly MatrixCase[] = [
  // ---- PostgreSQL
  { source: "postgres", type: "int2", literal: "-32768", expect: all("-32768") },
  { source: "postgres", type: "int4", literal: "2147483647", expect: all("2147483647") },
  { source: "postgres", type: "int8", literal: "-9223372036854775808", expect: all("-9223372036854775808") },
  { source: "postgres", type: "int8", literal: "9223372036854775807", expect: all("9223372036854775807") },
  { source: "postgres", type: "numeric(38,10)", literal: "'-9999999999999999999999999999.9999999999'", expect: { duckdb: "-9999999999999999999999999999.9999999999", clickhouse: "-9999999999999999999999999999.9999999999", elasticsearch: "-9999999999999999999999999999.9999999999" } },
  { source: "postgres", type: "numeric(38,0)", literal: "'99999999999999999999999999999999999999'", expect: { duckdb: "99999999999999999999999999999999999999", clickhouse: "99999999999999999999999999999999999999", elasticsearch: "99999999999999999999999999999999999999" } },
  { source: "postgres", type: "numeric(10,2)", literal: "'NaN'", expect: { duckdb: REJECTED, clickhouse: REJECTED, elasticsearch: "NaN" } },
  { source: "postgres", type: "numeric", literal: "'NaN'", expect: { duckdb: "NaN", clickhouse: "NaN", elasticsearch: "NaN" } },
  { source: "postgres", type: "numeric", literal: "'-Infinity'", expect: { duckdb: "-Infinity", clickhouse: "-Infinity", elasticsearch: "-Infinity" } },
  { source: "postgres", type: "numeric", literal: `'${"1234567890".repeat(5)}.${"0987654321".repeat(3)}'`, label: "50 integer digits, 30 decimals", expect: all(SAME) },
  { source: "postgres", type: "float4", literal: "'NaN'", expect: { duckdb: "nan", clickhouse: "nan", elasticsearch: "NaN" } },
  { source: "postgres", type: "float4", literal: "'3.4028235e38'", expect: { duckdb: "3.4028235e+38", clickhouse: "3.4028235e38", elasticsearch: "3.4028234663852886e+38" } },
  { source: "postgres", type: "float8", literal: "'-0'", expect: { duckdb: "-0.0", clickhouse: "-0", elasticsearch: "-0.0" } },
  { source: "postgres", type: "float8", literal: "'-Infinity'", expect: { duckdb: "-inf", clickhouse: "-inf", elasticsearch: "-Infinity" } },
  { source: "postgres", type: "float8", literal: "'5e-324'", expect: { duckdb: "5e-324", clickhouse: "5e-324", elasticsearch: "5e-324" } },
  { source: "postgres", type: "float8", literal: "'1.7976931348623157e308'", expect: { duckdb: "1.7976931348623157e+308", clickhouse: "1.7976931348623157e308", elasticsearch: "1.7976931348623157e+308" } },
  { source: "postgres", type: "bool", literal: "false", expect: { duckdb: "false", clickhouse: "0", elasticsearch: "false" } },
  { source: "postgres", type: "text", literal: "E'h\\u00e9llo \"w\\u00f6rld\"\\n\\t\\\\ \\U0001F600 \\u05e9\\u05dc\\u05d5\\u05dd e\\u0301'", label: "Unicode, quotes, control characters, emoji, RTL, combining mark", expect: all(SAME) },
  { source: "postgres", type: "text", literal: big(TOAST_REPEAT), label: `long repetitive text (${TOAST_REPEAT * 4} characters, compressed in place)`, expect: all(SAME) },
  {
    source: "postgres",
    type: "text",
    literal: "(SELECT string_agg(md5(i::text), '') FROM generate_series(1, 4000) i)",
    label: "TOAST-stored text (128000 hex characters), then an update of another column leaves it unchanged",
    toast: true,
    expect: all(SAME),
  },
  { source: "postgres", type: "char(5)", literal: "'ab'", label: "'ab' (blank-padded)", expect: all("ab   ") },
  { source: "postgres", type: "bytea", literal: "'\\x00ff10'", expect: all(SAME) },
  { source: "postgres", type: "date", literal: "'2024-02-29'", expect: { duckdb: "2024-02-29", clickhouse: "19782", elasticsearch: "2024-02-29" } },
  { source: "postgres", type: "date", literal: "'0044-03-15 BC'", expect: { duckdb: "0044-03-15 (BC)", clickhouse: REJECTED, elasticsearch: REJECTED } },
  { source: "postgres", type: "date", literal: "'9999-12-31'", expect: { duckdb: "9999-12-31", clickhouse: "2932896", elasticsearch: "9999-12-31" } },
  { source: "postgres", type: "date", literal: "'10000-01-01'", expect: { duckdb: "10000-01-01", clickhouse: REJECTED, elasticsearch: REJECTED } },
  { source: "postgres", type: "date", literal: "'infinity'", expect: { duckdb: "infinity", clickhouse: REJECTED, elasticsearch: REJECTED } },
  { source: "postgres", type: "date", literal: "'-infinity'", expect: { duckdb: "-infinity", clickhouse: REJECTED, elasticsearch: REJECTED } },
  { source: "postgres", type: "time", literal: "'24:00:00'", expect: { duckdb: "24:00:00", clickhouse: "86400000000", elasticsearch: "24:00:00.000000" } },
  { source: "postgres", type: "timetz", literal: "'10:23:54.5+05:30'", expect: all(SAME) },
  // The topic carries Debezium's ZonedTime (UTC); the own offset comes back from the sluice.special header. Offsets are written ±hh:mm.
  { source: "postgres", type: "timetz", literal: "'23:59:59.999999+14:00'", expect: all("23:59:59.999999+14:00") },
  { source: "postgres", type: "timetz", literal: "'00:00:00-12:00'", expect: all("00:00:00-12:00") },
  { source: "postgres", type: "timetz", literal: "'24:00:00+00'", expect: all("24:00:00+00:00") },
  { source: "postgres", type: "timetz", literal: "'24:00:00-12:00'", expect: all("24:00:00-12:00") },
  { source: "postgres", type: "timetz[]", literal: "'{10:00:00+02,NULL,08:00:00-12}'", expect: { duckdb: "['10:00:00+02:00', NULL, '08:00:00-12:00']", clickhouse: "['10:00:00+02:00',NULL,'08:00:00-12:00']", elasticsearch: '["10:00:00+02:00",null,"08:00:00-12:00"]' } },
  { source: "postgres", type: "timestamp", literal: "'9999-12-31 23:59:59.999999'", expect: { duckdb: "9999-12-31 23:59:59.999999", clickhouse: "253402300799999999", elasticsearch: "9999-12-31T23:59:59.999999" } },
  { source: "postgres", type: "timestamp", literal: "'1969-12-31 23:59:59.999999'", expect: { duckdb: "1969-12-31 23:59:59.999999", clickhouse: "-1", elasticsearch: "1969-12-31T23:59:59.999999" } },
  { source: "postgres", type: "timestamp", literal: "'0044-03-15 10:00:00.5 BC'", expect: { duckdb: "0044-03-15 (BC) 10:00:00.5", clickhouse: "-63517787999500000", elasticsearch: REJECTED } },
  { source: "postgres", type: "timestamp", literal: "'infinity'", expect: { duckdb: "infinity", clickhouse: REJECTED, elasticsearch: REJECTED } },
  { source: "postgres", type: "timestamp", literal: "'-infinity'", expect: { duckdb: "-infinity", clickhouse: REJECTED, elasticsearch: REJECTED } },
  { source: "postgres", type: "timestamptz", literal: "'2024-01-02 03:04:05.123456+05:30'", expect: { duckdb: "2024-01-01 21:34:05.123456+00", clickhouse: "1704144845123456", elasticsearch: "2024-01-01T21:34:05.123456Z" } },
  { source: "postgres", type: "timestamptz", literal: "'-infinity'", expect: { duckdb: "-infinity", clickhouse: REJECTED, elasticsearch: REJECTED } },
  { source: "postgres", type: "interval", literal: "'-1 days -00:00:01'", expect: { duckdb: "P-1DT-1S", clickhouse: "P-1DT-1S", elasticsearch: "P-1DT-1S" } },
  { source: "postgres", type: "uuid", literal: "'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'", topic: "io.debezium.data.Uuid", expect: all(SAME) },
  { source: "postgres", type: "json", literal: `'{"a": 1, "a": 2, "big": 123456789012345678901234567890, "f": 1.10}'`, label: "duplicate keys, a 30-digit number", expect: { duckdb: SAME, clickhouse: SAME, elasticsearch: REJECTED } },
  { source: "postgres", type: "jsonb", literal: `'{"a": 1, "a": 2, "big": 123456789012345678901234567890}'`, expect: { duckdb: "{\"a\": 2, \"big\": 123456789012345678901234567890}", clickhouse: "{\"a\": 2, \"big\": 123456789012345678901234567890}", elasticsearch: "{\"a\":2,\"big\":123456789012345678901234567890}" } },
  { source: "postgres", type: "jsonb", literal: `'[1, "x", null]'`, label: "a JSON array", expect: { duckdb: "[1, \"x\", null]", clickhouse: "[1, \"x\", null]", elasticsearch: "{\"_value\":[1,\"x\",null]}" } },
  { source: "postgres", type: "int4[]", literal: "'{1,NULL,-2147483648}'", expect: { duckdb: "[1, NULL, -2147483648]", clickhouse: "[1,NULL,-2147483648]", elasticsearch: "[1,null,-2147483648]" } },
  { source: "postgres", type: "int4[]", literal: "'{}'", expect: { duckdb: "[]", clickhouse: "[]", elasticsearch: "[]" } },
  { source: "postgres", type: "int4[][]", literal: "'{{1,2},{3,NULL}}'", expect: { duckdb: REJECTED, clickhouse: REJECTED, elasticsearch: "[[1,2],[3,null]]" } },
  { source: "postgres", type: "float8[]", literal: "'{-0,NaN,Infinity,NULL}'", expect: { duckdb: "[-0.0, nan, inf, NULL]", clickhouse: "[-0,nan,inf,NULL]", elasticsearch: "[-0.0,\"NaN\",\"Infinity\",null]" } },
  { source: "postgres", type: "text[]", literal: `'{"a b",NULL,"NULL","","\\"q\\""}'`, expect: { duckdb: "[a b, NULL, 'NULL', '', '\"q\"']", clickhouse: "['a b',NULL,'NULL','','\"q\"']", elasticsearch: "[\"a b\",null,\"NULL\",\"\",\"\\\"q\\\"\"]" } },
  { source: "postgres", type: "numeric(5,2)[]", literal: "'{1.5,NaN,NULL}'", expect: { duckdb: REJECTED, clickhouse: REJECTED, elasticsearch: "[\"1.50\",\"NaN\",null]" } },
  { source: "postgres", type: "date[]", literal: "'{2024-01-01,infinity}'", expect: { duckdb: "[2024-01-01, infinity]", clickhouse: REJECTED, elasticsearch: REJECTED } },
  { source: "postgres", type: "money", literal: "'-92233720368547758.08'", expect: { duckdb: "-92233720368547758.08", clickhouse: "-92233720368547758.08", elasticsearch: "-92233720368547758.08" } },
  { source: "postgres", type: "inet", literal: "'2001:db8::1/64'", expect: all(SAME) },
  { source: "postgres", type: "bit(4)", literal: "B'1010'", expect: all(SAME) },
  { source: "postgres", type: "bit(1)", literal: "B'1'", topic: "boolean", expect: all(SAME) },
  { source: "postgres", type: "point", literal: "'(-0,1e-07)'", topic: "io.debezium.data.geometry.Point", expect: all(SAME) },
  // Debezium's Bits: little-endian bytes up to the highest set bit; the width, and the text where the bytes do not give it back, restore the value.
  { source: "postgres", type: "bit(16)", literal: "B'0000000100000010'", topic: "io.debezium.data.Bits", expect: all(SAME) },
  { source: "postgres", type: "bit(10)", literal: "B'0000000000'", topic: "io.debezium.data.Bits", expect: all(SAME) },
  { source: "postgres", type: "varbit(20)", literal: "B'0011'", topic: "io.debezium.data.Bits", expect: all(SAME) },
  { source: "postgres", type: "varbit(1)", literal: "B''", label: "B'' (empty; boolean in the topic, as Debezium maps bit varying(1))", topic: "boolean", expect: all(SAME) },
  { source: "postgres", type: "interval[]", literal: "'{P1M,PT1S,NULL}'", expect: { duckdb: "[P1M, PT1S, NULL]", clickhouse: "['P1M','PT1S',NULL]", elasticsearch: "[\"P1M\",\"PT1S\",null]" } },
  { source: "postgres", type: "xml", literal: "'<a x=\"1\">t</a>'", expect: all(SAME) },
  { source: "postgres", type: "hstore", literal: `'"a"=>"1", "b"=>NULL'`, expect: all(SAME) },
  { source: "postgres", type: "int4range", literal: "'[1,10)'", expect: all(SAME) },
  { source: "postgres", type: "oid", literal: "4294967295", expect: all("4294967295") },
  { source: "postgres", type: "smallserial", literal: "32767", expect: all("32767") },
  { source: "postgres", type: "serial", literal: "2147483647", expect: all("2147483647") },
  { source: "postgres", type: "bigserial", literal: "1", expect: all("1") },
  { source: "postgres", type: "float(24)", literal: "'-1.17549435e-38'", expect: { duckdb: "-1.1754944e-38", clickhouse: "-1.1754944e-38", elasticsearch: "-1.1754943508222875e-38" } },
  { source: "postgres", type: "varchar(10)", literal: "'ünïcødé'", expect: all("ünïcødé") },
  { source: "postgres", type: "name", literal: "'pg_catalog'", expect: all("pg_catalog") },
  { source: "postgres", type: "citext", literal: "'MiXeD'", expect: all("MiXeD") },
  { source: "postgres", type: "bytea", literal: "decode(repeat('00ff', 40000), 'hex')", expect: all(SAME) },
  { source: "postgres", type: "time(3)", literal: "'23:59:59.999'", expect: { duckdb: "23:59:59.999", clickhouse: "86399999000", elasticsearch: "23:59:59.999000" } },
  { source: "postgres", type: "time", literal: "'00:00:00'", expect: { duckdb: "00:00:00", clickhouse: "0", elasticsearch: "00:00:00.000000" } },
  { source: "postgres", type: "timestamp(0)", literal: "'2000-02-29 12:00:00'", expect: { duckdb: "2000-02-29 12:00:00", clickhouse: "951825600000000", elasticsearch: "2000-02-29T12:00:00.000000" } },
  { source: "postgres", type: "timestamptz", literal: "'1900-01-01 00:00:00-08:00'", expect: { duckdb: "1900-01-01 08:00:00+00", clickhouse: "-2208960000000000", elasticsearch: "1900-01-01T08:00:00.000000Z" } },
  { source: "postgres", type: "interval", literal: "'178000000 years'", expect: all("P178000000Y") },
  { source: "postgres", type: "jsonb", literal: "'{\"k\": \"\\u00e9\\ud83d\\ude00\", \"nested\": {\"deep\": [1.5e40, -0.0, null]}}'", label: "nested object, escaped emoji, 1.5e40, -0.0 (jsonb: 0.0)", expect: { duckdb: SAME, clickhouse: SAME, elasticsearch: '{"k":"é😀","nested":{"deep":[15000000000000000000000000000000000000000,0,null]}}' } },
  { source: "postgres", type: "jsonb", literal: "'\"just a string\"'", expect: { duckdb: "\"just a string\"", clickhouse: "\"just a string\"", elasticsearch: "{\"_value\":\"just a string\"}" } },
  { source: "postgres", type: "cidr", literal: "'10.0.0.0/8'", expect: all("10.0.0.0/8") },
  { source: "postgres", type: "macaddr", literal: "'08:00:2b:01:02:03'", expect: all("08:00:2b:01:02:03") },
  { source: "postgres", type: "macaddr8", literal: "'08:00:2b:01:02:03:04:05'", expect: all("08:00:2b:01:02:03:04:05") },
  { source: "postgres", type: "tsvector", literal: "'a fat cat'", expect: all("'a' 'cat' 'fat'") },
  { source: "postgres", type: "tsquery", literal: "'fat & (rat | cat)'", expect: all("'fat' & ( 'rat' | 'cat' )") },
  { source: "postgres", type: "point", literal: "'(1.5,-2)'", expect: all("(1.5,-2)") },
  // Debezium 3.6 leaves these columns out (include.unknown.datatypes=false); Sluice keeps PostgreSQL's text.
  { source: "postgres", type: "polygon", literal: "'((0,0),(1,1),(1,0))'", topic: "string", expect: all("((0,0),(1,1),(1,0))") },
  { source: "postgres", type: "circle", literal: "'<(1,2),3>'", topic: "string", expect: all("<(1,2),3>") },
  { source: "postgres", type: "box", literal: "'(1,1),(-0.5,2e-9)'", topic: "string", expect: all(SAME) },
  { source: "postgres", type: "lseg", literal: "'[(0,0),(1.5,-2)]'", topic: "string", expect: all(SAME) },
  { source: "postgres", type: "line", literal: "'{1,-1,0.25}'", topic: "string", expect: all(SAME) },
  { source: "postgres", type: "path", literal: "'[(0,0),(1,1),(2,0)]'", label: "open path [(0,0),(1,1),(2,0)]", topic: "string", expect: all(SAME) },
  { source: "postgres", type: "varbit", literal: "B'10101'", expect: all("10101") },
  { source: "postgres", type: "pg_lsn", literal: "'16/B374D848'", expect: all("16/B374D848") },
  { source: "postgres", type: "xid8", literal: "'18446744073709551615'", expect: all("18446744073709551615") },
  { source: "postgres", type: "tstzrange", literal: "'[2024-01-01 00:00+00,infinity)'", expect: all("[\"2024-01-01 00:00:00+00\",infinity)") },
  { source: "postgres", type: "numrange", literal: "'(1.5,NaN]'", expect: all("(1.5,NaN]") },
  { source: "postgres", type: "bool[]", literal: "'{t,NULL,f}'", expect: { duckdb: "[true, NULL, false]", clickhouse: "[1,NULL,0]", elasticsearch: "[true,null,false]" } },
  { source: "postgres", type: "uuid[]", literal: "'{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11,NULL}'", expect: { duckdb: "[a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11, NULL]", clickhouse: "['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',NULL]", elasticsearch: "[\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\",null]" } },
  { source: "postgres", type: "jsonb[]", literal: "ARRAY['{\"a\": 1}'::jsonb, NULL]", expect: { duckdb: "[{\"a\": 1}, NULL]", clickhouse: "['{\"a\": 1}',NULL]", elasticsearch: "[{\"a\":1},null]" } },
  { source: "postgres", type: "int8[]", literal: "'{9223372036854775807,-9223372036854775808}'", expect: { duckdb: "[9223372036854775807, -9223372036854775808]", clickhouse: "[9223372036854775807,-9223372036854775808]", elasticsearch: "[9223372036854775807,-9223372036854775808]" } },
  { source: "postgres", type: "timestamptz[]", literal: "'{2024-01-01 00:00:00+00,-infinity,NULL}'", expect: { duckdb: "['2024-01-01 00:00:00+00', -infinity, NULL]", clickhouse: REJECTED, elasticsearch: REJECTED } },
  { source: "postgres", type: "bytea[]", literal: "ARRAY['\\x0102'::bytea, NULL]", expect: { duckdb: "[\\x01\\x02, NULL]", clickhouse: "['\u0001\u0002',NULL]", elasticsearch: "[\"AQI=\",null]" } },
  { source: "postgres", type: "numeric", literal: "'Infinity'", expect: all("Infinity") },
  { source: "postgres", type: "float4", literal: "'-0'", expect: { duckdb: "-0.0", clickhouse: "-0", elasticsearch: "-0.0" } },
  { source: "postgres", type: "float4", literal: "'Infinity'", expect: { duckdb: "inf", clickhouse: "inf", elasticsearch: "Infinity" } },
  { source: "postgres", type: "float4", literal: "'1.4e-45'", label: "1.4e-45 (the smallest subnormal)", expect: { duckdb: "1e-45", clickhouse: "1e-45", elasticsearch: "1.401298464324817e-45" } },
  { source: "postgres", type: "float8", literal: "'2.225073858507201e-308'", label: "2.225073858507201e-308 (the largest subnormal)", expect: all(SAME) },
  { source: "postgres", type: "timestamp", literal: "'4713-01-01 00:00:00 BC'", expect: { duckdb: "4713-01-01 (BC) 00:00:00", clickhouse: "-210863520000000000", elasticsearch: REJECTED } },
  // One microsecond later is the count PostgreSQL's infinity is carried as: that value halts its table at capture (the test checks it).
  { source: "postgres", type: "timestamp", literal: "'294247-01-10 04:00:54.775806'", label: "'294247-01-10 04:00:54.775806' (2^63 - 2 µs after 1970)", expect: { duckdb: SAME, clickhouse: "9223372036854775806", elasticsearch: REJECTED } },
  { source: "postgres", type: "timestamptz", literal: "'infinity'", expect: { duckdb: "infinity", clickhouse: REJECTED, elasticsearch: REJECTED } },
  { source: "postgres", type: "date", literal: "'4713-01-01 BC'", expect: { duckdb: "4713-01-01 (BC)", clickhouse: REJECTED, elasticsearch: REJECTED } },
  { source: "postgres", type: "date", literal: "'5874897-12-31'", expect: { duckdb: SAME, clickhouse: REJECTED, elasticsearch: REJECTED } },
  { source: "postgres", type: "interval", literal: "'-178956970 years -8 mons -2147483648 days -2562047788:00:54.775807'", expect: all("P-178956970Y-8M-2147483648DT-2562047788H-54.775807S") },
  { source: "postgres", type: "bytea", literal: "''::bytea", label: "empty", expect: all(SAME) },
  {
    source: "postgres",
    type: "bytea",
    literal: "(SELECT decode(string_agg(md5(i::text), ''), 'hex') FROM generate_series(1, 40000) i)",
    label: "640 kB of incompressible bytes (TOAST-stored), then an update of another column leaves it unchanged",
    toast: true,
    expect: all(SAME),
  },
  {
    source: "postgres",
    type: "int4[]",
    literal: `(SELECT array_agg(i) FROM generate_series(1, ${TOAST_ARRAY}) i)`,
    label: `{1,...,${TOAST_ARRAY}} (TOAST-stored), then an update of another column leaves it unchanged`,
    toast: true,
    expect: { duckdb: `[${toastArray.join(", ")}]`, clickhouse: `[${toastArray.join(",")}]`, elasticsearch: `[${toastArray.join(",")}]` },
  },
  { source: "postgres", type: "json", literal: "(repeat('[', 200) || repeat(']', 200))::json", label: "arrays nested 200 deep", expect: { duckdb: SAME, clickhouse: SAME, elasticsearch: `{"_value":${"[".repeat(200)}${"]".repeat(200)}}` } },
  // Elasticsearch's flattened field takes objects up to 50 levels deep.
  { source: "postgres", type: "jsonb", literal: "(repeat('{\"a\": ', 51) || '1' || repeat('}', 51))::jsonb", label: "objects nested 51 deep", expect: { duckdb: SAME, clickhouse: SAME, elasticsearch: REJECTED } },
  { source: "postgres", type: "text", literal: "E'\\u0001\\U0010FFFF\\U0001D11E'", label: "U+0001, U+10FFFF, U+1D11E (4-byte UTF-8)", expect: all(SAME) },
  // {schema} is the test's schema, where the test creates these types.
  { source: "postgres", type: "{schema}.mood", literal: "'very happy'", label: "'very happy' (an enum)", expect: all(SAME) },
  { source: "postgres", type: "{schema}.mood[]", literal: "'{sad,NULL,\"very happy\"}'", expect: { duckdb: "[sad, NULL, very happy]", clickhouse: "['sad',NULL,'very happy']", elasticsearch: '["sad",null,"very happy"]' } },
  { source: "postgres", type: "{schema}.price", literal: "'-999.99'", label: "-999.99 (a domain over numeric(5,2))", expect: all(SAME) },
  { source: "postgres", type: "{schema}.pair", literal: "ROW(1, 'x \"y\"')", label: "ROW(1, 'x \"y\"') (a composite type (a int, b text))", expect: all(SAME) },

  // ---- MariaDB
  { source: "mariadb", type: "tinyint", literal: "-128", expect: all("-128") },
  { source: "mariadb", type: "tinyint unsigned", literal: "255", expect: all("255") },
  { source: "mariadb", type: "mediumint", literal: "-8388608", expect: all("-8388608") },
  { source: "mariadb", type: "int unsigned", literal: "4294967295", expect: all("4294967295") },
  { source: "mariadb", type: "bigint", literal: "-9223372036854775808", expect: all("-9223372036854775808") },
  { source: "mariadb", type: "bigint unsigned", literal: "18446744073709551615", expect: { duckdb: "18446744073709551615", clickhouse: "18446744073709551615", elasticsearch: "18446744073709551615" } },
  { source: "mariadb", type: "decimal(65,30)", literal: `'-${"9".repeat(35)}.${"9".repeat(30)}'`, expect: all(SAME) },
  { source: "mariadb", type: "decimal(38,10)", literal: "'9999999999999999999999999999.9999999999'", expect: all(SAME) },
  { source: "mariadb", type: "float", literal: "-3.40282e38", expect: { duckdb: "-3.40282e+38", clickhouse: "-3.40282e38", elasticsearch: "-3.402820018375656e+38" } },
  { source: "mariadb", type: "double", literal: "1.7976931348623157e308", expect: { duckdb: "1.7976931348623157e+308", clickhouse: "1.7976931348623157e308", elasticsearch: "1.7976931348623157e+308" } },
  { source: "mariadb", type: "bit(1)", literal: "b'1'", expect: { duckdb: "true", clickhouse: "1", elasticsearch: "true" } },
  { source: "mariadb", type: "bit(64)", literal: "b'1111111111111111111111111111111111111111111111111111111111111111'", topic: "io.debezium.data.Bits", expect: all(SAME) },
  { source: "mariadb", type: "bit(16)", literal: "b'0000000100000010'", label: "b'0000000100000010' (little-endian in the topic)", topic: "io.debezium.data.Bits", expect: all("0102") },
  { source: "mariadb", type: "year", literal: "2155", expect: all("2155") },
  { source: "mariadb", type: "date", literal: "'1000-01-01'", expect: { duckdb: "1000-01-01", clickhouse: "-354285", elasticsearch: "1000-01-01" } },
  { source: "mariadb", type: "time(6)", literal: "'-838:59:59.000000'", expect: { duckdb: "-838:59:59", clickhouse: "-3020399000000", elasticsearch: "-838:59:59.000000" } },
  { source: "mariadb", type: "datetime(6)", literal: "'9999-12-31 23:59:59.999999'", expect: { duckdb: "9999-12-31 23:59:59.999999", clickhouse: "253402300799999999", elasticsearch: "9999-12-31T23:59:59.999999" } },
  { source: "mariadb", type: "timestamp(6)", literal: "'2038-01-19 03:14:07.999999'", expect: { duckdb: "2038-01-19 03:14:07.999999+00", clickhouse: "2147483647999999", elasticsearch: "2038-01-19T03:14:07.999999Z" } },
  { source: "mariadb", type: "varchar(100)", literal: "'h\u00e9llo \u{1F600} \u05e9\u05dc\u05d5\u05dd'", label: "utf8mb4: accents, emoji, RTL", expect: all(SAME) },
  { source: "mariadb", type: "longtext", literal: big(TOAST_REPEAT), label: `long text (${TOAST_REPEAT * 4} characters)`, expect: all(SAME) },
  { source: "mariadb", type: "binary(4)", literal: "x'00ff'", expect: all(SAME) },
  { source: "mariadb", type: "enum('a','b c')", literal: "'b c'", expect: all(SAME) },
  { source: "mariadb", type: "set('x','y','z')", literal: "'x,z'", expect: all(SAME) },
  { source: "mariadb", type: "json", literal: `'{"a": 1, "a": 2, "big": 123456789012345678901234567890}'`, label: "duplicate keys, a 30-digit number", expect: all(SAME) },
  { source: "mariadb", type: "point", literal: "ST_PointFromText('POINT(1 2)', 4326)", label: "POINT(1 2), SRID 4326", expect: all(SAME) },
  { source: "mariadb", type: "uuid", literal: "'123e4567-e89b-12d3-a456-426614174000'", topic: "io.debezium.data.Uuid", expect: all(SAME) },
  { source: "mariadb", type: "inet6", literal: "'2001:db8::1'", expect: all(SAME) },

  { source: "mariadb", type: "smallint unsigned", literal: "65535", expect: all("65535") },
  { source: "mariadb", type: "int", literal: "-2147483648", expect: all("-2147483648") },
  { source: "mariadb", type: "decimal(10,0)", literal: "'-9999999999'", expect: all("-9999999999") },
  { source: "mariadb", type: "decimal(5,5)", literal: "'-0.00001'", expect: { duckdb: "-.00001", clickhouse: "-0.00001", elasticsearch: "-0.00001" } },
  { source: "mariadb", type: "float", literal: "-0", expect: { duckdb: "0.0", clickhouse: "0", elasticsearch: "0" } },
  { source: "mariadb", type: "double", literal: "-0", expect: { duckdb: "0.0", clickhouse: "0", elasticsearch: "0" } },
  { source: "mariadb", type: "char(10)", literal: "'ab'", expect: all("ab") },
  { source: "mariadb", type: "tinytext", literal: "'t'", expect: all("t") },
  { source: "mariadb", type: "mediumtext", literal: "'m\\ttab'", expect: all("m\ttab") },
  { source: "mariadb", type: "varbinary(10)", literal: "x'00'", expect: all("00") },
  { source: "mariadb", type: "blob", literal: "x'deadbeef00'", expect: all("DEADBEEF00") },
  { source: "mariadb", type: "longblob", literal: "REPEAT(x'00ff', 60000)", expect: all(SAME) },
  { source: "mariadb", type: "bit(9)", literal: "b'100000001'", expect: all("0101") },
  { source: "mariadb", type: "time", literal: "'838:59:59'", expect: { duckdb: "838:59:59", clickhouse: "3020399000000", elasticsearch: "838:59:59.000000" } },
  { source: "mariadb", type: "datetime", literal: "'1000-01-01 00:00:00'", expect: { duckdb: "1000-01-01 00:00:00", clickhouse: "-30610224000000000", elasticsearch: "1000-01-01T00:00:00.000000" } },
  { source: "mariadb", type: "timestamp", literal: "'1970-01-01 00:00:01'", expect: { duckdb: "1970-01-01 00:00:01+00", clickhouse: "1000000", elasticsearch: "1970-01-01T00:00:01.000000Z" } },
  { source: "mariadb", type: "date", literal: "'9999-12-31'", expect: { duckdb: "9999-12-31", clickhouse: "2932896", elasticsearch: "9999-12-31" } },
  { source: "mariadb", type: "year", literal: "1901", expect: all("1901") },
  { source: "mariadb", type: "linestring", literal: "ST_LineFromText('LINESTRING(0 0, 1 1)')", expect: all("0000000001020000000200000000000000000000000000000000000000000000000000F03F000000000000F03F") },
  { source: "mariadb", type: "geometry", literal: "ST_GeomFromText('POLYGON((0 0,1 0,1 1,0 0))', 3857)", expect: all("110F00000103000000010000000400000000000000000000000000000000000000000000000000F03F0000000000000000000000000000F03F000000000000F03F00000000000000000000000000000000") },
  { source: "mariadb", type: "inet4", literal: "'255.255.255.255'", expect: all("255.255.255.255") },
  // MariaDB keeps these under ALLOW_INVALID_DATES (its date functions give NULL for them): zero_dates applies, as to zero dates.
  { source: "mariadb", type: "date", literal: "'2024-02-30'", label: "'2024-02-30' (ALLOW_INVALID_DATES; zero_dates: null)", expect: all("NULL") },
  { source: "mariadb", type: "datetime(6)", literal: "'2023-04-31 10:00:00.5'", label: "'2023-04-31 10:00:00.5' (ALLOW_INVALID_DATES; zero_dates: null)", expect: all("NULL") },
  { source: "mariadb", type: "year", literal: "0", label: "0 (the zero year, 0000)", expect: all("0") },
  { source: "mariadb", type: "binary(16)", literal: "x'00ff'", label: "x'00ff' (padded to 16 bytes)", expect: all(SAME) },
  { source: "mariadb", type: "set('x','y','z')", literal: "''", label: "'' (the empty set)", expect: all(SAME) },
  { source: "mariadb", type: "time(6)", literal: "'838:59:59.000000'", expect: { duckdb: "838:59:59", clickhouse: "3020399000000", elasticsearch: SAME } },
  { source: "mariadb", type: "decimal(65,0)", literal: `'-${"9".repeat(65)}'`, expect: all(SAME) },
];
