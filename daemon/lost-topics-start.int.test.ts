/**
 * `sluice run` after the built-in registry's Kafka topic was deleted while Sluice was stopped (the wiring of 48b924c:
 * the config's policy and --accept-lost-topics reach the topic log's open): refused with INTERNAL_TOPIC_LOST and exit
 * code 1, nothing created; with --accept-lost-topics the start goes on, warned, and the registry's topic is there again.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, test } from "node:test";
import { Kafka, logLevel } from "kafkajs";
import { guardRequestQueue } from "../connectors/kafka/kafka-client.ts";
import { KafkaTopicLog } from "../connectors/kafka/kafka-log.ts";
import { deleteKafkaDeployment, testDeployment, testKafkaConfig } from "../connectors/kafka/kafka-test-config.ts";
import { registryTopic } from "../connectors/topics/names.ts";
import { createLogger } from "../runtime/logger.ts";
import { kafka } from "../test/services/ports.ts";

guardRequestQueue();
const deployment = testDeployment("loststart");
const dir = mkdtempSync(join(tmpdir(), "sluice-lost-topics-"));
const admin = new Kafka({ brokers: [...kafka.brokers], logLevel: logLevel.NOTHING }).admin();
after(async () => {
  await admin.disconnect();
  await deleteKafkaDeployment(deployment);
  rmSync(dir, { recursive: true, force: true });
});

/** A port nothing listens on now (bound, then let go). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const configFile = join(dir, "sluice.yaml");
writeFileSync(
  configFile,
  `name: ${deployment}
http: { listen: "127.0.0.1:${await freePort()}" }
sources:
  - { name: pg, kind: postgres, database: app, user: u, tables: [app.*] }
topics: { kind: kafka, brokers: [${kafka.brokers.join(", ")}], partitions: 1 }
sinks:
  - { kind: duckdb, name: warehouse, path: ${join(dir, "warehouse.duckdb")} }
`,
);

/** Runs `sluice run --role sinks` until it exits, or stops it once `started` holds; its exit code and output. */
async function run(args: string[], started: () => Promise<boolean>): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, [join(import.meta.dirname, "sluice.js"), "run", "-c", configFile, "--role", "sinks", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
  for (let done = false; !done; ) {
    done = await Promise.race([exited.then(() => true), sleep(200).then(() => false)]);
    if (!done && (await started())) {
      child.kill("SIGTERM");
      done = true;
    }
  }
  return { code: await exited, output };
}

test("sluice run refuses a start after the registry's topic was deleted while stopped (exit 1, INTERNAL_TOPIC_LOST), and goes on with --accept-lost-topics", { timeout: 60_000 }, async () => {
  const log = await KafkaTopicLog.open({ config: testKafkaConfig(), deployment, logger: createLogger("silent") });
  try {
    const data = `${deployment}.pg.app.orders`;
    await log.createTopic({ name: data, partitions: 1, retentionMs: null, retentionBytes: null, compacted: true });
    await log.produce([{ topic: data, key: Buffer.from([0, 0, 0, 0, 1, 2]), value: Buffer.from([0, 0, 0, 0, 2, 4]), timestamp: Date.now() }]);
  } finally {
    await log.close();
  }
  await admin.connect();
  await admin.deleteTopics({ topics: [registryTopic(deployment)], timeout: 30_000 });
  while ((await admin.listTopics()).includes(registryTopic(deployment))) await sleep(50);

  const refused = await run([], async () => false);
  assert.equal(refused.code, 1, refused.output);
  assert.match(refused.output, /INTERNAL_TOPIC_LOST/);
  assert.ok(refused.output.includes(`records in ${deployment}.pg.app.orders reference schema ids 1, 2`), refused.output);
  assert.equal((await admin.listTopics()).includes(registryTopic(deployment)), false);

  const accepted = await run(["--accept-lost-topics"], async () => (await admin.listTopics()).includes(registryTopic(deployment)));
  assert.match(accepted.output, /loss accepted \(--accept-lost-topics\), created again: [^"]*sluice\.schemas/);
  assert.ok((await admin.listTopics()).includes(registryTopic(deployment)));
});
