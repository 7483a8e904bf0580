/**
 * Against the real MariaDB: the binlog stream's silence check blames the server only for a silence
 * of the server's own, not for one of this process (SIGSTOP, a frozen container or VM, a long pause
 * of its event loop) during which the server's heartbeats waited unread in the socket.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Connection } from "mysql2/promise";
import { ByteBoundedBuffer } from "../common/byte-bounded-buffer.ts";
import { BinlogStream } from "./binlog-stream.ts";
import { connectionOptions } from "./connection-settings.ts";
import { adminConnection, dropDatabase, randomName, sourceConfig, testLogger } from "./int-test-support.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("MySQL source: the binlog stream's silence check", () => {
  const database = randomName("stall21");
  let admin: Connection;

  before(async () => {
    admin = await adminConnection(database);
    await admin.query("CREATE TABLE t (id BIGINT PRIMARY KEY)");
  });

  after(async () => {
    await dropDatabase(admin, database);
    await admin.end();
  });

  it("a process that did not run for longer than the silence timeout does not take the server for silent", async () => {
    const config = sourceConfig({ tables: [`${database}.t`] });
    const [[here]] = (await admin.query("SHOW MASTER STATUS")) as unknown as [[{ File: string; Position: number }]];
    const buffer = new ByteBoundedBuffer<Buffer>(64 * 2 ** 20);
    const stream = new BinlogStream({
      connection: connectionOptions(config, "binlog"),
      serverId: config.server_id,
      flavor: "mariadb",
      start: { file: here.File, offset: Number(here.Position), gtid: null, useGtid: false },
      heartbeatMs: 200,
      silenceTimeoutMs: 1_500,
      buffer,
      logger: testLogger(),
      context: { component: "test" },
    });
    await stream.start();
    try {
      for (let i = 0; i < 100 && stream.receivedBytes === 0; i++) await sleep(50);
      assert.ok(stream.receivedBytes > 0, "the stream reads");
      // This thread does not run for 2.5 s, as under SIGSTOP: the server's heartbeats wait unread in the socket meanwhile.
      // Blocked in the check phase, the overdue timers run next, before the socket is polled: as after SIGCONT, when
      // the interrupted wait for I/O returns with its timeout spent and reads nothing.
      await new Promise<void>((resolve) =>
        setImmediate(() => {
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2_500);
          resolve();
        }),
      );
      const bytes = stream.receivedBytes;
      await admin.query("INSERT INTO t VALUES (1)");
      for (let i = 0; i < 100 && stream.receivedBytes === bytes && buffer.failed === null; i++) await sleep(50);
      // Then more than a silence timeout: the server's heartbeats keep it alive.
      if (buffer.failed === null) await sleep(2_000);
      // Before: the first check after the pause failed the stream ('binlog stream silent', 'no data nor heartbeat from the server for 3 s') with the connection still good.
      assert.equal(buffer.failed, null, `the stream failed: ${String((buffer.failed as Error | null)?.message)}`);
      assert.ok(stream.receivedBytes > bytes, "the stream reads on after the pause");
    } finally {
      await stream.stop();
    }
  });
});
