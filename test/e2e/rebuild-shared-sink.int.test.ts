/**
 * End to end: a rebuild of a ClickHouse sink that two processes share (Kafka consumer group, each
 * applying its share of the partitions), asked of one of them while a workload writes.
 *
 * The rebuild's new generation (`<target>__v2`) receives the live writes of the process that
 * rebuilds only: the other process does not know of it, so the changes it applies after the
 * rebuild's end offsets are missing from the swapped-in table, and after the swap it writes to the
 * table the swap dropped (UNKNOWN_TABLE: its table halts). Until the processes coordinate a rebuild,
 * it is refused while another process runs the sink, naming it, and nothing changes: asked of a
 * running daemon, and by the command itself where no daemon listens (Kafka gives it no lease).
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type pg from "pg";
import { clickhouse, kafka } from "../services/ports.ts";
import type { SluiceDaemon } from "./helpers.ts";
import {
  clickhouseFloatEquality,
  clickhouseQuery,
  deleteKafkaDeployment,
  dropClickHouseDatabase,
  dropPostgres,
  expectedFor,
  freePort,
  killAllDaemons,
  pgClient,
  pgSourceConfig,
  randomName,
  readClickHouse,
  readPostgres,
  removeDir,
  Rng,
  runSluice,
  SluiceDaemon as Daemon,
  sleep,
  tempDir,
  waitCaughtUp,
  waitEqual,
  waitFor,
  Workload,
} from "./helpers.ts";
import { createSchema, ENUM_LABELS, ordersTable, workloadTables } from "./tables.ts";

const schema = randomName("e2e_rbshare");
const source = randomName("src");
const deployment = randomName("dep");
const chDatabase = randomName("e2e_ch");
const names = { slot: `sluice_${source}`, publication: `sluice_${source}`, schema };
const dir = tempDir("rebuild-shared");
const orders = ordersTable(schema);
const PARTITIONS = 3;
const config = {
  name: deployment,
  sources: [pgSourceConfig(source, [`${schema}.*`])],
  topics: { kind: "kafka", brokers: [...kafka.brokers], partitions: PARTITIONS, transactions: true, retention: { max_age: 0 } },
  sinks: [{ kind: "clickhouse", name: "warehouse", url: clickhouse.url, user: clickhouse.username, password: clickhouse.password, database: chDatabase, batch: { max_rows: 100, max_wait: "50ms" } }],
};
const SESSION_ENV = { SLUICE_KAFKA_SESSION_MS: "6000" };

let client: pg.Client;
let writer: pg.Client;
const rng = new Rng();

before(async () => {
  client = await pgClient();
  writer = await pgClient();
  await createSchema(client, schema, [orders]);
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

interface Instance {
  id: string;
  stale: boolean;
  roles: string[];
  sinks: { name: string; partitions: string[] }[];
}

/** Waits until both processes apply some of the table's partitions. */
async function waitShared(daemon: SluiceDaemon, both: readonly SluiceDaemon[]): Promise<void> {
  await waitFor(
    "both sink processes to hold some of the table's partitions",
    async () => {
      const status = (await daemon.status()) as unknown as { instances: Instance[] };
      const sinks = status.instances.filter((i) => !i.stale && i.roles.includes("sinks"));
      return both.every((d) => sinks.some((i) => i.id.endsWith(`:${d.child.pid}`) && (i.sinks[0]?.partitions ?? []).some((p) => p.includes(`.${schema}.`)))) || undefined;
    },
    { daemon, timeoutMs: 90_000, intervalMs: 300 },
  );
}

async function halted(daemon: SluiceDaemon): Promise<unknown[]> {
  return (await daemon.status()).sinks.flatMap((s) => s.halted);
}

async function chTables(): Promise<string[]> {
  const body = await clickhouseQuery(`SELECT name FROM system.tables WHERE database = '${chDatabase}' AND name LIKE '%orders%' ORDER BY name FORMAT TabSeparated`);
  return body.toString("utf8").split("\n").filter((line) => line !== "");
}

