/**
 * CREATE TABLE ... SELECT read behind the server (a lagging or resumed stream), on a private MariaDB with
 * binlog_row_metadata=NO_LOG, where nothing but the schema history names the columns: the table was altered after
 * the statement, so re-reading the catalog at the statement would give its rows the later columns. MariaDB (as MySQL)
 * logs the statement in row format as a CREATE TABLE with its columns, which Sluice parses: the rows get the columns
 * they had, the catalog is not read, and the later ALTER applies after them.
 */
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import mysql from "mysql2/promise";
import type { Connection } from "mysql2/promise";
import { pino } from "pino";
import { ByteBoundedBuffer } from "../common/byte-bounded-buffer.ts";
import { startPrivateMariadb } from "../../test/services/private-mariadb.ts";
import type { PrivateMariadb } from "../../test/services/private-mariadb.ts";
import { BinlogStream } from "./binlog-stream.ts";
import { currentPosition, databaseCharset, readDefinitions } from "./catalog.ts";
import { randomName } from "./int-test-support.ts";
import { EventParser } from "./protocol/event-parser.ts";
import { MemorySchemaHistoryStore } from "./schema/schema-history.ts";
import { SchemaTracker } from "./schema/schema-tracker.ts";
import { sqlOf } from "./sql-connection.ts";
import { StreamDecoder } from "./stream-decoder.ts";
import type { DecodedEvent } from "./stream-decoder.ts";
import { CollationTable } from "./values/charsets.ts";

let server: PrivateMariadb;
let admin: Connection;

before(async () => {
  server = await startPrivateMariadb(["binlog_row_metadata=NO_LOG"]);
  admin = await mysql.createConnection({ host: server.host, port: server.port, user: server.admin.user, password: server.admin.password });
});

after(async () => {
  await admin.end();
  await server.stop();
});

it("NO_LOG: the rows of a CREATE TABLE ... SELECT get the columns of the statement, not those of a later ALTER", { timeout: 60_000 }, async () => {
  const database = randomName("ctas");
  await admin.query(`CREATE DATABASE ${database}`);
  await admin.query(`USE ${database}`);
  await admin.query("CREATE TABLE src (id INT PRIMARY KEY, a VARCHAR(10), b INT)");
  await admin.query("INSERT INTO src VALUES (1, 'one', 10), (2, 'two', 20)");
  const sql = sqlOf(admin);
  const start = await currentPosition(sql, "mariadb");
  await admin.query("CREATE TABLE t (PRIMARY KEY (id)) SELECT id, a, b FROM src");
  await admin.query("ALTER TABLE t DROP COLUMN a, ADD COLUMN c VARCHAR(10) AFTER id");
  await admin.query("INSERT INTO t VALUES (3, 'three', 30)");

  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: "warn" }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  const connection = { host: server.host, port: server.port, user: server.admin.user, password: server.admin.password };
  const buffer = new ByteBoundedBuffer<Buffer>(8 * 2 ** 20);
  const stream = new BinlogStream({ connection, serverId: 4_000_000_001, flavor: "mariadb", start: { ...start, useGtid: false }, heartbeatMs: 1000, buffer, logger, context: {} });
  const collations = CollationTable.builtIn();
  const catalogReads: string[] = [];
  const catalog = {
    readDefinitions: (names: Parameters<typeof readDefinitions>[1]) => {
      catalogReads.push(...names.map((n) => `${n.database}.${n.table}`));
      return readDefinitions(sql, names);
    },
    databaseCharset: (name: string) => databaseCharset(sql, name),
  };
  const tracker = new SchemaTracker({ store: new MemorySchemaHistoryStore(), catalog, matches: (db) => db === database, binding: { sourceName: "s", collations, zeroDates: "null", mariadb: true }, logger, context: {} });
  const decoder = new StreamDecoder({ sourceName: "s", flavor: "mariadb", parser: new EventParser(collations, true), tracker, start, skipThrough: null, snapshotThresholds: new Map(), logger, context: {} });
  await stream.start();
  try {
    const out: DecodedEvent[] = [];
    const signal = AbortSignal.timeout(20_000);
    while (out.length < 3) {
      await buffer.waitForItem(signal);
      const pending = decoder.apply(buffer.shift()!, out);
      if (pending !== undefined) await pending;
    }
    assert.deepEqual(
      out.map(({ event }) => event.after),
      [{ id: 1, a: "one", b: 10 }, { id: 2, a: "two", b: 20 }, { id: 3, c: "three", b: 30 }],
    );
    assert.deepEqual(out[0]!.event.schema.columns.map((c) => `${c.name} ${c.dbType}`), ["id int", "a varchar(10)", "b int"]);
    assert.deepEqual(out[2]!.event.schema.columns.map((c) => `${c.name} ${c.dbType}`), ["id int", "c varchar(10)", "b int"]);
    assert.deepEqual(catalogReads.filter((t) => t === `${database}.t`), []);
    assert.deepEqual(lines.filter((l) => /not understood/.test(String(l["msg"]))), []);
  } finally {
    await stream.stop();
  }
});
