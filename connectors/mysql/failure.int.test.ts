/**
 * Failures against the real MariaDB: a lost replication connection is a retriable error, and
 * connecting again from the last checkpoint goes on without loss; an account at its connection limit is waited out;
 * wrong credentials are permanent.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import mysql from "mysql2/promise";
import type { Connection } from "mysql2/promise";
import { mariadb } from "../../test/services/ports.ts";
import { isRetriable } from "../errors.ts";
import { adminConnection, dropDatabase, newSource, randomName, readUntil, sourceConfig } from "./int-test-support.ts";

describe("MySQL source: failures", () => {
  const database = randomName("s_fail");
  let admin: Connection;

  before(async () => {
    admin = await adminConnection(database);
    await admin.query("CREATE TABLE f (id INT PRIMARY KEY)");
  });

  after(async () => {
    await dropDatabase(admin, database);
    await admin.end();
  });

  it("reports a killed replication connection as retriable, and resumes from the checkpoint", async () => {
    const config = sourceConfig({ tables: [`${database}.f`], snapshot: { mode: "never", parallelism: 1, chunk_rows: 100 } });
    const source = newSource(config);
    await source.connect(null, AbortSignal.timeout(30_000));
    try {
      await admin.query("INSERT INTO f VALUES (1)");
      const first = await readUntil(source, (c) => c.events.length >= 1);
      const [threads] = (await admin.query("SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND = 'Binlog Dump' ORDER BY ID DESC")) as unknown as [{ ID: number }[]];
      assert.ok(threads.length > 0, "a dump thread serves the source");
      for (const { ID } of threads) await admin.query(`KILL CONNECTION ${ID}`).catch(() => undefined);
      await admin.query("INSERT INTO f VALUES (2)");
      await assert.rejects(readUntil(source, () => false, { timeoutMs: 20_000 }), (error: Error) => {
        assert.equal(isRetriable(error), true, `${error.message} is retriable`);
        return true;
      });
      await source.connect(first.batches.at(-1)!.checkpoint, AbortSignal.timeout(30_000));
      const rest = await readUntil(source, (c) => c.events.length >= 1);
      assert.deepEqual(rest.events.map((e) => e.key), [{ id: 2 }]);
    } finally {
      await source.close();
    }
  });

  it("an account at its MAX_USER_CONNECTIONS limit is retriable, naming the limit, and connects once a session is gone", async () => {
    // A reconnect can meet the account's limit while the server still holds the session it replaces (a dump thread not
    // yet ended after a network loss); MAX_CONNECTIONS_PER_HOUR and MAX_QUERIES_PER_HOUR give the same error and heal too.
    const user = randomName("s_limit").slice(0, 32);
    await admin.query(`CREATE USER '${user}'@'%' IDENTIFIED BY 'limit-pw' WITH MAX_USER_CONNECTIONS 1`);
    await admin.query(`GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO '${user}'@'%'`);
    await admin.query(`GRANT SELECT ON \`${database}\`.* TO '${user}'@'%'`);
    const other = await mysql.createConnection({ host: mariadb.host, port: mariadb.port, user, password: "limit-pw" });
    const source = newSource(sourceConfig({ tables: [`${database}.f`], user, password: "limit-pw", snapshot: { mode: "never", parallelism: 1, chunk_rows: 100 } }));
    try {
      await assert.rejects(source.connect(null, AbortSignal.timeout(30_000)), (error: Error) => {
        assert.equal(isRetriable(error), true, `${error.message} is retriable`);
        assert.match(error.message, /max_user_connections/);
        return true;
      });
      await source.close();
      await other.end();
      await source.connect(null, AbortSignal.timeout(30_000));
    } finally {
      await other.end().catch(() => undefined);
      await source.close();
      await admin.query(`DROP USER IF EXISTS '${user}'@'%'`);
    }
  });

  it("refuses bad credentials permanently", async () => {
    const source = newSource(sourceConfig({ tables: [`${database}.f`], password: "wrong" }));
    await assert.rejects(source.connect(null, AbortSignal.timeout(30_000)), (error: Error & { code?: string }) => {
      assert.equal(isRetriable(error), false);
      assert.equal(error.code, "MYSQL_AUTH_FAILED");
      return true;
    });
    await source.close();
  });
});
