/**
 * Each sink runs in a worker thread of its own (daemon/sink-thread.ts). What crosses between the
 * threads must work through the real daemon: schemas fetched from the main thread's registry, the
 * sinks' metrics merged into one /metrics, `sluice query` and a zero-downtime rebuild answered by
 * the sink's thread, its log lines on the daemon's standard output, and a sink that cannot start
 * stopping the daemon with an error that names it.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type pg from "pg";
import { dropPostgres, killAllDaemons, metricValue, pgClient, pgSourceConfig, randomName, removeDir, runSluice, SluiceDaemon, startReady, tempDir, waitCaughtUp, waitFor } from "./helpers.ts";

const schema = randomName("e2e_thr");
const source = randomName("src");
const deployment = randomName("dep");
const names = { slot: `sluice_${source}`, publication: `sluice_${source}`, schema };
const otherSource = randomName("src");
const dir = tempDir("threads");
let client: pg.Client;

before(async () => {
  client = await pgClient();
  await client.query(`CREATE SCHEMA "${schema}"`);
  await client.query(`CREATE TABLE "${schema}".items (id bigint PRIMARY KEY, name text, big bigint)`);
});

after(async () => {
  await killAllDaemons();
  await dropPostgres(client, { slot: `sluice_${otherSource}`, publication: `sluice_${otherSource}` });
  await dropPostgres(client, names);
  await client.end();
  removeDir(dir);
});

const config = {
  name: deployment,
  sources: [pgSourceConfig(source, [`${schema}.*`])],
  topics: { kind: "embedded", path: join(dir, "log.db") },
  sinks: [
    { kind: "duckdb", name: "warehouse", path: join(dir, "warehouse.duckdb"), batch: { max_wait: "50ms" } },
    { kind: "duckdb", name: "archive", path: join(dir, "archive.duckdb"), batch: { max_wait: "50ms" } },
  ],
};

async function query(configFile: string, sink: string, sql: string): Promise<string> {
  const result = await runSluice(["query", "-c", configFile, "--sink", sink, sql]);
  assert.equal(result.code, 0, `sluice query failed: ${result.stderr}`);
  return result.stdout;
}

test("sinks in their own threads: changes, metrics, query, rebuild and log lines cross between threads", { timeout: 180_000 }, async () => {
  await client.query(`INSERT INTO "${schema}".items SELECT g, 'item ' || g, CASE WHEN g = 1 THEN 9007199254740993 ELSE g END FROM generate_series(1, 500) g`);
  const daemon = await startReady(dir, config, "threads");
  await client.query(`UPDATE "${schema}".items SET name = 'renamed' WHERE id <= 100`);
  await client.query(`DELETE FROM "${schema}".items WHERE id > 450`);
  await waitCaughtUp(daemon, client);

  // Both threads decoded with schemas from the main thread and applied everything.
  for (const sink of ["warehouse", "archive"]) {
    const out = await query(daemon.configFile, sink, `SELECT count(*) AS n, count(*) FILTER (WHERE name = 'renamed') AS renamed, max(big) AS big FROM "${schema}_items"`);
    assert.match(out, /\b450\s+100\s+9007199254740993\b/, `${sink}: ${out}`);
  }

  // One /metrics: each sink thread's counters, and the process metrics once.
  const metrics = await daemon.metrics();
  for (const sink of ["warehouse", "archive"]) {
    const applied = [...metrics.matchAll(new RegExp(`^sluice_sink_changes_applied_total\\{[^}]*sink="${sink}"[^}]*\\} (\\d+)`, "gm"))].reduce((sum, m) => sum + Number(m[1]), 0);
    assert.ok(applied >= 500 + 100 + 50, `${sink} applied ${applied} changes by its metrics`);
  }
  // Commit → stage latencies: the streamed UPDATE and DELETE are two transactions, observed at capture and in each sink's thread.
  for (const stage of ["captured", "durable"]) assert.ok(metricValue(metrics, "sluice_capture_latency_seconds_count", { source, stage }) >= 2, `capture stage ${stage} observed`);
  for (const sink of ["warehouse", "archive"]) {
    for (const stage of ["polled", "applied"]) assert.ok(metricValue(metrics, "sluice_sink_latency_seconds_count", { sink, stage }) >= 2, `${sink} stage ${stage} observed`);
  }
  for (const name of ["sluice_process_cpu_seconds_total", "sluice_process_start_time_seconds", "sluice_nodejs_heap_size_used_bytes"]) {
    assert.equal(metrics.match(new RegExp(`^${name} `, "gm"))?.length, 1, `${name} appears once`);
  }

  // A rebuild through the running daemon is done by the sink's thread, and the table still answers.
  const rebuild = await runSluice(["replay", "-c", daemon.configFile, "--sink", "warehouse", "--from-beginning", "--rebuild", "--execute"]);
  assert.equal(rebuild.code, 0, `rebuild failed: ${rebuild.stderr}\n${rebuild.stdout}`);
  assert.match(await query(daemon.configFile, "warehouse", `SELECT count(*) AS n FROM "${schema}_items"`), /\b450\b/);

  await daemon.stop();
  // Sink threads log through the main thread: whole JSON lines, tagged with their sink.
  const lines = readFileSync(daemon.logFile, "utf8").split("\n").filter((line) => line.startsWith("{"));
  for (const line of lines) JSON.parse(line);
  assert.ok(lines.some((line) => JSON.parse(line).sink === "warehouse"), "a log line from the warehouse thread");
});

test("a sink thread that stops for good stops the daemon with an error naming the sink", { timeout: 120_000 }, async () => {
  // A second daemon for the same deployment: its sinks cannot take the leases the first one holds (renewed every second
  // here); it gives up once a lease a dead process left would have run out, 3 s and 5 s more with this lease length.
  const env = { SLUICE_SINK_LEASE_MS: "3000" };
  const first = await startReady(dir, config, "first", { env });
  const second = await SluiceDaemon.start(dir, { ...config, sources: [pgSourceConfig(otherSource, [`${schema}.*`])], sinks: [config.sinks[0]] }, "second", { env });
  const exit = await waitFor("the second daemon to exit", async () => second.exitStatus, { timeoutMs: 60_000 });
  assert.equal(exit.code, 1, `the second daemon exits 1\n${second.logTail()}`);
  assert.match(second.logTail(), /"msg":"sink warehouse stopped: [^"]*running in another process/, "the error names the sink");
  assert.ok((await first.status()).sinks.every((sink) => sink.ready), "the first daemon's sinks run on");
  await first.stop();
});
