/** A topic the Kafka log created is usable at once, against the real broker from test/services/. */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { Kafka } from "kafkajs";
import { createLogger } from "../../runtime/logger.ts";
import { KafkaTopicLog } from "./kafka-log.ts";
import { testDeployment, testKafkaConfig } from "./kafka-test-config.ts";

const logger = createLogger("warn");
const deployment = testDeployment("tcreate");

after(async () => {
  const admin = new Kafka({ brokers: testKafkaConfig().brokers, logLevel: 0 }).admin();
  await admin.connect();
  const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${deployment}.`));
  if (topics.length > 0) await admin.deleteTopics({ topics });
  await admin.disconnect();
});

// The broker's metadata names a new partition's leader a moment before that broker serves it:
// ListOffsets (endOffsets, every read) was refused with NOT_LEADER_FOR_PARTITION in that moment.
test("each partition of a topic just created answers offset requests at once", async () => {
  const log = await KafkaTopicLog.open({ config: testKafkaConfig(), deployment, logger });
  try {
    for (let i = 0; i < 15; i++) {
      const topic = `${deployment}.t${i}`;
      await log.createTopic({ name: topic, partitions: 3, retentionMs: null, retentionBytes: null, compacted: false });
      assert.deepEqual((await log.endOffsets(topic)).map((o) => [o.partition, o.offset]), [[0, 0n], [1, 0n], [2, 0n]]);
    }
  } finally {
    await log.close();
  }
});
