/**
 * Child process of checkpoint-read-memory.int.test.ts: reads a source's checkpoint from the test
 * broker (the deployment and source in argv) under the heap its parent gives it, and prints it.
 */
import { KafkaTopicLog } from "../kafka-log.ts";
import { testKafkaConfig } from "../kafka-test-config.ts";
import { createLogger } from "../../../runtime/logger.ts";

const [deployment, source] = process.argv.slice(2);
if (!deployment || !source) throw new Error("usage: read-checkpoint.ts <deployment> <source>");
const log = await KafkaTopicLog.open({ config: testKafkaConfig(), deployment, logger: createLogger("silent"), access: "read-only" });
try {
  const checkpoint = await log.readCheckpoint(source);
  process.stdout.write(`${JSON.stringify({ commit: checkpoint?.position.commit.toString() ?? null, entries: checkpoint?.entries ?? null })}\n`);
} finally {
  await log.close();
}
