/**
 * End to end (issue 19): outbox routing. A PostgreSQL outbox table (insert-then-delete), PostgreSQL
 * logical messages with the outbox prefix, and a MariaDB outbox table (insert-only) carry events of
 * two aggregate types while the daemon is killed (-9) and restarted. Every event must land once on
 * its aggregate type's topic, keyed by its aggregate id, with its id and type in headers, the
 * payload as written, in commit order per aggregate; row changes of an ordinary table still flow.
 */
import assert from "node:assert/strict";
import { randomInt, randomUUID } from "node:crypto";
import { join } from "node:path";
import { after, before, test } from "node:test";
import mysql from "mysql2/promise";
import type { Connection } from "mysql2/promise";
import type pg from "pg";
import { mariadb } from "../services/ports.ts";
import { dropPostgres, killAllDaemons, pgClient, pgSourceConfig, randomName, readEmbeddedTopics, removeDir, sleep, SluiceDaemon, tempDir, waitFor } from "./helpers.ts";

const schema = randomName("e2e_outbox");
const database = randomName("e2e_outbox");
const pgSource = randomName("pg");
const mySource = randomName("my");
const deployment = randomName("dep");
const prefix = randomName("events");
const names = { slot: `sluice_${pgSource}`, publication: `sluice_${pgSource}`, schema };
const dir = tempDir("outbox");
const logPath = join(dir, "log.db");
const AGGREGATE_TYPES = ["order", "customer"] as const;

const config = {
  name: deployment,
  sources: [
    pgSourceConfig(pgSource, [`${schema}.*`], {
      outbox: { tables: [`${schema}.outbox`], table_mode: "insert-then-delete", message_prefix: prefix, topic: "{deployment}.outbox.{source}.{aggregate_type}" },
    }),
    {
      kind: "mysql",
      name: mySource,
      host: mariadb.host,
      port: mariadb.port,
      user: mariadb.user,
      password: mariadb.password,
      server_id: randomInt(10_000, 2 ** 31),
      tables: [`${database}.*`],
      heartbeat_interval: "1s",
      outbox: { tables: [`${database}.outbox`], topic: "{deployment}.outbox.{source}.{aggregate_type}" },
    },
  ],
  topics: { kind: "embedded", path: logPath },
  sinks: [],
};

interface Written {
  readonly id: string;
  readonly source: string;
  readonly aggregateType: string;
  readonly aggregateId: string;
  readonly seq: number;
  readonly via: "table" | "message";
}

let client: pg.Client;
let admin: Connection;

before(async () => {
  client = await pgClient();
  await client.query(`CREATE SCHEMA "${schema}"`);
  await client.query(`CREATE TABLE "${schema}".outbox (id uuid PRIMARY KEY, aggregatetype text NOT NULL, aggregateid text NOT NULL, type text NOT NULL, payload jsonb)`);
  await client.query(`CREATE TABLE "${schema}".items (id integer PRIMARY KEY, v text)`);
  admin = await mysql.createConnection({ host: mariadb.host, port: mariadb.port, user: mariadb.user, password: mariadb.password });
  await admin.query(`CREATE DATABASE \`${database}\``);
  await admin.query(`CREATE TABLE \`${database}\`.outbox (id VARCHAR(36) PRIMARY KEY, aggregatetype VARCHAR(64) NOT NULL, aggregateid VARCHAR(64) NOT NULL, type VARCHAR(64) NOT NULL, payload JSON)`);
});

after(async () => {
  await killAllDaemons();
  await dropPostgres(client, names);
  await client.end();
  await admin.query(`DROP DATABASE IF EXISTS \`${database}\``);
  await admin.end();
  removeDir(dir);
});

/** One transaction per call: 1-3 events for random aggregates; PostgreSQL mixes table rows, messages and an ordinary row. */
class Writer {
  readonly written: Written[] = [];
  private readonly seqs = new Map<string, number>();

  private next(source: string, via: Written["via"]): Written & { payload: string } {
    const aggregateType = AGGREGATE_TYPES[randomInt(AGGREGATE_TYPES.length)]!;
    const aggregateId = `${aggregateType}-${randomInt(4)}`;
    const key = `${source}/${aggregateId}`;
    const seq = (this.seqs.get(key) ?? 0) + 1;
    this.seqs.set(key, seq);
    const id = randomUUID();
    return { id, source, aggregateType, aggregateId, seq, via, payload: JSON.stringify({ aggregate: aggregateId, seq, note: "ü" }) };
  }

  async postgres(): Promise<void> {
    const events = Array.from({ length: 1 + randomInt(3) }, () => this.next(pgSource, randomInt(2) === 0 ? "table" : "message"));
    await client.query("BEGIN");
    for (const e of events) {
      if (e.via === "table") {
        await client.query(`INSERT INTO "${schema}".outbox VALUES ($1, $2, $3, $4, $5)`, [e.id, e.aggregateType, e.aggregateId, `${e.aggregateType}.changed`, e.payload]);
        await client.query(`DELETE FROM "${schema}".outbox WHERE id = $1`, [e.id]);
      } else {
        const content = JSON.stringify({ id: e.id, aggregatetype: e.aggregateType, aggregateid: e.aggregateId, type: `${e.aggregateType}.changed`, payload: JSON.parse(e.payload) });
        await client.query("SELECT pg_logical_emit_message(true, $1, $2)", [prefix, content]);
      }
    }
    await client.query(`INSERT INTO "${schema}".items VALUES ($1, 'x') ON CONFLICT (id) DO UPDATE SET v = excluded.v || 'x'`, [randomInt(50)]);
    await client.query("COMMIT");
    this.written.push(...events);
  }