test("a rebuild asked of one of two processes sharing a ClickHouse sink under a workload: ClickHouse equals PostgreSQL row by row, no table halts", { timeout: 300_000 }, async (t) => {
  t.diagnostic(`seed ${rng.seed}`);
  const workload = new Workload(writer, workloadTables([orders]), rng, { negativeZero: false, enumLabels: ENUM_LABELS });
  for (let i = 0; i < 100; i++) for (const table of workload.tables) await workload.insert(table);

  const main = await Daemon.start(dir, config, "main", { env: SESSION_ENV });
  const helper = await Daemon.start(dir, config, "helper", { args: ["--role", "sinks", "--sink", "warehouse"], env: SESSION_ENV });
  for (const daemon of [main, helper]) await waitFor("the sink to be ready", async () => (await daemon.status()).sinks.every((s) => s.ready) || undefined, { daemon, timeoutMs: 90_000 });
  await waitShared(main, [main, helper]);
  await waitCaughtUp(main, client);

  let running = true;
  const writing = (async () => {
    while (running) {
      await workload.transaction();
      await sleep(5);
    }
  })();
  await sleep(1_000);
  const rebuild = await runSluice(["replay", "-c", main.configFile, "--sink", "warehouse", "--from-beginning", "--rebuild", "--execute"]);
  t.diagnostic(`rebuild: exit ${rebuild.code}; ${rebuild.stdout.trim()} ${rebuild.stderr.trim()}`);
  // The command itself, where no daemon listens at its http.listen: the sink's processes are elsewhere (both of them here).
  const commandConfig = join(dir, "command.yaml");
  writeFileSync(commandConfig, JSON.stringify({ ...config, http: { listen: `127.0.0.1:${await freePort()}` } }));
  const command = await runSluice(["replay", "-c", commandConfig, "--sink", "warehouse", "--from-beginning", "--rebuild", "--execute"]);
  t.diagnostic(`rebuild by the command: exit ${command.code}; ${command.stdout.trim()} ${command.stderr.trim()}`);
  // Changes go on to both processes' partitions after the rebuilds ended.
  await sleep(1_000);
  running = false;
  await writing;
  t.diagnostic(`workload: ${JSON.stringify(workload.counts)}`);

  await waitCaughtUp(main, client);
  await waitFor("the helper's sink to apply every change, or a table to halt", async () => (await halted(helper)).length > 0 || (await helper.status()).sinks.every((s) => s.lagRecords === 0) || undefined, {
    daemon: helper,
    timeoutMs: 60_000,
  });
  assert.deepEqual([...(await halted(main)), ...(await halted(helper))], [], "no table halts");
  await waitEqual(`ClickHouse ${orders.name}`, async () => expectedFor("clickhouse", orders, await readPostgres(client, orders)), () => readClickHouse(chDatabase, `${schema}_${orders.name}`, orders), {
    daemon: main,
    timeoutMs: 30_000,
    same: clickhouseFloatEquality(orders),
  });

  // The rebuild was refused, naming the other process and what to do; nothing changed in the target.
  assert.equal(rebuild.code, 1, rebuild.stdout + rebuild.stderr);
  assert.match(rebuild.stderr, /another process runs sink "warehouse"/);
  assert.match(rebuild.stderr, new RegExp(`process ${helper.child.pid}\\b`));
  assert.equal(command.code, 1, command.stdout + command.stderr);
  assert.match(command.stderr, /2 other processes run sink "warehouse"/);
  for (const daemon of [main, helper]) assert.match(command.stderr, new RegExp(`process ${daemon.child.pid}\\b`));
  assert.deepEqual(await chTables(), [`${schema}_orders`, `${schema}_orders__v1`]);
  for (const daemon of [main, helper]) await daemon.stop();
});
