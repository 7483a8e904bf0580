/**
 * Record limits a broker sets rather than the topic, on a private broker (never the shared one: these are broker-wide).
 *
 * - socket.request.max.bytes (a static setting, here 300000): a broker closes the connection of a larger produce request,
 *   which kafkajs takes for a network failure and Sluice retried for ever, every table's capture stuck behind it. The
 *   brokers' limit is now read at open: requests are cut within it and a record over it is refused naming it (capture
 *   halts its table only).
 * - message.max.bytes lowered on the broker while Sluice writes to a topic that sets no max.message.bytes of its own: the
 *   topic's described limit follows it; the refusal names the brokers' setting, not the topic's.
 * - log.segment.bytes (here 1 MiB) below topics.max_record_bytes: a topic Sluice creates sets a segment.bytes of its own
 *   that takes its max.message.bytes.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Socket } from "node:net";
import kafkajs from "kafkajs";
import type { ISocketFactory } from "kafkajs";
import { createLogger } from "../../runtime/logger.ts";
import { PrivateKafka } from "../../test/services/private-kafka.ts";
import { KafkaTopicLog } from "./kafka-log.ts";
import { testKafkaConfig } from "./kafka-test-config.ts";
import { requestRecordLimit } from "./record-limits.ts";

const logger = createLogger((process.env["TLOG"] as "warn") ?? "silent");
const deployment = "brokerlimits";
let kafka: PrivateKafka;

before(async () => {
  kafka = await PrivateKafka.start({ properties: { "socket.request.max.bytes": "300000", "log.segment.bytes": String(2 ** 20) } });
});

after(async () => {
  await kafka?.destroy();
});

const record = (topic: string, key: string, bytes: number) => ({ topic, key: Buffer.from(key), value: Buffer.alloc(bytes, 97), timestamp: Date.now() });

/** kafkajs's connections, counting the produce requests (api key 0) written above `bytes`. */
function countingLargeProduces(bytes: number): { factory: ISocketFactory; count: () => number } {
  let count = 0;
  const factory: ISocketFactory = ({ host, port, onConnect }) => {
    const socket = new Socket();
    socket.setKeepAlive(true, 60_000);
    socket.connect({ host, port }, onConnect);
    const write = socket.write.bind(socket) as (chunk: unknown, ...rest: unknown[]) => boolean;
    socket.write = ((chunk: unknown, ...rest: unknown[]) => {
      if (Buffer.isBuffer(chunk) && chunk.length >= 6 && chunk.readInt16BE(4) === 0 && chunk.readInt32BE(0) > bytes) count++;
      return write(chunk, ...rest);
    }) as typeof socket.write;
    return socket;
  };
  return { factory, count: () => count };
}

test("a broker's socket.request.max.bytes: requests are cut within it, a record over it is refused naming it", { timeout: 60_000 }, async () => {
  const topic = `${deployment}.data.requests`;
  const log = await KafkaTopicLog.open({ config: testKafkaConfig({ brokers: kafka.brokers, transactions: true }), deployment, logger });
  try {
    await log.createTopic({ name: topic, partitions: 2, retentionMs: null, retentionBytes: null, compacted: false });
    // 12 records of 100 kB: a request of 1.2 MB within batch_bytes (1 MiB a partition), four times the broker's limit.
    const records = Array.from({ length: 12 }, (_, i) => record(topic, `k${i}`, 100_000));
    await log.produce(records);
    assert.equal(log.maxRecordBytes(topic), 300_000 - 1024);
    await assert.rejects(log.produce([record(topic, "big", 400_000)]), (error: Error & { code?: string }) => {
      assert.equal(error.code, "RECORD_TOO_LARGE");
      assert.match(error.message, /over socket\.request\.max\.bytes of the brokers \(300000\) less 1024 bytes of request framing \(298976\)/);
      return true;
    });
    // All 12 written (read back through no consumer group: a fresh broker's group coordinator takes long to load).
    const ends = await log.endOffsets(topic);
    assert.equal(ends.reduce((sum, end) => sum + end.offset, 0n), 14n, "12 records and a commit marker in each partition");
  } finally {
    await log.close();
  }
});

