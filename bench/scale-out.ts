/**
 * Scale-out (issue 17): sink throughput with 1, 2 and 3 sink processes of one ClickHouse sink
 * sharing a topic's partitions, and capture failover time with a standby.
 *
 *   node bench/scale-out.ts [rows, default 30000] [failovers, default 5]
 *
 * 1. A table of `rows` rows is captured (snapshot) into Kafka (6 partitions) by a capture-only
 *    process, which then stops.
 * 2. For k = 1, 2, 3: k processes `--role sinks --sink whK` (each k its own sink, so its own consumer
 *    group and ClickHouse database) are started at once; the time from their start to the last row
 *    visible in ClickHouse gives rows per second (process start and group join included).
 * 3. Two capture processes (leader + standby) under a small workload: the leader is killed with -9
 *    `failovers` times; the time from the kill to the new leader publishing is measured.
 *
 * Real services from test/services. On a 2-core machine the k processes share the cores with
 * ClickHouse, Kafka and PostgreSQL: figures are ratios of one run, not capacity.
 */
import { cpus } from "node:os";
import type pg from "pg";
import { clickhouse, kafka } from "../test/services/ports.ts";
import {
  clickhouseQuery,
  deleteKafkaDeployment,
  dropClickHouseDatabase,
  killAllDaemons,
  pgClient,
  pgSourceConfig,
  randomName,
  removeDir,
  sleep,
  SluiceDaemon,
  tempDir,
  waitFor,
  waitSourcesPast,
} from "../test/e2e/helpers.ts";

const ROWS = Number(process.argv[2] ?? 30_000);
const FAILOVERS = Number(process.argv[3] ?? 5);
const PARTITIONS = 6;
const schema = randomName("bench_scale");
const source = randomName("src");
const deployment = randomName("bench");
const dir = tempDir("scale-bench");
const databases = [1, 2, 3].map((k) => `${schema}_wh${k}`);
const config = {
  name: deployment,
  sources: [pgSourceConfig(source, [`${schema}.*`])],
  topics: { kind: "kafka", brokers: [...kafka.brokers], partitions: PARTITIONS, transactions: true, retention: { max_age: 0 } },
  sinks: databases.map((database, i) => ({ kind: "clickhouse", name: `wh${i + 1}`, url: clickhouse.url, user: clickhouse.username, password: clickhouse.password, database, batch: { max_rows: 5_000, max_wait: "200ms" } })),
};

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function count(database: string): Promise<number> {
  try {
    return Number((await clickhouseQuery(`SELECT count() FROM \`${database}\`.\`${schema}_items\` FORMAT TabSeparated`)).toString().trim());
  } catch {
    return 0;
  }
}

async function main(): Promise<void> {
  const client: pg.Client = await pgClient();
  const writer: pg.Client = await pgClient();
  try {
    await client.query(`CREATE SCHEMA "${schema}"`);
    await client.query(`CREATE TABLE "${schema}".items (id bigint PRIMARY KEY, customer integer, status text, amount numeric(12,2), note text, created timestamptz)`);
    await client.query(
      `INSERT INTO "${schema}".items SELECT g, g % 997, (ARRAY['new','paid','shipped'])[1 + g % 3], g * 1.25, repeat('x', 40 + g % 60), now() FROM generate_series(1, $1) g`,
      [ROWS],
    );
    console.log(`machine: ${cpus().length} cores, shared with Kafka, ClickHouse and PostgreSQL (and other users)`);

    const capture = await SluiceDaemon.start(dir, config, "capture", { args: ["--role", "capture"], env: { SLUICE_CAPTURE_LEASE_SESSION_MS: "6000" } });
    const fillStart = Date.now();
    await waitSourcesPast(capture, client, 600_000);
    // Every row in Kafka before any sink starts: the sinks' times are theirs alone.
    await waitFor("the snapshot to be published", async () => (await capture.metric("sluice_changes_captured_total")) >= ROWS, { daemon: capture, timeoutMs: 600_000 });
    console.log(`captured ${ROWS} rows into ${PARTITIONS} partitions in ${((Date.now() - fillStart) / 1000).toFixed(1)} s`);

    const rates: number[] = [];
    for (const k of [1, 2, 3]) {
      const started = Date.now();
      const sinks = await Promise.all(Array.from({ length: k }, (_, i) => SluiceDaemon.start(dir, config, `wh${k}-${i + 1}`, { args: ["--role", "sinks", "--sink", `wh${k}`] })));
      await waitFor(`${ROWS} rows in ClickHouse with ${k} sink processes`, async () => (await count(databases[k - 1]!)) >= ROWS, { daemon: sinks[0]!, timeoutMs: 900_000, intervalMs: 200 });
      const seconds = (Date.now() - started) / 1000;
      rates.push(ROWS / seconds);
      console.log(`${k} sink process${k === 1 ? "" : "es"}: ${ROWS} rows in ${seconds.toFixed(1)} s = ${Math.round(ROWS / seconds)} rows/s (${(ROWS / seconds / rates[0]!).toFixed(2)}× one process)`);
      for (const sink of sinks) await sink.stop();
    }

    // Failover: a standby joins; a small workload keeps the position moving.
    let leader = capture;
    let standby = await SluiceDaemon.start(dir, config, "standby0", { args: ["--role", "capture"], env: { SLUICE_CAPTURE_LEASE_SESSION_MS: "6000" } });
    const role = async (d: SluiceDaemon) => ((await d.status()) as unknown as { instance: { capture: string } }).instance.capture;
    const position = async (d: SluiceDaemon) => BigInt((await d.status()).sources[0]?.position?.commit ?? "0");
    await waitFor("the standby", async () => (await role(standby)) === "standby", { daemon: standby, timeoutMs: 120_000 });
    let running = true;
    let next = ROWS + 1;
    const writing = (async () => {
      while (running) {
        await writer.query(`INSERT INTO "${schema}".items VALUES ($1, 1, 'new', 1, 'w', now())`, [next++]);
        await sleep(20);
      }
    })();
    const times: number[] = [];
    for (let round = 1; round <= FAILOVERS; round++) {
      await sleep(2_000 + Math.floor(Math.random() * 3_000));
      const before = await position(leader);
      const killedAt = Date.now();
      await leader.kill();
      const next = standby;
      await waitFor("the standby to lead and publish", async () => (await role(next)) === "leader" && (await position(next)) > before, { daemon: next, timeoutMs: 120_000, intervalMs: 100 });
      times.push(Date.now() - killedAt);
      console.log(`failover ${round}: ${Date.now() - killedAt} ms`);
      leader = next;
      standby = await SluiceDaemon.start(dir, config, `standby${round}`, { args: ["--role", "capture"], env: { SLUICE_CAPTURE_LEASE_SESSION_MS: "6000" } });
      await waitFor("the new standby", async () => (await role(standby)) === "standby", { daemon: standby, timeoutMs: 120_000 });
    }
    running = false;
    await writing;
    console.log(`failover after kill -9 (lease session 6 s), ${times.length} kills: p50 ${percentile(times, 50)} ms, max ${Math.max(...times)} ms`);
    await standby.stop();
    await leader.stop();
  } finally {
    await killAllDaemons();
    await client.query(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active`, [`sluice_${source}`]).catch(() => undefined);
    await client.query(`DROP PUBLICATION IF EXISTS "sluice_${source}"`).catch(() => undefined);
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => undefined);
    await client.end();
    await writer.end();
    await deleteKafkaDeployment(deployment).catch(() => undefined);
    for (const database of databases) await dropClickHouseDatabase(database);
    removeDir(dir);
  }
}

await main();
