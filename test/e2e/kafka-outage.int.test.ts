/**
 * End to end (issue 12, item 4): Kafka goes away and comes back. Two daemons run PostgreSQL →
 * Kafka → DuckDB (two deployments capturing one table, each with its own slot and DuckDB file)
 * against a PRIVATE broker (its own ports and data dir, test/services/private-kafka.ts) that this
 * test stops (12 s from its stop to its start, which takes seconds more;
 * SLUICE_KAFKA_OUTAGE_SECONDS=60 for the long version) while PostgreSQL keeps writing. The first
 * must never exit, /readyz must answer 503 (naming what waits for Kafka) during the outage and 200
 * after, and its DuckDB must end equal to PostgreSQL. The second gets SIGTERM
 * during the outage, once it waits for Kafka: it must exit 0 within shutdown.timeout (plus a margin
 * for process start-up and exit), and a restart once Kafka is back loses nothing. (One outage for
 * both: each stop and start of the broker's JVM takes seconds, much more on a loaded machine.)
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
const dir = tempDir("kafka-outage");
/** The daemon that waits the outage out, and the one stopped during it. */
const waits = deploymentNames("waits");
const stopped = deploymentNames("stopped");

function deploymentNames(label: string): { label: string; source: string; deployment: string; duckPath: string; slot: string; publication: string } {
  const source = randomName("src");
  return { label, source, deployment: randomName("dep"), duckPath: join(dir, `${label}.duckdb`), slot: `sluice_${source}`, publication: `sluice_${source}` };
}
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
 * From the broker's stop to its start, which takes seconds more before it answers: longer than the
 * Kafka clients' own retries give a request (the transactional producer's, the longest but the
 * consumer's: 10 retries from 10 ms doubling to 5 s, ~10 s, ~12 s with jitter), so it is the daemon
 * that waits the outage out, not one request retried inside kafkajs.
 */
const OUTAGE_MS = Number(process.env["SLUICE_KAFKA_OUTAGE_SECONDS"] ?? 12) * 1000;
/** Shutdown during the outage waits this long for what waits for Kafka, then abandons it. */
const SHUTDOWN_TIMEOUT_MS = 5_000;
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

function config(of: typeof waits): Record<string, unknown> {
  return {
    name: of.deployment,
    sources: [pgSourceConfig(of.source, [`${schema}.*`])],
    topics: { kind: "kafka", brokers: kafka.brokers, partitions: 3, transactions: true, retention: { max_age: 0 } },
    sinks: [{ kind: "duckdb", name: "local", path: of.duckPath, batch: { max_wait: "100ms" }, retry: { initial: "200ms", max: "2s" } }],
    shutdown: { timeout: `${SHUTDOWN_TIMEOUT_MS}ms` },
  };
}

function start(of: typeof waits, run: string): Promise<SluiceDaemon> {
  return SluiceDaemon.start(dir, config(of), `${of.label}-${run}`, { env: SESSION_ENV });
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
  await dropPostgres(client, { slot: waits.slot, publication: waits.publication });
  await dropPostgres(client, { slot: stopped.slot, publication: stopped.publication, schema });
  await client.end();
  removeDir(dir);
});

async function assertDuckDbEqual(of: typeof waits, label: string): Promise<void> {
  const [read] = await readDuckDb(of.duckPath, [{ def: items, target: `${schema}_items` }]);
  const expected = expectedFor("duckdb", items, await readPostgres(client, items));
  assert.ok(expected.size > 50, "rows to compare");
  assertTablesEqual(expected, read!.rows, `DuckDB ${label}`);
}

