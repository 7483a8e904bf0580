/**
 * The memory budget with Kafka topics (issue 16 item 4): a sink thread reads its topics through a
 * Kafka consumer whose read-ahead and fetches live in the sink's heap. A sink-only process with
 * `memory` near its least (so the sink thread has about the smallest heap the plan gives) starts on
 * a backlog of 300,000 narrow rows and rows of 200-500 KiB: every row must arrive (the plan sizes
 * the consumer from the sink's share; with the consumer's standalone 16 MiB read-ahead and fetches
 * the thread ran out of heap within seconds), and a row bigger than the sink's fetch size is read whole.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, test } from "node:test";
import type pg from "pg";
import { loadConfigText } from "../../config/load.ts";
import { MemoryBudgetError, planMemory } from "../../config/memory.ts";
import { clickhouse, kafka } from "../services/ports.ts";
import { clickhouseQuery, deleteKafkaDeployment, dropClickHouseDatabase, dropPostgres, killAllDaemons, pgClient, pgSourceConfig, randomName, removeDir, SluiceDaemon, tempDir, waitFor, waitSourcesPast } from "./helpers.ts";

const schema = randomName("e2e_memk");
const source = randomName("src");
const deployment = randomName("dep");
const database = randomName("e2e_memk_ch");
const names = { slot: `sluice_${source}`, publication: `sluice_${source}`, schema };
const dir = tempDir("memory-budget-kafka");
const captureConfig = {
  name: deployment,
  sources: [pgSourceConfig(source, [`${schema}.*`])],
  topics: { kind: "kafka", brokers: [...kafka.brokers], partitions: 3, retention: { max_age: 0 } },
  sinks: [{ kind: "clickhouse", name: "warehouse", url: clickhouse.url, user: clickhouse.username, password: clickhouse.password, database, batch: { max_wait: "50ms" } }],
};
/** The least a sink-only process of this deployment needs: the plan refuses less, naming it. */
function leastMemory(): number {
  try {
    planMemory(loadConfigText("sinks.yaml", JSON.stringify({ ...captureConfig, memory: "64MiB" }), { env: {} }), { sources: [], sinks: ["warehouse"] });
  } catch (error) {
    if (error instanceof MemoryBudgetError) return error.neededBytes;
    throw error;
  }
  throw new Error("the plan accepted 64MiB for a sink-only process");
}
// The least (a fixed figure went stale as the plan grew): the sink thread gets the smallest heap it may have.
const sinkConfig = { ...captureConfig, memory: `${Math.ceil(leastMemory() / 2 ** 20)}MiB` };
/** Incompressible text of about `kib` KiB (hex digests), built by PostgreSQL. */
const wide = (kib: number) => `(SELECT string_agg(md5(random()::text || g || i), '') FROM generate_series(1, ${kib * 32}) i)`;
let client: pg.Client;
before(async () => {
  client = await pgClient();
  await client.query(`CREATE SCHEMA "${schema}"`);
  await client.query(`CREATE TABLE "${schema}".wide (id int PRIMARY KEY, payload text)`);
  // 160 rows of 200-500 KiB (~55 MiB) for the snapshot, many times the sink thread's read-ahead.
  await client.query(`INSERT INTO "${schema}".wide SELECT g, left(${wide(500)}, (200 + g % 7 * 50) * 1024) FROM generate_series(1, 160) g`);
  // Many small records: their objects, not their bytes, fill a heap.
  await client.query(`CREATE TABLE "${schema}".narrow (id int PRIMARY KEY, note text)`);
  await client.query(`INSERT INTO "${schema}".narrow SELECT g, md5(g::text) || md5((g + 1)::text) FROM generate_series(1, 300000) g`);
});

after(async () => {
  await killAllDaemons();
  await dropPostgres(client, names).catch(() => undefined);
  await client.end().catch(() => undefined);
  await dropClickHouseDatabase(database).catch(() => undefined);
  await deleteKafkaDeployment(deployment).catch(() => undefined);
  removeDir(dir);
});

/** Rows and text bytes of a table in PostgreSQL or ClickHouse. */
async function counts(table: string, column: string, where: "postgres" | "clickhouse"): Promise<string> {
  if (where === "postgres") {
    const [row] = (await client.query<{ rows: string; bytes: string }>(`SELECT count(*) AS rows, sum(length(${column})) AS bytes FROM "${schema}".${table}`)).rows;
    return `${row!.rows} rows, ${row!.bytes} bytes`;
  }
  const [rows, bytes] = (await clickhouseQuery(`SELECT count(), sum(length(${column})) FROM \`${database}\`.\`${schema}_${table}\` FORMAT TabSeparated`)).toString("utf8").trim().split("\t");
  return `${rows} rows, ${bytes} bytes`;
}

test("a sink thread at its least heap reads a backlog of narrow and wide rows from Kafka: every row arrives, one bigger than its fetch too", { timeout: 420_000 }, async () => {
  // Capture (no budget) writes the whole backlog to Kafka first, so the sink starts on ~80 MiB of wide records.
  const capture = await SluiceDaemon.start(dir, captureConfig, "capture", { args: ["--role", "capture"] });
  const plan = planMemory(loadConfigText("sinks.yaml", JSON.stringify(sinkConfig), { env: {} }), { sources: [], sinks: ["warehouse"] });
  const reader = plan.sinks["warehouse"]!.reader!;
  assert.ok(reader.readAheadBytes < 16 * 2 ** 20, `the sink's read-ahead (${reader.readAheadBytes}) is its share, not the standalone 16 MiB`);
  await client.query(`INSERT INTO "${schema}".wide SELECT g, left(${wide(500)}, (200 + g % 7 * 50) * 1024) FROM generate_series(161, 240) g`);
  // One row far bigger than the sink's fetch sizes: a fetch still brings it whole.
  const big = Math.ceil((2 * reader.fetchBytes) / 1024) + 512;
  await client.query(`INSERT INTO "${schema}".wide SELECT 1000, ${wide(big)} FROM (SELECT 1 AS g) x`);
  const expected = { wide: await counts("wide", "payload", "postgres"), narrow: await counts("narrow", "note", "postgres") };
  await waitSourcesPast(capture, client, 240_000);

  const sinks = await SluiceDaemon.start(dir, sinkConfig, "sinks", { args: ["--role", "sinks"] });
  let seen = {};
  await waitFor("every row in ClickHouse", async () => {
    seen = { wide: await counts("wide", "payload", "clickhouse"), narrow: await counts("narrow", "note", "clickhouse") };
    return JSON.stringify(seen) === JSON.stringify(expected);
  }, { daemon: sinks, timeoutMs: 300_000, intervalMs: 1_000, lastSeen: () => ({ expected, seen }) });
  assert.doesNotMatch(readFileSync(sinks.logFile, "utf8"), /ERR_WORKER_OUT_OF_MEMORY|out of memory/);
  await sinks.stop();
  await capture.stop();
});
