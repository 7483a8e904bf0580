/**
 * End to end (issue 17, items 1 and 2): roles and sink instances sharing partitions.
 *
 * One process captures (`--role capture`); three processes run the same ClickHouse sink
 * (`--role sinks`) with a config whose source password is an unset `${VAR}`: a sink-only process
 * needs no source credentials. The three form one Kafka consumer group and split the topics'
 * partitions (every /status shows every process, its role and its partitions). Under a running
 * workload one sink process is killed with -9 and another started: the partitions move, and at the
 * end ClickHouse equals PostgreSQL row by row (nothing lost; redelivered changes applied by version,
 * so nothing doubled or out of order where it shows).
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type pg from "pg";
import { clickhouse, kafka } from "../services/ports.ts";
import type { SluiceDaemon, TableDef } from "./helpers.ts";
import {
  clickhouseFloatEquality,
  deleteKafkaDeployment,
  dropClickHouseDatabase,
  dropPostgres,
  expectedFor,
  killAllDaemons,
  pgClient,
  pgSourceConfig,
  randomName,
  readClickHouse,
  readPostgres,
  removeDir,
  Rng,
  SluiceDaemon as Daemon,
  sleep,
  tempDir,
  waitCaughtUp,
  waitEqual,
  waitFor,
  Workload,
} from "./helpers.ts";
import { createSchema, ENUM_LABELS, eventsTable, ordersTable, workloadTables } from "./tables.ts";

const schema = randomName("e2e_scale");
const source = randomName("src");
const deployment = randomName("dep");
const chDatabase = randomName("e2e_ch");
const names = { slot: `sluice_${source}`, publication: `sluice_${source}`, schema };
const dir = tempDir("scale-out");
const tables: TableDef[] = [ordersTable(schema), eventsTable(schema)];
const PARTITIONS = 3;
const sinkConfig = { kind: "clickhouse", name: "warehouse", url: clickhouse.url, user: clickhouse.username, password: clickhouse.password, database: chDatabase, batch: { max_rows: 100, max_wait: "100ms" } };
const captureConfig = {
  name: deployment,
  sources: [pgSourceConfig(source, [`${schema}.*`])],
  topics: { kind: "kafka", brokers: [...kafka.brokers], partitions: PARTITIONS, transactions: true, retention: { max_age: 0 } },
  sinks: [sinkConfig],
};
// A killed sink process keeps its partitions for its Kafka session: the broker's least (6 s), not the default 30 s.
const SESSION_ENV = { SLUICE_KAFKA_SESSION_MS: "6000" };
// The sink processes' config lacks the source's password: an unset variable, as where operators give sink pods no source secret.
const sinkOnlyConfig = { ...captureConfig, sources: [pgSourceConfig(source, [`${schema}.*`], { password: "${SCALE_OUT_SOURCE_PASSWORD_NOT_SET}" })] };

let client: pg.Client;
let writer: pg.Client;
const rng = new Rng();

interface Instance {
  id: string;
  roles: string[];
  stale: boolean;
  sources: { name: string; state: string }[];
  sinks: { name: string; partitions: string[] }[];
}

before(async () => {
  client = await pgClient();
  writer = await pgClient();
  await createSchema(client, schema, tables);
});

after(async () => {
  await killAllDaemons();
  await dropPostgres(client, names);
  await client.end();
  await writer.end();
  await deleteKafkaDeployment(deployment).catch((error: unknown) => console.error("Kafka cleanup failed", error));
  await dropClickHouseDatabase(chDatabase);
  removeDir(dir);
});

async function instances(daemon: SluiceDaemon): Promise<Instance[]> {
  const status = (await daemon.status()) as unknown as { instances: Instance[] };
  return status.instances.filter((i) => !i.stale);
}

/** Waits until `daemon`'s /status lists exactly the sink processes `expected` (by instance id), their partitions disjoint and covering all. */
async function waitForSplit(daemon: SluiceDaemon, expected: readonly SluiceDaemon[], topics: number): Promise<Instance[]> {
  const ids = expected.map((d) => `:${d.child.pid}`);
  let seen: Instance[] = [];
  return waitFor(
    `the ${expected.length} sink processes to split ${topics * PARTITIONS} partitions`,
    async () => {
      seen = await instances(daemon);
      const sinks = seen.filter((i) => i.roles.includes("sinks"));
      if (sinks.length !== expected.length || !ids.every((id) => sinks.some((i) => i.id.endsWith(id)))) return false;
      // The tables' topics only: the deployment's control topic (one partition) goes to one of them besides.
      const dataPartitions = (i: Instance) => (i.sinks[0]?.partitions ?? []).filter((p) => p.includes(`.${schema}.`));
      const partitions = sinks.flatMap(dataPartitions);
      const each = sinks.map((i) => dataPartitions(i).length);
      return partitions.length === topics * PARTITIONS && new Set(partitions).size === partitions.length && each.every((n) => n > 0) && seen;
    },
    { daemon, timeoutMs: 120_000, intervalMs: 500, lastSeen: () => seen },
  );
}

