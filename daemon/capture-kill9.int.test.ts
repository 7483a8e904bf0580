/**
 * kill -9 of capture while several batches are in flight (handed to the topic log, not yet
 * durable), against the embedded log and the real Kafka broker (transactions): the source is never
 * acknowledged past what is durable — the checkpoint read back by the next process (opened as
 * `sluice run` opens it) covers every acknowledged batch, every batch it covers is stored whole
 * and once, none beyond it (exactly-once), and each key's records are in order.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { Kafka, logLevel } from "kafkajs";
import type { TopicsConfig } from "../config/schema.ts";
import type { StoredRecord, TopicLog } from "../connectors/contracts.ts";
import { testDeployment, testKafkaConfig } from "../connectors/kafka/kafka-test-config.ts";
import { readToEnd } from "../connectors/topics/contract-suite.ts";
import { openTopicLog } from "../connectors/topics/open.ts";
import { createLogger } from "../runtime/logger.ts";
import { CAPTURE_CRASH_BASE } from "./capture-crash-args.ts";
import type { CaptureCrashArgs } from "./capture-crash-args.ts";

const logger = createLogger("warn");
const CHANGES_PER_BATCH = 200;
const dir = mkdtempSync(join(tmpdir(), "sluice-capture-kill9-"));
const deployments: string[] = [];

after(async () => {
  rmSync(dir, { recursive: true, force: true });
  const admin = new Kafka({ brokers: testKafkaConfig().brokers, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  const topics = (await admin.listTopics()).filter((t) => deployments.some((d) => t.startsWith(`${d}.`)));
  if (topics.length > 0) await admin.deleteTopics({ topics }).catch(() => undefined);
  await admin.disconnect();
});

/** Opens the log as the restarted daemon does (with Kafka, the producer is registered only when capture reads its checkpoint). */
function openAsDaemon(topics: TopicsConfig, deployment: string): Promise<TopicLog> {
  return openTopicLog(topics, deployment, logger, undefined, undefined, { lazyProducer: topics.kind === "kafka" });
}

/**
 * Starts the writer, waits until it acknowledged `killAfter` batches and, when `minInFlight` > 0,
 * has at least that many batches handed to the log and not yet durable; then kills it with SIGKILL.
 */
