/**
 * Against the real MariaDB, two binlog streams with one server_id: the later one replaces the
 * former, which fails naming why; and a source taking over a server_id whose former stream reads
 * nothing (a capture leader frozen with its socket full) gets the binlog at once. MariaDB starts the new dump
 * only once the old dump thread has exited, and that thread, blocked writing, would exit only at its
 * net_write_timeout (60 s by default): the new source ends it (replaced-dump.ts).
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Connection } from "mysql2/promise";
import { ByteBoundedBuffer } from "../common/byte-bounded-buffer.ts";
import { BinlogStream } from "./binlog-stream.ts";
import { connectionOptions } from "./connection-settings.ts";
import { adminConnection, dropDatabase, newSource, randomName, readUntil, sourceConfig, testLogger } from "./int-test-support.ts";

describe("MySQL source: a stream replacing a frozen one", () => {
  const database = randomName("s_replace");
  let admin: Connection;

  before(async () => {
    admin = await adminConnection(database);
    await admin.query("CREATE TABLE t (id BIGINT PRIMARY KEY, v VARCHAR(200))");
  });

  after(async () => {
    await dropDatabase(admin, database);
    await admin.end();
  });

  const threadState = async (id: number): Promise<{ command: string; state: string; ms: number } | undefined> => {
    const [rows] = (await admin.query("SELECT COMMAND AS command, STATE AS state, TIME_MS AS ms FROM information_schema.PROCESSLIST WHERE ID = ?", [id])) as unknown as [
      { command: string; state: string; ms: string }[],
    ];
    return rows[0] && { ...rows[0], ms: Number(rows[0].ms) };
  };
  /** Blocked in a write for a second already, not just writing. */
  const blocked = (thread: { state: string; ms: number } | undefined) => thread?.state === "Writing to net" && thread.ms >= 1_000;

  it("ends the former dump thread of its server_id, blocked writing to a reader that reads nothing, and streams", async () => {
    const config = sourceConfig({ tables: [`${database}.t`], snapshot: { mode: "never", parallelism: 1, chunk_rows: 100 } });
    const [[here]] = (await admin.query("SHOW MASTER STATUS")) as unknown as [[{ File: string; Position: number }]];
    // The former reader: its read-ahead fills and is never drained, so it stops reading its socket, as a frozen process does.
    const frozen = new BinlogStream({
      connection: connectionOptions(config, "binlog"),
      serverId: config.server_id,
      flavor: "mariadb",
      start: { file: here.File, offset: Number(here.Position), gtid: null, useGtid: false },
      heartbeatMs: config.heartbeat_interval,
      buffer: new ByteBoundedBuffer<Buffer>(64 * 1024),
      logger: testLogger(),
      context: { component: "test" },
    });
    await frozen.start();
    const source = newSource(config);
    try {
      const thread = frozen.threadId!;
      // Enough row images to fill the sockets between the server and the former reader: its dump thread blocks writing.
      for (let check = 0, chunk = 0; !blocked(await threadState(thread)); check++) {
        assert.ok(check < 100, `the former dump thread blocks writing (now: ${JSON.stringify(await threadState(thread))})`);
        if ((await threadState(thread))?.state !== "Writing to net" && chunk < 20) {
          await admin.query(`INSERT INTO t SELECT seq + ${chunk++ * 20_000}, CONCAT(MD5(seq), MD5(seq + 1), MD5(seq + 2)) FROM seq_1_to_20000`);
        }
        await new Promise((resolve) => setTimeout(resolve, 200));
      }

      await source.connect(null, AbortSignal.timeout(30_000));
      await admin.query("INSERT INTO t VALUES (-1, 'after the takeover')");
      // Well within the former thread's net_write_timeout (60 s): without ending it, nothing came before then.
      await readUntil(source, (c) => c.events.some((e) => e.after?.["v"] === "after the takeover"), { timeoutMs: 30_000 });
      assert.equal(await threadState(thread), undefined, "the former dump thread is gone");
    } finally {
      await source.close();
      await frozen.stop();
    }
  });

  it("ends it too when an earlier stream with its server_id already replaced it (a takeover attempt that failed)", async () => {
    const config = sourceConfig({ tables: [`${database}.t`], snapshot: { mode: "never", parallelism: 1, chunk_rows: 100 } });
    const [[here]] = (await admin.query("SHOW MASTER STATUS")) as unknown as [[{ File: string; Position: number }]];
    const stream = (bufferBytes: number) =>
      new BinlogStream({
        connection: connectionOptions(config, "binlog"),
        serverId: config.server_id,
        flavor: "mariadb",
        start: { file: here.File, offset: Number(here.Position), gtid: null, useGtid: false },
        heartbeatMs: config.heartbeat_interval,
        buffer: new ByteBoundedBuffer<Buffer>(bufferBytes),
        logger: testLogger(),
        context: { component: "test" },
      });
    const frozen = stream(64 * 1024);
    await frozen.start();
    const source = newSource(config);
    try {
      const thread = frozen.threadId!;
      for (let check = 0, chunk = 0; !blocked(await threadState(thread)); check++) {
        assert.ok(check < 100, `the former dump thread blocks writing (now: ${JSON.stringify(await threadState(thread))})`);
        if ((await threadState(thread))?.state !== "Writing to net" && chunk < 20) {
          await admin.query(`INSERT INTO t SELECT seq + ${1_000_000 + chunk++ * 20_000}, CONCAT(MD5(seq), MD5(seq + 1), MD5(seq + 2)) FROM seq_1_to_20000`);
        }
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      // An attempt that asked for the binlog (the server marks the former thread killed) and then went away.
      const attempt = stream(8 * 2 ** 20);
      await attempt.start();
      for (let i = 0; i < 100 && (await threadState(thread))?.command !== "Killed"; i++) await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal((await threadState(thread))?.command, "Killed");
      const attemptThread = attempt.threadId!;
      await attempt.stop();
      await admin.query(`KILL CONNECTION ${attemptThread}`).catch(() => undefined);

      await source.connect(null, AbortSignal.timeout(30_000));
      await admin.query("INSERT INTO t VALUES (-3, 'after the second attempt')");
      await readUntil(source, (c) => c.events.some((e) => e.after?.["v"] === "after the second attempt"), { timeoutMs: 30_000 });
      assert.equal(await threadState(thread), undefined, "the former dump thread is gone");
    } finally {
      await source.close();
      await frozen.stop();
    }
  });

  it("a stream replaced by another with its server_id fails with MYSQL_REPLICA_REPLACED, naming the server_id, not retriable", async () => {
    const config = sourceConfig({ tables: [`${database}.t`] });
    const [[here]] = (await admin.query("SHOW MASTER STATUS")) as unknown as [[{ File: string; Position: number }]];
    const open = async () => {
      const buffer = new ByteBoundedBuffer<Buffer>(8 * 2 ** 20);
      const stream = new BinlogStream({
        connection: connectionOptions(config, "binlog"),
        serverId: config.server_id,
        flavor: "mariadb",
        start: { file: here.File, offset: Number(here.Position), gtid: null, useGtid: false },
        heartbeatMs: config.heartbeat_interval,
        buffer,
        logger: testLogger(),
        context: { component: "test" },
      });
      await stream.start();
      return { stream, buffer };
    };
    const former = await open();
    for (let i = 0; i < 100 && former.stream.receivedBytes === 0; i++) await new Promise((resolve) => setTimeout(resolve, 50));
    const successor = await open();
    try {
      await admin.query("INSERT INTO t VALUES (-2, 'replaced')");
      for (let i = 0; i < 200 && former.buffer.failed === null; i++) await new Promise((resolve) => setTimeout(resolve, 50));
      const failure = former.buffer.failed as (Error & { code?: string; retriable?: boolean }) | null;
      assert.ok(failure !== null, "the former stream fails");
      assert.equal(failure.code, "MYSQL_REPLICA_REPLACED", failure.message);
      assert.equal(failure.retriable, false);
      assert.match(failure.message, new RegExp(`server_id ${config.server_id}`));
      assert.equal(successor.buffer.failed, null, "the new stream reads on");
    } finally {
      await former.stream.stop();
      await successor.stream.stop();
    }
  });
});