  async mysql(): Promise<void> {
    const events = Array.from({ length: 1 + randomInt(3) }, () => this.next(mySource, "table"));
    await admin.beginTransaction();
    for (const e of events) {
      await admin.query(`INSERT INTO \`${database}\`.outbox VALUES (?, ?, ?, ?, ?)`, [e.id, e.aggregateType, e.aggregateId, `${e.aggregateType}.changed`, e.payload]);
    }
    await admin.commit();
    this.written.push(...events);
  }
}

test("outbox events from a PostgreSQL table, PostgreSQL logical messages and a MariaDB table: right topics and keys, commit order per aggregate, none lost or doubled across kill -9", { timeout: 300_000 }, async (t) => {
  const writer = new Writer();
  let daemon = await SluiceDaemon.start(dir, config, "run1");
  await waitFor("both sources to stream", async () => (await daemon.status()).sources.every((s) => s.position !== null), { daemon, timeoutMs: 90_000 });

  let writing = true;
  const load = (async () => {
    while (writing) {
      await writer.postgres();
      await writer.mysql();
      await sleep(5);
    }
  })();
  for (let round = 1; round <= 2; round++) {
    await sleep(1_500);
    await daemon.kill();
    t.diagnostic(`kill -9 #${round} after ${writer.written.length} events written`);
    daemon = await SluiceDaemon.start(dir, config, `run${round + 1}`);
  }
  await sleep(1_000);
  writing = false;
  await load;
  // Past every write: heartbeats and new commits move both positions on; then stop and read the log.
  const wanted = writer.written.length;
  await waitFor(
    "both sources to acknowledge past the last write",
    async () => {
      await writer.postgres();
      await writer.mysql();
      const status = await daemon.status();
      return status.sources.every((s) => s.position !== null && s.halted.length === 0) ? status : undefined;
    },
    { daemon, timeoutMs: 60_000, intervalMs: 2_000 },
  );
  await sleep(3_000);
  await daemon.stop();
  const topics = [pgSource, mySource].flatMap((source) => AGGREGATE_TYPES.map((type) => `${deployment}.outbox.${source}.${type}`));
  const records = await readEmbeddedTopics(logPath, topics);
  t.diagnostic(`${wanted} events written before the final checks, ${writer.written.length} in all; ${records.length} records read`);

  const byId = new Map(records.map((r) => [r.headers["id"], r]));
  assert.equal(byId.size, records.length, "no event is published twice");
  for (const event of writer.written) {
    const record = byId.get(event.id);
    if (record === undefined) {
      // The last probe's events may not be acknowledged yet; anything written before it must be there.
      assert.ok(writer.written.indexOf(event) >= wanted, `event ${event.id} (${event.source} ${event.aggregateId} #${event.seq}, via ${event.via}) is lost`);
      continue;
    }
    assert.equal(record.topic, `${deployment}.outbox.${event.source}.${event.aggregateType}`);
    assert.equal(record.key?.toString("utf8"), event.aggregateId);
    assert.equal(record.headers["type"], `${event.aggregateType}.changed`);
    assert.deepEqual(JSON.parse(record.value!.toString("utf8")), { aggregate: event.aggregateId, seq: event.seq, note: "ü" });
  }
  // Commit order per aggregate: within a topic partition, each aggregate's seq goes 1, 2, 3...
  const seen = new Map<string, number>();
  for (const record of [...records].sort((a, b) => (a.topic === b.topic ? (a.partition === b.partition ? Number(a.offset - b.offset) : a.partition - b.partition) : a.topic < b.topic ? -1 : 1))) {
    const key = `${record.topic}/${record.key!.toString("utf8")}`;
    const seq = (JSON.parse(record.value!.toString("utf8")) as { seq: number }).seq;
    assert.equal(seq, (seen.get(key) ?? 0) + 1, `${key}: events in commit order`);
    seen.set(key, seq);
  }
  assert.ok(writer.written.some((e) => e.via === "message") && writer.written.some((e) => e.via === "table" && e.source === pgSource), "both PostgreSQL paths were exercised");
  // The outbox tables have no row-change topics; the ordinary table has.
  const rowTopics = await readEmbeddedTopics(logPath, [`${deployment}.${pgSource}.${schema}.outbox`, `${deployment}.${mySource}.${database}.outbox`, `${deployment}.${pgSource}.${schema}.items`]);
  assert.deepEqual([...new Set(rowTopics.map((r) => r.topic))], [`${deployment}.${pgSource}.${schema}.items`]);
});
