import type { TopicsConfig } from "../../config/schema.ts";
import type { Logger } from "../../daemon/logger.ts";
import { EmbeddedTopicLog } from "../embedded/embedded-log.ts";
import type { TopicLog } from "./contract.ts";

/**
 * Opens the deployment's topic log as configured: the embedded log file, or a Kafka cluster
 * (retrying until reachable or `signal` aborts). `writer` names a second writer in the same
 * deployment (e.g. a sink thread) so its Kafka transactional id does not fence the first's.
 */
export async function openTopicLog(config: TopicsConfig, deployment: string, logger: Logger, signal?: AbortSignal, writer?: string): Promise<TopicLog> {
  if (config.kind === "embedded") return EmbeddedTopicLog.open({ path: config.path, logger });
  // Loaded on demand: an embedded deployment never loads kafkajs.
  const { KafkaTopicLog } = await import("../kafka/kafka-log.ts");
  const transactionalId = writer ? `${deployment}.${config.client_id}.${writer}` : undefined;
  return KafkaTopicLog.open({ config, deployment, logger, ...(signal ? { signal } : {}), ...(transactionalId ? { transactionalId } : {}) });
}
