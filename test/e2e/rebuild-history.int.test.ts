/**
 * End to end (issue 14, item 2): rebuilds that cannot lie. PostgreSQL → embedded log → DuckDB with
 * a short retention: once the first records expired, `sluice replay --rebuild` (dry run, through
 * the running daemon, and alone) is refused naming the partition and its first offset, and the
 * sink keeps every row. PostgreSQL → Kafka → DuckDB: the rebuild reads every table (a Kafka
 * consumer's first polls are empty while it joins its group) and DuckDB equals PostgreSQL.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type pg from "pg";
import { kafka } from "../services/ports.ts";
import {
  assertTablesEqual,
  deleteKafkaDeployment,
  dropPostgres,
  expectedFor,
  killAllDaemons,
  pgClient,
  pgSourceConfig,
  randomName,
  readDuckDb,
  readPostgres,
  removeDir,
  Rng,
  runSluice,
  SluiceDaemon,
  tempDir,
  waitCaughtUp,
  waitFor,
  Workload,
} from "./helpers.ts";
import { createSchema, ENUM_LABELS, ordersTable, workloadTables } from "./tables.ts";

const dir = tempDir("rebuild-history");
let client: pg.Client;
const cleanups: { slot: string; publication: string; schema: string }[] = [];
/** Deployments whose topics are on the shared broker. */
const kafkaDeployments: string[] = [];

before(async () => {
  client = await pgClient();
});

after(async () => {
  // Each step also when one before it throws (a slot a daemon still holds makes dropPostgres fail): a step skipped
  // left the deployment's topics on the shared broker.
  try {
    await killAllDaemons();
    for (const names of cleanups) await dropPostgres(client, names);
  } finally {
    try {
      await client.end();
    } finally {
      try {
        for (const deployment of kafkaDeployments) await deleteKafkaDeployment(deployment);
      } finally {
        removeDir(dir);
      }
    }
  }
});

function setup(label: string) {
  const schema = randomName(`e2e_${label}`);
  const source = randomName("src");
  cleanups.push({ slot: `sluice_${source}`, publication: `sluice_${source}`, schema });
  const tables = [ordersTable(schema)];
  const duckPath = join(dir, `${label}.duckdb`);
  return { schema, source, tables, duckPath, target: `${schema}_${tables[0]!.name}` };
}

async function assertDuckDbEqualsPostgres(duckPath: string, tables: ReturnType<typeof setup>["tables"], target: string, what: string): Promise<void> {
  const read = await readDuckDb(duckPath, [{ def: tables[0]!, target }]);
  assertTablesEqual(expectedFor("duckdb", tables[0]!, await readPostgres(client, tables[0]!)), read[0]!.rows, what);
}

