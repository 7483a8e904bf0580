/**
 * Every column type round-trips exactly through the real MariaDB: the same tricky values inserted
 * before the snapshot (read by SELECT) and after it (read from the binlog) decode to the same,
 * expected values.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Connection } from "mysql2/promise";
import type { ColumnValue } from "../contracts.ts";
import { ByteBoundedBuffer } from "../common/byte-bounded-buffer.ts";
import { BinlogStream } from "./binlog-stream.ts";
import { currentPosition, readDefinitions } from "./catalog.ts";
import { pino } from "pino";
import { adminConnection, dropDatabase, newSource, randomName, readUntil, snapshotFinished, sourceConfig, testLogger } from "./int-test-support.ts";
import { EventParser } from "./protocol/event-parser.ts";
import { MemorySchemaHistoryStore } from "./schema/schema-history.ts";
import { SchemaTracker } from "./schema/schema-tracker.ts";
import { toTableSchema } from "./schema/table-definition.ts";
import { sqlOf } from "./sql-connection.ts";
import { StreamDecoder } from "./stream-decoder.ts";
import type { DecodedEvent } from "./stream-decoder.ts";
import { CollationTable } from "./values/charsets.ts";
import { mariadb } from "../../test/services/ports.ts";
import { createAvroType } from "../../schema-registry/avro-runtime.ts";
import { mapTable } from "../../schema-registry/table-mapping.ts";

const COLUMNS = `
  id INT PRIMARY KEY,
  t TINYINT, tu TINYINT UNSIGNED, s SMALLINT, su SMALLINT UNSIGNED, m MEDIUMINT, mu MEDIUMINT UNSIGNED,
  i INT, iu INT UNSIGNED, b BIGINT, bu BIGINT UNSIGNED,
  d1 DECIMAL(5,2), d2 DECIMAL(65,30), d3 DECIMAL(10,0), d4 DECIMAL(18,9) UNSIGNED,
  f FLOAT, dbl DOUBLE,
  bit1 BIT(1), bit9 BIT(9), bit64 BIT(64),
  y YEAR, dt DATE, tm TIME, tm6 TIME(6), tm3 TIME(3), dtm DATETIME, dtm6 DATETIME(6), dtm2 DATETIME(2),
  ts TIMESTAMP(6) NULL DEFAULT NULL, ts0 TIMESTAMP NULL DEFAULT NULL,
  c CHAR(10), vc VARCHAR(300), vl VARCHAR(20) CHARACTER SET latin1, cl CHAR(5) CHARACTER SET latin1,
  tx TEXT, ttx TINYTEXT, mtx MEDIUMTEXT, ltx LONGTEXT, u16 VARCHAR(10) CHARACTER SET utf16, gb VARCHAR(10) CHARACTER SET gbk,
  bn BINARY(4), vb VARBINARY(10), bl BLOB, tbl TINYBLOB,
  e ENUM('a','B c','x''y'), st SET('red','green','blue'),
  j JSON, g GEOMETRY, pt POINT,
  uu UUID, i6 INET6, i4 INET4`;

const TRICKY = `
  -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295, -9223372036854775808, 18446744073709551615,
  -999.99, '-12345678901234567890123456789012345.123456789012345678901234567890', 9999999999, '123456789.123456789',
  3.14159265, 0.1e0 + 0.2e0,
  b'1', b'100000001', 0xFFFFFFFFFFFFFFFF,
  2155, '1000-01-01', '-838:59:59', '838:59:58.999999', '-00:00:01.500', '9999-12-31 23:59:59', '1969-12-31 23:59:59.999999', '2020-02-29 12:34:56.78',
  '2038-01-19 03:14:07.999999', '1970-01-01 00:00:01',
  'abc', 'héllo 🌍 wörld', 'café ÿ €', 'ñ', '', 't', REPEAT('m', 70000), 'long', 'ü𝄞', '中文',
  X'0102', X'00ff00', X'deadbeef', X'',
  'x''y', 'red,blue',
  '{"k": [1, 2.5, "x"], "n": null}', ST_GeomFromText('POINT(1 2)'), ST_PointFromText('POINT(3 4)', 4326),
  '123e4567-e89b-12d3-a456-426614174000', '2001:db8::1', '192.168.0.1'`;

const ZEROES = `
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0,
  -0.0, 1e-300,
  b'0', b'0', 0,
  0000, '0000-00-00', '00:00:00', '00:00:00', '00:00:00', '0000-00-00 00:00:00', '0000-00-00 00:00:00', '0000-00-00 00:00:00',
  '0000-00-00 00:00:00', '0000-00-00 00:00:00',
  '', '', '', '', '', '', '', '', '', '',
  X'', X'', X'', X'',
  '', '',
  '[]', ST_GeomFromText('POINT(0 0)'), ST_GeomFromText('POINT(0 0)'),
  '00000000-0000-0000-0000-000000000000', '::', '0.0.0.0'`;

const days = (y: number, m: number, d: number) => Date.UTC(y, m - 1, d) / 86_400_000;
const micros = (iso: string, extra = 0) => BigInt(Date.parse(`${iso}Z`)) * 1000n + BigInt(extra);
const bytes = (hex: string) => new Uint8Array(Buffer.from(hex, "hex"));
/** MySQL's form of a point: the SRID (little-endian), then the WKB. */
const wkbPoint = (x: number, y: number, srid = 0) => {
  const out = Buffer.alloc(25);
  out.writeUInt32LE(srid, 0);
  out.writeUInt8(1, 4);
  out.writeUInt32LE(1, 5);
  out.writeDoubleLE(x, 9);
  out.writeDoubleLE(y, 17);
  return new Uint8Array(out);
};

