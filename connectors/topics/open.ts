import type { TopicsConfig } from "../../config/schema.ts";
import type { Logger } from "../../daemon/logger.ts";
import { EmbeddedTopicLog } from "../embedded/embedded-log.ts";
import type { TopicLog } from "./contract.ts";

/** Opens the deployment's topic log as configured: the embedded log file, or a Kafka cluster (retrying until reachable or `signal` aborts). */
export async function openTopicLog(config: TopicsConfig, deployment: string, logger: Logger, signal?: AbortSignal): Promise<TopicLog> {
  if (config.kind === "embedded") return EmbeddedTopicLog.open({ path: config.path, logger });
  // Loaded on demand: an embedded deployment never loads kafkajs.
  const { KafkaTopicLog } = await import("../kafka/kafka-log.ts");
  return KafkaTopicLog.open({ config, deployment, logger, ...(signal ? { signal } : {}) });
}
