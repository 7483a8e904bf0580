/**
 * A sink whose target refuses connections from the start, on a live daemon: `sluice status` exits 3
 * (NOT READY, the daemon answered) naming what the sink waits for, and each failed open of the
 * sink is counted in sluice_sink_retries_total{sink}. Before, status exited 0 and the counter had
 * no series for a sink that never opened (only writes were counted). Once the target answers
 * (a TCP proxy to the shared Elasticsearch), status exits 0.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type pg from "pg";
import { elasticsearch } from "../services/ports.ts";
import { deleteElasticIndices, deleteElasticOffsets, dropPostgres, killAllDaemons, pgClient, pgSourceConfig, randomName, removeDir, runSluice, SluiceDaemon, TcpProxy, tempDir, waitFor } from "./helpers.ts";

const schema = randomName("e2e_unreach");
const source = randomName("src");
const sink = randomName("es");
const names = { slot: `sluice_${source}`, publication: `sluice_${source}`, schema };
const dir = tempDir("unreachable");
let client: pg.Client;
let proxy: TcpProxy;

before(async () => {
  client = await pgClient();
  await client.query(`CREATE SCHEMA "${schema}"`);
  await client.query(`CREATE TABLE "${schema}".items (id integer PRIMARY KEY, note text)`);
  await client.query(`INSERT INTO "${schema}".items VALUES (1, 'a')`);
  proxy = await TcpProxy.start({ host: elasticsearch.host, port: elasticsearch.port });
  await proxy.down();
});

after(async () => {
  await killAllDaemons();
  await proxy.up();
  await proxy.down();
  await dropPostgres(client, names);
  await client.end();
  await deleteElasticIndices(`${schema}_`);
  await deleteElasticOffsets([sink]);
  removeDir(dir);
});

test("a sink whose target is unreachable at the start: sluice status exits 3 and its opens are counted as retries; 0 once the target answers", { timeout: 90_000 }, async () => {
  const daemon = await SluiceDaemon.start(dir, {
    name: randomName("dep"),
    sources: [pgSourceConfig(source, [`${schema}.*`])],
    topics: { kind: "embedded", path: join(dir, "log.db") },
    sinks: [{ kind: "elasticsearch", name: sink, nodes: [proxy.url], batch: { max_wait: "50ms" }, retry: { initial: "100ms", max: "500ms" } }],
  });
  await waitFor("two failed opens counted", async () => (await daemon.metric("sluice_sink_retries_total", { sink })) >= 2, { daemon, timeoutMs: 30_000 });
  const down = await runSluice(["status", "-c", daemon.configFile], dir);
  assert.equal(down.code, 3, `stdout: ${down.stdout}\nstderr: ${down.stderr}`);
  assert.match(down.stdout, /: NOT READY;/);
  assert.match(down.stdout, new RegExp(`sink ${sink}\\s+its target does not accept writes`));
  assert.equal((await runSluice(["status", "-c", daemon.configFile, "--json"], dir)).code, 3);

  await proxy.up();
  await waitFor("every source and sink ready", async () => {
    const status = await daemon.status();
    return status.ready && status.sinks.every((s) => s.ready) && status.sources.length > 0;
  }, { daemon, timeoutMs: 60_000 });
  const up = await runSluice(["status", "-c", daemon.configFile], dir);
  assert.equal(up.code, 0, `stdout: ${up.stdout}\nstderr: ${up.stderr}`);
  await daemon.stop();
});
