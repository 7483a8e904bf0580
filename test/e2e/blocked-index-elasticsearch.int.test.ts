/**
 * End to end: Elasticsearch's flood-stage block (index.blocks.read_only_allow_delete, which
 * Elasticsearch lifts by itself once disk frees) halts the table (SINK_TARGET_BLOCKED), and once
 * the block is lifted the table goes on BY ITSELF: no `sluice halted retry`. Before, it stayed
 * halted until an operator ran that command. The halt stays visible (/status, the halted-tables
 * metric) while the block lasts, and the changes arrive in order: an update made while blocked
 * ends as the document's value, nothing is skipped. The shared server's disk monitor is off
 * (threshold_enabled false), so only this test lifts the block.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type pg from "pg";
import { elasticsearch } from "../services/ports.ts";
import type { TableDef } from "./helpers.ts";
import {
  createTableSql,
  deleteElasticIndices,
  deleteElasticOffsets,
  dropPostgres,
  esRequest,
  expectedEsIds,
  expectedFor,
  killAllDaemons,
  pgClient,
  pgSourceConfig,
  randomName,
  readElasticsearch,
  readPostgres,
  removeDir,
  SluiceDaemon,
  tempDir,
  waitEqual,
  waitFor,
} from "./helpers.ts";

const schema = randomName("e2e_blocked");
const source = randomName("src");
const sinkName = "search_blocked";
const names = { slot: `sluice_${source}`, publication: `sluice_${source}`, schema };
const dir = tempDir("blocked-index");
const items: TableDef = {
  schema,
  name: "items",
  key: ["id"],
  columns: [
    { name: "id", sql: "integer", kind: "int4" },
    { name: "v", sql: "text", kind: "text" },
  ],
};
const alias = `${schema}_items`;
const BLOCK = "index.blocks.read_only_allow_delete";
let client: pg.Client;

before(async () => {
  client = await pgClient();
  await client.query(`CREATE SCHEMA "${schema}"`);
  await client.query(createTableSql(items));
  await client.query(`INSERT INTO "${schema}".items SELECT i, 'first ' || i FROM generate_series(1, 20) i`);
});

after(async () => {
  await killAllDaemons();
  await esRequest("PUT", `/${alias}/_settings`, { [BLOCK]: null }).catch(() => undefined);
  await dropPostgres(client, names);
  await client.end();
  await deleteElasticIndices(`${schema}_`);
  await deleteElasticOffsets([sinkName]);
  removeDir(dir);
});

async function setBlock(value: true | null): Promise<void> {
  const answer = await esRequest("PUT", `/${alias}/_settings`, { [BLOCK]: value });
  assert.equal(answer.status, 200, `setting ${BLOCK} to ${value}: ${answer.text}`);
}

test("an index under the flood-stage block halts its table, which goes on by itself once the block is lifted: in order, no operator command", { timeout: 180_000 }, async () => {
  const daemon = await SluiceDaemon.start(dir, {
    name: randomName("dep"),
    sources: [pgSourceConfig(source, [`${schema}.*`])],
    topics: { kind: "embedded", path: join(dir, "log.db") },
    sinks: [{ kind: "elasticsearch", name: sinkName, nodes: [elasticsearch.url], batch: { max_wait: "50ms" }, retry: { initial: "200ms", max: "2s", blocked_interval: "1s" } }],
  });
  const expected = async () => expectedEsIds(items, expectedFor("elasticsearch", items, await readPostgres(client, items)));
  await waitEqual("Elasticsearch before the block", expected, () => readElasticsearch(alias, items), { daemon, timeoutMs: 60_000 });

  await setBlock(true);
  try {
    await client.query(`INSERT INTO "${schema}".items SELECT i, 'while blocked ' || i FROM generate_series(21, 30) i`);
    await client.query(`UPDATE "${schema}".items SET v = 'updated while blocked' WHERE id IN (5, 25)`);
    const halted = await waitFor(
      "the table to halt for the block",
      async () => (await daemon.status()).sinks.find((s) => s.name === sinkName)?.halted.find((h) => h.table === `${schema}.items`),
      { daemon, timeoutMs: 60_000 },
    );
    assert.match(halted.error, /refuses writes/);
    assert.match(halted.error, /read_only_allow_delete|cluster_block_exception/);
    // Automatic retries meet the block again: the halt stays visible, in /status and in the metric, and nothing new arrives.
    await waitFor("two automatic retries", async () => (daemon.logTail(400).match(/automatic retry \d+ of its halt/g)?.length ?? 0) >= 2 || undefined, { daemon, timeoutMs: 30_000, intervalMs: 200 });
    const still = (await daemon.status()).sinks.find((s) => s.name === sinkName)!;
    assert.deepEqual(still.halted.map((h) => h.table), [`${schema}.items`], "still halted while the block lasts");
    assert.equal(await daemon.metric("sluice_tables_halted", { sink: sinkName }), 1);
    const during = await readElasticsearch(alias, items);
    assert.equal(during.size, 20, "no change written while the index is blocked");
  } finally {
    await setBlock(null);
  }

  await waitEqual("Elasticsearch after the block was lifted (no operator command)", expected, () => readElasticsearch(alias, items), { daemon, timeoutMs: 60_000 });
  const rows = await readElasticsearch(alias, items);
  assert.equal(rows.size, 30);
  await waitFor("the halt to be gone", async () => ((await daemon.status()).sinks.find((s) => s.name === sinkName)?.halted.length === 0 ? true : undefined), { daemon, timeoutMs: 10_000 });
  assert.equal(await daemon.metric("sluice_tables_halted", { sink: sinkName }), 0);
  assert.match(daemon.logTail(400), /goes on: its target accepts writes again/);
  await daemon.stop();
});
