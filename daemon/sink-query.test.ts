import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { createDuckDbSink } from "../connectors/duckdb/duckdb-sink.ts";
import type { DuckDbSink } from "../connectors/duckdb/duckdb-sink.ts";
import { SluiceError } from "../connectors/errors.ts";
import { testLogger, testSinkConfig } from "../connectors/sinks/test-config.ts";
import { Events, tableSchema } from "../connectors/sinks/test-events.ts";
import { createLogger } from "../runtime/logger.ts";
import { HttpServer } from "./http-server.ts";
import { formatRows, queryDuckDbFile, queryHandler } from "./sink-query.ts";

const dir = mkdtempSync(join(tmpdir(), "sluice-query-"));
const secret = join(dir, "secret.csv");
writeFileSync(secret, "token\nhunter2\n");
const MAX_VERSION = "18446744073709551615";

/** Statements that must never run through the query path, and what the refusal names. */
const WRITES: readonly (readonly [sql: string, refusal: RegExp])[] = [
  ["WITH x AS (SELECT 1) DELETE FROM _sluice.public_items__v1", /a DELETE statement/],
  [`INSERT INTO _sluice.public_items__v1 VALUES (99, 'forged', ${MAX_VERSION}, false)`, /an? INSERT statement/],
  [`UPDATE _sluice.public_items__v1 SET _sluice_version = ${MAX_VERSION}`, /an? UPDATE statement/],
  ["SELECT 1; DELETE FROM _sluice.public_items__v1", /2 statements \(SELECT, DELETE\)/],
  ["DELETE FROM _sluice.public_items__v1; SELECT 1", /2 statements \(DELETE, SELECT\)/],
  ["EXPLAIN ANALYZE DELETE FROM _sluice.public_items__v1", /an? EXPLAIN statement/],
  ["DROP VIEW main.public_items", /a DROP statement/],
  ["CREATE TABLE main.x AS SELECT 1", /a CREATE statement/],
  [`COPY _sluice.public_items__v1 TO '${join(dir, "out.csv")}'`, /a COPY statement|not a SELECT statement/],
  [`ATTACH '${join(dir, "other.duckdb")}' AS other`, /an? ATTACH statement|not a SELECT statement/],
  ["INSTALL httpfs", /an? (LOAD|EXTENSION) statement/],
  ["LOAD httpfs", /an? LOAD statement/],
  ["SET enable_external_access = true", /a (SET|VARIABLE_SET) statement/],
  ["RESET lock_configuration", /a (SET|VARIABLE_SET) statement/],
  ["CALL checkpoint()", /a CALL statement/],
  ["PRAGMA force_checkpoint", /a PRAGMA statement/],
  ["BEGIN TRANSACTION", /a TRANSACTION statement/],
  ["VACUUM", /a VACUUM statement/],
  ["SELECT * FROM checkpoint()", /the query calls checkpoint\(\), which acts rather than reads/],
  ["SELECT 1 AS a, (SELECT count(*) FROM main.Force_Checkpoint()) AS b", /calls force_checkpoint\(\)/],
  ["SELECT * FROM query('SELECT * FROM checkpoint()')", /calls query\(\)/],
  ["PRAGMA show_tables", /a SELECT only as DuckDB rewrites it .*write it as a plain SELECT/],
  ["", /the query is empty/],
  ["-- nothing", /holds no statement/],
];

/** SELECTs that try to reach files and directories: external access is off. */
const FILE_READS: readonly string[] = [
  "SELECT * FROM read_text('/etc/passwd')",
  `SELECT * FROM read_csv('${secret}')`,
  `SELECT * FROM read_csv_auto('${secret}')`,
  "SELECT * FROM read_blob('/etc/hostname')",
  "SELECT * FROM glob('/etc/*')",
  `SELECT * FROM '${secret}'`,
  `SELECT * FROM read_json_auto('${secret}')`,
  `SELECT * FROM sniff_csv('${secret}')`,
];