test("embedded log: once retention removed the first records, a rebuild is refused (dry run, daemon, alone) and the sink keeps its rows", { timeout: 240_000 }, async (t) => {
  const { schema, source, tables, duckPath, target } = setup("gap");
  await createSchema(client, schema, tables);
  const rng = new Rng();
  t.diagnostic(`seed ${rng.seed}`);
  const workload = new Workload(client, workloadTables(tables), rng, { negativeZero: false, enumLabels: ENUM_LABELS });
  for (let i = 0; i < 100; i++) await workload.insert(workload.tables[0]!);
  const config = {
    name: randomName("dep"),
    sources: [pgSourceConfig(source, [`${schema}.*`])],
    topics: { kind: "embedded", path: join(dir, "gap-log.db"), retention: { cleanup_policy: "delete", max_age: "2s" } },
    sinks: [{ kind: "duckdb", name: "warehouse", path: duckPath, batch: { max_rows: 50, max_wait: "50ms" } }],
  };
  const daemon = await SluiceDaemon.start(dir, config, "gap");
  await waitCaughtUp(daemon, client);
  const args = ["replay", "-c", daemon.configFile, "--sink", "warehouse", "--from-beginning", "--rebuild"];

  // The daemon's retention job runs every 10 s: wait until it removed the snapshot's records.
  const dry = await waitFor("retention to remove the first records", async () => {
    const run = await runSluice(args);
    return run.code !== 0 ? run : undefined;
  }, { daemon, timeoutMs: 90_000, intervalMs: 1_000 });
  // One change after the expiry: the topic holds a single record, as in the report.
  await workload.insert(workload.tables[0]!);
  await waitCaughtUp(daemon, client);

  const gap = /a rebuild would be refused: the topics' history is incomplete: retention removed the first records of 1 partition \(\S+\.orders:0 starts at offset [1-9]\d*\)/;
  assert.equal(dry.code, 1, dry.stdout + dry.stderr);
  assert.match(dry.stderr, gap);
  assert.match(dry.stderr, /Re-snapshot instead/);
  assert.match(dry.stderr, /Dry run: nothing changed/);

  const byDaemon = await runSluice([...args, "--execute"]);
  assert.equal(byDaemon.code, 1, byDaemon.stdout + byDaemon.stderr);
  assert.match(byDaemon.stderr, /rebuild refused: the topics' history is incomplete: retention removed the first records of 1 partition \(\S+\.orders:0 starts at offset [1-9]\d*\)/);
  await daemon.stop();

  const alone = await runSluice([...args, "--execute"]);
  assert.equal(alone.code, 1, alone.stdout + alone.stderr);
  assert.match(alone.stderr, /rebuild refused: the topics' history is incomplete: .*\.orders:0 starts at offset [1-9]\d*.*Nothing changed\./);

  await assertDuckDbEqualsPostgres(duckPath, tables, target, "DuckDB after the refused rebuilds");
});

test("Kafka: a rebuild through the real broker rebuilds every table, by the daemon and alone, and the sink equals the source", { timeout: 300_000 }, async (t) => {
  const { schema, source, tables, duckPath, target } = setup("kafka");
  await createSchema(client, schema, tables);
  const rng = new Rng();
  t.diagnostic(`seed ${rng.seed}`);
  const workload = new Workload(client, workloadTables(tables), rng, { negativeZero: false, enumLabels: ENUM_LABELS });
  for (let i = 0; i < 150; i++) await workload.insert(workload.tables[0]!);
  for (let i = 0; i < 20; i++) await workload.transaction();
  const deployment = randomName("dep");
  kafkaDeployments.push(deployment);
  const config = {
    name: deployment,
    sources: [pgSourceConfig(source, [`${schema}.*`])],
    topics: { kind: "kafka", brokers: [...kafka.brokers], partitions: 3, transactions: true, retention: { max_age: 0 } },
    sinks: [{ kind: "duckdb", name: "warehouse", path: duckPath, batch: { max_rows: 50, max_wait: "50ms" } }],
  };
  const daemon = await SluiceDaemon.start(dir, config, "kafka");
  await waitCaughtUp(daemon, client);
  // A sink that has not yet subscribed to the new topics reports lag 0: wait for the rows themselves.
  const sourceCount = Number((await client.query(`SELECT count(*) AS n FROM "${schema}".orders`)).rows[0].n);
  await waitFor(
    "DuckDB to hold every source row before the rebuild",
    async () => {
      const query = await runSluice(["query", "-c", daemon.configFile, "--json", `SELECT count(*)::INT AS n FROM main."${target}"`]);
      return query.code === 0 && (JSON.parse(query.stdout) as { n: number }[])[0]!.n === sourceCount;
    },
    { daemon, timeoutMs: 120_000 },
  );
  const args = ["replay", "-c", daemon.configFile, "--sink", "warehouse", "--from-beginning", "--rebuild", "--execute"];

  const dry = await runSluice(args.slice(0, -1));
  assert.equal(dry.code, 0, dry.stdout + dry.stderr);
  const rebuilt = /rebuilt 1 table \(\S+\.orders\) from (\d+) records, swapped in/;
  const byDaemon = await runSluice(args);
  assert.equal(byDaemon.code, 0, byDaemon.stdout + byDaemon.stderr);
  assert.match(byDaemon.stdout, rebuilt);
  assert.ok(Number(rebuilt.exec(byDaemon.stdout)![1]) >= 150, byDaemon.stdout);
  for (let i = 0; i < 10; i++) await workload.transaction();
  await waitCaughtUp(daemon, client);
  await daemon.stop();

  const alone = await runSluice(args);
  assert.equal(alone.code, 0, alone.stdout + alone.stderr);
  assert.match(alone.stdout, rebuilt);
  assert.ok(Number(rebuilt.exec(alone.stdout)![1]) >= 150, alone.stdout);
  await assertDuckDbEqualsPostgres(duckPath, tables, target, "DuckDB after the Kafka rebuilds");
});
