/**
 * End to end (issue 12, item 4): Kafka goes away and comes back. The daemon runs PostgreSQL →
 * Kafka → DuckDB against a PRIVATE broker (its own ports and data dir, test/services/private-kafka.ts)
 * that this test stops for ~25 s (SLUICE_KAFKA_OUTAGE_SECONDS=60 for the long version) while
 * PostgreSQL keeps writing. The daemon must never exit, /readyz must answer 503 (naming what waits
 * for Kafka) during the outage and 200 after, and DuckDB must end equal to PostgreSQL.
 * Then SIGTERM during a second outage: the daemon must exit 0 within shutdown.timeout (plus a
 * margin for process start-up and exit), and a restart once Kafka is back loses nothing.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type pg from "pg";
import { PrivateKafka } from "../services/private-kafka.ts";
import type { TableDef } from "./helpers.ts";
import {
  assertTablesEqual,
  createTableSql,
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
  sleep,
  SluiceDaemon,
  tempDir,
  waitCaughtUp,
  waitFor,
  Workload,
} from "./helpers.ts";

const schema = randomName("e2e_kafka_outage");
const source = randomName("src");
const deployment = randomName("dep");
const names = { slot: `sluice_${source}`, publication: `sluice_${source}`, schema };
const dir = tempDir("kafka-outage");
const duckPath = join(dir, "warehouse.duckdb");
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
const OUTAGE_MS = Number(process.env["SLUICE_KAFKA_OUTAGE_SECONDS"] ?? 25) * 1000;
const SHUTDOWN_TIMEOUT_MS = 8_000;
/**
 * The sink's Kafka session: the broker keeps the group's member from before an outage (or a
 * shutdown during one) until it times out, so the broker's least (6 s) rather than the default 30 s.
 */
const SESSION_ENV = { SLUICE_KAFKA_SESSION_MS: "6000" };
/** Process start-up, the last log lines and exit on this 2-core machine shared with other tests. */
const EXIT_MARGIN_MS = 15_000;

let kafka: PrivateKafka;
let client: pg.Client;
let writerClient: pg.Client;

function config(): Record<string, unknown> {
  return {
    name: deployment,
    sources: [pgSourceConfig(source, [`${schema}.*`])],
    topics: { kind: "kafka", brokers: kafka.brokers, partitions: 3, transactions: true, retention: { max_age: 0 } },
    sinks: [{ kind: "duckdb", name: "local", path: duckPath, batch: { max_wait: "100ms" }, retry: { initial: "200ms", max: "2s" } }],
    shutdown: { timeout: `${SHUTDOWN_TIMEOUT_MS}ms` },
  };
}

before(async () => {
  kafka = await PrivateKafka.start();
  client = await pgClient();
  writerClient = await pgClient();
  await client.query(`CREATE SCHEMA "${schema}"`);
  await client.query(createTableSql(items));
});

after(async () => {
  await killAllDaemons();
  await kafka.destroy();
  await writerClient.end();
  await dropPostgres(client, names);
  await client.end();
  removeDir(dir);
});

async function assertDuckDbEqual(label: string): Promise<void> {
  const [read] = await readDuckDb(duckPath, [{ def: items, target: `${schema}_items` }]);
  const expected = expectedFor("duckdb", items, await readPostgres(client, items));
  assert.ok(expected.size > 50, "rows to compare");
  assertTablesEqual(expected, read!.rows, `DuckDB ${label}`);
}

