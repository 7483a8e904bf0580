/**
 * A topic's offsets asked while the log looks up another topic it has not described yet. kafkajs's
 * admin client keeps one metadata set, which a metadata request for one topic replaces; landing
 * between the two ListOffsets requests of fetchTopicOffsets, it made kafkajs fail with "Cannot
 * destructure property 'partitions' of 'low.pop(...)'", reported as KAFKA_UNAVAILABLE. Seen at
 * every start of a live daemon (the capture term failed "on an outage" and led again); here 9 of
 * 29 such pairs failed before the fix.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { pino } from "pino";
import { KafkaTopicLog } from "./kafka-log.ts";
import { deleteKafkaDeployment, testKafkaConfig } from "./kafka-test-config.ts";

const deployment = `offsets-race-${process.pid}-${Date.now()}`;
const logger = pino({ level: "silent" });

after(() => deleteKafkaDeployment(deployment));

test("partitionOffsets of a topic succeeds while the log describes topics it has not seen before", { timeout: 120_000 }, async () => {
  const names = Array.from({ length: 16 }, (_, i) => `${deployment}.t${i}`);
  const creator = await KafkaTopicLog.open({ config: testKafkaConfig(), deployment, logger });
  try {
    await Promise.all(names.map((name) => creator.createTopic({ name, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false })));
  } finally {
    await creator.close();
  }
  const log = await KafkaTopicLog.open({ config: testKafkaConfig(), deployment, logger });
  try {
    const [asked, ...others] = names;
    await log.partitionOffsets(asked!);
    const failures: string[] = [];
    for (const other of others) {
      const results = await Promise.allSettled([log.partitionOffsets(asked!), log.listTopics([other])]);
      for (const result of results) if (result.status === "rejected") failures.push(String((result.reason as Error).message));
    }
    assert.deepEqual(failures, []);
  } finally {
    await log.close();
  }
});
