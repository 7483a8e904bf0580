/**
 * MariaDB's log_bin_compress turned on while Sluice captures (a global setting that takes effect
 * at once; Sluice refuses it only when capture starts): the compressed rows events and statements
 * are decoded, and their changes get distinct, increasing positions inside their events. A private
 * server: the shared one must keep writing plain events for everyone else.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import mysql from "mysql2/promise";
import type { Connection } from "mysql2/promise";
import { comparePositions } from "../contracts.ts";
import { startPrivateMariadb } from "../../test/services/private-mariadb.ts";
import type { PrivateMariadb } from "../../test/services/private-mariadb.ts";
import { newSource, readUntil, sourceConfig } from "./int-test-support.ts";

describe("MariaDB source: log_bin_compress turned on during capture", () => {
  let server: PrivateMariadb;
  let admin: Connection;

  before(async () => {
    server = await startPrivateMariadb();
    admin = await mysql.createConnection({ host: server.host, port: server.port, user: server.admin.user, password: server.admin.password, multipleStatements: true, supportBigNumbers: true, bigNumberStrings: true });
    await admin.query("CREATE DATABASE d CHARACTER SET utf8mb4; CREATE TABLE d.t (id INT PRIMARY KEY, v TEXT, n INT UNSIGNED)");
  });

  after(async () => {
    await admin?.end();
    await server?.stop();
  });

  it("decodes the compressed rows events and DDL, each change at its own increasing position", async () => {
    const config = sourceConfig({
      host: server.host,
      port: server.port,
      user: server.admin.user,
      password: server.admin.password,
      tables: ["d.t"],
      skipped_operations: [],
      snapshot: { mode: "never", parallelism: 1, chunk_rows: 100 },
    });
    const source = newSource(config);
    await source.connect(null, AbortSignal.timeout(30_000));
    try {
      await admin.query("SET GLOBAL log_bin_compress = ON, GLOBAL log_bin_compress_min_len = 10");
      const values = Array.from({ length: 50 }, (_, i) => `(${i + 1}, REPEAT('${String.fromCharCode(97 + (i % 26))}', ${200 + i}), ${4294967295 - i})`);
      await admin.query(`INSERT INTO d.t VALUES ${values.join(", ")}`);
      await admin.query("UPDATE d.t SET v = CONCAT(v, 'é') WHERE id <= 3");
      await admin.query("DELETE FROM d.t WHERE id > 48");
      await admin.query("ALTER TABLE d.t ADD COLUMN w VARCHAR(40) NOT NULL DEFAULT 'added by a compressed statement'");
      await admin.query("INSERT INTO d.t (id, v, n) VALUES (100, REPEAT('z', 300), 7)");
      const { events } = await readUntil(source, (c) => c.events.length >= 50 + 3 + 2 + 1, { timeoutMs: 60_000 });
      const [inserts, updates, deletes, late] = [events.slice(0, 50), events.slice(50, 53), events.slice(53, 55), events[55]!];
      assert.deepEqual(inserts.map((e) => [e.op, e.after]), values.map((_, i) => ["c", { id: i + 1, v: String.fromCharCode(97 + (i % 26)).repeat(200 + i), n: 4294967295 - i }]));
      assert.deepEqual(updates.map((e) => [e.op, e.before!["v"], e.after!["v"]]), [1, 2, 3].map((id) => ["u", String.fromCharCode(96 + id).repeat(199 + id), `${String.fromCharCode(96 + id).repeat(199 + id)}é`]));
      assert.deepEqual(deletes.map((e) => [e.op, e.before!["id"]]), [["d", 49], ["d", 50]]);
      assert.deepEqual([late.op, late.after], ["c", { id: 100, v: "z".repeat(300), n: 7, w: "added by a compressed statement" }]);
      assert.deepEqual(late.schema.columns.map((c) => c.name), ["id", "v", "n", "w"]);
      // The server did write them compressed.
      const [logs] = await admin.query<mysql.RowDataPacket[]>("SHOW BINARY LOGS");
      const [written] = await admin.query<mysql.RowDataPacket[]>(`SHOW BINLOG EVENTS IN '${String(logs.at(-1)!["Log_name"])}'`);
      const types = new Set(written.map((row) => String(row["Event_type"])));
      for (const type of ["Write_rows_compressed_v1", "Update_rows_compressed_v1", "Delete_rows_compressed_v1", "Query_compressed"]) assert.ok(types.has(type), `${type} in ${[...types].join(", ")}`);
      for (let i = 1; i < events.length; i++) assert.ok(comparePositions(events[i - 1]!.source.position, events[i]!.source.position) < 0, `change ${i} after change ${i - 1}`);
    } finally {
      await admin.query("SET GLOBAL log_bin_compress = OFF");
      await source.close();
    }
  });
});