test("three sink processes share the partitions; kill -9 one and start another under a workload: ClickHouse equals PostgreSQL row by row", { timeout: 420_000 }, async (t) => {
  t.diagnostic(`seed ${rng.seed}`);
  const workload = new Workload(writer, workloadTables(tables), rng, { negativeZero: false, enumLabels: ENUM_LABELS });
  for (let i = 0; i < 100; i++) for (const table of workload.tables) await workload.insert(table);

  const capture = await Daemon.start(dir, captureConfig, "capture", { args: ["--role", "capture"] });
  await waitFor("the capture to be ready", async () => (await capture.status()).sources.every((s) => s.ready) || undefined, { daemon: capture, timeoutMs: 90_000 });
  const startSink = async (label: string) => {
    const daemon = await Daemon.start(dir, sinkOnlyConfig, label, { args: ["--role", "sinks", "--sink", "warehouse"], env: SESSION_ENV });
    await waitFor(`${label} to be ready`, async () => (await daemon.status()).sinks.every((s) => s.ready) || undefined, { daemon, timeoutMs: 90_000 });
    return daemon;
  };
  // Started together: their joins share the group's rebalances instead of waiting for one each.
  const sinks = await Promise.all([startSink("sink1"), startSink("sink2"), startSink("sink3")]);

  // A capture-only process opens no sink; a sink-only process captures nothing.
  assert.deepEqual((await capture.status()).sinks, []);
  assert.deepEqual((await sinks[0]!.status()).sources, []);

  // Every process's /status shows the whole deployment: the capture and the three sink processes, their partitions split.
  const split = await waitForSplit(sinks[2]!, sinks, tables.length);
  const seenFromCapture = await instances(capture);
  assert.ok(seenFromCapture.some((i) => i.roles.includes("capture") && i.sources.some((s) => s.name === source && s.state === "leader")), JSON.stringify(seenFromCapture));
  t.diagnostic(`partitions: ${JSON.stringify(split.filter((i) => i.roles.includes("sinks")).map((i) => [i.id, i.sinks[0]?.partitions.length]))}`);
  // Each process reads the others' readiness from their last report (every heartbeat): a report made before a sink
  // process was ready still says NOT READY for a moment, and sluice status exits 3 while it does.
  const { runSluice } = await import("./helpers.ts");
  let shown: { code: number; stdout: string; stderr: string } | undefined;
  const text = await waitFor("sluice status to exit 0 (every process's report ready)", async () => {
    shown = await runSluice(["status", "-c", sinks[0]!.configFile]);
    return shown.code === 0 && shown;
  }, { daemon: sinks[0]!, timeoutMs: 60_000, intervalMs: 500, lastSeen: () => shown });
  assert.match(text.stdout, /INSTANCE\s+ROLES\s+CAPTURE/);
  assert.match(text.stdout, new RegExp(`:${capture.child.pid}\\s+capture\\s+${source}:leader`));

  // The workload runs while one sink process dies and another joins.
  let running = true;
  const writing = (async () => {
    while (running) {
      await workload.transaction();
      await sleep(5);
    }
  })();
  await sleep(1_500);
  await sinks[1]!.kill();
  t.diagnostic("sink2 killed (-9)");
  await sleep(1_000);
  const fourth = await startSink("sink4");
  const survivors = [sinks[0]!, sinks[2]!, fourth];
  // The dead member keeps its partitions until its session times out; then the group rebalances over the three.
  await waitForSplit(fourth, survivors, tables.length);
  // Changes written after the partitions moved too.
  await sleep(1_000);
  running = false;
  await writing;
  t.diagnostic(`workload: ${JSON.stringify(workload.counts)}`);

  await waitCaughtUp(capture, client);
  await waitCaughtUp(fourth, client);
  for (const def of tables) {
    await waitEqual(`ClickHouse ${def.name}`, async () => expectedFor("clickhouse", def, await readPostgres(client, def)), () => readClickHouse(chDatabase, `${schema}_${def.name}`, def), {
      daemon: fourth,
      timeoutMs: 60_000,
      same: clickhouseFloatEquality(def),
    });
  }
  for (const daemon of [capture, ...survivors]) await daemon.stop();
});
