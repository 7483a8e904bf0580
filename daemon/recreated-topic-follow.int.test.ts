/**
 * A sink running in capture's process while capture creates a deleted data topic again (KafkaTopicLog.createDeletedAgain,
 * called directly: through a produce it waits out kafkajs's retries first): the sink reads the new topic from its first
 * record, not from its offset in the deleted one (sink-runner followRecreated). Real Kafka from test/services, unique names.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { Kafka, logLevel } from "kafkajs";
import { testDeployment, testKafkaConfig } from "../connectors/kafka/kafka-test-config.ts";
import { KafkaTopicLog } from "../connectors/kafka/kafka-log.ts";
import { createLogger } from "../runtime/logger.ts";
import { SinkRunner } from "./sink-runner.ts";
import { event, jsonRecord, kafkaRunnerDefaults, MemoryTransactionalSink } from "./sink-runner-test-support.ts";

const logger = createLogger("error");
const deployment = testDeployment("refollow");
const topic = `${deployment}.pg.public.items`;
const group = `${deployment}.sink.mem`;
const admin = new Kafka({ brokers: testKafkaConfig().brokers, logLevel: logLevel.NOTHING }).admin();

after(async () => {
  const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${deployment}.`));
  if (topics.length > 0) await admin.deleteTopics({ topics }).catch(() => undefined);
  await admin.deleteGroups([group]).catch(() => undefined);
  await admin.disconnect();
});

const record = (id: number) => jsonRecord(topic, event("items", id));

test("a sink in capture's process reads a data topic capture created again from its first record, though the new topic passed its old offset", { timeout: 120_000 }, async () => {
  await admin.connect();
  const config = testKafkaConfig({ partitions: 1 });
  const log = await KafkaTopicLog.open({ config, deployment, logger });
  try {
    await log.createTopic({ name: topic, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
    await log.produce([1, 2, 3, 4, 5].map(record));
    const sink = new MemoryTransactionalSink("mem");
    const runner = new SinkRunner({ ...kafkaRunnerDefaults, sink, log, group, topics: async () => [topic], deadLetterTopic: `${deployment}.dlq.mem`, logger });
    const stop = new AbortController();
    let failure: unknown = null;
    const running = runner.run(stop.signal).catch((error: unknown) => (failure = error));
    const waitUntil = async (what: string, done: () => boolean, timeoutMs: number) => {
      const deadline = Date.now() + timeoutMs;
      while (!done() && failure === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.equal(failure, null, `the sink stopped while waiting for ${what}: ${String(failure)}`);
      assert.ok(done(), `timed out waiting for ${what} (rows ${[...sink.rows].join(",")})`);
    };
    await waitUntil("the old topic's rows", () => sink.rows.size === 5, 30_000);

    await admin.deleteTopics({ topics: [topic], timeout: 30_000 });
    while ((await admin.listTopics()).includes(topic)) await new Promise((r) => setTimeout(r, 50));
    const look = (log as unknown as { createDeletedAgain(topics: readonly string[]): Promise<void> }).createDeletedAgain.bind(log);
    for (let attempt = 1; ; attempt++) {
      try {
        await look([topic]);
        break;
      } catch (error) {
        if ((error as { retriable?: boolean }).retriable !== true || attempt === 3) throw error;
      }
    }
    // The new topic passes the sink's offset in the old one (5) at once.
    await log.produce([101, 102, 103, 104, 105, 106, 107, 108].map(record));
    const fresh = [101, 102, 103, 104, 105, 106, 107, 108];
    await waitUntil("every row of the new topic", () => fresh.every((id) => sink.rows.has(id)), 30_000);
    stop.abort(new Error("stop"));
    await running;
    assert.equal(failure, null);
    const newId = (await log.topicIds([topic])).get(topic);
    const [stored, ...more] = await sink.committedOffsets();
    assert.equal(more.length, 0);
    assert.equal(stored!.topicId, newId, "offsets stored with the new topic's identity");
    assert.ok(stored!.offset >= 8n, `stored past the new topic's 8 records (and its commit marker): ${stored!.offset}`);
  } finally {
    await log.close();
  }
});
