/**
 * The subject key store on the real broker (issue 18, crypto-shredding): keys are written to a
 * compacted topic (with transactions, as the daemon writes), another process's reader follows
 * them by offsets (no consumer group), a destroyed key is gone for every reader, and the
 * audit of erasures is read back in order.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Kafka, logLevel } from "kafkajs";
import { KafkaTopicLog } from "../../connectors/kafka/kafka-log.ts";
import { testDeployment, testKafkaConfig } from "../../connectors/kafka/kafka-test-config.ts";
import { openTopicLogForCommand } from "../../connectors/topics/open.ts";
import type { PollOptions, TopicConsumer, TopicLog } from "../../connectors/contracts.ts";
import { createLogger } from "../../runtime/logger.ts";
import { ErasureAudit } from "./erasure.ts";
import { decryptValue, encryptValue, MasterKey, SubjectKeyStore, subjectKeyTopic } from "./subject-keys.ts";

const logger = createLogger("silent");
const config = testKafkaConfig({ transactions: true });
const deployment = testDeployment("keys");

after(async () => {
  const admin = new Kafka({ brokers: config.brokers, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  // Every test's deployment starts with this one's name (the cache tests add a suffix).
  const topics = (await admin.listTopics()).filter((t) => t.startsWith(deployment));
  if (topics.length > 0) await admin.deleteTopics({ topics });
  await admin.disconnect();
});

describe("subject keys on Kafka", { timeout: 180_000 }, () => {
  test("keys written in one transaction are followed by another process's reader; a destroyed key is gone for every reader; the audit reads back", async () => {
    const master = MasterKey.generate();
    const daemon = await KafkaTopicLog.open({ config, deployment, logger });
    const command = await openTopicLogForCommand(config, deployment, logger, "write");
    try {
      const capture = await SubjectKeyStore.open(daemon, subjectKeyTopic(deployment), master);
      const sink = await SubjectKeyStore.open(daemon, subjectKeyTopic(deployment), master);
      await capture.createKeys("pg", ["1", "2", "3"]);
      const one = (await capture.keyIfKnown("pg", "1"))!;
      const value = encryptValue(Buffer.from("ann@example.com"), one, "app.customers.email", "1");
      await sink.catchUp();
      assert.equal(sink.size, 3);
      assert.equal(decryptValue(value, (await sink.keyIfKnown("pg", "1"))!, "app.customers.email").toString(), "ann@example.com");

      // sluice forget, from another process with its own transactional id.
      const forget = await SubjectKeyStore.open(command, subjectKeyTopic(deployment), master);
      assert.equal(await forget.destroy("pg", "1"), true);
      await forget.close();
      await sink.catchUp();
      assert.equal(await sink.keyIfKnown("pg", "1"), null);
      assert.ok(sink.wasDestroyed("pg", "1"));
      assert.notEqual(await sink.keyIfKnown("pg", "2"), null, "other subjects keep their keys");
      // The same consumer reads on: a key created after the erasure is seen by the next catch-up.
      await capture.createKeys("pg", ["4"]);
      await sink.catchUp();
      assert.deepEqual(await sink.keyIfKnown("pg", "4"), await capture.keyIfKnown("pg", "4"));
      const fresh = await SubjectKeyStore.open(command, subjectKeyTopic(deployment), master, { create: false });
      assert.equal(await fresh.keyIfKnown("pg", "1"), null, "a new reader (a rebuild) has no key for the forgotten subject");
      assert.equal(fresh.size, 3);
      await Promise.all([capture.close(), sink.close(), fresh.close()]);

      const audit = new ErasureAudit(command, deployment);
      await audit.open();
      const base = { id: "x", source: "pg", subject: "1", by: "test@host" };
      await audit.record({ ...base, event: "started", at: new Date().toISOString() });
      await audit.record({ ...base, event: "completed", at: new Date().toISOString(), sinks: ["local"] });
      await audit.record({ ...base, subject: "2", event: "started", at: new Date().toISOString() });
      assert.deepEqual(
        (await audit.entries({ source: "pg", subject: "1" })).map((e) => e.event),
        ["started", "completed"],
      );
    } finally {
      await command.close();
      await daemon.close();
    }
  });

  test("opening, following, fetching keys beyond the cache and scanning them joins no consumer group on the broker", async () => {
    const master = MasterKey.generate();
    const name = `${deployment}-groupless`;
    const topic = subjectKeyTopic(name);
    const daemon = await KafkaTopicLog.open({ config, deployment: name, logger });
    const admin = new Kafka({ brokers: config.brokers, logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    // A new group waits the broker's group.initial.rebalance.delay.ms (3 s by default) before it reads.
    const groups = async () => (await admin.listGroups()).groups.map((g) => g.groupId).filter((g) => g.startsWith(topic));
    try {
      const writer = await SubjectKeyStore.open(daemon, topic, master, { cacheSize: 2 });
      const subjects = Array.from({ length: 12 }, (_, i) => `g${i}`);
      await writer.createKeys("pg", subjects);
      assert.equal(await writer.destroy("pg", "g3"), true);
      const written = new Map<string, Buffer>();
      for (const subject of subjects) {
        const key = await writer.keyIfKnown("pg", subject);
        if (key) written.set(subject, key);
      }
      const reader = await SubjectKeyStore.open(daemon, topic, master, { cacheSize: 2 });
      assert.equal(reader.size, 11);
      assert.ok(reader.wasDestroyed("pg", "g3") && (await reader.keyIfKnown("pg", "g3")) === null, "the destroyed key stays destroyed for a new reader");
      for (const subject of subjects.filter((s) => s !== "g3")) assert.deepEqual(await reader.keyIfKnown("pg", subject), written.get(subject), `subject ${subject}`);
      await writer.createKeys("pg", ["g12"]);
      await reader.catchUp();
      assert.deepEqual(await reader.keyIfKnown("pg", "g12"), await writer.keyIfKnown("pg", "g12"), "a key written after the open is followed");
      assert.equal(await reader.wrappedByOthers(), 0);
      // A master key rotation scans the live keys by offsets too.
      const next = MasterKey.generate();
      const rotation = await SubjectKeyStore.open(daemon, topic, next, { previous: [master] });
      assert.equal(await rotation.wrappedByOthers(), 12);
      assert.equal(await rotation.rewrapAll(), 12);
      const rotated = await SubjectKeyStore.open(daemon, topic, next, { cacheSize: 2 });
      assert.equal(await rotated.wrappedByOthers(), 0);
      assert.deepEqual(await rotated.keyIfKnown("pg", "g0"), written.get("g0"), "a rewrapped key is the same data key");
      assert.equal(await rotated.keyIfKnown("pg", "g3"), null);
      assert.deepEqual(await groups(), [], "no consumer group of the key topic while the stores are open");
      await Promise.all([writer.close(), reader.close(), rotation.close(), rotated.close()]);
    } finally {
      await admin.disconnect();
      await daemon.close();
    }
  });

  test("with a cache smaller than the subjects, keys not in memory are fetched from the topic at their offsets, by the writer and by another reader", async () => {
    const master = MasterKey.generate();
    const daemon = await KafkaTopicLog.open({ config, deployment: `${deployment}-cache`, logger });
    try {
      const topic = subjectKeyTopic(`${deployment}-cache`);
      const capture = await SubjectKeyStore.open(daemon, topic, master, { cacheSize: 2 });
      const subjects = Array.from({ length: 16 }, (_, i) => String(i));
      await capture.createKeys("pg", subjects.slice(0, 10));
      await capture.createKeys("pg", subjects.slice(6));
      assert.equal(capture.size, 16);
      assert.ok(capture.cachedKeys <= 2);
      const sink = await SubjectKeyStore.open(daemon, topic, master, { cacheSize: 2 });
      for (const subject of [...subjects].reverse()) {
        const key = await sink.keyIfKnown("pg", subject);
        assert.ok(key !== null && key.equals((await capture.keyIfKnown("pg", subject))!), `subject ${subject}`);
        assert.ok(sink.cachedKeys <= 2 && capture.cachedKeys <= 2);
      }
      assert.equal((await daemon.endOffsets(topic))[0]!.offset > 0n, true);
      await Promise.all([capture.close(), sink.close()]);
    } finally {
      await daemon.close();
    }
  });

  test("a key not in the cache is read without waiting out the reader's long poll: many subjects beyond a small cache, almost no empty polls", async () => {
    const master = MasterKey.generate();
    const name = `${deployment}-misses`;
    const daemon = await KafkaTopicLog.open({ config, deployment: name, logger });
    // Counts the key reader's polls that came back empty while a miss waited for its record (each waited 200 ms for the consumer's fetch).
    let reading = false;
    let emptyPolls = 0;
    const counting = Object.create(daemon) as TopicLog;
    // On Kafka the store reads by offsets (no consumer, no poll waits at all); the reads go to the log itself, which closes its reader.
    counting.readRange = (topic, partition, start, end) => daemon.readRange(topic, partition, start, end);
    let consumers = 0;
    counting.consumer = async (group, topics, options) => {
      consumers += 1;
      const consumer = await daemon.consumer(group, topics, options);
      return Object.assign(Object.create(consumer) as TopicConsumer, {
        poll: async (pollOptions: PollOptions) => {
          const records = await consumer.poll(pollOptions);
          if (reading && records.length === 0) emptyPolls += 1;
          return records;
        },
      });
    };
    try {
      const topic = subjectKeyTopic(name);
      const writer = await SubjectKeyStore.open(daemon, topic, master, { cacheSize: 4 });
      const subjects = Array.from({ length: 40 }, (_, i) => `s${i}`);
      await writer.createKeys("pg", subjects);
      await writer.close();
      const sink = await SubjectKeyStore.open(counting, topic, master, { cacheSize: 4 });
      // Newest first (past those the open cached): a miss reads ahead only keys written after it, which are read already.
      const order = [...subjects].reverse().slice(4, 34);
      reading = true;
      for (const subject of order) {
        assert.equal(sink.cachedKey("pg", subject), undefined, `subject ${subject} is a miss`);
        assert.ok((await sink.keyIfKnown("pg", subject)) !== null, `subject ${subject}`);
        // A sink applies other rows between misses: meanwhile the reader's consumer waits at the end of the topic again.
        await sleep(20);
      }
      reading = false;
      // With the consumer's 500 ms fetch wait a miss waited for the fetch under way at the end of the topic: two empty 200 ms polls per miss.
      assert.ok(emptyPolls <= order.length / 6, `${emptyPolls} empty polls for ${order.length} misses`);
      assert.equal(consumers, 0, "the misses are read by offsets, without a consumer");
      await sink.close();
    } finally {
      await daemon.close();
    }
  });

  // Its topic is created without a size of its own: it took the broker's default max.message.bytes
  // (about 1 MiB) while a partition's batch may reach batch_bytes, and the keys of a batch of many
  // new subjects were refused whole with KAFKA_MESSAGE_TOO_LARGE, for good, stopping capture.
  test("the keys of 20,000 new subjects, written in one produce call, are stored with batch_bytes of 4 MiB", async () => {
    const name = `${deployment}_big`;
    const log = await KafkaTopicLog.open({ config: testKafkaConfig({ transactions: true, batch_bytes: 4 * 2 ** 20, linger: 50 }), deployment: name, logger });
    try {
      const store = await SubjectKeyStore.open(log, subjectKeyTopic(name), MasterKey.generate());
      const subjects = Array.from({ length: 20_000 }, (_, i) => `subject-${String(i).padStart(6, "0")}`);
      await store.createKeys("pg", subjects);
      assert.equal(store.size, subjects.length);
      await store.close();
      const reader = await SubjectKeyStore.open(log, subjectKeyTopic(name), MasterKey.generate(), { create: false });
      assert.equal(reader.size, subjects.length, "every key read back");
      await reader.close();
    } finally {
      await log.close();
    }
  });
});
