/**
 * An internal topic whose cleanup.policy an operator changed (kafka-configs --add-config cleanup.policy=delete on
 * <name>.sluice.checkpoints) is refused at the next start, as a layout mismatch, against the real broker. The refusal
 * said 'Delete the topic or change the configuration to match': deleting the checkpoints topic loses the capture's
 * position, and no configuration makes an internal topic uncompacted. It now gives the command that sets the policy back,
 * says not to delete it, and that command is enough for the next start.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import kafkajs from "kafkajs";
import { createLogger } from "../../runtime/logger.ts";
import { checkpointTopic } from "../topics/names.ts";
import { KafkaTopicLog } from "./kafka-log.ts";
import { deleteKafkaDeployment, testDeployment, testKafkaConfig } from "./kafka-test-config.ts";

const logger = createLogger("silent");
const deployment = testDeployment("policy");

after(() => deleteKafkaDeployment(deployment));

/** As kafka-configs --add-config does: the topic's other settings kept (AlterConfigs alone would reset them). */
async function setPolicy(topic: string, policy: string): Promise<void> {
  const admin = new kafkajs.Kafka({ brokers: testKafkaConfig().brokers, logLevel: 0 }).admin();
  await admin.connect();
  try {
    const described = await admin.describeConfigs({ includeSynonyms: false, resources: [{ type: kafkajs.ConfigResourceTypes.TOPIC, name: topic }] });
    const entries = new Map((described.resources[0]?.configEntries ?? []).filter((e) => !e.isDefault && !e.readOnly).map((e) => [e.configName, e.configValue]));
    entries.set("cleanup.policy", policy);
    await admin.alterConfigs({ validateOnly: false, resources: [{ type: kafkajs.ConfigResourceTypes.TOPIC, name: topic, configEntries: [...entries].map(([name, value]) => ({ name, value })) }] });
  } finally {
    await admin.disconnect();
  }
}

test("the checkpoints topic switched to cleanup.policy=delete by hand: the start is refused with the command that sets it back, not 'delete the topic'", async () => {
  const config = testKafkaConfig();
  await (await KafkaTopicLog.open({ config, deployment, logger })).close();
  const topic = checkpointTopic(deployment);
  await setPolicy(topic, "delete");
  await assert.rejects(KafkaTopicLog.open({ config, deployment, logger }), (error: Error & { code?: string }) => {
    assert.equal(error.code, "TOPIC_MISMATCH");
    assert.match(error.message, new RegExp(`set it back with kafka-configs\\.sh --bootstrap-server ${config.brokers[0]} --alter --entity-type topics --entity-name ${topic.replaceAll(".", "\\.")} --add-config cleanup\\.policy=compact\\. Do not delete it`));
    assert.doesNotMatch(error.message, /Delete the topic/);
    return true;
  });
  await setPolicy(topic, "compact");
  await (await KafkaTopicLog.open({ config, deployment, logger })).close();
});
