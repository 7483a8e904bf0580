/**
 * Kafka's SASL credentials refused or accepted (connectors/kafka/kafka-auth.ts), in the thread that set this up (the
 * daemon's main thread, each sink thread): a refusal after the brokers accepted the credentials once is warned, naming
 * the broker and the user, and shown in sluice_kafka_auth_refused until an authentication is accepted again; every
 * refusal is counted. Its password_file unreadable at an authentication is warned and counted (never a value).
 */
import type { UnreadableSecretFile } from "../config/secret-files.ts";
import { watchKafkaAuthentications } from "../connectors/kafka/kafka-auth.ts";
import type { Logger } from "../runtime/logger.ts";
import type { SluiceMetrics } from "./metrics.ts";

export function reportKafkaAuthentications(logger: Logger, metrics: SluiceMetrics): void {
  // The series exists from the start, so an alert or a panel on it sees 0 rather than nothing.
  metrics.kafkaAuthRefused.set(0);
  let refused = false;
  watchKafkaAuthentications(({ broker, username, refused: reason, acceptedBefore }) => {
    if (reason === null) {
      if (refused) logger.info({ component: "kafka", broker, user: username }, `Kafka broker ${broker} accepts the credentials of user "${username}" again`);
      refused = false;
      metrics.kafkaAuthRefused.set(0);
      return;
    }
    metrics.kafkaAuthRefusals.inc();
    // Before the brokers ever accepted them it is a config error: the start fails with it, said once there.
    if (!acceptedBefore) return;
    refused = true;
    metrics.kafkaAuthRefused.set(1);
    logger.warn(
      { component: "kafka", broker, user: username, reason },
      `Kafka broker ${broker} refused the credentials of user "${username}" (topics.sasl); waiting for the brokers to accept them, connecting again with backoff and reading topics.sasl.password_file again at each attempt`,
    );
  });
}

/** Handles topics.sasl.password_file unread at an authentication (true), or leaves the problem to the caller (false). */
export function reportUnreadableKafkaSecret(problem: UnreadableSecretFile, logger: Logger, metrics: SluiceMetrics): boolean {
  if (problem.section !== "topics.sasl") return false;
  const { key, file, code, reason } = problem;
  logger.warn({ component: "kafka", key: `topics.sasl.${key}_file`, file, code }, `Kafka: topics.sasl.${key}_file ${file} cannot be read (${code}: ${reason}); authenticating with the value read before`);
  metrics.kafkaSecretFileUnreadable.inc();
  return true;
}
