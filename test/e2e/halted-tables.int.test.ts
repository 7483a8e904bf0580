/**
 * End to end (issue 12, item 7): a halted table is released with `sluice halted`, through the
 * running daemon (embedded log → Elasticsearch, `on_error: halt`).
 *
 * Two poison records, each refused by the real Elasticsearch per item:
 *   - the index is write-blocked (`index.blocks.write`, as Elasticsearch itself does at the
 *     flood-stage disk watermark): 403 cluster_block_exception for the table's documents. `list`
 *     names the table and the record; a `retry` dry run changes nothing; after the block is lifted
 *     `retry --execute` makes the table flow again from that record. (Automatic retries of such a
 *     halt are off here, retry.blocked_interval 0: blocked-index-elasticsearch.int tests those.)
 *   - a JSON value nested deeper than the flattened field's depth limit (50): 400
 *     document_parsing_exception, for ever. The change before it in the same transaction applies;
 *     a `skip` dry run changes nothing; `skip --execute` puts the record in `<deployment>.dlq.<sink>`
 *     with its reason, the table reads on, and a restart does not halt it again.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type pg from "pg";
import type { HaltedSinkTable } from "../../daemon/halted.ts";
import { elasticsearch } from "../services/ports.ts";
import type { TableDef } from "./helpers.ts";
import {
  createTableSql,
  deleteElasticIndices,
  deleteElasticOffsets,
  dropPostgres,
  esRequest,
  killAllDaemons,
  pgClient,
  pgSourceConfig,
  randomName,
  readElasticsearch,
  readEmbeddedTopics,
  removeDir,
  runSluice,
  SluiceDaemon,
  tempDir,
  waitFor,
  waitSourcesPast,
} from "./helpers.ts";

const schema = randomName("e2e_halted");
const source = randomName("src");
const deployment = randomName("dep");
const sinkName = randomName("search");
const names = { slot: `sluice_${source}`, publication: `sluice_${source}`, schema };
const dir = tempDir("halted");
const logPath = join(dir, "log.db");
const docs: TableDef = {
  schema,
  name: "docs",
  key: ["id"],
  columns: [
    { name: "id", sql: "integer", kind: "int4" },
    { name: "v", sql: "text", kind: "text" },
  ],
};
const alias = `${schema}_docs`;
const table = `${schema}.docs`;
const tooDeep = `${'{"a":'.repeat(60)}1${"}".repeat(60)}`;
let client: pg.Client;

const config = {
  name: deployment,
  sources: [pgSourceConfig(source, [`${schema}.*`])],
  topics: { kind: "embedded", path: logPath },
  sinks: [{ kind: "elasticsearch", name: sinkName, nodes: [elasticsearch.url], on_error: "halt", batch: { max_wait: "50ms" }, retry: { initial: "50ms", max: "500ms", blocked_interval: 0 } }],
};

before(async () => {
  client = await pgClient();
  await client.query(`CREATE SCHEMA "${schema}"`);
  await client.query(createTableSql(docs));
  await client.query(`ALTER TABLE "${schema}".docs ADD COLUMN j jsonb`);
});

after(async () => {
  await killAllDaemons();
  await dropPostgres(client, names);
  await client.end();
  await deleteElasticIndices(`${schema}_`);
  await deleteElasticOffsets([sinkName]);
  removeDir(dir);
});

const ids = async () => [...(await readElasticsearch(alias, docs)).values()].map((row) => Number(row["id"])).sort((a, b) => a - b);
const halted = async (daemon: SluiceDaemon) => ((await daemon.status()).sinks.find((s) => s.name === sinkName)?.halted ?? []) as HaltedSinkTable[];
const sluice = (daemon: SluiceDaemon, ...args: string[]) => runSluice(["halted", "-c", daemon.configFile, ...args]);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

async function insert(from: number, to: number): Promise<void> {
  for (const id of range(from, to)) await client.query(`INSERT INTO "${schema}".docs (id, v) VALUES ($1, $2)`, [id, `v${id}`]);
}

test("sluice halted: list, retry after the cause is fixed, skip to the dead-letter topic; dry runs change nothing", { timeout: 240_000 }, async (t) => {
  await insert(1, 5);
  let daemon = await SluiceDaemon.start(dir, config, "first");
  await waitFor("rows 1-5 in Elasticsearch", async () => (await ids().catch(() => [])).length === 5, { daemon, timeoutMs: 60_000 });

  const none = await sluice(daemon, "list");
  assert.equal(none.code, 0, none.stderr);
  assert.match(none.stdout, /no halted tables/);

  // 1. The index refuses writes: the table halts at the first change it cannot take.
  const index = Object.keys((await esRequest("GET", `/${alias}/_alias`)).json as Record<string, unknown>)[0]!;
  assert.equal((await esRequest("PUT", `/${index}/_settings`, { "index.blocks.write": true })).status, 200);
  await insert(6, 8);
  await waitSourcesPast(daemon, client);
  const first = await waitFor("the table to halt on the write block", async () => (await halted(daemon)).find((h) => h.table === table), { daemon, timeoutMs: 30_000 });
  t.diagnostic(`halted: ${JSON.stringify(first)}`);
  assert.match(first.error, /cluster_block_exception/);
  assert.match(first.release, /sluice halted retry --sink/, "/status names the release commands");

  const list = await sluice(daemon, "list");
  assert.equal(list.code, 0, list.stderr);
  t.diagnostic(list.stdout);
  assert.ok(list.stdout.includes(sinkName) && list.stdout.includes(table), "list names the sink and the table");
  assert.ok(list.stdout.includes(`${first.topic}:${first.partition}:${first.recordOffset}`), "list names topic:partition:offset of the poison record");
  assert.match(list.stdout, /cluster_block_exception/);

  const dryRetry = await sluice(daemon, "retry", "--sink", sinkName, "--table", table);
  assert.equal(dryRetry.code, 0, dryRetry.stderr);
  assert.match(dryRetry.stdout, /Dry run, nothing changed/);
  assert.equal((await esRequest("PUT", `/${index}/_settings`, { "index.blocks.write": null })).status, 200, "the operator fixes the cause");
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  assert.equal((await halted(daemon)).length, 1, "a retry dry run leaves the table halted");
  assert.deepEqual(await ids(), range(1, 5));

  const retried = await sluice(daemon, "retry", "--sink", sinkName, "--table", table, "--execute");
  assert.equal(retried.code, 0, retried.stderr);
  assert.match(retried.stdout, /Done/);
  await waitFor("rows 6-8 after the retry", async () => (await ids()).length === 8, { daemon, timeoutMs: 30_000 });
  // /status carries the sink thread's state as last reported (every 200 ms): wait for the report after the release.
  await waitFor("the release in /status", async () => (await halted(daemon)).length === 0, { daemon, timeoutMs: 10_000 });

  // 2. A value Elasticsearch refuses for ever; the change before it in the same transaction applies.
  await client.query("BEGIN");
  await client.query(`INSERT INTO "${schema}".docs (id, v) VALUES (9, 'before the poison')`);
  await client.query(`INSERT INTO "${schema}".docs (id, v, j) VALUES (10, 'poison', $1)`, [tooDeep]);
  await client.query("COMMIT");
  await waitSourcesPast(daemon, client);
  const second = await waitFor("the table to halt on the poison row", async () => (await halted(daemon)).find((h) => h.table === table), { daemon, timeoutMs: 30_000 });
  assert.match(second.error, /depth limit/);
  await waitFor("row 9 (before the poison, same transaction)", async () => (await ids()).includes(9) || undefined, { daemon, timeoutMs: 10_000 });
  assert.ok(!(await ids()).includes(10));
  await insert(11, 12);
  await waitSourcesPast(daemon, client);
  await new Promise((resolve) => setTimeout(resolve, 500));
  assert.deepEqual(await ids(), range(1, 9), "nothing of the halted table is applied after its poison row");

  const drySkip = await sluice(daemon, "skip", "--sink", sinkName, "--table", table);
  assert.equal(drySkip.code, 0, drySkip.stderr);
  assert.match(drySkip.stdout, new RegExp(`Dry run, nothing changed: would send the record at .* to ${deployment}\\.dlq\\.${sinkName}`));
  await new Promise((resolve) => setTimeout(resolve, 500));
  assert.equal((await halted(daemon)).length, 1, "a skip dry run leaves the table halted");

  const skipped = await sluice(daemon, "skip", "--sink", sinkName, "--table", table, "--execute");
  assert.equal(skipped.code, 0, skipped.stderr);
  await waitFor("rows 11-12 after the skip", async () => (await ids()).includes(12) || undefined, { daemon, timeoutMs: 30_000 });
  // /status carries the sink thread's state as last reported (every 200 ms): wait for the report after the release.
  await waitFor("the release in /status", async () => (await halted(daemon)).length === 0, { daemon, timeoutMs: 10_000 });
  const notHalted = await sluice(daemon, "retry", "--sink", sinkName, "--table", table);
  assert.equal(notHalted.code, 1);
  assert.match(notHalted.stderr, /not halted/);
  await daemon.stop();

  const dlq = await readEmbeddedTopics(logPath, [`${deployment}.dlq.${sinkName}`], { decode: true });
  assert.equal(dlq.length, 1, "exactly the skipped record is dead-lettered");
  assert.match(dlq[0]!.headers["sluice.error"] ?? "", /depth limit.*skipped by an operator/);
  assert.equal(dlq[0]!.headers["sluice.origin"], `${second.topic}:${second.partition}:${second.recordOffset}`);
  assert.equal(String(dlq[0]!.event?.after?.["id"]), "10");

  // 3. A restart does not meet the skipped record again.
  const offline = await sluice(daemon, "list");
  assert.equal(offline.code, 1);
  assert.match(offline.stderr, /no daemon answers/);
  await insert(13, 13);
  daemon = await SluiceDaemon.start(dir, config, "second");
  await waitFor("row 13 after the restart", async () => (await ids()).includes(13) || undefined, { daemon, timeoutMs: 60_000 });
  assert.deepEqual(await halted(daemon), [], "no halt after the restart");
  assert.deepEqual(await ids(), [...range(1, 9), ...range(11, 13)]);
  await daemon.stop();
});
