/**
 * MariaDB's 5.3 formats of DATETIME/TIMESTAMP/TIME with fractional seconds, which tables created
 * before MariaDB 10.1 (or under mysql56_temporal_format=OFF) keep: the binlog logs them with the
 * old type codes and no metadata, information_schema adds "/* mariadb-5.3 *\/" to their type.
 * A private server: the setting is global.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import mysql from "mysql2/promise";
import type { Connection } from "mysql2/promise";
import { startPrivateMariadb } from "../../test/services/private-mariadb.ts";
import type { PrivateMariadb } from "../../test/services/private-mariadb.ts";
import { newSource, readUntil, snapshotFinished, sourceConfig } from "./int-test-support.ts";

const micros = (iso: string, extra = 0) => BigInt(Date.parse(`${iso}Z`)) * 1000n + BigInt(extra);
const time = (h: number, m: number, s: number, us = 0) => (h * 3600 + m * 60 + s) * 1_000_000 + us;

const VALUES = `'2020-01-02 03:04:05', '2020-01-02 03:04:05.123', '1999-12-31 23:59:59.999999', '2001-02-03 04:05:06.78', '-12:34:56.7891', '838:59:59', '2030-01-01 00:00:00', '-838:59:59.9', -5`;
const EXPECTED = {
  a: micros("2020-01-02T03:04:05"),
  b: micros("2020-01-02T03:04:05", 123_000),
  c: micros("1999-12-31T23:59:59", 999_999),
  d: micros("2001-02-03T04:05:06", 780_000),
  e: -time(12, 34, 56, 789_100),
  f: time(838, 59, 59),
  g: micros("2030-01-01T00:00:00"),
  t1: -time(838, 59, 59, 900_000),
  n: -5,
};

describe("MariaDB source: DATETIME/TIMESTAMP/TIME in MariaDB's 5.3 format", () => {
  let server: PrivateMariadb;
  let admin: Connection;

  before(async () => {
    server = await startPrivateMariadb(["mysql56_temporal_format = OFF"]);
    admin = await mysql.createConnection({ host: server.host, port: server.port, user: server.admin.user, password: server.admin.password, multipleStatements: true });
    await admin.query(
      "SET time_zone = '+00:00'; CREATE DATABASE d; CREATE TABLE d.t (id INT PRIMARY KEY, a DATETIME, b DATETIME(3), c DATETIME(6), d TIMESTAMP(2) NULL, e TIME(4), f TIME, g TIMESTAMP NULL, t1 TIME(1), n INT)",
    );
    await admin.query(`INSERT INTO d.t VALUES (1, ${VALUES}), (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`);
  });

  after(async () => {
    await admin?.end();
    await server?.stop();
  });

  it("decodes them the same from the snapshot and the binlog, and the columns after them", async () => {
    const source = newSource(sourceConfig({ host: server.host, port: server.port, user: server.admin.user, password: server.admin.password, tables: ["d.t"] }));
    await source.connect(null, AbortSignal.timeout(30_000));
    try {
      const snapshot = await readUntil(source, snapshotFinished);
      await admin.query(`INSERT INTO d.t VALUES (11, ${VALUES}), (12, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`);
      const stream = await readUntil(source, (c) => c.events.length >= 2);
      const nulls = Object.fromEntries(Object.keys(EXPECTED).map((name) => [name, null]));
      assert.deepEqual(snapshot.events.filter((e) => e.op === "r").map((e) => e.after), [{ id: 1, ...EXPECTED }, { id: 2, ...nulls }]);
      assert.deepEqual(stream.events.map((e) => e.after), [{ id: 11, ...EXPECTED }, { id: 12, ...nulls }]);
      assert.deepEqual(stream.events[0]!.schema.columns.map((c) => c.dbType), ["int", "datetime", "datetime(3)", "datetime(6)", "timestamp(2)", "time(4)", "time", "timestamp", "time(1)", "int"]);
    } finally {
      await source.close();
    }
  });
});
