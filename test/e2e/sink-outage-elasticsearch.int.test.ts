/**
 * End to end (issue 6): a sink's server goes away and comes back. The Elasticsearch sink talks to
 * the real server through a TCP proxy started here (the server itself is shared by other tests).
 * The proxy is shut (connections cut, connection refused) while PostgreSQL keeps writing, until
 * the sink has retried several times with its backoff at its maximum (at least ~8 s), then
 * reopened: the sink must retry (sluice_sink_retries_total grows), /readyz must say 503
 * meanwhile, and the sink must catch up and end equal to the source — nothing lost, nothing
 * doubled.
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
  expectedEsIds,
  expectedFor,
  killAllDaemons,
  pgClient,
  pgSourceConfig,
  randomName,
  readElasticsearch,
  readPostgres,
  removeDir,
  Rng,
  sleep,
  SluiceDaemon,
  TcpProxy,
  tempDir,
  waitCaughtUp,
  waitEqual,
  Workload,
} from "./helpers.ts";

const schema = randomName("e2e_outage");
const source = randomName("src");
const deployment = randomName("dep");
const names = { slot: `sluice_${source}`, publication: `sluice_${source}`, schema };
const dir = tempDir("outage");
const items: TableDef = {
  schema,
  name: "items",
  key: ["id"],
  columns: [
    { name: "id", sql: "integer", kind: "int4" },
    { name: "v", sql: "text", kind: "text" },
    { name: "n", sql: "bigint", kind: "int8" },
    { name: "at", sql: "timestamptz", kind: "timestamptz" },
  ],
};
/**
 * The outage lasts at least this long, and on until the sink has retried MIN_RETRIES times: with
 * retry 200ms doubling to 2s, 5 retries take ~5 s and the later ones wait the maximum, so the sink
 * has waited the outage out at its steady backoff, not only failed once.
 */
const MIN_OUTAGE_MS = 8_000;
const MIN_RETRIES = 5;
const MAX_OUTAGE_MS = 60_000;
let client: pg.Client;
let writerClient: pg.Client;
let proxy: TcpProxy;

before(async () => {
  client = await pgClient();
  writerClient = await pgClient();
  await client.query(`CREATE SCHEMA "${schema}"`);
  await client.query(createTableSql(items));
  proxy = await TcpProxy.start({ host: elasticsearch.host, port: elasticsearch.port });
});

after(async () => {
  await killAllDaemons();
  await proxy.down();
  await writerClient.end();
  await dropPostgres(client, names);
  await client.end();
  await deleteElasticIndices(`${schema}_`);
  await deleteElasticOffsets(["search"]);
  removeDir(dir);
});

test("Elasticsearch unreachable for 8 s or more while writes continue: the sink retries, catches up, nothing lost or doubled", { timeout: 150_000 }, async (t) => {
  const rng = new Rng();
  t.diagnostic(`seed ${rng.seed}; Elasticsearch through the proxy at ${proxy.url}`);
  let counter = 0;
  const workload = new Workload(writerClient, [{ def: items, newKey: () => [String(++counter)] }], rng, { negativeZero: false });
  for (let i = 0; i < 50; i++) await workload.insert(workload.tables[0]!);
  const daemon = await SluiceDaemon.start(dir, {
    name: deployment,
    sources: [pgSourceConfig(source, [`${schema}.*`])],
    topics: { kind: "embedded", path: join(dir, "log.db") },
    sinks: [{ kind: "elasticsearch", name: "search", nodes: [proxy.url], batch: { max_wait: "50ms" }, retry: { initial: "200ms", max: "2s" } }],
  });
  const alias = `${schema}_items`;
  const expected = async () => expectedEsIds(items, expectedFor("elasticsearch", items, await readPostgres(client, items)));
  await waitEqual("Elasticsearch (before the outage)", expected, () => readElasticsearch(alias, items), { daemon, timeoutMs: 60_000 });

  let writing = true;
  const writer = (async () => {
    while (writing) {
      await workload.transaction();
      await sleep(10);
    }
  })();
  const observed = { readyz: new Map<number, number>(), maxLag: 0 };
  try {
    const retriesBefore = await daemon.metric("sluice_sink_retries_total", { sink: "search" });
    const transactionsBefore = workload.counts.transactions;
    await proxy.down();
    const downAt = Date.now();
    let retriesDuring = retriesBefore;
    while (Date.now() - downAt < MAX_OUTAGE_MS && (Date.now() - downAt < MIN_OUTAGE_MS || retriesDuring < retriesBefore + MIN_RETRIES)) {
      const readyz = (await daemon.get("/readyz")).status;
      observed.readyz.set(readyz, (observed.readyz.get(readyz) ?? 0) + 1);
      observed.maxLag = Math.max(observed.maxLag, (await daemon.status()).sinks[0]?.lagRecords ?? 0);
      retriesDuring = await daemon.metric("sluice_sink_retries_total", { sink: "search" });
      await sleep(500);
    }
    t.diagnostic(`outage of ${Date.now() - downAt} ms: ${workload.counts.transactions - transactionsBefore} transactions written, sink lag up to ${observed.maxLag}, /readyz answers ${JSON.stringify([...observed.readyz])}, retries ${retriesBefore} → ${retriesDuring}`);
    await proxy.up();
    assert.ok(retriesDuring > retriesBefore, `sluice_sink_retries_total{sink="search"} should grow while Elasticsearch is unreachable (${retriesBefore} → ${retriesDuring})`);
    assert.ok(observed.maxLag > 0, "the sink fell behind during the outage");
    assert.ok((observed.readyz.get(503) ?? 0) > 0, `/readyz should answer 503 while a sink cannot reach its target; answers: ${JSON.stringify([...observed.readyz])}`);
    await sleep(2_000);
  } finally {
    await proxy.up();
    writing = false;
    await writer;
  }

  await waitCaughtUp(daemon, client, { timeoutMs: 90_000 });
  await waitEqual("Elasticsearch (after the outage)", expected, () => readElasticsearch(alias, items), { daemon, timeoutMs: 30_000 });
  const after = (await daemon.get("/readyz")).status;
  assert.equal(after, 200, "/readyz is 200 again once Elasticsearch is back");
  await daemon.stop();
});
