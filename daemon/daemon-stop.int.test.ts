/**
 * A daemon that stopped completely leaves nothing that keeps the process alive (`sluice run` then
 * exits by itself), against the real Kafka broker: also when requests still query the topic log
 * after it closed (/status or /metrics requests, or an announcement of this instance, in flight
 * while the daemon stopped). kafkajs connects a disconnected client again at its next request, and
 * a connected one holds the process open with its request-timeout timer.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { deleteKafkaDeployment, testDeployment, testKafkaConfig } from "../connectors/kafka/kafka-test-config.ts";

const dir = mkdtempSync(join(tmpdir(), "sluice-daemon-stop-"));
const deployment = testDeployment("daemon_stop");

after(async () => {
  rmSync(dir, { recursive: true, force: true });
  await deleteKafkaDeployment(deployment);
});

/** Runs daemon-stop-child.ts; resolves with its output once it exits, or with `held: true` when it is still alive `graceMs` after it stopped the daemon (then it is killed). */
async function runChild(config: unknown, graceMs: number): Promise<{ code: number | null; stdout: string; stderr: string; held: boolean }> {
  const script = fileURLToPath(new URL("./daemon-stop-child.ts", import.meta.url));
  const child = spawn(process.execPath, [script, JSON.stringify(config)], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  let held = false;
  let timer: NodeJS.Timeout | undefined;
  const killAfter = (ms: number, holding: boolean) => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      held = holding;
      child.kill("SIGKILL");
    }, ms);
  };
  // Starting and stopping a daemon takes seconds (more on a busy machine); the grace starts once it stopped.
  killAfter(90_000, false);
  child.stdout.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
    if (stdout.includes("stopped ") && !held) killAfter(graceMs, true);
  });
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.on("exit", (exitCode) => resolve(exitCode)));
  clearTimeout(timer);
  return { code, stdout, stderr, held };
}

test("a stopped daemon (Kafka topic log, a DuckDB sink thread) holds nothing open, even when /status runs after its topic log closed", { timeout: 150_000 }, async () => {
  const config = {
    name: deployment,
    // Never captured here (a sink-only process): the source only makes the config whole.
    sources: [{ kind: "postgres", name: "unused", host: "127.0.0.1", port: 5432, user: "sluice", password: "unused", database: "sluice", tables: ["public.*"] }],
    topics: { kind: "kafka", brokers: testKafkaConfig().brokers, partitions: 1 },
    sinks: [{ kind: "duckdb", name: "local", path: join(dir, "warehouse.duckdb") }],
  };
  // Well past the 3 s after which the child says what holds it.
  const run = await runChild(config, 10_000);
  assert.match(run.stdout, /^stopped /m, `the child did not stop the daemon (exit code ${run.code})\n${run.stderr}`);
  assert.equal(run.held, false, `the process stayed alive after the daemon stopped: ${run.stdout}`);
  assert.equal(run.code, 0, run.stderr);
  // A closed topic log knows no lag (it is not asked: asking would connect its Kafka client again).
  assert.deepEqual(JSON.parse(/^stopped (.*)$/m.exec(run.stdout)![1]!), [[null], [null], [null]]);
});
