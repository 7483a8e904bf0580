/**
 * End to end: any user connected to the database may emit a logical message with the outbox prefix.
 * One of 4 MiB of nested arrays, parsed by capture on the daemon's main thread (heap ~57 MiB), ended
 * the daemon with its heap out of memory. It is refused unread and dead-lettered (outbox.on_invalid's
 * default: its reason names the prefix and position, never the content), and the other changes of its
 * transaction and capture go on.
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

test("a 4 MiB outbox message of nested arrays is dead-lettered unread; the daemon and the rest of its transaction go on", { timeout: 120_000 }, async () => {
  const config = { name: deployment, sources: [pgSourceConfig(source, [`${schema}.*`], { outbox: { message_prefix: prefix, aggregate_types: ["order"] } })], topics: { kind: "embedded", path: logPath } };
  const daemon = await startReady(dir, config, "sluice");
  const nested = 2 * 2 ** 20;
  await client.query("BEGIN");
  await client.query(`INSERT INTO "${schema}".items VALUES (1)`);
  await client.query("SELECT pg_logical_emit_message(true, $1, repeat('[', $2) || repeat(']', $2))", [prefix, nested]);
  await client.query(`INSERT INTO "${schema}".items VALUES (2)`);
  await client.query("COMMIT");

  const letter = await waitFor("the message dead-lettered", async () => (await readEmbeddedTopics(logPath, [`${deployment}.dlq.${source}.messages`]))[0], { daemon, timeoutMs: 60_000 });
  const reason = Buffer.from(letter.headers!["sluice.reason"]!).toString();
  assert.match(reason, new RegExp(`^outbox pg_logical_message\\.${prefix}: the logical message's content is refused unread: its arrays and objects are nested more than 1000 deep`));
  assert.ok(!reason.includes("[[["), "the content is not in the reason");
  assert.deepEqual((await daemon.status()).sources[0]?.halted, []);

  const rows = await waitFor("both rows of the transaction on their topic", async () => {
    const records = await readEmbeddedTopics(logPath, [`${deployment}.${source}.${schema}.items`]);
    return records.length === 2 ? records : undefined;
  }, { daemon, timeoutMs: 60_000 });
  assert.equal(rows.length, 2);
  assert.equal(letter.value!.length > 4 * 2 ** 20, true, "the message is kept whole (4 MiB: within outbox.max_message_bytes), not lost");
  assert.equal(daemon.exitStatus, null, "the daemon still runs");
  await daemon.stop();
  assert.ok(!readFileSync(daemon.logFile, "utf8").includes("[[[[[[[["), "the content is not logged");
});
