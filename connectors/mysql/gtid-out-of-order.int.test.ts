/**
 * MariaDB with gtid_strict_mode=OFF (its default) lets a session write a GTID whose sequence number
 * is below the domain's last one (`SET gtid_seq_no`, as a replayed mysqlbinlog dump does). The
 * server's own GTID lookup then finds no binlog file to start from at a GTID state holding it, and
 * answers a dump asked for by GTID as if the binlog were purged, though the checkpoint's file is
 * there. Capture must go on from the checkpoint's file and offset, not stop as purged at every
 * start. A private server: gtid_strict_mode is global, and the shared one keeps it ON.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import mysql from "mysql2/promise";
import type { Connection } from "mysql2/promise";
import type { Checkpoint } from "../contracts.ts";
import { isRetriable } from "../errors.ts";
import type { SluiceError } from "../errors.ts";
import { startPrivateMariadb } from "../../test/services/private-mariadb.ts";
import type { PrivateMariadb } from "../../test/services/private-mariadb.ts";
import { newSource, readUntil, sourceConfig } from "./int-test-support.ts";
import type { MysqlSource } from "./source.ts";
import { MemorySchemaHistoryStore } from "./schema/schema-history.ts";

describe("MariaDB source: a GTID written out of order (gtid_strict_mode=OFF)", () => {
  let server: PrivateMariadb;
  let admin: Connection;

  before(async () => {
    server = await startPrivateMariadb(["gtid_strict_mode = OFF"]);
    admin = await mysql.createConnection({ host: server.host, port: server.port, user: server.admin.user, password: server.admin.password, multipleStatements: true });
    await admin.query("CREATE DATABASE d; CREATE TABLE d.t (id INT PRIMARY KEY, v TEXT)");
    await admin.query("INSERT INTO d.t VALUES (1, 'in order'), (2, 'in order')");
    // The binlog from here on begins with a GTID list above the out-of-order GTID, as on a server that ran a while.
    await admin.query("FLUSH BINARY LOGS");
    const [[status]] = await admin.query<mysql.RowDataPacket[]>("SHOW MASTER STATUS");
    // The server keeps a file until its transactions' binlog checkpoint is written (a moment after the flush).
    for (let tries = 0; ; tries++) {
      await admin.query(`PURGE BINARY LOGS TO '${String(status!["File"])}'`);
      const [logs] = await admin.query<mysql.RowDataPacket[]>("SHOW BINARY LOGS");
      if (logs.length === 1) break;
      assert.ok(tries < 100, "the old binlog file was purged");
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  });

  after(async () => {
    await admin?.end();
    await server?.stop();
  });

  /** Reads until `count` changes, connecting the same source again from its last checkpoint after a retriable failure, as the daemon does. */
  async function readResuming(source: MysqlSource, from: Checkpoint, count: number): Promise<{ ids: number[]; failures: SluiceError[] }> {
    const ids: number[] = [];
    const failures: SluiceError[] = [];
    let checkpoint: Checkpoint = from;
    try {
      for (let attempt = 0; attempt < 3 && ids.length < count; attempt++) {
        let seen: Checkpoint[] = [];
        try {
          await source.connect(checkpoint, AbortSignal.timeout(30_000));
          const read = await readUntil(source, (c) => {
            seen = c.batches.map((b) => b.checkpoint);
            return ids.length + c.events.length >= count;
          });
          ids.push(...read.events.map((e) => Number(e.key["id"])));
          checkpoint = read.batches.at(-1)?.checkpoint ?? checkpoint;
        } catch (error) {
          if (!isRetriable(error)) throw error;
          failures.push(error as SluiceError);
          checkpoint = seen.at(-1) ?? checkpoint;
        }
      }
    } finally {
      await source.close();
    }
    return { ids, failures };
  }

  it("resumes at a checkpoint whose GTID state holds a GTID below the domain's last one", async () => {
    const history = new MemorySchemaHistoryStore();
    const config = sourceConfig({ host: server.host, port: server.port, user: server.admin.user, password: server.admin.password, tables: ["d.t"], snapshot: { mode: "never", parallelism: 1, chunk_rows: 100 } });
    // A stream already open reads past the out-of-order GTID; its checkpoint then holds it.
    const first = newSource(config, { schemaHistory: history });
    await first.connect(null, AbortSignal.timeout(30_000));
    await readUntil(first, (c) => c.batches.length > 0);
    await admin.query("SET SESSION gtid_seq_no = 1; INSERT INTO d.t VALUES (3, 'out of order')");
    await admin.query("INSERT INTO d.t VALUES (4, 'in order again')");
    await admin.query("SET SESSION gtid_seq_no = 2; INSERT INTO d.t VALUES (5, 'out of order, last')");
    const streamed = await readUntil(first, (c) => c.events.length === 3);
    await first.close();
    const checkpoint = streamed.batches.at(-1)!.checkpoint;
    assert.match(checkpoint.position.resume ?? "", /"gtid":"0-9-2"/, "the checkpoint's GTID state is the out-of-order GTID");

    await admin.query("INSERT INTO d.t VALUES (6, 'after the checkpoint')");
    const resumed = await readResuming(newSource(config, { schemaHistory: history }), checkpoint, 1);
    assert.deepEqual(resumed.ids, [6]);
    const { failures } = resumed;
    assert.ok(failures.length >= 1, "the dump by GTID state is refused first (else this test shows nothing of the fallback)");
    assert.ok(failures.every((f) => f.code === "MYSQL_GTID_START_REFUSED"), failures.map((f) => f.message).join("\n"));
  });

  it("resumes at a checkpoint whose GTID is above the one the server logged last (written out of order while stopped)", async () => {
    const history = new MemorySchemaHistoryStore();
    const config = sourceConfig({ host: server.host, port: server.port, user: server.admin.user, password: server.admin.password, tables: ["d.t"], snapshot: { mode: "never", parallelism: 1, chunk_rows: 100 } });
    const first = newSource(config, { schemaHistory: history });
    await first.connect(null, AbortSignal.timeout(30_000));
    await readUntil(first, (c) => c.batches.length > 0);
    await admin.query("INSERT INTO d.t VALUES (10, 'in order')");
    const streamed = await readUntil(first, (c) => c.events.length === 1);
    await first.close();
    const checkpoint = streamed.batches.at(-1)!.checkpoint;

    await admin.query("SET SESSION gtid_seq_no = 3; INSERT INTO d.t VALUES (11, 'out of order, while stopped')");
    const resumed = await readResuming(newSource(config, { schemaHistory: history }), checkpoint, 1);
    assert.deepEqual(resumed.ids, [11]);
    assert.ok(resumed.failures.length >= 1, "the dump by GTID state is refused first (else this test shows nothing of the fallback)");
    assert.ok(resumed.failures.every((f) => f.code === "MYSQL_GTID_START_REFUSED"), resumed.failures.map((f) => f.message).join("\n"));
  });
});
