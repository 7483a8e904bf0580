/**
 * A MariaDB change too large to decompress within the source's limit (a COMPRESSED column value, or with
 * log_bin_compress a rows event's compressed row images) halts only its table at capture: the change is parked
 * with an error naming the table, the column, the position and the sizes, and the other tables flow on. Before,
 * the source stopped (MYSQL_EVENT_TOO_LARGE) and every table with it, again at every start. The limit is lowered
 * to 1 MiB here (by default it is a quarter of the heap, at least 16 MiB, more than max_allowed_packet lets a test
 * write). log_bin_compress is global: that case runs on a private server.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import mysql from "mysql2/promise";
import type { Connection } from "mysql2/promise";
import type { ChangeEvent, ProducedRecord } from "../contracts.ts";
import { CapturePipeline } from "../../daemon/capture.ts";
import type { ChangeEncoder, HaltedTable } from "../../daemon/capture.ts";
import { EmbeddedTopicLog } from "../embedded/embedded-log.ts";
import { startPrivateMariadb } from "../../test/services/private-mariadb.ts";
import type { PrivateMariadb } from "../../test/services/private-mariadb.ts";
import { adminConnection, newSource, randomName, sourceConfig, testLogger } from "./int-test-support.ts";
import type { MysqlSourceConfig } from "../../config/schema.ts";

const MiB = 2 ** 20;
const LIMIT = MiB;

interface Run {
  readonly encoded: ChangeEvent[];
  readonly parked: ProducedRecord[];
  readonly pipeline: CapturePipeline;
  readonly failure: () => unknown;
  readonly streaming: () => boolean;
  stop(): Promise<void>;
}

/** The daemon's capture pipeline on a real source whose decompression limit is LIMIT: what it encodes and parks. */
async function capture(config: MysqlSourceConfig): Promise<Run> {
  const dir = mkdtempSync(join(tmpdir(), "sluice-decompression-halt-"));
  const log = EmbeddedTopicLog.open({ path: join(dir, "log.db"), logger: testLogger() });
  for (const name of ["t.data", "t.parked"]) await log.createTopic({ name, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
  const encoded: ChangeEvent[] = [];
  const parked: ProducedRecord[] = [];
  const produce = log.produce.bind(log);
  log.produce = (records, checkpoint) => {
    parked.push(...records.filter((r) => r.topic === "t.parked" && r.value !== null));
    return produce(records, checkpoint);
  };
  const encoder: ChangeEncoder = {
    encode: async (event) => {
      encoded.push(event);
      return [{ topic: "t.data", key: Buffer.from(JSON.stringify(event.key)), value: Buffer.from(event.op), timestamp: 0 }];
    },
  };
  const source = newSource(config, { decompressionLimit: LIMIT });
  const streaming = () => source.stats().phase === "streaming";
  const pipeline = new CapturePipeline({ source, log, encoder, logger: testLogger(), parkingTopic: "t.parked", reconnect: { initialMs: 1, maxMs: 1 } });
  const controller = new AbortController();
  let failure: unknown = null;
  const running = pipeline.run(controller.signal).catch((error: unknown) => void (failure = error));
  return {
    encoded,
    parked,
    pipeline,
    failure: () => failure,
    streaming,
    stop: async () => {
      controller.abort();
      await running;
      await log.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function until<T>(what: string, run: Run, probe: () => T | undefined | false): Promise<T> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (run.failure() !== null) throw new Error(`capture stopped while waiting for ${what}: ${String(run.failure())}`);
    const value = probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const okIds = (run: Run, table: string) => run.encoded.filter((e) => e.source.table === table).map((e) => e.after?.["id"]);

describe("a MariaDB COMPRESSED value over the decompression limit (shared server)", () => {
  const database = randomName("dhalt");
  let admin: Connection;

  before(async () => {
    admin = await adminConnection(database);
    await admin.query("CREATE TABLE big (id INT PRIMARY KEY, v LONGTEXT COMPRESSED); CREATE TABLE ok (id INT PRIMARY KEY, v TEXT)");
  });

  after(async () => {
    await admin?.query(`DROP DATABASE IF EXISTS \`${database}\``);
    await admin?.end();
  });

  it("halts only its table, naming table, column, position and sizes; the other table flows on", async () => {
    const run = await capture(sourceConfig({ tables: [`${database}.*`], snapshot: { mode: "never", parallelism: 1, chunk_rows: 100 } }));
    try {
      await until("streaming", run, run.streaming);
      await admin.query("INSERT INTO ok VALUES (1, 'before')");
      // One transaction: the oversized value between two changes of the other table.
      await admin.query(`BEGIN; INSERT INTO ok VALUES (2, 'same transaction'); INSERT INTO big VALUES (1, REPEAT('x', ${2 * MiB})); INSERT INTO ok VALUES (3, 'after it'); COMMIT`);
      await admin.query("INSERT INTO big VALUES (2, 'small, parked behind the halting change')");
      await admin.query("INSERT INTO ok VALUES (4, 'later')");
      await until("the other table's four changes", run, () => okIds(run, "ok").length >= 4);
      assert.deepEqual(okIds(run, "ok"), [1, 2, 3, 4]);
      const halted = await until("big halted", run, () => run.pipeline.haltedTables().find((h: HaltedTable) => h.table.endsWith(".big")));
      assert.equal(halted.code, "MYSQL_VALUE_TOO_LARGE");
      assert.equal(halted.column, "v");
      assert.equal(halted.bytes, 2 * MiB);
      assert.match(halted.error, new RegExp(`^table ${database}\\.big, column v: the COMPRESSED value at [^ ]+-bin\\.\\d+:\\d+ \\(row 1 of its rows event\\) states ${2 * MiB} bytes uncompressed \\(\\d+ compressed\\), over the limit of ${LIMIT} bytes`));
      assert.match(halted.error, /Raise `memory` .* skip it \(`sluice halted skip --source \S+ --table \S+\.big`\) and read the table again/);
      assert.deepEqual(okIds(run, "big"), [], "nothing of big is published");
      await until("both changes of big parked", run, () => run.parked.length >= 2);
      assert.equal(run.parked.length, 2);
      assert.ok(run.parked.every((r) => Buffer.from(r.key!).toString() === `${database}.big`));
      // Its value is not kept: a retry halts the table again; a skip passes it over and publishes the change behind it.
      const table = `${database}.big`;
      const stop = AbortSignal.timeout(10_000);
      await run.pipeline.release(table, "retry", true, stop);
      assert.equal(run.pipeline.haltedTables().find((h) => h.table === table)?.code, "MYSQL_VALUE_TOO_LARGE");
      const skipped = await run.pipeline.release(table, "skip", true, stop);
      assert.equal(skipped.skipped, 1);
      assert.deepEqual(okIds(run, "big"), [2]);
      assert.equal(run.pipeline.haltedTables().length, 0);
    } finally {
      await run.stop();
    }
  });
});

describe("MariaDB log_bin_compress: a rows event whose row images are over the decompression limit (private server)", () => {
  let server: PrivateMariadb;
  let admin: Connection;

  before(async () => {
    server = await startPrivateMariadb();
    admin = await mysql.createConnection({ host: server.host, port: server.port, user: server.admin.user, password: server.admin.password, multipleStatements: true });
    await admin.query("CREATE DATABASE d; CREATE TABLE d.big (id INT PRIMARY KEY, v LONGTEXT); CREATE TABLE d.ok (id INT PRIMARY KEY, v TEXT); CREATE TABLE d.other (id INT PRIMARY KEY, v LONGTEXT)");
  });

  after(async () => {
    await admin?.end();
    await server?.stop();
  });

  it("halts only the event's table; the same in a table not captured is passed over", async () => {
    const config = sourceConfig({
      host: server.host,
      port: server.port,
      user: server.admin.user,
      password: server.admin.password,
      tables: ["d.big", "d.ok"],
      snapshot: { mode: "never", parallelism: 1, chunk_rows: 100 },
    });
    const run = await capture(config);
    try {
      await until("streaming", run, run.streaming);
      // Sluice refuses the setting at the start of capture only.
      await admin.query("SET GLOBAL log_bin_compress = ON, GLOBAL log_bin_compress_min_len = 10");
      await admin.query(`BEGIN; INSERT INTO d.ok VALUES (1, 'before'); INSERT INTO d.big VALUES (1, REPEAT('y', ${2 * MiB})); INSERT INTO d.ok VALUES (2, 'after'); COMMIT`);
      await admin.query(`INSERT INTO d.other VALUES (1, REPEAT('z', ${2 * MiB}))`);
      await admin.query("INSERT INTO d.ok VALUES (3, 'later')");
      await until("the other table's three changes", run, () => okIds(run, "ok").length >= 3);
      assert.deepEqual(okIds(run, "ok"), [1, 2, 3]);
      const halted = await until("big halted", run, () => run.pipeline.haltedTables().find((h: HaltedTable) => h.table === "d.big"));
      assert.equal(halted.code, "MYSQL_VALUE_TOO_LARGE");
      assert.ok(halted.bytes! > 2 * MiB, `${halted.bytes} bytes stated`);
      assert.match(halted.error, new RegExp(`^table d\\.big: the compressed row images of the rows event at [^ ]+-bin\\.\\d+:\\d+ state \\d+ bytes uncompressed \\(\\d+ compressed\\), over the limit of ${LIMIT} bytes`));
      await until("big's change parked", run, () => run.parked.length >= 1);
      // The server did write them compressed.
      const [logs] = await admin.query<mysql.RowDataPacket[]>("SHOW BINARY LOGS");
      const [written] = await admin.query<mysql.RowDataPacket[]>(`SHOW BINLOG EVENTS IN '${String(logs.at(-1)!["Log_name"])}'`);
      assert.ok(written.some((row) => row["Event_type"] === "Write_rows_compressed_v1"));
    } finally {
      await admin.query("SET GLOBAL log_bin_compress = OFF");
      await run.stop();
    }
  });
});
