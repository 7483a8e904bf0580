/**
 * A command's hold on a sink's consumer group (kafka-group-hold.ts) against the real broker: every
 * process describing the group sees it, marked with what it holds for; it subscribes to the topics
 * the group keeps offsets of (so the coordinator keeps them) and commits nothing; a member that
 * joins the group and leaves again shows as a change of the group to the hold afterwards; closed,
 * it is gone.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import kafkajs from "kafkajs";
import { createLogger } from "../../runtime/logger.ts";
import { captureLeaseTopic } from "../topics/names.ts";
import { KafkaTopicLog } from "./kafka-log.ts";
import { deleteKafkaDeployment, testDeployment, testKafkaConfig } from "./kafka-test-config.ts";

// The least session the broker takes: a member's heartbeat, which tells it of a rebalance, every 1.2 s.
process.env["SLUICE_KAFKA_SESSION_MS"] = "6000";
const { AssignerProtocol, Kafka, logLevel } = kafkajs;
const deployment = testDeployment("hold");
const logger = createLogger("silent");
after(() => deleteKafkaDeployment(deployment));

test("a hold on a sink's group is seen by others as held for its purpose, notices a member that came and went, and leaves at close", { timeout: 60_000 }, async () => {
  const log = await KafkaTopicLog.open({ config: testKafkaConfig(), deployment, logger });
  const group = `${deployment}.sink.wh`;
  const topic = `${deployment}.src.public.items`;
  await log.createTopic({ name: topic, partitions: 2, retentionMs: null, retentionBytes: null, compacted: false });
  await log.produce([{ topic, key: Buffer.from("1"), value: Buffer.from("x"), timestamp: Date.now() }]);
  // The sink ran before: the group keeps offsets of its topic, past the partitions' ends (as the offsets of a sink
  // stopped while retention deleted its records would be before their starts). A member fetching there would
  // have kafkajs reset them to the earliest by committing -2.
  const kept = [0, 1].map((partition) => ({ topic, partition, offset: 1000n }));
  const sinkMember = await log.consumer(group, [topic]);
  await sinkMember.commit(kept);
  await sinkMember.close();
  const admin = new Kafka({ brokers: testKafkaConfig().brokers, logLevel: logLevel.NOTHING }).admin();
  try {
    const first = await log.holdGroup(group, "abandon");
    try {
      assert.equal((await log.groupActivity(group)).clients?.[0]?.heldFor, "abandon");
      // Long enough for fetches (a fetch at the end of a partition waits 500 ms).
      await new Promise((resolve) => setTimeout(resolve, 1_500));
    } finally {
      await first.close();
    }
    assert.deepEqual(await log.committedOffsets(group), kept, "the hold read and committed nothing");

    const hold = await log.holdGroup(group, "rebuild");
    try {
      const seen = await log.groupActivity(group);
      assert.equal(seen.clients?.length, 1);
      assert.equal(seen.clients?.[0]?.heldFor, "rebuild");
      const [described] = (await admin.describeGroups([group])).groups[0]!.members;
      assert.deepEqual(AssignerProtocol.MemberMetadata.decode(described!.memberMetadata)?.topics.sort(), [captureLeaseTopic(deployment), topic].sort(), "subscribed to the topic the group keeps an offset of");
      assert.equal(hold.changed(), false, "its own join is no change");

      // A sink process that joins and leaves again before anyone looks.
      const member = await log.consumer(group, [topic]);
      await member.close();
      const deadline = Date.now() + 20_000;
      while (!hold.changed() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(hold.changed(), true, "the member that came and went is told");
    } finally {
      await hold.close();
    }
    assert.deepEqual((await log.groupActivity(group)).members, [], "closed, it left the group");
  } finally {
    await admin.disconnect();
    await log.close();
  }
});