const EXPECTED_TRICKY: Record<string, ColumnValue> = {
  t: -128,
  tu: 255,
  s: -32768,
  su: 65535,
  m: -8388608,
  mu: 16777215,
  i: -2147483648,
  iu: 4294967295,
  b: -9223372036854775808n,
  bu: 18446744073709551615n,
  d1: "-999.99",
  d2: "-12345678901234567890123456789012345.123456789012345678901234567890",
  d3: "9999999999",
  d4: "123456789.123456789",
  f: Math.fround(3.14159265),
  dbl: 0.1 + 0.2,
  bit1: true,
  bit9: bytes("0101"),
  bit64: bytes("ffffffffffffffff"),
  y: 2155,
  dt: days(1000, 1, 1),
  tm: -(838 * 3600 + 59 * 60 + 59) * 1_000_000,
  tm6: (838 * 3600 + 59 * 60 + 58) * 1_000_000 + 999_999,
  tm3: -1_500_000,
  dtm: micros("9999-12-31T23:59:59"),
  dtm6: micros("1969-12-31T23:59:59", 999_999),
  dtm2: micros("2020-02-29T12:34:56", 780_000),
  ts: micros("2038-01-19T03:14:07", 999_999),
  ts0: micros("1970-01-01T00:00:01"),
  c: "abc",
  vc: "héllo 🌍 wörld",
  vl: "café ÿ €",
  cl: "ñ",
  tx: "",
  ttx: "t",
  mtx: "m".repeat(70000),
  ltx: "long",
  u16: "ü𝄞",
  gb: "中文",
  bn: bytes("01020000"),
  vb: bytes("00ff00"),
  bl: bytes("deadbeef"),
  tbl: bytes(""),
  e: "x'y",
  st: "red,blue",
  j: '{"k": [1, 2.5, "x"], "n": null}',
  g: wkbPoint(1, 2),
  pt: wkbPoint(3, 4, 4326),
  uu: "123e4567-e89b-12d3-a456-426614174000",
  i6: "2001:db8::1",
  i4: "192.168.0.1",
};

