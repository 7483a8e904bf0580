/**
 * Reading a checkpoint costs the checkpoint topic's keys in memory, not its records: Kafka never
 * compacts the active segment, where capture leaves one record per transaction. The whole topic
 * was read into arrays before the last record per key was kept (~540 B of heap a record), and a
 * restart after hours of capture ran the main thread out of memory.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, test } from "node:test";
import { promisify } from "node:util";
import kafkajs from "kafkajs";
import { createLogger } from "../../runtime/logger.ts";
import { checkpointTopic } from "../topics/names.ts";
import { KafkaTopicLog } from "./kafka-log.ts";
import { deleteKafkaDeployment, testDeployment, testKafkaConfig } from "./kafka-test-config.ts";

const deployment = testDeployment("ckptmem");
after(() => deleteKafkaDeployment(deployment));

const RECORDS = 150_000;
/** Old space of the reading process: the records' arrays took ~77 MiB at 150,000 checkpoints. */
const HEAP_MB = 32;

test(`a checkpoint is read from ${RECORDS} uncompacted checkpoint records within a ${HEAP_MB} MiB heap`, async () => {
  // The log creates the internal topics.
  await (await KafkaTopicLog.open({ config: testKafkaConfig(), deployment, logger: createLogger("warn"), access: "command" })).close();
  const producer = new kafkajs.Kafka({ clientId: "ckptmem", brokers: testKafkaConfig().brokers, logLevel: kafkajs.logLevel.NOTHING }).producer({ allowAutoTopicCreation: false });
  await producer.connect();
  try {
    const topic = checkpointTopic(deployment);
    await producer.send({ topic, acks: -1, messages: [{ key: "src_a/kept", value: "entry", partition: 0 }, { key: "src_a/gone", value: "entry", partition: 0 }, { key: "src_b", value: JSON.stringify({ source: "src_b", commit: "7", change: "7" }), partition: 0 }] });
    for (let sent = 0; sent < RECORDS; ) {
      const messages = [];
      for (let i = 0; i < 1_000 && sent < RECORDS; i++, sent++) messages.push({ key: "src_a", partition: 0, value: JSON.stringify({ source: "src_a", commit: String(1_000_000 + sent), change: String(1_000_000 + sent) }) });
      await producer.send({ topic, acks: -1, messages });
    }
    await producer.send({ topic, acks: -1, messages: [{ key: "src_a/gone", value: null, partition: 0 }] });
  } finally {
    await producer.disconnect();
  }
  const child = new URL("./testdata/read-checkpoint.ts", import.meta.url).pathname;
  const { stdout } = await promisify(execFile)(process.execPath, [`--max-old-space-size=${HEAP_MB}`, child, deployment, "src_a"], { timeout: 120_000 });
  assert.deepEqual(JSON.parse(stdout), { commit: String(1_000_000 + RECORDS - 1), entries: { kept: "entry" } });
});
