/**
 * Kafka refuses a partition's record batch above its topic's max.message.bytes whole
 * (MESSAGE_TOO_LARGE, for good). With `max_record_bytes` below `batch_bytes`, topics Sluice creates
 * get the smaller limit, and a batch of many small records, each within it, must still go through.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { createLogger } from "../../runtime/logger.ts";
import type { ProducedRecord } from "../contracts.ts";
import { readToEnd } from "../topics/contract-suite.ts";
import { KafkaTopicLog } from "./kafka-log.ts";
import { deleteKafkaDeployment, testDeployment, testKafkaConfig } from "./kafka-test-config.ts";

const deployment = testDeployment("reclimit");
after(() => deleteKafkaDeployment(deployment));

test("records within a topic's max.message.bytes below batch_bytes are stored, in batches Kafka takes", async () => {
  const limit = 4096;
  const log = await KafkaTopicLog.open({ config: testKafkaConfig({ linger: 50, max_record_bytes: limit }), deployment, logger: createLogger("warn") });
  try {
    const topic = `${deployment}.rows`;
    await log.createTopic({ name: topic, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false, maxRecordBytes: limit });
    // 200 records of ~220 bytes in one partition: 44 KB, ten times the topic's limit, in one produce call and transaction.
    const records: ProducedRecord[] = Array.from({ length: 200 }, (_, i) => ({ topic, key: Buffer.from(`k${i}`), value: Buffer.alloc(200, 65 + (i % 26)), timestamp: 1_000 + i }));
    const source = `${deployment}-src`;
    await log.produce(records, { source, position: { commit: 7n, change: 7n } });
    assert.deepEqual(await log.readCheckpoint(source), { source, position: { commit: 7n, change: 7n } });
    const consumer = await log.consumer(`${deployment}.read`, [topic]);
    const read = await readToEnd(log, consumer, [topic]);
    await consumer.close();
    assert.deepEqual(
      read.map((r) => Buffer.from(r.key!).toString()),
      records.map((r) => Buffer.from(r.key!).toString()),
      "every record once, in order",
    );
  } finally {
    await log.close();
  }
});
