/**
 * A topic an operator set to compression.type=snappy (kafka-configs; or the broker's compression.type): the broker
 * recompresses every batch it takes with Snappy, whatever Sluice sent, and kafkajs has no Snappy codec. Found live: the
 * DuckDB sink stopped at its next fetch ('Snappy compression not implemented') and the daemon exited, at every restart
 * again. Sluice's consumers now read Snappy batches (snappy.ts). Real broker, with and without transactions.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import kafkajs from "kafkajs";
import { createLogger } from "../../runtime/logger.ts";
import { readToEnd } from "../topics/contract-suite.ts";
import { KafkaTopicLog } from "./kafka-log.ts";
import { deleteKafkaDeployment, testDeployment, testKafkaConfig } from "./kafka-test-config.ts";

const logger = createLogger("warn");
const deployment = testDeployment("snappy");

after(() => deleteKafkaDeployment(deployment));

/** As kafka-configs --add-config does: the topic's other settings kept (AlterConfigs alone would reset them). */
async function setSnappy(topic: string): Promise<void> {
  const admin = new kafkajs.Kafka({ brokers: testKafkaConfig().brokers, logLevel: 0 }).admin();
  await admin.connect();
  try {
    const described = await admin.describeConfigs({ includeSynonyms: false, resources: [{ type: kafkajs.ConfigResourceTypes.TOPIC, name: topic }] });
    const entries = new Map((described.resources[0]?.configEntries ?? []).filter((e) => !e.isDefault && !e.readOnly).map((e) => [e.configName, e.configValue]));
    entries.set("compression.type", "snappy");
    await admin.alterConfigs({ validateOnly: false, resources: [{ type: kafkajs.ConfigResourceTypes.TOPIC, name: topic, configEntries: [...entries].map(([name, value]) => ({ name, value })) }] });
  } finally {
    await admin.disconnect();
  }
}

for (const transactions of [true, false]) {
  test(`records of a topic the broker stores with Snappy are read back whole (transactions ${transactions})`, async () => {
    const log = await KafkaTopicLog.open({ config: testKafkaConfig({ transactions, compression: "gzip" }), deployment, logger });
    try {
      const topic = `${deployment}.snappy.${transactions ? "tx" : "plain"}`;
      await log.createTopic({ name: topic, partitions: 2, retentionMs: null, retentionBytes: null, compacted: true });
      await setSnappy(topic);
      // Repetitive values (long back-references), short and empty ones, a tombstone, and a batch of many records.
      const values = [...Array.from({ length: 300 }, (_, i) => `row ${i} ${"abc".repeat(i % 50)}`), "", "x".repeat(100_000)];
      await log.produce(values.map((value, i) => ({ topic, key: Buffer.from(`k${i}`), value: Buffer.from(value), timestamp: Date.now() })));
      await log.produce([{ topic, key: Buffer.from("k0"), value: null, timestamp: Date.now() }]);
      const consumer = await log.consumer(`${deployment}.read.${transactions}`, [topic]);
      const read = await readToEnd(log, consumer, [topic]);
      await consumer.close();
      assert.equal(read.length, values.length + 1);
      assert.deepEqual(read.filter((r) => r.value !== null).map((r) => Buffer.from(r.value!).toString()).sort(), [...values].sort());
      assert.equal(read.filter((r) => r.value === null).length, 1);
    } finally {
      await log.close();
    }
  });
}