async function runAndKill(args: CaptureCrashArgs, killAfter: number, minInFlight: number): Promise<{ lastAcked: number; inFlightAtKill: number }> {
  const script = fileURLToPath(new URL("./capture-crash-writer.ts", import.meta.url));
  const child = spawn(process.execPath, [script, JSON.stringify(args)], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  const lines = createInterface({ input: child.stdout });
  let lastAcked = -1;
  let inFlight = 0;
  let ready = false;
  const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
  for await (const line of lines) {
    const produced = /^produce (\d+)$/.exec(line);
    if (produced) inFlight = Number(produced[1]);
    const acked = /^acked (\d+)$/.exec(line);
    if (acked) {
      lastAcked = Number(acked[1]);
      inFlight = Math.max(0, inFlight - 1);
    }
    if (lastAcked >= killAfter && inFlight >= minInFlight) {
      ready = true;
      break;
    }
  }
  clearTimeout(timer);
  const inFlightAtKill = inFlight;
  // Anywhere in the next batches' produce → commit → acknowledge cycle.
  await new Promise((resolve) => setTimeout(resolve, Math.random() * 20));
  child.kill("SIGKILL");
  for await (const line of lines) {
    const acked = /^acked (\d+)$/.exec(line);
    if (acked) lastAcked = Number(acked[1]);
  }
  await exited;
  assert.ok(ready, `the capture never had ${minInFlight} batches in flight after acknowledging ${killAfter} (acknowledged through ${lastAcked}): ${stderr}`);
  assert.equal(child.signalCode, "SIGKILL", `the writer was killed, not finished: ${stderr}`);
  return { lastAcked, inFlightAtKill };
}

async function readAll(log: TopicLog, topic: string): Promise<StoredRecord[]> {
  const consumer = await log.consumer(`capture-kill9.read.${randomBytes(4).toString("hex")}`, [topic]);
  try {
    return await readToEnd(log, consumer, [topic], undefined, 5_000);
  } finally {
    await consumer.close();
  }
}

async function killAndCheck(topics: TopicsConfig, deployment: string, round: number, minInFlight: number): Promise<string> {
  const topic = `${deployment}.crash.r${round}`;
  const setup = await openTopicLog(topics, deployment, logger);
  try {
    for (const name of [topic, `${topic}.parked`]) await setup.createTopic({ name, partitions: 3, retentionMs: null, retentionBytes: null, compacted: false });
  } finally {
    await setup.close();
  }
  const source = `crash_${randomBytes(3).toString("hex")}`;
  const args: CaptureCrashArgs = { deployment, topics, topic, source, changesPerBatch: CHANGES_PER_BATCH };
  const { lastAcked, inFlightAtKill } = await runAndKill(args, 3 + Math.floor(Math.random() * 20), minInFlight);
  const reopened = await openAsDaemon(topics, deployment);
  try {
    const checkpoint = await reopened.readCheckpoint(source);
    assert.ok(checkpoint, "a checkpoint was stored");
    const covered = Number(checkpoint.position.commit - CAPTURE_CRASH_BASE);
    assert.ok(covered >= lastAcked, `acknowledged through batch ${lastAcked}, but the checkpoint a restart reads covers only batch ${covered}: the source was acknowledged past what is durable`);
    const records = await readAll(reopened, topic);
    const perBatch = new Map<number, number>();
    for (const r of records) {
      const batch = Number(Buffer.from(r.value!).toString().split(":")[0]);
      perBatch.set(batch, (perBatch.get(batch) ?? 0) + 1);
    }
    for (let b = 0; b <= covered; b++) assert.equal(perBatch.get(b), CHANGES_PER_BATCH, `batch ${b} (covered by the checkpoint) stored whole and once`);
    if (reopened.checkpointGuarantee === "exactly-once") {
      assert.deepEqual([...perBatch.keys()].filter((b) => b > covered), [], "no batch beyond the checkpoint");
    }
    const byKey = new Map<string, string[]>();
    for (const r of records) byKey.set(Buffer.from(r.key!).toString(), [...(byKey.get(Buffer.from(r.key!).toString()) ?? []), Buffer.from(r.value!).toString()]);
    const order = (v: string) => v.split(":").map(Number) as [number, number];
    for (const [key, values] of byKey) {
      const sorted = [...values].sort((a, b) => order(a)[0] - order(b)[0] || order(a)[1] - order(b)[1]);
      assert.deepEqual(values, sorted, `order of ${key}`);
    }
    return `round ${round}: killed with ${inFlightAtKill} batch(es) in flight, acknowledged through ${lastAcked}, the checkpoint read after the kill covers ${covered}`;
  } finally {
    await reopened.close();
  }
}

test("kill -9 of capture with several batches in flight to Kafka (transactions): nothing acknowledged is lost, nothing beyond the checkpoint is stored (3 kills)", { timeout: 300_000 }, async (t) => {
  const deployment = testDeployment("ck9");
  deployments.push(deployment);
  const topics = testKafkaConfig() as TopicsConfig;
  for (let round = 1; round <= 3; round++) t.diagnostic(await killAndCheck(topics, deployment, round, 3));
});

test("kill -9 of capture writing to the embedded log: nothing acknowledged is lost, nothing beyond the checkpoint is stored (3 kills)", { timeout: 300_000 }, async (t) => {
  const deployment = testDeployment("ce9");
  const topics: TopicsConfig = { kind: "embedded", path: join(dir, `${deployment}.db`), partitions: 3, retention: { cleanup_policy: "compact", max_age: 0, tombstones: 86_400_000, min_compaction_lag: 0 }, max_record_bytes: 16 * 2 ** 20 };
  for (let round = 1; round <= 3; round++) t.diagnostic(await killAndCheck(topics, deployment, round, 0));
});