const EXPECTED_ZEROES: Record<string, ColumnValue> = {
  ...Object.fromEntries(["t", "tu", "s", "su", "m", "mu", "i", "iu"].map((c) => [c, 0])),
  b: 0n,
  bu: 0n,
  d1: "0.00",
  d2: "0.000000000000000000000000000000",
  d3: "0",
  d4: "0.000000000",
  f: 0,
  dbl: 1e-300,
  bit1: false,
  bit9: bytes("0000"),
  bit64: bytes("0000000000000000"),
  y: 0,
  dt: null,
  tm: 0,
  tm6: 0,
  tm3: 0,
  dtm: null,
  dtm6: null,
  dtm2: null,
  ts: null,
  ts0: null,
  ...Object.fromEntries(["c", "vc", "vl", "cl", "tx", "ttx", "mtx", "ltx", "u16", "gb"].map((c) => [c, ""])),
  bn: bytes("00000000"),
  vb: bytes(""),
  bl: bytes(""),
  tbl: bytes(""),
  e: "",
  st: "",
  j: "[]",
  g: wkbPoint(0, 0),
  pt: wkbPoint(0, 0),
  uu: "00000000-0000-0000-0000-000000000000",
  i6: "::",
  i4: "0.0.0.0",
};

const NAMES = Object.keys(EXPECTED_TRICKY);
const EXPECTED_NULLS: Record<string, ColumnValue> = Object.fromEntries(NAMES.map((name) => [name, null]));