test("Kafka stopped while PostgreSQL keeps writing: the daemon waits, reports not ready, catches up; shutdown during an outage is bounded", { timeout: 300_000 }, async (t) => {
  const rng = new Rng();
  t.diagnostic(`seed ${rng.seed}; private Kafka at ${kafka.brokers.join(",")}, outage ${OUTAGE_MS / 1000} s`);
  let counter = 0;
  const workload = new Workload(writerClient, [{ def: items, newKey: () => [String(++counter)] }], rng, { negativeZero: false });
  for (let i = 0; i < 100; i++) await workload.insert(workload.tables[0]!);
  let writing = true;
  const writer = (async () => {
    while (writing) {
      await workload.transaction();
      await sleep(20);
    }
  })();
  let daemon = await SluiceDaemon.start(dir, config(), "run1", { env: SESSION_ENV });
  try {
    await waitFor("the daemon to be ready", async () => (await daemon.status()).ready, { daemon, timeoutMs: 90_000 });
    await waitFor("the sink to apply changes", async () => (await daemon.status()).sinks[0]!.freshnessSeconds !== null, { daemon, timeoutMs: 60_000 });

    // 1. an outage while capture and the sink are busy
    await kafka.down();
    const answers = new Map<number, number>();
    let waiting: unknown = null;
    let statusAnswered = 0;
    const until = Date.now() + OUTAGE_MS;
    while (Date.now() < until) {
      assert.equal(daemon.exitStatus, null, `the daemon exited during the outage\n${daemon.logTail()}`);
      assert.equal(daemon.fatalLine, null, `a component stopped during the outage:\n${daemon.fatalLine}`);
      const response = await daemon.get("/readyz");
      answers.set(response.status, (answers.get(response.status) ?? 0) + 1);
      const body = (await response.json()) as { ready: boolean; waiting?: unknown };
      if (response.status === 503 && body.waiting) waiting = body.waiting;
      // /status answers during the outage too (sink lag unknown), within the helper's 10 s request timeout.
      statusAnswered += (await daemon.status()).sinks.length;
      await sleep(500);
    }
    t.diagnostic(`outage: /readyz answers ${JSON.stringify([...answers])}; waiting: ${JSON.stringify(waiting)}`);
    await kafka.up();
    assert.ok((answers.get(503) ?? 0) > 0, `/readyz answers 503 while Kafka is down; answers: ${JSON.stringify([...answers])}`);
    assert.match(JSON.stringify(waiting), /Kafka/, "/readyz says what waits for Kafka");
    assert.ok(statusAnswered > 0, "/status answered during the outage");
    const back = Date.now();
    let readyz: unknown = null;
    const recovering = new Set<string>();
    await waitFor(
      "/readyz to answer 200 again",
      async () => {
        const response = await daemon.get("/readyz");
        readyz = await response.json();
        for (const [component, why] of Object.entries((readyz as { waiting?: Record<string, string> }).waiting ?? {})) recovering.add(`${component}: ${why.slice(0, 120)}`);
        return response.status === 200;
      },
      { daemon, timeoutMs: 120_000, lastSeen: () => readyz },
    );
    t.diagnostic(`ready again ${Date.now() - back} ms after Kafka answered; meanwhile waiting: ${[...recovering].join(" | ")}`);
    await sleep(1_000);
    writing = false;
    await writer;
    await waitCaughtUp(daemon, client, { timeoutMs: 120_000 });
    await daemon.stop();
    await assertDuckDbEqual("after a Kafka outage");

    // 2. SIGTERM while Kafka is down: bounded by shutdown.timeout, nothing lost
    daemon = await SluiceDaemon.start(dir, config(), "run2", { env: SESSION_ENV });
    await waitFor("the daemon to be ready", async () => (await daemon.status()).ready, { daemon, timeoutMs: 90_000 });
    for (let i = 0; i < 50; i++) await workload.transaction();
    await kafka.down();
    for (let i = 0; i < 50; i++) await workload.transaction();
    await sleep(3_000);
    const signalled = Date.now();
    daemon.child.kill("SIGTERM");
    const deadline = sleep(SHUTDOWN_TIMEOUT_MS + EXIT_MARGIN_MS).then(() => "still running" as const);
    const exit = await Promise.race([daemon.exited, deadline]);
    t.diagnostic(`shutdown during the outage took ${Date.now() - signalled} ms (shutdown.timeout ${SHUTDOWN_TIMEOUT_MS} ms); abandoned: ${/"abandoned":(\[[^\]]*\])/.exec(daemon.logTail(200))?.[1] ?? "nothing"}`);
    assert.notEqual(exit, "still running", `the daemon did not exit within shutdown.timeout + ${EXIT_MARGIN_MS} ms\n${daemon.logTail()}`);
    assert.deepEqual(exit, { code: 0, signal: null }, `exit after an abandoned drain (nothing is lost)\n${daemon.logTail()}`);
    await kafka.up();
    daemon = await SluiceDaemon.start(dir, config(), "run3", { env: SESSION_ENV });
    await waitFor("the restarted daemon to be ready", async () => (await daemon.status()).ready, { daemon, timeoutMs: 120_000 });
    await waitCaughtUp(daemon, client, { timeoutMs: 120_000 });
    await daemon.stop();
    await assertDuckDbEqual("after a shutdown during a Kafka outage and a restart");
  } finally {
    writing = false;
    await writer;
  }
});
