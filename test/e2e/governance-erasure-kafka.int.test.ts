/**
 * End to end (issue 18, item 2) on Kafka: the subject keys, the erasure audit and the forget
 * command's lease live in Kafka; capture writes a batch's new keys in its transaction. `sluice
 * forget` against the running daemon (two passes with Kafka) nulls one subject's personal columns
 * in DuckDB and leaves the other alone, and a full rebuild from the Kafka topics keeps it so.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type pg from "pg";
import { kafka } from "../services/ports.ts";
import type { SluiceDaemon } from "./helpers.ts";
import { deleteKafkaDeployment, dropPostgres, killAllDaemons, pgClient, pgSourceConfig, randomName, removeDir, runSluice, startReady, tempDir, waitFor } from "./helpers.ts";

const schema = randomName("erasek_pg");
const source = randomName("pgsrc");
const deployment = randomName("dep");
const dir = tempDir("erasure-kafka");
const names = { slot: `sluice_${source}`, publication: `sluice_${source}`, schema };
const masterKeyFile = join(dir, "master.key");
writeFileSync(masterKeyFile, randomBytes(32).toString("base64"));

const config = {
  name: deployment,
  personal_data: { master_key_file: masterKeyFile },
  sources: [pgSourceConfig(source, [`${schema}.*`], { governance: { tables: { [`${schema}.customers`]: { personal: { subject: "customer_id", columns: ["email"] } } } } })],
  topics: { kind: "kafka", brokers: [...kafka.brokers], partitions: 2, transactions: true, retention: { max_age: 0 } },
  sinks: [{ kind: "duckdb", name: "local", path: join(dir, "warehouse.duckdb"), batch: { max_wait: "50ms" } }],
};

let client: pg.Client;

before(async () => {
  client = await pgClient();
  await client.query(`CREATE SCHEMA "${schema}"`);
  await client.query(`CREATE TABLE "${schema}".customers (id int PRIMARY KEY, customer_id int NOT NULL, email text, city text)`);
  await client.query(`INSERT INTO "${schema}".customers VALUES (1, 101, 'ann@example.com', 'Lyon'), (2, 202, 'bob@example.com', 'Nice'), (3, 101, 'ann@work.example', 'Paris')`);
});

after(async () => {
  await killAllDaemons();
  await dropPostgres(client, names).catch(() => undefined);
  await client.end();
  await deleteKafkaDeployment(deployment).catch((error: unknown) => console.error("Kafka cleanup failed", error));
  removeDir(dir);
});

async function rows(daemon: SluiceDaemon | null, configFile: string): Promise<string> {
  const sql = `SELECT id, customer_id, email, city FROM "${schema}_customers" ORDER BY id`;
  if (daemon) {
    const response = await fetch(`${daemon.url}/sinks/local/query`, { method: "POST", body: sql, signal: AbortSignal.timeout(10_000) });
    return response.status === 200 ? JSON.stringify(((await response.json()) as { rows: unknown[] }).rows) : `HTTP ${response.status}`;
  }
  const run = await runSluice(["query", "-c", configFile, "--sink", "local", "--json", sql]);
  return run.code === 0 ? JSON.stringify(JSON.parse(run.stdout)) : run.stderr;
}

const want = (erased: boolean) =>
  JSON.stringify([
    { id: 1, customer_id: 101, email: erased ? null : "ann@example.com", city: "Lyon" },
    { id: 2, customer_id: 202, email: "bob@example.com", city: "Nice" },
    { id: 3, customer_id: 101, email: erased ? null : "ann@work.example", city: "Paris" },
  ]);

test("forget on Kafka: keys, audit and lease in Kafka; DuckDB loses the subject's personal column; a rebuild from Kafka keeps it erased", { timeout: 420_000 }, async () => {
  let daemon: SluiceDaemon | null = await startReady(dir, config, "run1");
  const configFile = daemon.configFile;
  let last = "";
  await waitFor("DuckDB decrypted", async () => (last = await rows(daemon, configFile)) === want(false), { daemon, timeoutMs: 120_000, lastSeen: () => last });

  const forget = await runSluice(["forget", "-c", configFile, "--source", source, "--subject", "101", "--execute"]);
  assert.equal(forget.code, 0, forget.stderr);
  assert.match(forget.stdout, /sink local: personal columns of the subject nulled \(2 rows\)\n.*second pass[^\n]*\nsink local: personal columns of the subject nulled \(0 rows\)/s);
  await waitFor("DuckDB erased", async () => (last = await rows(daemon, configFile)) === want(true), { daemon, timeoutMs: 60_000, lastSeen: () => last });
  const dry = await runSluice(["forget", "-c", configFile, "--source", source, "--subject", "101"]);
  assert.match(dry.stdout, /has no key any more/);
  assert.match(dry.stdout, /earlier erasure of this subject: completed/);
  await daemon.stop();
  daemon = null;

  const rebuild = await runSluice(["replay", "-c", configFile, "--sink", "local", "--from-beginning", "--rebuild", "--execute"]);
  assert.equal(rebuild.code, 0, rebuild.stderr);
  assert.equal(await rows(null, configFile), want(true));
});
