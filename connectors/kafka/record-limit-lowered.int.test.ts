/**
 * A topic's max.message.bytes lowered by hand while Sluice writes to it (kafka-configs): Kafka refuses the next batch
 * over it as MESSAGE_TOO_LARGE. With every record of the batch within the new limit, the producer cuts the batch again
 * within it and writes it, with no capture restart (before, the batch failed as retriable KAFKA_TOPIC_LIMIT_LOWERED
 * and capture wrote everything again from its checkpoint). Real broker.
 */
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { after, test } from "node:test";
import kafkajs from "kafkajs";
import { createLogger } from "../../runtime/logger.ts";
import { readToEnd } from "../topics/contract-suite.ts";
import { KafkaTopicLog } from "./kafka-log.ts";
import { deleteKafkaDeployment, testDeployment, testKafkaConfig } from "./kafka-test-config.ts";

const logger = createLogger("silent");
const deployment = testDeployment("limlow");

after(() => deleteKafkaDeployment(deployment));

/** As kafka-configs --add-config does: the topic's other settings kept (AlterConfigs alone would reset them). */
async function setTopicConfig(topic: string, name: string, value: string): Promise<void> {
  const admin = new kafkajs.Kafka({ brokers: testKafkaConfig().brokers, logLevel: 0 }).admin();
  await admin.connect();
  try {
    const described = await admin.describeConfigs({ includeSynonyms: false, resources: [{ type: kafkajs.ConfigResourceTypes.TOPIC, name: topic }] });
    const entries = new Map((described.resources[0]?.configEntries ?? []).filter((e) => !e.isDefault && !e.readOnly).map((e) => [e.configName, e.configValue]));
    entries.set(name, value);
    await admin.alterConfigs({ validateOnly: false, resources: [{ type: kafkajs.ConfigResourceTypes.TOPIC, name: topic, configEntries: [...entries].map(([n, v]) => ({ name: n, value: v })) }] });
    // The broker applies it once it reads the change from the metadata log: until then a write may still be taken.
    for (let i = 0; i < 100; i++) {
      const now = await admin.describeConfigs({ includeSynonyms: false, resources: [{ type: kafkajs.ConfigResourceTypes.TOPIC, name: topic, configNames: [name] }] });
      if (now.resources[0]?.configEntries.find((e) => e.configName === name)?.configValue === value) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } finally {
    await admin.disconnect();
  }
}

for (const transactions of [true, false]) {
  test(`a batch over a topic's lowered max.message.bytes whose records are all within it is written in smaller batches, not failed (transactions ${transactions})`, async () => {
    const topic = `${deployment}.data.${transactions ? "tx" : "plain"}`;
    const log = await KafkaTopicLog.open({ config: testKafkaConfig({ transactions }), deployment, logger });
    try {
      await log.createTopic({ name: topic, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
      await log.produce([{ topic, key: Buffer.from("k"), value: Buffer.from("before"), timestamp: Date.now() }]);
      await setTopicConfig(topic, "max.message.bytes", "3000");
      // 20 records of 500 bytes: one batch of about 10 kB, over 3000; each record well within it.
      const records = Array.from({ length: 20 }, (_, i) => ({ topic, key: Buffer.from(`k${i}`), value: Buffer.alloc(500, 97 + (i % 26)), timestamp: Date.now() }));
      await log.produce(records);
      assert.equal(log.maxRecordBytes(topic), 3000);
      const consumer = await log.consumer(`${deployment}.read.${transactions}`, [topic]);
      const read = await readToEnd(log, consumer, [topic]);
      await consumer.close();
      assert.deepEqual(read.map((r) => Buffer.from(r.key!).toString()), ["k", ...records.map((r) => r.key.toString())]);
    } finally {
      await log.close();
    }
  });
}

// Kafka refuses a partition's records of one request above the topic's segment.bytes too (RECORD_LIST_TOO_LARGE, final),
// however high max.message.bytes is: an operator may lower it on a topic (its minimum is 1 MiB) or for the whole
// cluster (log.segment.bytes), which every topic without its own takes, as Sluice's do. Before, that refusal stopped
// capture for good, and a record within max.message.bytes but over segment.bytes was refused at every start.
test("a topic's segment.bytes lowered below max.message.bytes: a batch over it is cut again, a record over it is refused naming segment.bytes", async () => {
  const topic = `${deployment}.data.segment`;
  const log = await KafkaTopicLog.open({ config: testKafkaConfig({ transactions: true, batch_bytes: 4 * 2 ** 20 }), deployment, logger });
  try {
    await log.createTopic({ name: topic, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
    await log.produce([{ topic, key: Buffer.from("k"), value: Buffer.from("before"), timestamp: Date.now() }]);
    await setTopicConfig(topic, "segment.bytes", String(2 ** 20));
    // 12 records of 100 kB: one batch of 1.2 MB, over 1 MiB; each record well within it.
    const records = Array.from({ length: 12 }, (_, i) => ({ topic, key: Buffer.from(`k${i}`), value: Buffer.alloc(100_000, 97 + i), timestamp: Date.now() }));
    await log.produce(records);
    assert.equal(log.maxRecordBytes(topic), 2 ** 20);
    // One record of 1.5 MB, within max.message.bytes (16 MiB): refused before it is sent, naming what limits it.
    await assert.rejects(log.produce([{ topic, key: Buffer.from("big"), value: Buffer.alloc(1_500_000, 122), timestamp: Date.now() }]), (error: Error & { code?: string }) => {
      assert.equal(error.code, "RECORD_TOO_LARGE");
      assert.match(error.message, new RegExp(`over segment\\.bytes of topic ${topic.replaceAll(".", "\\.")} \\(1048576\\)`));
      // A segment of many such records (Kafka's default 1 GiB), not one a record.
      assert.match(error.message, /--add-config segment\.bytes=1073741824\)/);
      return true;
    });
    // Declared again by a process starting: said at once, with the command that raises it.
    const lines: { msg: string; fix?: string }[] = [];
    const again = await KafkaTopicLog.open({ config: testKafkaConfig({ transactions: true }), deployment, logger: createLogger("warn", new Writable({ write: (chunk: Buffer, _e, done) => (lines.push(JSON.parse(chunk.toString()) as { msg: string; fix?: string }), done()) })) });
    try {
      await again.createTopic({ name: topic, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false, maxRecordBytes: 2 * 2 ** 20 });
    } finally {
      await again.close();
    }
    const said = lines.find((l) => l.msg.startsWith("topic exists with a segment.bytes"));
    assert.ok(said, JSON.stringify(lines));
    assert.match(said.msg, /segment\.bytes of topic .* smaller than topics\.max_record_bytes/);
    assert.match(said.fix ?? "", /--add-config segment\.bytes=1073741824$/);
    const consumer = await log.consumer(`${deployment}.read.segment`, [topic]);
    const read = await readToEnd(log, consumer, [topic]);
    await consumer.close();
    assert.deepEqual(read.map((r) => Buffer.from(r.key!).toString()), ["k", ...records.map((r) => r.key.toString())]);
  } finally {
    await log.close();
  }
});
