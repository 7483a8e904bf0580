/**
 * A topic with message.timestamp.before.max.ms (set by an operator on the topic, or the broker's
 * log.message.timestamp.before.max.ms) refuses records older than that: INVALID_TIMESTAMP, for good. Sluice stamps a
 * record with its change's commit time, so a capture catching up after a stop longer than the window was refused at
 * every restart: found live, the source stopped and the daemon exited ('The timestamp of the message is out of
 * acceptable range', naming no topic). Such records are now written with the time of now, whether the window was set
 * while Sluice wrote (the refusal makes it read the topic again) or before it opened the topic. Real broker.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import kafkajs from "kafkajs";
import { createLogger } from "../../runtime/logger.ts";
import { readToEnd } from "../topics/contract-suite.ts";
import { KafkaTopicLog } from "./kafka-log.ts";
import { deleteKafkaDeployment, testDeployment, testKafkaConfig } from "./kafka-test-config.ts";

const logger = createLogger("warn");
const deployment = testDeployment("tswin");

after(async () => {
  await deleteKafkaDeployment(deployment);
});

/** As kafka-configs --add-config does: the topic's other settings kept (AlterConfigs alone would reset them). */
async function setWindow(topic: string, ms: number): Promise<void> {
  const admin = new kafkajs.Kafka({ brokers: testKafkaConfig().brokers, logLevel: 0 }).admin();
  await admin.connect();
  try {
    const described = await admin.describeConfigs({ includeSynonyms: false, resources: [{ type: kafkajs.ConfigResourceTypes.TOPIC, name: topic }] });
    const entries = new Map((described.resources[0]?.configEntries ?? []).filter((e) => !e.isDefault && !e.readOnly).map((e) => [e.configName, e.configValue]));
    entries.set("message.timestamp.before.max.ms", String(ms));
    await admin.alterConfigs({ validateOnly: false, resources: [{ type: kafkajs.ConfigResourceTypes.TOPIC, name: topic, configEntries: [...entries].map(([name, value]) => ({ name, value })) }] });
  } finally {
    await admin.disconnect();
  }
}

for (const transactions of [true, false]) {
  test(`records older than the topic's message.timestamp.before.max.ms are written at the time of now, the window set while writing or before (transactions ${transactions})`, async () => {
    const topic = `${deployment}.old.${transactions ? "tx" : "plain"}`;
    const hourAgo = Date.now() - 3_600_000;
    const log = await KafkaTopicLog.open({ config: testKafkaConfig({ transactions }), deployment, logger });
    const before = Date.now();
    try {
      await log.createTopic({ name: topic, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
      await log.produce([{ topic, key: Buffer.from("k"), value: Buffer.from("first"), timestamp: hourAgo }]);
      // Set by hand while this log writes the topic: the next old record is refused once, then written at now.
      await setWindow(topic, 600_000);
      await log.produce([
        { topic, key: Buffer.from("k"), value: Buffer.from("an hour old"), timestamp: hourAgo },
        { topic, key: Buffer.from("k"), value: Buffer.from("recent"), timestamp: before - 1_000 },
      ]);
    } finally {
      await log.close();
    }
    // A log opened after the window was set reads it with the topic: nothing refused.
    const again = await KafkaTopicLog.open({ config: testKafkaConfig({ transactions }), deployment, logger });
    try {
      await again.createTopic({ name: topic, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
      await again.produce([{ topic, key: Buffer.from("k"), value: Buffer.from("after a restart"), timestamp: hourAgo }]);
      const consumer = await again.consumer(`${deployment}.read.${transactions}`, [topic]);
      const read = await readToEnd(again, consumer, [topic]);
      await consumer.close();
      const stamps = Object.fromEntries(read.map((r) => [Buffer.from(r.value!).toString(), r.timestamp]));
      assert.deepEqual(Object.keys(stamps), ["first", "an hour old", "recent", "after a restart"]);
      assert.equal(stamps["first"], hourAgo, "before the window was set: kept");
      assert.equal(stamps["recent"], before - 1_000, "within the window: kept");
      for (const value of ["an hour old", "after a restart"]) assert.ok(stamps[value]! >= before && stamps[value]! <= Date.now(), `${value}: written at the time it was produced, ${stamps[value]}`);
    } finally {
      await again.close();
    }
  });
}

test("a window no send can meet (0 ms): each re-stamped attempt counts and waits its backoff, and the batch is refused once the attempts are spent", async () => {
  const topic = `${deployment}.zero`;
  const log = await KafkaTopicLog.open({ config: testKafkaConfig({ transactions: false }), deployment, logger, retry: { initialMs: 20, maxMs: 50, maxAttempts: 3 } });
  let guard: NodeJS.Timeout | undefined;
  try {
    await log.createTopic({ name: topic, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
    // Set after the log opened the topic: its first send is refused, and every re-stamped one arrives too late again.
    await setWindow(topic, 0);
    const written = log.produce([{ topic, key: Buffer.from("k"), value: Buffer.from("an hour old"), timestamp: Date.now() - 3_600_000 }]).then(
      () => "written",
      (error: Error & { code?: string }) => error.code,
    );
    // Before, the re-stamp went round without a pause and without counting: still retrying when this guard fired.
    const stillRetrying = new Promise<string>((resolve) => (guard = setTimeout(resolve, 10_000, "still retrying")));
    assert.equal(await Promise.race([written, stillRetrying]), "KAFKA_INVALID_TIMESTAMP");
  } finally {
    clearTimeout(guard);
    await log.close();
  }
});