test("the broker's message.max.bytes lowered under a topic without its own: a record over it is refused naming the brokers' setting", { timeout: 60_000 }, async () => {
  const topic = `${deployment}.data.inherited`;
  const admin = new kafkajs.Kafka({ brokers: kafka.brokers, logLevel: kafkajs.logLevel.NOTHING }).admin();
  await admin.connect();
  // Made by someone else, without max.message.bytes: Sluice adopts it as it is.
  await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] });
  const log = await KafkaTopicLog.open({ config: testKafkaConfig({ brokers: kafka.brokers, transactions: true }), deployment, logger });
  try {
    await log.createTopic({ name: topic, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
    await log.produce([record(topic, "before", 5000)]);
    await admin.alterConfigs({ validateOnly: false, resources: [{ type: kafkajs.ConfigResourceTypes.BROKER, name: "1", configEntries: [{ name: "message.max.bytes", value: "3000" }] }] });
    // Applied once the broker reads the change from the metadata log: until the topic's describe shows it, a write may still be taken.
    for (let i = 0; i < 100; i++) {
      const now = await admin.describeConfigs({ includeSynonyms: false, resources: [{ type: kafkajs.ConfigResourceTypes.TOPIC, name: topic, configNames: ["max.message.bytes"] }] });
      if (now.resources[0]?.configEntries[0]?.configValue === "3000") break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    // Refused by the broker with a limit Sluice did not know: written again from its writer's checkpoint (a retriable failure).
    await assert.rejects(log.produce([record(topic, "over", 5000)]), { code: "KAFKA_TOPIC_LIMIT_LOWERED", retriable: true });
    await assert.rejects(log.produce([record(topic, "over", 5000)]), (error: Error & { code?: string }) => {
      assert.equal(error.code, "RECORD_TOO_LARGE");
      assert.match(error.message, new RegExp(`over message\\.max\\.bytes of the brokers, which topic ${topic.replaceAll(".", "\\.")} takes \\(it sets no max\\.message\\.bytes\\) \\(3000\\)`));
      return true;
    });
    await log.produce([record(topic, "within", 1000)]);
  } finally {
    await log.close();
    await admin.alterConfigs({ validateOnly: false, resources: [{ type: kafkajs.ConfigResourceTypes.BROKER, name: "1", configEntries: [] }] }).catch(() => undefined);
    await admin.disconnect();
  }
});

for (const transactions of [true, false]) {
  test(`a request a broker drops over a socket.request.max.bytes lower than Sluice knew is cut again at its first drop, not after kafkajs's retries of it (transactions ${transactions})`, { timeout: 90_000 }, async () => {
    const topic = `${deployment}.data.dropped-${transactions}`;
    const produces = countingLargeProduces(300_000);
    const log = await KafkaTopicLog.open({ config: testKafkaConfig({ brokers: kafka.brokers, transactions }), deployment, logger, socketFactory: produces.factory });
    try {
      await log.createTopic({ name: topic, partitions: 2, retentionMs: null, retentionBytes: null, compacted: false });
      // As after a broker restarted with a lower setting than the one read at open (restarting this broker takes 7-50 s).
      Reflect.set(log, "requestLimit", requestRecordLimit(100 * 2 ** 20));
      await log.produce(Array.from({ length: 12 }, (_, i) => record(topic, `k${i}`, 100_000)));
      assert.equal(log.maxRecordBytes(topic), 300_000 - 1024, "the brokers' limit read again");
      // kafkajs alone sent the dropped request 11 times (its 10 retries, growing to 5 s) before the producer saw it fail.
      assert.equal(produces.count(), 1, "the request over the limit is sent once");
      const ends = await log.endOffsets(topic);
      // With transactions, the dropped transaction's abort marker and the next one's commit marker in each partition.
      assert.equal(ends.reduce((sum, end) => sum + end.offset, 0n), transactions ? 16n : 12n);
    } finally {
      await log.close();
    }
  });
}

test("a request limit found lower by a re-read after a refusal (or before a halted table's retry): a queued record over it is refused for its table, not sent alone and dropped for ever", { timeout: 120_000 }, async () => {
  const topic = `${deployment}.data.reread`;
  const other = `${deployment}.data.reread-other`;
  // Produce requests over the broker's limit are held 1 s on their way, so that the re-read lands before the broker drops them.
  const slowLarge: ISocketFactory = ({ host, port, onConnect }) => {
    const socket = new Socket();
    socket.connect({ host, port }, onConnect);
    const write = socket.write.bind(socket) as (chunk: unknown, ...rest: unknown[]) => boolean;
    socket.write = ((chunk: unknown, ...rest: unknown[]) => {
      if (Buffer.isBuffer(chunk) && chunk.length >= 6 && chunk.readInt16BE(4) === 0 && chunk.readInt32BE(0) > 300_000) {
        setTimeout(() => write(chunk, ...rest), 1000);
        return true;
      }
      return write(chunk, ...rest);
    }) as typeof socket.write;
    return socket;
  };
  const log = await KafkaTopicLog.open({ config: testKafkaConfig({ brokers: kafka.brokers, transactions: false }), deployment, logger, socketFactory: slowLarge });
  try {
    await log.createTopic({ name: topic, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
    await log.createTopic({ name: other, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
    Reflect.set(log, "requestLimit", requestRecordLimit(100 * 2 ** 20));
    const produced = log.produce([record(topic, "big", 400_000)]).then(() => "written", (error: unknown) => error as Error & { code?: string });
    // The refusal's re-read (or a halted table's retry) reads the brokers' limit too: it finds it lower, and answers no topic lowered.
    assert.deepEqual(await log.readRecordLimitsAgain([topic]), []);
    assert.equal(log.maxRecordBytes(topic), 300_000 - 1024);
    // Before, the producer never learnt of it: the record went alone in request after request, each dropped, and every
    // table's capture waited behind it. A guard, not a timing: it settles within a few seconds.
    const outcome = await Promise.race([produced, new Promise<string>((resolve) => setTimeout(() => resolve("still pending"), 60_000).unref())]);
    assert.ok(outcome instanceof Error, `the produce is ${String(outcome)}`);
    assert.equal(outcome.code, "KAFKA_REQUEST_LIMIT_LOWERED");
    assert.match(outcome.message, /socket\.request\.max\.bytes.*halts its table/);
    // The record's writer writes again, and the per-record check refuses it for its table alone; the others go on.
    await assert.rejects(log.produce([record(topic, "big", 400_000)]), { code: "RECORD_TOO_LARGE" });
    await log.produce([record(other, "small", 1000)]);
  } finally {
    await log.close();
  }
});

test("a topic Sluice creates where the brokers' log.segment.bytes is below its max.message.bytes sets a segment.bytes that takes it, within retention.bytes", { timeout: 60_000 }, async () => {
  const log = await KafkaTopicLog.open({ config: testKafkaConfig({ brokers: kafka.brokers, transactions: true }), deployment, logger });
  const admin = new kafkajs.Kafka({ brokers: kafka.brokers, logLevel: kafkajs.logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    const topics = { plain: `${deployment}.data.segments`, retained: `${deployment}.data.segments-retained`, small: `${deployment}.data.segments-small` };
    await log.createTopic({ name: topics.plain, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
    await log.createTopic({ name: topics.retained, partitions: 1, retentionMs: null, retentionBytes: 50_000_000, compacted: false });
    await log.createTopic({ name: topics.small, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false, maxRecordBytes: 500_000 });
    const described = await admin.describeConfigs({ includeSynonyms: false, resources: Object.values(topics).map((name) => ({ type: kafkajs.ConfigResourceTypes.TOPIC, name, configNames: ["segment.bytes"] })) });
    const segment = (name: string) => described.resources.find((r) => r.resourceName === name)?.configEntries[0];
    // max.message.bytes 16 MiB (topics.max_record_bytes): room for 16 such records, Kafka's default 1 GiB at least.
    assert.equal(segment(topics.plain)?.configValue, String(2 ** 30));
    assert.equal(segment(topics.retained)?.configValue, "50000000");
    // A record limit within the brokers' segments: the topic keeps taking theirs.
    assert.equal(segment(topics.small)?.configValue, String(2 ** 20));
    assert.notEqual(segment(topics.small)?.configSource, 1);
  } finally {
    await log.close();
    await admin.disconnect();
  }
});
