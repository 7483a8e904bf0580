/**
 * End to end: the embedded topic log keeps checkpoints by source, topics by deployment. A deployment
 * renamed in the config (`name:`) would resume capture where the old one stopped, into new empty
 * topics without a snapshot, so a sink added later would silently miss the history. Such a start is
 * refused (DEPLOYMENT_RENAMED) for the source; a checkpoint from a file written before the
 * deployment was recorded is adopted by the first start, which records its name.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, before, test } from "node:test";
import type pg from "pg";
import { dropPostgres, killAllDaemons, pgClient, pgSourceConfig, randomName, removeDir, SluiceDaemon, startReady, tempDir, waitCaughtUp, waitFor } from "./helpers.ts";

const schema = randomName("e2e_rename");
const source = randomName("src");
const deployment = randomName("dep");
const renamed = `${deployment}_renamed`;
const names = { slot: `sluice_${source}`, publication: `sluice_${source}`, schema };
const dir = tempDir("rename");
const logPath = join(dir, "log.db");
const config = (name: string) => ({
  name,
  sources: [pgSourceConfig(source, [`${schema}.*`])],
  topics: { kind: "embedded", path: logPath },
  sinks: [{ kind: "duckdb", name: "warehouse", path: join(dir, `${name}.duckdb`), batch: { max_wait: "50ms" } }],
});
let client: pg.Client;

before(async () => {
  client = await pgClient();
  await client.query(`CREATE SCHEMA "${schema}"; CREATE TABLE "${schema}".items (id int PRIMARY KEY, label text)`);
  await client.query(`INSERT INTO "${schema}".items SELECT i, 'row ' || i FROM generate_series(1, 5) i`);
});

after(async () => {
  await killAllDaemons();
  await dropPostgres(client, names);
  await client.end();
  removeDir(dir);
});

function recordedDeployment(): string | null {
  const db = new DatabaseSync(logPath);
  try {
    const row = db.prepare("SELECT value FROM log_meta WHERE key = ?").get(`deployment:${source}`) as { value: string } | undefined;
    return row?.value ?? null;
  } finally {
    db.close();
  }
}

async function captureOnce(name: string, label: string, id: number): Promise<void> {
  const daemon = await startReady(dir, config(name), label);
  await client.query(`INSERT INTO "${schema}".items VALUES ($1, 'after start')`, [id]);
  await waitCaughtUp(daemon, client);
  await daemon.stop();
}

test("a deployment renamed on an embedded log is refused for its source; a checkpoint from before the name was recorded is adopted", { timeout: 240_000 }, async () => {
  await captureOnce(deployment, "first", 6);
  assert.equal(recordedDeployment(), deployment);

  // A file from before the deployment was recorded: the next start adopts its checkpoint and records the name.
  const db = new DatabaseSync(logPath);
  db.prepare("DELETE FROM log_meta WHERE key = ?").run(`deployment:${source}`);
  db.close();
  await captureOnce(deployment, "adopting", 7);
  assert.equal(recordedDeployment(), deployment);

  // The source may stop before /healthz first answers; the daemon may then stop too (a component failed).
  const daemon = await SluiceDaemon.start(dir, config(renamed), "renamed", { expectStopped: true });
  const line = await waitFor("the source to stop", async () => daemon.fatalLine, { daemon, allowStopped: true, timeoutMs: 60_000 });
  for (const part of ["DEPLOYMENT_RENAMED", logPath, source, `\\"${deployment}\\"`, `\\"${renamed}\\"`, `name: ${deployment}`, "topics.path"]) {
    assert.ok(line.includes(part), `${part} not in: ${line}`);
  }
  // Nothing was captured under the new name (while the daemon still answers).
  const status = await daemon.status().catch(() => null);
  if (status !== null) assert.equal(status.sources[0]?.position ?? null, null, JSON.stringify(status.sources));
  await daemon.stop();
  assert.equal(recordedDeployment(), deployment);
});
