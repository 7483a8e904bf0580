// Kafka really works from kafkajs: create a topic, produce a keyed message with a header,
// consume it through a consumer group, delete the topic.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Kafka, Partitioners, logLevel } from 'kafkajs';
import type { KafkaMessage } from 'kafkajs';
import { kafka as settings } from '../../services/ports.ts';

const suffix = randomBytes(5).toString('hex');

test('kafka: produce and consume a keyed message with a header', { timeout: 90_000 }, async () => {
  const kafka = new Kafka({
    clientId: `sluice-smoke-${suffix}`,
    brokers: settings.brokers,
    logLevel: logLevel.WARN,
    connectionTimeout: 10_000,
    retry: { retries: 5 },
  });
  const topic = `sluice.smoke.t_${suffix}`;
  const admin = kafka.admin();
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  const consumer = kafka.consumer({ groupId: `sluice-smoke-${suffix}`, sessionTimeout: 10_000 });

  await admin.connect();
  try {
    const cluster = await admin.describeCluster();
    assert.equal(cluster.brokers.length, 1);
    assert.deepEqual(
      cluster.brokers.map((b) => `${b.host}:${b.port}`),
      settings.brokers,
    );

    assert.equal(await admin.createTopics({ topics: [{ topic, numPartitions: 1, replicationFactor: 1 }], waitForLeaders: true }), true);
    assert.ok((await admin.listTopics()).includes(topic));

    await producer.connect();
    const key = `key-${suffix}`;
    const value = JSON.stringify({ hello: 'world', suffix });
    const [meta] = await producer.send({
      topic,
      acks: -1,
      messages: [{ key, value, headers: { 'sluice-op': 'c', 'sluice-bin': Buffer.from([0, 1, 2, 255]) } }],
    });
    assert.equal(meta!.errorCode, 0);
    assert.equal(meta!.baseOffset, '0');

    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    const received = new Promise<KafkaMessage>((resolve, reject) => {
      consumer
        .run({
          eachMessage: async ({ topic: t, message }) => {
            if (t === topic) resolve(message);
          },
        })
        .catch(reject);
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('no message consumed within 60s')), 60_000);
    });
    const message = await Promise.race([received, timeout]).finally(() => clearTimeout(timer));

    assert.equal(message.key?.toString(), key);
    assert.equal(message.value?.toString(), value);
    assert.equal(message.offset, '0');
    assert.equal(message.headers?.['sluice-op']?.toString(), 'c');
    assert.deepEqual(message.headers?.['sluice-bin'], Buffer.from([0, 1, 2, 255]));
  } finally {
    await consumer.disconnect().catch(() => {});
    await producer.disconnect().catch(() => {});
    await admin.deleteTopics({ topics: [topic], timeout: 10_000 }).catch(() => {});
    const left: string[] = await admin.listTopics().catch(() => []);
    await admin.disconnect();
    assert.ok(!left.includes(topic), 'topic deleted');
  }
});
