/**
 * StableOffsets against the real broker: the ends read_committed readers see, for partitions of
 * several topics in one call; an open transaction holds its partition's end back; a failed call
 * (a topic deleted) does not spoil the next; close ends every connection it made.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { createLogger } from "../../runtime/logger.ts";
import { createKafkaClient } from "./kafka-client.ts";
import { assertConnectionsClosed, deleteKafkaDeployment, testDeployment, testKafkaConfig } from "./kafka-test-config.ts";
import { partitionKey, StableOffsets } from "./stable-offsets.ts";

const deployment = testDeployment("lso");
after(() => deleteKafkaDeployment(deployment));

test("stable ends of several topics' partitions in one call; an open transaction holds its partition back; a failure does not spoil the next call", async () => {
  const kafka = createKafkaClient(testKafkaConfig(), createLogger("warn"));
  const admin = kafka.admin();
  await admin.connect();
  const a = `${deployment}.a`;
  const b = `${deployment}.b`;
  const gone = `${deployment}.gone`;
  await admin.createTopics({ waitForLeaders: true, topics: [{ topic: a, numPartitions: 3 }, { topic: b, numPartitions: 1 }, { topic: gone, numPartitions: 1 }] });
  const producer = kafka.producer({ idempotent: true, transactionalId: `${deployment}.tx`, maxInFlightRequests: 1 });
  await producer.connect();
  const offsets = new StableOffsets(kafka);
  try {
    const committed = await producer.transaction();
    await committed.send({ topic: a, messages: [{ partition: 0, value: "1" }, { partition: 0, value: "2" }, { partition: 2, value: "3" }] });
    await committed.send({ topic: b, messages: [{ partition: 0, value: "4" }] });
    await committed.send({ topic: gone, messages: [{ partition: 0, value: "5" }] });
    await committed.commit();
    const open = await producer.transaction();
    await open.send({ topic: a, messages: [{ partition: 1, value: "6" }] });

    const wanted = [{ topic: a, partition: 0 }, { topic: a, partition: 1 }, { topic: a, partition: 2 }, { topic: b, partition: 0 }];
    const visible = async () => {
      // The commit's markers may still be on their way.
      for (let i = 0; ; i++) {
        const ends = await offsets.stableEnds(wanted);
        if (ends.get(partitionKey(a, 0))! >= 3n || i > 500) return ends;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    };
    let ends = await visible();
    // Two records and the commit marker; one record and its marker; the open transaction's first offset.
    assert.deepEqual(Object.fromEntries(ends), { [partitionKey(a, 0)]: 3n, [partitionKey(a, 1)]: 0n, [partitionKey(a, 2)]: 2n, [partitionKey(b, 0)]: 2n });

    await open.commit();
    for (let i = 0; i < 500 && (ends.get(partitionKey(a, 1)) ?? 0n) < 2n; i++) ends = await offsets.stableEnds(wanted);
    assert.equal(ends.get(partitionKey(a, 1)), 2n, "the committed transaction's partition moves on");

    assert.equal((await offsets.stableEnds([{ topic: gone, partition: 0 }])).get(partitionKey(gone, 0)), 2n);
    await admin.deleteTopics({ topics: [gone], timeout: 30_000 });
    let failed = false;
    for (let i = 0; i < 100 && !failed; i++) {
      failed = await offsets.stableEnds([{ topic: gone, partition: 0 }]).then(
        () => false,
        () => true,
      );
      if (!failed) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.ok(failed, "asking for a deleted topic fails");
    assert.equal((await offsets.stableEnds([{ topic: b, partition: 0 }])).get(partitionKey(b, 0)), 2n, "the next call answers");
  } finally {
    await offsets.close();
    await producer.disconnect();
    await admin.disconnect();
  }
  await assert.rejects(offsets.stableEnds([{ topic: a, partition: 0 }]), /closed/);
});

test("close ends every connection the stable offsets made", async () => {
  const kafka = createKafkaClient(testKafkaConfig(), createLogger("warn"));
  const admin = kafka.admin();
  await admin.connect();
  const topic = `${deployment}.conn`;
  await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: 2 }] });
  await admin.disconnect();
  const offsets = new StableOffsets(kafka);
  await assertConnectionsClosed(
    async () => {
      const ends = await offsets.stableEnds([{ topic, partition: 0 }, { topic, partition: 1 }]);
      assert.deepEqual([...ends.values()], [0n, 0n]);
    },
    () => offsets.close(),
    "StableOffsets",
  );
});
