/**
 * End to end: any user connected to the database may emit a logical message with the outbox prefix.
 * One of 4 MiB of nested arrays, parsed by capture on the daemon's main thread (heap ~57 MiB), ended
 * the daemon with its heap out of memory. It is refused unread: the outbox pseudo-table halts
 * (OUTBOX_EVENT_INVALID, naming the prefix and position, never the content), its events are parked,
 * and the other changes of its transaction and capture go on.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type pg from "pg";
import { dropPostgres, killAllDaemons, pgClient, pgSourceConfig, randomName, readEmbeddedTopics, removeDir, startReady, tempDir, waitFor } from "./helpers.ts";

const schema = randomName("e2e_obheap");
const source = randomName("src");
const deployment = randomName("dep");
const prefix = randomName("outbox");
const names = { slot: `sluice_${source}`, publication: `sluice_${source}`, schema };
const dir = tempDir("outbox-heap");
const logPath = join(dir, "log.db");
let client: pg.Client;

before(async () => {
  client = await pgClient();
  await client.query(`CREATE SCHEMA "${schema}"`);
  await client.query(`CREATE TABLE "${schema}".items (id integer PRIMARY KEY)`);
});

after(async () => {
  await killAllDaemons();
  await dropPostgres(client, names);
  await client.end();
  removeDir(dir);
});

test("a 4 MiB outbox message of nested arrays halts the outbox pseudo-table; the daemon and the rest of its transaction go on", { timeout: 120_000 }, async () => {
  const config = { name: deployment, sources: [pgSourceConfig(source, [`${schema}.*`], { outbox: { message_prefix: prefix } })], topics: { kind: "embedded", path: logPath } };
  const daemon = await startReady(dir, config, "sluice");
  const nested = 2 * 2 ** 20;
  await client.query("BEGIN");
  await client.query(`INSERT INTO "${schema}".items VALUES (1)`);
  await client.query("SELECT pg_logical_emit_message(true, $1, repeat('[', $2) || repeat(']', $2))", [prefix, nested]);
  await client.query(`INSERT INTO "${schema}".items VALUES (2)`);
  await client.query("COMMIT");

  const halted = await waitFor("the outbox pseudo-table to halt", async () => (await daemon.status()).sources[0]?.halted[0], { daemon, timeoutMs: 60_000 });
  assert.equal(halted.table, `pg_logical_message.${prefix}`);
  assert.equal(halted.code, "OUTBOX_EVENT_INVALID");
  assert.match(halted.error, /content is refused unread: its arrays and objects are nested more than 1000 deep/);
  assert.ok(!halted.error.includes("[[["), "the content is not in the error");

  const rows = await waitFor("both rows of the transaction on their topic", async () => {
    const records = await readEmbeddedTopics(logPath, [`${deployment}.${source}.${schema}.items`]);
    return records.length === 2 ? records : undefined;
  }, { daemon, timeoutMs: 60_000 });
  assert.equal(rows.length, 2);
  const parked = await readEmbeddedTopics(logPath, [`${deployment}.sluice.halted.${source}`]);
  assert.equal(parked.length, 1, "the message is parked, not lost");
  assert.equal(daemon.exitStatus, null, "the daemon still runs");
  await daemon.stop();
  assert.ok(!readFileSync(daemon.logFile, "utf8").includes("[[[[[[[["), "the content is not logged");
});