test("Kafka stopped while PostgreSQL keeps writing: the daemon waits, reports not ready, catches up; shutdown during an outage is bounded", { timeout: 300_000 }, async (t) => {
  const rng = new Rng();
  t.diagnostic(`seed ${rng.seed}; private Kafka at ${kafka.brokers.join(",")}, outage ${OUTAGE_MS / 1000} s`);
  const began = Date.now();
  const phases: string[] = [];
  const phase = (what: string) => phases.push(`${what} ${((Date.now() - began) / 1000).toFixed(1)} s`);
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
  const daemon = await start(waits, "run1");
  let other = await start(stopped, "run1");
  try {
    for (const d of [daemon, other]) {
      await waitFor("the daemon to be ready", async () => (await d.status()).ready, { daemon: d, timeoutMs: 90_000 });
      await waitFor("the sink to apply changes", async () => (await d.status()).sinks[0]!.freshnessSeconds !== null, { daemon: d, timeoutMs: 60_000 });
    }
    phase("both ready and applying");

    // An outage while capture and the sinks are busy.
    await kafka.down();
    const downAt = Date.now();
    phase("Kafka down");
    // The second daemon: SIGTERM once it waits for Kafka, with the changes written since it went down to publish.
    let waitingNow: unknown = null;
    await waitFor(
      "/readyz of the daemon to stop to say what waits for Kafka",
      async () => {
        const response = await other.get("/readyz");
        waitingNow = ((await response.json()) as { waiting?: unknown }).waiting ?? null;
        return response.status === 503 && /Kafka/.test(JSON.stringify(waitingNow));
      },
      { daemon: other, timeoutMs: 60_000, lastSeen: () => waitingNow },
    );
    const signalled = Date.now();
    other.child.kill("SIGTERM");
    const exiting = other.exited.then((exit) => ({ exit, ms: Date.now() - signalled }));
    phase("SIGTERM to the second");

    // The first waits the outage out.
    const answers = new Map<number, number>();
    let waiting: unknown = null;
    let statusAnswered = 0;
    const until = downAt + OUTAGE_MS;
    for (let first = true; first || Date.now() < until; first = false) {
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
    // Kafka stays down until the second daemon exited or its time is up.
    const deadline = sleep(Math.max(0, signalled + SHUTDOWN_TIMEOUT_MS + EXIT_MARGIN_MS - Date.now())).then(() => "still running" as const);
    const exit = await Promise.race([exiting, deadline]);
    await kafka.up();
    phase("Kafka up");
    assert.ok((answers.get(503) ?? 0) > 0, `/readyz answers 503 while Kafka is down; answers: ${JSON.stringify([...answers])}`);
    assert.match(JSON.stringify(waiting), /Kafka/, "/readyz says what waits for Kafka");
    assert.ok(statusAnswered > 0, "/status answered during the outage");
    assert.ok(exit !== "still running", `the daemon did not exit within shutdown.timeout + ${EXIT_MARGIN_MS} ms\n${other.logTail()}`);
    t.diagnostic(`shutdown during the outage took ${exit.ms} ms (shutdown.timeout ${SHUTDOWN_TIMEOUT_MS} ms); abandoned: ${/"abandoned":(\[[^\]]*\])/.exec(other.logTail(200))?.[1] ?? "nothing"}`);
    assert.deepEqual(exit.exit, { code: 0, signal: null }, `exit after an abandoned drain (nothing is lost)\n${other.logTail()}`);
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
    phase("first caught up and stopped");
    await assertDuckDbEqual(waits, "after a Kafka outage");

    // The second, restarted once Kafka is back, loses nothing.
    other = await start(stopped, "run2");
    await waitFor("the restarted daemon to be ready", async () => (await other.status()).ready, { daemon: other, timeoutMs: 120_000 });
    phase("second restarted and ready");
    await waitCaughtUp(other, client, { timeoutMs: 120_000 });
    await other.stop();
    phase("second caught up and stopped");
    t.diagnostic(`phases: ${phases.join(", ")}`);
    await assertDuckDbEqual(stopped, "after a shutdown during a Kafka outage and a restart");
  } finally {
    writing = false;
    await writer;
  }
});
