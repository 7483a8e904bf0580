/**
 * End to end: /status and /metrics do not wait for a topic log that is slow to answer. A sink's lag is
 * asked of Kafka (the group's offsets, then each topic's); a busy daemon or broker made each answer
 * take seconds (live deployment: /status 4-6 s during a 400k-row snapshot, so `sluice status` and
 * probes with short timeouts took the daemon for dead). The daemon runs PostgreSQL → a PRIVATE Kafka
 * broker → DuckDB; the broker is frozen (SIGSTOP) so the lag read cannot finish. /status must then
 * answer with the sink's lag unknown (lagRecords null: no figure read after the request) and the last
 * lag read beside it (lastLag, with its age), and /metrics with the last lag read.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { promisify } from "node:util";
import type pg from "pg";
import { PrivateKafka } from "../services/private-kafka.ts";
import { dropPostgres, killAllDaemons, metricValue, pgClient, pgSourceConfig, randomName, removeDir, SluiceDaemon, tempDir, waitCaughtUp } from "./helpers.ts";

const run = promisify(execFile);
const schema = randomName("e2e_status_busy");
const source = randomName("src");
const names = { slot: `sluice_${source}`, publication: `sluice_${source}`, schema };
const dir = tempDir("status-busy-log");

let kafka: PrivateKafka;
let client: pg.Client;
let frozen = false;

async function signalBroker(signal: "STOP" | "CONT"): Promise<void> {
  const pid = readFileSync(join(kafka.dir, "run", "kafka.pid"), "utf8").trim();
  await run("kill", [`-${signal}`, pid]);
  frozen = signal === "STOP";
}

before(async () => {
  kafka = await PrivateKafka.start();
  client = await pgClient();
  await client.query(`CREATE SCHEMA "${schema}"`);
  await client.query(`CREATE TABLE "${schema}".items (id int PRIMARY KEY, v text)`);
  await client.query(`INSERT INTO "${schema}".items SELECT i, 'row ' || i FROM generate_series(1, 100) i`);
});

after(async () => {
  if (frozen) await signalBroker("CONT").catch(() => undefined);
  await killAllDaemons();
  await kafka?.destroy();
  await dropPostgres(client, names).catch(() => undefined);
  await client?.end();
  removeDir(dir);
});

test("with the topic log not answering, /status answers the sink's last lag read (lastLag) and /metrics its last value, without waiting for a new read", { timeout: 240_000 }, async () => {
  const daemon = await SluiceDaemon.start(dir, {
    name: randomName("dep"),
    sources: [pgSourceConfig(source, [`${schema}.*`])],
    topics: { kind: "kafka", brokers: kafka.brokers, partitions: 1, transactions: true, retention: { max_age: 0 } },
    sinks: [{ kind: "duckdb", name: "duck", path: join(dir, "wh.duckdb"), batch: { max_wait: "100ms" } }],
  });
  await waitCaughtUp(daemon, client);
  assert.equal(await daemon.metric("sluice_sink_lag_records", { sink: "duck" }), 0);

  await signalBroker("STOP");
  // Several requests at once, as a probe and an operator would send them.
  const answers = await Promise.all([1, 2, 3].map(() => daemon.status()));
  for (const status of answers) {
    const sink = status.sinks.find((s) => s.name === "duck") as { lagRecords: number | null; lastLag?: { records: number; ageSeconds: number } | null } | undefined;
    assert.equal(sink?.lagRecords, null, "no lag read after the request could finish");
    assert.equal(sink?.lastLag?.records, 0, `the last lag read is shown beside it: ${JSON.stringify(sink)}`);
    assert.ok(sink.lastLag.ageSeconds >= 0);
  }
  const metrics = await daemon.metrics();
  assert.equal(metricValue(metrics, "sluice_sink_lag_records", { sink: "duck" }), 0, "the last lag read stays exported");

  await signalBroker("CONT");
  await waitCaughtUp(daemon, client);
  await daemon.stop();
});