describe("the query path of a DuckDB sink", () => {
  let sink: DuckDbSink;
  const events = new Events(tableSchema("items", [["id", "integer"], ["name", "text"]]));
  const signal = new AbortController().signal;
  const state = async () => sink.query("SELECT count(*)::INTEGER AS n, max(_sluice_version)::VARCHAR AS v, string_agg(name, ',' ORDER BY id) AS names FROM _sluice.public_items__v1");

  before(async () => {
    sink = createDuckDbSink(
      testSinkConfig("duckdb", { name: "wh", path: join(dir, "wh.duckdb"), query: { max_rows: 1000, max_bytes: 64 * 1024, timeout: 300 } }),
      { logger: testLogger() },
    );
    await sink.open(signal);
    await sink.write([events.insert(1n, { id: 1, name: "one" }), events.insert(2n, { id: 2, name: "two" })], signal);
  });
  after(() => sink.close());

  test("answers a single SELECT (also WITH, FROM, SHOW, DESCRIBE)", async () => {
    assert.deepEqual((await sink.readQuery("SELECT id, name FROM public_items ORDER BY id")).rows, [{ id: 1, name: "one" }, { id: 2, name: "two" }]);
    assert.deepEqual(await sink.readQuery("WITH x AS (SELECT id FROM public_items) SELECT max(id) AS m FROM x;"), { columns: ["m"], rows: [{ m: 2 }], truncated: null });
    assert.equal((await sink.readQuery("FROM public_items")).rows.length, 2);
    assert.ok((await sink.readQuery("SHOW TABLES")).rows.some((row) => row["name"] === "public_items"));
    assert.deepEqual((await sink.readQuery("DESCRIBE public_items")).rows.map((row) => row["column_name"]), ["id", "name"]);
  });

  test("refuses everything but one SELECT, and the data stays as it was", async () => {
    const before = await state();
    for (const [sql, refusal] of WRITES) {
      await assert.rejects(sink.readQuery(sql), (error: unknown) => {
        assert.ok(error instanceof SluiceError, sql);
        assert.equal(error.code, "QUERY_NOT_READ_ONLY", `${sql}: ${error.message}`);
        assert.match(error.message, refusal, sql);
        assert.match(error.message, /only a single SELECT statement is allowed/);
        return true;
      });
    }
    assert.deepEqual(await state(), before);
    assert.deepEqual(before, [{ n: 2, v: "2", names: "one,two" }]);
  });

  test("reads no file and lists no directory", async () => {
    for (const sql of FILE_READS) {
      await assert.rejects(sink.readQuery(sql), (error: unknown) => {
        assert.ok(error instanceof SluiceError, sql);
        assert.equal(error.code, "QUERY_FAILED", sql);
        assert.doesNotMatch(error.message, /hunter2|root:/, sql);
        assert.match(error.message, /Permission Error|does not exist/, `${sql}: ${error.message}`);
        return true;
      });
    }
    // IMPORT DATABASE (and PRAGMA import_database) read their directory while DuckDB parses the text.
    mkdirSync(join(dir, "export"), { recursive: true });
    writeFileSync(join(dir, "export", "schema.sql"), "CREATE TABLE main.imported (a INTEGER);");
    writeFileSync(join(dir, "export", "load.sql"), "");
    for (const sql of [`IMPORT DATABASE '${join(dir, "export")}'`, `PRAGMA import_database('${join(dir, "export")}')`]) {
      await assert.rejects(sink.readQuery(sql), /cannot parse the query \(queries cannot read files, directories or extensions\): .*Permission Error/, sql);
    }
    assert.deepEqual(await sink.query("SELECT table_name FROM duckdb_tables() WHERE table_name = 'imported'"), []);
    assert.match(
      await sink.readQuery("SELECT * FROM read_text('/etc/passwd')").then(() => "answered", (error: Error) => error.message),
      /^query failed \(queries cannot read files, directories or extensions\): Permission Error: .*file system operations are disabled by configuration/,
    );
  });

  test("a SELECT cannot change the database either: the configuration is locked, sequences and writes fail", async () => {
    const settings = await sink.readQuery("SELECT current_setting('enable_external_access') AS external, current_setting('lock_configuration') AS locked");
    assert.deepEqual(settings.rows, [{ external: false, locked: true }]);
    await sink.query("CREATE SEQUENCE IF NOT EXISTS main.seq");
    await assert.rejects(sink.readQuery("SELECT nextval('main.seq')"), /read-only mode/);
    await assert.rejects(sink.query("SET enable_external_access = true"), /the configuration has been locked/);
  });

  test("a SELECT cannot switch DuckDB's logging, profiling or parser: the table functions that set them are refused", async () => {
    const settings = "SELECT current_setting('enable_logging') AS logging, current_setting('enable_profiling') AS profiling";
    const before = (await sink.readQuery(settings)).rows;
    // Profiling on the query connection printed each later query's plan and text to the daemon's standard output (its JSON log stream).
    for (const name of ["enable_profiling", "disable_profiling", "enable_logging", "disable_logging", "truncate_duckdb_logs", "enable_peg_parser", "disable_peg_parser"]) {
      await assert.rejects(sink.readQuery(`SELECT * FROM ${name}()`), (error: unknown) => {
        assert.ok(error instanceof SluiceError, name);
        assert.equal(error.code, "QUERY_NOT_READ_ONLY", `${name}: ${error.message}`);
        assert.match(error.message, new RegExp(`calls ${name}\\(\\), which acts rather than reads`));
        return true;
      });
    }
    await assert.rejects(sink.readQuery("SELECT write_log('forged', level := 'error')"), /calls write_log\(\)/);
    assert.deepEqual((await sink.readQuery(settings)).rows, before);
    assert.deepEqual(before, [{ logging: 0, profiling: null }]);
  });

  test("an answer is cut at the row limit and the byte limit, and says so", async () => {
    const rows = await sink.readQuery("SELECT * FROM range(50000000)");
    assert.equal(rows.rows.length, 1000);
    assert.match(rows.truncated ?? "", /cut at 1000 rows \(the sink's query.max_rows\)/);
    const wide = await sink.readQuery("SELECT repeat('x', 1000) AS filler FROM range(1000)");
    assert.ok(wide.rows.length > 0 && wide.rows.length < 70, `${wide.rows.length} rows of 1 KB under a 64 KiB limit`);
    assert.match(wide.truncated ?? "", /would pass 64KiB of JSON \(the sink's query.max_bytes\)/);
    assert.equal((await sink.readQuery("SELECT * FROM range(1000)")).truncated, null);
  });

  test("the answer as JSON bytes (what the endpoint sends) is the JSON of the answer as values, cut at the same place", async () => {
    const queries = [
      "SELECT id, name FROM public_items ORDER BY id",
      "SELECT * FROM public_items WHERE id < 0",
      "SELECT * FROM range(50000000)",
      "SELECT repeat('é\"\\n', 300) AS filler, 12345678901234567890::HUGEINT AS big, [1, 2] AS list, {'a': NULL} AS s FROM range(1000)",
    ];
    for (const sql of queries) {
      const bytes = await sink.readQueryJson(sql);
      assert.equal(bytes.byteOffset, 0, "in a buffer of its own (moved to the main thread, not copied)");
      assert.equal(bytes.buffer.byteLength, bytes.byteLength, "a buffer of the answer's size: the whole buffer is moved, and held until sent");
      assert.deepEqual(JSON.parse(Buffer.from(bytes).toString("utf8")), await sink.readQuery(sql), sql);
    }
  });

  test("a query past the timeout is interrupted; the sink keeps writing", async () => {
    await assert.rejects(sink.readQuery("SELECT sum(hash(a.range + b.range)) FROM range(100000000) a, range(100000000) b"), (error: unknown) => {
      assert.ok(error instanceof SluiceError);
      assert.equal(error.code, "QUERY_TIMEOUT");
      assert.match(error.message, /ran past 300ms \(the sink's query.timeout\) and was interrupted/);
      return true;
    });
    await sink.write([events.insert(3n, { id: 3, name: "three" })], signal);
    assert.deepEqual((await sink.readQuery("SELECT max(id) AS m FROM public_items")).rows, [{ m: 3 }]);
  });
});

test("a DuckDB sink given a memory_limit runs the allocator's background threads (what a query's values leave is handed back, not kept)", async () => {
  const sink = createDuckDbSink(testSinkConfig("duckdb", { name: "bg", path: join(dir, "bg.duckdb"), memory_limit: 64 * 2 ** 20, threads: 1 }), { logger: testLogger() });
  await sink.open(new AbortController().signal);
  try {
    assert.deepEqual((await sink.readQuery("SELECT current_setting('allocator_background_threads') AS on")).rows, [{ on: true }]);
  } finally {
    await sink.close();
  }
});

test("sluice query without a daemon: the file opened read-only with the same protections; SQL errors are clear", async () => {
  const path = join(dir, "offline.duckdb");
  const sink = createDuckDbSink(testSinkConfig("duckdb", { name: "off", path }), { logger: testLogger() });
  const signal = new AbortController().signal;
  await sink.open(signal);
  await sink.write([new Events(tableSchema("items", [["id", "integer"], ["name", "text"]])).insert(1n, { id: 1, name: "a" })], signal);
  await sink.query("CREATE TABLE main.t (id INTEGER, name VARCHAR); INSERT INTO main.t VALUES (1, 'a'), (2, NULL)");
  await sink.close();
  const limits = { maxRows: 100, maxBytes: 2 ** 20, timeoutMs: 5_000 };
  const { rows, truncated } = await queryDuckDbFile(path, "SELECT id, name FROM t ORDER BY id", limits);
  assert.deepEqual(rows, [{ id: 1, name: "a" }, { id: 2, name: null }]);
  assert.equal(truncated, null);
  assert.equal(formatRows(rows), "id  name\n--  ----\n1   a\n2   NULL\n(2 rows)\n");
  await assert.rejects(queryDuckDbFile(path, "SELECT nope FROM t", limits), /query failed: Binder Error/);
  await assert.rejects(queryDuckDbFile(join(path, "missing.duckdb"), "SELECT 1", limits), /cannot open DuckDB file/);
  for (const [sql, refusal] of WRITES) await assert.rejects(queryDuckDbFile(path, sql, limits), refusal, sql);
  for (const sql of FILE_READS) await assert.rejects(queryDuckDbFile(path, sql, limits), /Permission Error|does not exist/, sql);
  const capped = await queryDuckDbFile(path, "SELECT * FROM range(50000000)", limits);
  assert.equal(capped.rows.length, 100);
  assert.match(capped.truncated ?? "", /cut at 100 rows/);
  assert.deepEqual((await queryDuckDbFile(path, "SELECT count(*)::INTEGER AS n FROM t", limits)).rows, [{ n: 2 }]);
});

test("queries of a sink in progress at once are bounded (429), and an answer its client leaves unread is dropped with the connection", { timeout: 60_000 }, async () => {
  // ~100 MB of JSON (one string, shared): more than a loopback connection's socket buffers take (up to 32 + 4 MiB here), so an unread answer stays with the server.
  const value = "x".repeat(2 ** 20);
  const wide = { columns: ["v"], rows: Array.from({ length: 100 }, () => ({ v: value })), truncated: null };
  let asked = 0;
  const answer = Buffer.from(JSON.stringify(wide));
  // A copy each time: the handler frees an answer's memory once sent.
  const sinks = new Map([["wh", { readQueryJson: async () => (asked++, Buffer.from(answer)) }]]);
  const server = new HttpServer(createLogger("silent"));
  server.mount("/sinks", queryHandler(sinks, { maxInProgress: 2, unreadAnswerMs: 5_000, maxAnswerBytes: 2 ** 30 }));
  const { port } = await server.listen("127.0.0.1", 0);
  const post = (socket: Socket) => socket.write(`POST /sinks/wh/query HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 8\r\n\r\nSELECT 1`);
  try {
    // Two clients send a query and read nothing.
    const silent = await Promise.all(
      [0, 1].map(
        () =>
          new Promise<Socket>((resolve) => {
            const socket = connect(port, "127.0.0.1", () => {
              socket.pause();
              post(socket);
              resolve(socket);
            });
            socket.on("error", () => undefined);
          }),
      ),
    );
    while (asked < 2) await new Promise((resolve) => setTimeout(resolve, 20));
    const busy = await fetch(`http://127.0.0.1:${port}/sinks/wh/query`, { method: "POST", body: "SELECT 1" });
    assert.equal(busy.status, 429, "a third query while two answers are unread");
    assert.equal(busy.headers.get("retry-after"), "1");
    assert.match(((await busy.json()) as { error: string }).error, /sink "wh" has 2 queries in progress/);
    // The unread answers' connections are cut (what a paused client sees once it reads again), and their slots given back.
    await Promise.all(
      silent.map(
        (socket) =>
          new Promise<void>((done) => {
            socket.once("close", () => done());
            socket.resume();
          }),
      ),
    );
    const answered = await fetch(`http://127.0.0.1:${port}/sinks/wh/query`, { method: "POST", body: "SELECT 1" });
    assert.equal(answered.status, 200);
    assert.equal(((await answered.json()) as { rows: unknown[] }).rows.length, 100);
  } finally {
    server.dropConnections();
    await server.close();
  }
});

test("the bytes of answers held for clients that have not read them are bounded, all sinks together: past them an answer is dropped and answered 503", { timeout: 60_000 }, async () => {
  // ~100 MB of JSON, more than a loopback connection's socket buffers take: an unread answer stays with the server.
  const value = "x".repeat(2 ** 20);
  const answer = Buffer.from(JSON.stringify({ columns: ["v"], rows: Array.from({ length: 100 }, () => ({ v: value })), truncated: null }));
  let asked = 0;
  const sink = { readQueryJson: async () => (asked++, Buffer.from(answer)) };
  const sinks = new Map([["wh", sink], ["other", sink]]);
  const server = new HttpServer(createLogger("silent"));
  // Room for less than one such answer: one answer always goes, the next waits for it to be read.
  server.mount("/sinks", queryHandler(sinks, { maxInProgress: 4, unreadAnswerMs: 30_000, maxAnswerBytes: 64 * 2 ** 20 }));
  const { port } = await server.listen("127.0.0.1", 0);
  try {
    const silent = await new Promise<Socket>((resolve) => {
      const socket = connect(port, "127.0.0.1", () => {
        socket.pause();
        socket.write(`POST /sinks/wh/query HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 8\r\n\r\nSELECT 1`);
        resolve(socket);
      });
      socket.on("error", () => undefined);
    });
    while (asked < 1) await new Promise((resolve) => setTimeout(resolve, 20));
    // Another sink's query: its answer made, then dropped.
    const busy = await fetch(`http://127.0.0.1:${port}/sinks/other/query`, { method: "POST", body: "SELECT 1" });
    assert.equal(busy.status, 503);
    assert.equal(busy.headers.get("retry-after"), "1");
    const refusal = (await busy.json()) as { error: string; code: string };
    assert.equal(refusal.code, "QUERY_ANSWERS_BUSY");
    assert.match(refusal.error, /the daemon holds 100\.0MiB of query answers their clients have not read yet, as much as it holds at once \(64MiB\)/);
    // The unread answer's client goes away: its bytes are given back.
    const closed = new Promise((done) => silent.once("close", done));
    silent.destroy();
    await closed;
    const answered = await fetch(`http://127.0.0.1:${port}/sinks/other/query`, { method: "POST", body: "SELECT 1" });
    assert.equal(answered.status, 200);
    assert.equal(((await answered.json()) as { rows: unknown[] }).rows.length, 100);
  } finally {
    server.dropConnections();
    await server.close();
  }
});

test("an answer is counted as the whole buffer it holds, not only its text (a grown buffer is up to twice the text)", { timeout: 60_000 }, async () => {
  // 60 MiB of JSON, more than a loopback connection's socket buffers take: an unread answer stays with the server.
  const text = Buffer.from(JSON.stringify({ columns: ["v"], rows: [{ v: "x".repeat(60 * 2 ** 20) }], truncated: null }));
  let asked = 0;
  const sink = {
    readQueryJson: async () => {
      asked++;
      const answer = new Uint8Array(new ArrayBuffer(2 * text.length), 0, text.length);
      answer.set(text);
      return answer;
    },
  };
  const server = new HttpServer(createLogger("silent"));
  // Room for two answers' texts, not for two of their buffers.
  server.mount("/sinks", queryHandler(new Map([["wh", sink]]), { maxInProgress: 4, unreadAnswerMs: 30_000, maxAnswerBytes: 150 * 2 ** 20 }));
  const { port } = await server.listen("127.0.0.1", 0);
  try {
    const silent = await new Promise<Socket>((resolve) => {
      const socket = connect(port, "127.0.0.1", () => {
        socket.pause();
        socket.write(`POST /sinks/wh/query HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 8\r\n\r\nSELECT 1`);
        resolve(socket);
      });
      socket.on("error", () => undefined);
    });
    while (asked < 1) await new Promise((resolve) => setTimeout(resolve, 20));
    const busy = await fetch(`http://127.0.0.1:${port}/sinks/wh/query`, { method: "POST", body: "SELECT 1" });
    assert.equal(busy.status, 503);
    assert.match(((await busy.json()) as { error: string }).error, /the daemon holds 120\.0MiB of query answers/);
    silent.destroy();
  } finally {
    server.dropConnections();
    await server.close();
  }
});

test("a query pipelined behind a slow request on a connection that closes holds no slot of its sink (four such connections left the sink answering 429 until a restart)", { timeout: 30_000 }, async () => {
  const server = new HttpServer(createLogger("silent"));
  let gateArrived: () => void = () => undefined;
  server.route("GET", "/gate", (_req, res) => {
    // Never answered: the query behind it waits until the connection closes.
    res.once("close", () => gateClosed());
    gateArrived();
  });
  let gateClosed: () => void = () => undefined;
  server.mount("/sinks", queryHandler(new Map([["wh", { readQueryJson: async () => new TextEncoder().encode('{"columns":[],"rows":[],"truncated":null}') }]]), { maxInProgress: 1, unreadAnswerMs: 30_000, maxAnswerBytes: 2 ** 20 }));
  const { port } = await server.listen("127.0.0.1", 0);
  try {
    for (let i = 0; i < 2; i++) {
      const arrived = new Promise<void>((resolve) => (gateArrived = resolve));
      const closed = new Promise<void>((resolve) => (gateClosed = resolve));
      const socket = connect(port, "127.0.0.1");
      socket.on("error", () => undefined);
      socket.write("GET /gate HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nPOST /sinks/wh/query HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 8\r\n\r\nSELECT 1");
      await arrived;
      socket.destroy();
      await closed;
      await new Promise((resolve) => setImmediate(resolve));
    }
    const answer = await fetch(`http://127.0.0.1:${port}/sinks/wh/query`, { method: "POST", body: "SELECT 1" });
    assert.equal(answer.status, 200);
  } finally {
    server.dropConnections();
    await server.close();
  }
});

test("a query's table keeps each row on its line and shows escape sequences and bidi overrides escaped", () => {
  // Values anyone who can write to the database chooses: a line break forging a row, a colour change, a right-to-left override.
  const rows = [{ "id\n": 1, name: "a\nb\u001b[31mred\u202eevil\u2066x\u2069" }];
  const table = formatRows(rows);
  assert.equal(table, "id\\u000a  name\n--------  --------------------------------------------\n1         a\\u000ab\\u001b[31mred\\u202eevil\\u2066x\\u2069\n(1 row)\n");
  assert.doesNotMatch(table.replaceAll("\n", ""), /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/);
});
