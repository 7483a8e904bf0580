/**
 * A command's hold on a sink's consumer group (kafka-group-hold.ts) against the real broker: every
 * process describing the group sees it, marked with what it holds for; a member that joins the
 * group and leaves again shows as a change of the group to the hold afterwards; closed, it is gone.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { createLogger } from "../../runtime/logger.ts";
import { KafkaTopicLog } from "./kafka-log.ts";
import { deleteKafkaDeployment, testDeployment, testKafkaConfig } from "./kafka-test-config.ts";

// The least session the broker takes: a member's heartbeat, which tells it of a rebalance, every 1.2 s.
process.env["SLUICE_KAFKA_SESSION_MS"] = "6000";
const deployment = testDeployment("hold");
const logger = createLogger("silent");
after(() => deleteKafkaDeployment(deployment));

test("a hold on a sink's group is seen by others as held for its purpose, notices a member that came and went, and leaves at close", { timeout: 60_000 }, async () => {
  const log = await KafkaTopicLog.open({ config: testKafkaConfig(), deployment, logger });
  const group = `${deployment}.sink.wh`;
  const topic = `${deployment}.src.public.items`;
  await log.createTopic({ name: topic, partitions: 2, retentionMs: null, retentionBytes: null, compacted: false });
  await log.produce([{ topic, key: Buffer.from("1"), value: Buffer.from("x"), timestamp: Date.now() }]);
  try {
    const hold = await log.holdGroup(group, "rebuild");
    try {
      const seen = await log.groupActivity(group);
      assert.equal(seen.clients?.length, 1);
      assert.equal(seen.clients?.[0]?.heldFor, "rebuild");
      assert.equal(hold.changed(), false, "its own join is no change");

      // A sink process that joins and leaves again before anyone looks.
      const member = await log.consumer(group, [topic]);
      await member.close();
      const deadline = Date.now() + 20_000;
      while (!hold.changed() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(hold.changed(), true, "the member that came and went is told");
      // The hold read and committed nothing of the sink's topics.
      assert.deepEqual(await log.committedOffsets(group), []);
    } finally {
      await hold.close();
    }
    assert.deepEqual((await log.groupActivity(group)).members, [], "closed, it left the group");
  } finally {
    await log.close();
  }
});