describe("MySQL source: column types", () => {
  const database = randomName("s_types");
  let admin: Connection;

  const insert = async (id: number, values: string) => admin.query(`INSERT INTO types VALUES (${id}, ${values})`);

  before(async () => {
    admin = await adminConnection(database);
    // Zero dates and the invalid ENUM value '' need a lenient session.
    await admin.query("SET SESSION sql_mode = ''");
    await admin.query(`CREATE TABLE types (${COLUMNS})`);
    await insert(1, TRICKY);
    await insert(2, ZEROES);
    await admin.query("INSERT INTO types (id) VALUES (3)");
  });

  after(async () => {
    await dropDatabase(admin, database);
    await admin.end();
  });

  it("decodes every type exactly, the same from the snapshot and from the binlog", async () => {
    const source = newSource(sourceConfig({ tables: [`${database}.types`] }));
    await source.connect(null, AbortSignal.timeout(30_000));
    try {
      const snapshot = await readUntil(source, snapshotFinished);
      await insert(11, TRICKY);
      await insert(12, ZEROES);
      await admin.query("INSERT INTO types (id) VALUES (13)");
      const stream = await readUntil(source, (c) => c.events.length >= 3);
      const byId = (events: typeof snapshot.events, id: number) => events.find((e) => e.after?.["id"] === id)!.after!;
      for (const [offset, label, events] of [[0, "snapshot", snapshot.events], [10, "binlog", stream.events]] as const) {
        assert.deepEqual(byId(events, offset + 1), { id: offset + 1, ...EXPECTED_TRICKY }, `${label}: tricky values`);
        assert.deepEqual(byId(events, offset + 2), { id: offset + 2, ...EXPECTED_ZEROES }, `${label}: zero values`);
        assert.deepEqual(byId(events, offset + 3), { id: offset + 3, ...EXPECTED_NULLS }, `${label}: nulls`);
      }
      // The values are what the Avro mapping of the schema registry expects: they survive a round trip.
      const mapping = mapTable(stream.events[0]!.schema);
      const avro = createAvroType(mapping.valueSchema);
      for (const event of [...snapshot.events.filter((e) => e.op === "r"), ...stream.events]) {
        const back = mapping.valueCodec.fromAvro(avro.fromBuffer(avro.toBuffer(mapping.valueCodec.toAvro(event.after!))));
        assert.deepEqual(back, event.after, `row ${String(event.after!["id"])} through Avro`);
      }
      assert.deepEqual(
        stream.events[0]!.schema.columns.map((c) => c.dbType),
        ["int", "tinyint", "tinyint unsigned", "smallint", "smallint unsigned", "mediumint", "mediumint unsigned", "int", "int unsigned", "bigint", "bigint unsigned",
          "decimal(5,2)", "decimal(65,30)", "decimal(10,0)", "decimal(18,9) unsigned", "float", "double", "bit(1)", "bit(9)", "bit(64)",
          "year", "date", "time", "time(6)", "time(3)", "datetime", "datetime(6)", "datetime(2)", "timestamp(6)", "timestamp",
          "char(10)", "varchar(300)", "varchar(20)", "char(5)", "text", "tinytext", "mediumtext", "longtext", "varchar(10)", "varchar(10)",
          "binary(4)", "varbinary(10)", "blob", "tinyblob", "enum('a','B c','x''y')", "set('red','green','blue')", "longtext", "geometry", "point",
          "uuid", "inet6", "inet4"],
      );
    } finally {
      await source.close();
    }
  });

  it("derives from binlog_row_metadata=FULL alone the schema information_schema shows, except MariaDB's UUID/INET types", async () => {
    const logger = testLogger();
    const sql = sqlOf(admin);
    const start = await currentPosition(sql, "mariadb");
    const buffer = new ByteBoundedBuffer<Buffer>(8 * 2 ** 20);
    const stream = new BinlogStream({
      connection: { host: mariadb.host, port: mariadb.port, user: mariadb.user, password: mariadb.password },
      serverId: 4_000_000_000,
      flavor: "mariadb",
      start: { ...start, useGtid: false },
      heartbeatMs: 1000,
      buffer,
      logger,
      context: {},
    });
    const collations = CollationTable.builtIn();
    const tracker = new SchemaTracker({ store: new MemorySchemaHistoryStore(), catalog: null, matches: (db) => db === database, binding: { sourceName: "s", collations, zeroDates: "null", mariadb: true }, logger, context: {} });
    const decoder = new StreamDecoder({ sourceName: "s", flavor: "mariadb", parser: new EventParser(collations, true), tracker, start, skipThrough: null, snapshotThresholds: new Map(), logger, context: {} });
    await stream.start();
    try {
      await insert(31, TRICKY);
      const out: DecodedEvent[] = [];
      const signal = AbortSignal.timeout(20_000);
      while (out.length === 0) {
        await buffer.waitForItem(signal);
        const pending = decoder.apply(buffer.shift()!, out);
        if (pending !== undefined) await pending;
      }
      const fromBinlog = out[0]!.event.schema;
      const fromCatalog = toTableSchema("s", (await readDefinitions(sql, [{ database, table: "types" }])).get(`${database}.types`)!);
      const special = new Set(["uu", "i6", "i4"]);
      assert.deepEqual(fromBinlog.columns.filter((c) => !special.has(c.name)), fromCatalog.columns.filter((c) => !special.has(c.name)));
      assert.deepEqual(fromBinlog.key, ["id"]);
      assert.deepEqual(fromBinlog.columns.filter((c) => special.has(c.name)).map((c) => c.dbType), ["binary(16)", "binary(16)", "binary(4)"]);
      const { uu: _uu, i6: _i6, i4: _i4, ...values } = out[0]!.event.after!;
      const { uu: _eu, i6: _ei6, i4: _ei4, ...expected } = EXPECTED_TRICKY;
      assert.deepEqual(values, { id: 31, ...expected });
    } finally {
      await stream.stop();
    }
  });

  it("decodes MariaDB COMPRESSED columns (stored as is or zlib-compressed) the same from the snapshot and the binlog, as their plain types, and the columns after them", async () => {
    await admin.query(
      "CREATE TABLE packed (id INT PRIMARY KEY, v VARCHAR(50) COMPRESSED, l VARCHAR(255) COMPRESSED CHARACTER SET latin1, b BLOB COMPRESSED, t MEDIUMTEXT COMPRESSED, k CHAR(2) CHARACTER SET latin1, n INT UNSIGNED)",
    );
    const row = (id: number) => `(${id}, REPEAT('a', 50), REPEAT('ÿ', 255), REPEAT(X'ab', 1000), REPEAT('€', 70000), 'ñ', 4294967295), (${id + 1}, 'v', 'l', X'01', '', '', 0)`;
    const expected = (id: number) => [
      { id, v: "a".repeat(50), l: "ÿ".repeat(255), b: new Uint8Array(1000).fill(0xab), t: "€".repeat(70000), k: "ñ", n: 4294967295 },
      { id: id + 1, v: "v", l: "l", b: bytes("01"), t: "", k: "", n: 0 },
    ];
    await admin.query(`INSERT INTO packed VALUES ${row(1)}`);
    const source = newSource(sourceConfig({ tables: [`${database}.packed`] }));
    await source.connect(null, AbortSignal.timeout(30_000));
    try {
      const snapshot = await readUntil(source, snapshotFinished);
      await admin.query(`INSERT INTO packed VALUES ${row(11)}`);
      const stream = await readUntil(source, (c) => c.events.length >= 2);
      assert.deepEqual(snapshot.events.filter((e) => e.op === "r").map((e) => e.after), expected(1));
      assert.deepEqual(stream.events.map((e) => e.after), expected(11));
      for (const events of [snapshot.events, stream.events]) {
        assert.deepEqual(events[0]!.schema.columns.map((c) => c.dbType), ["int", "varchar(50)", "varchar(255)", "blob", "mediumtext", "char(2)", "int unsigned"]);
      }
    } finally {
      await source.close();
    }
  });

  it("captures a MariaDB system-versioned table: the snapshot reads its current rows, the binlog its changes and the history rows they make", async () => {
    await admin.query("CREATE TABLE versioned (id INT PRIMARY KEY, v INT) WITH SYSTEM VERSIONING");
    await admin.query("INSERT INTO versioned VALUES (1, 1)");
    // Period columns of its own: listed by information_schema, not added again.
    await admin.query(
      "CREATE TABLE periods (id INT PRIMARY KEY, s TIMESTAMP(6) GENERATED ALWAYS AS ROW START INVISIBLE, e TIMESTAMP(6) GENERATED ALWAYS AS ROW END INVISIBLE, PERIOD FOR SYSTEM_TIME(s, e)) WITH SYSTEM VERSIONING",
    );
    const definitions = await readDefinitions(sqlOf(admin), [{ database, table: "versioned" }, { database, table: "periods" }]);
    assert.deepEqual([...definitions.values()].map((d) => [d.table, d.columns.map((c) => c.name), d.key]), [
      ["versioned", ["id", "v", "row_start", "row_end"], ["id", "row_end"]],
      ["periods", ["id", "s", "e"], ["id", "e"]],
    ]);
    const source = newSource(sourceConfig({ tables: [`${database}.versioned`] }));
    await source.connect(null, AbortSignal.timeout(30_000));
    try {
      const snapshot = await readUntil(source, snapshotFinished);
      const current = 2147483647999999n;
      const rows = snapshot.events.filter((e) => e.op === "r");
      assert.deepEqual(rows.map((e) => [e.key, e.after!["v"], e.after!["row_end"]]), [[{ id: 1, row_end: current }, 1, current]]);
      await admin.query("UPDATE versioned SET v = 2 WHERE id = 1");
      const stream = await readUntil(source, (c) => c.events.length >= 2);
      // The update, and the row's old version kept as a history row (its row_end is the update's time).
      assert.deepEqual(stream.events.map((e) => [e.op, e.after!["id"], e.after!["v"], e.after!["row_end"] === current]), [["u", 1, 2, true], ["c", 1, 1, false]]);
      // The same schema either way: information_schema does not list the hidden period columns, the binlog logs them.
      assert.deepEqual(snapshot.events.find((e) => e.op === "r")!.schema, stream.events[0]!.schema);
    } finally {
      await source.close();
    }
  });

  it("reads past MariaDB's hidden hash column of a UNIQUE key on TEXT: the same columns from the snapshot and the binlog", async () => {
    await admin.query("CREATE TABLE hashed (id INT PRIMARY KEY, b TEXT, n INT UNSIGNED, UNIQUE KEY (b))");
    await admin.query("INSERT INTO hashed VALUES (1, 'one', 4294967295)");
    const definition = (await readDefinitions(sqlOf(admin), [{ database, table: "hashed" }])).get(`${database}.hashed`)!;
    assert.equal(definition.hiddenColumns, 1);
    const source = newSource(sourceConfig({ tables: [`${database}.hashed`] }));
    await source.connect(null, AbortSignal.timeout(30_000));
    try {
      const snapshot = await readUntil(source, snapshotFinished);
      await admin.query("INSERT INTO hashed VALUES (2, 'two', 4294967295)");
      const stream = await readUntil(source, (c) => c.events.length >= 1);
      const read = snapshot.events.find((e) => e.op === "r")!;
      assert.deepEqual([read.after, stream.events[0]!.after], [{ id: 1, b: "one", n: 4294967295 }, { id: 2, b: "two", n: 4294967295 }]);
      assert.deepEqual(stream.events[0]!.schema, read.schema);
    } finally {
      await source.close();
    }
  });

  it("names a table without a primary key in a warning when capture starts (sinks refuse it); generated columns are captured", async () => {
    await admin.query("CREATE TABLE nokey (a INT, b TEXT)");
    await admin.query("CREATE TABLE gen (id INT PRIMARY KEY, price INT, s INT AS (price * 2) STORED, v INT AS (price * 3) VIRTUAL)");
    await admin.query("INSERT INTO gen (id, price) VALUES (1, 5)");
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: "warn" }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
    const source = newSource(sourceConfig({ tables: [`${database}.nokey`, `${database}.gen`] }), { logger });
    await source.connect(null, AbortSignal.timeout(30_000));
    try {
      const snapshot = await readUntil(source, snapshotFinished);
      const keyless = lines.filter((l) => /no primary key/.test(String(l["msg"])));
      assert.deepEqual(keyless.map((l) => l["table"]), [`${database}.nokey`], JSON.stringify(lines));
      assert.match(String(keyless[0]!["msg"]), /sinks refuse it.*add a primary key/);
      await admin.query("INSERT INTO gen (id, price) VALUES (2, 7)");
      const stream = await readUntil(source, (c) => c.events.length >= 1);
      assert.deepEqual(snapshot.events.find((e) => e.op === "r")?.after, { id: 1, price: 5, s: 10, v: 15 });
      assert.deepEqual(stream.events[0]?.after, { id: 2, price: 7, s: 14, v: 21 });
    } finally {
      await source.close();
    }
  });

  it("delivers a zero date under zero_dates: error as text the Avro encoder refuses, naming the column (capture halts only that table)", async () => {
    const source = newSource(sourceConfig({ tables: [`${database}.types`], zero_dates: "error", snapshot: { mode: "never", parallelism: 1, chunk_rows: 100 } }));
    await source.connect(null, AbortSignal.timeout(30_000));
    try {
      await insert(22, ZEROES);
      const { events } = await readUntil(source, (c) => c.events.length > 0);
      const event = events[0]!;
      assert.deepEqual([event.after!["dt"], event.after!["dtm"], event.after!["dtm6"]], ["0000-00-00", "0000-00-00", "0000-00-00"]);
      assert.throws(
        () => mapTable(event.schema).valueCodec.toAvro(event.after!),
        (error: Error & { code?: string; context?: Record<string, unknown> }) =>
          error.code === "AVRO_VALUE_INVALID" && error.context?.["column"] === "dt" && error.context?.["value"] === 'string "0000-00-00"' && /zero date/.test(error.message),
      );
    } finally {
      await source.close();
    }
  });
});
