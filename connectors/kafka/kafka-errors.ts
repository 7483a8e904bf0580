/** kafkajs failures as Sluice errors: retriable connection trouble versus permanent refusals. */
import { describeTlsFailure } from "../common/tls-errors.ts";
import { ConnectionError, SluiceError } from "../errors.ts";
import { ACCEPTED_BEFORE, NOT_REFUSED } from "./kafka-auth.ts";

interface KafkaJsFailure {
  name?: string;
  message?: string;
  type?: string;
  retriable?: boolean;
  originalError?: unknown;
  cause?: unknown;
}

const CONNECTION_FAILURES = new Set([
  "KafkaJSConnectionError",
  "KafkaJSConnectionClosedError",
  "KafkaJSRequestTimeoutError",
  "KafkaJSBrokerNotFound",
  "KafkaJSNoBrokerAvailableError",
  "KafkaJSMetadataNotLoaded",
  "KafkaJSLockTimeout",
  "KafkaJSTopicMetadataNotLoaded",
  // No broker answered the (group or transaction) coordinator lookup: every broker is unreachable.
  "KafkaJSGroupCoordinatorNotFound",
]);

/**
 * A consumer group member's request refused because the group rebalanced since it joined (another
 * member joined, left or was timed out): its partitions may belong to another member now. It
 * heals by rejoining (the sink opens its consumer again at the stored offsets); whatever it had
 * applied is applied again or by the new owner, harmlessly, by version.
 */
const REBALANCED = new Set(["ILLEGAL_GENERATION", "REBALANCE_IN_PROGRESS", "UNKNOWN_MEMBER_ID", "FENCED_INSTANCE_ID"]);

const FENCED = new Set(["PRODUCER_FENCED", "INVALID_PRODUCER_EPOCH", "TRANSACTIONAL_ID_AUTHORIZATION_FAILED"]);

/** The innermost kafkajs error (retry wrappers keep the real one in `cause` or `originalError`). */
function rootCause(error: unknown): KafkaJsFailure {
  let current = error as KafkaJsFailure;
  for (let depth = 0; depth < 5; depth++) {
    const inner = (current?.originalError ?? current?.cause) as KafkaJsFailure | undefined;
    if (!inner || typeof inner !== "object") break;
    current = inner;
  }
  return current ?? {};
}

/**
 * kafkajs's admin keeps cluster metadata for every topic it has seen; when another client deletes
 * one of them meanwhile, its offset and metadata calls throw a TypeError from inside kafkajs. The
 * next attempt refreshes the metadata, so it is retried, not taken for a programming error of ours.
 */
function isKafkaJsMetadataRace(error: unknown): boolean {
  return error instanceof TypeError && /node_modules[\\/]kafkajs[\\/]/.test(error.stack ?? "");
}

/**
 * kafkajs's consumer has no group between a crash and its restart (or after it stopped): commit,
 * seek, pause and resume then throw "Consumer group was not initialized" as non-retriable. The
 * consumer rejoins (or is created again) once the brokers answer, so this heals.
 */
function isConsumerWithoutGroup(root: KafkaJsFailure): boolean {
  return typeof root.message === "string" && root.message.startsWith("Consumer group was not initialized");
}

/** Whether a CreateTopics request failed because the broker refused the topic's name (INVALID_TOPIC_EXCEPTION, in kafkajs's aggregate of per-topic errors). */
export function isInvalidTopicName(error: unknown): boolean {
  for (let current = error as (KafkaJsFailure & { errors?: unknown }) | undefined, depth = 0; current && typeof current === "object" && depth < 6; depth++) {
    if (current.type === "INVALID_TOPIC_EXCEPTION") return true;
    if (Array.isArray(current.errors) && current.errors.some((inner: KafkaJsFailure) => inner?.type === "INVALID_TOPIC_EXCEPTION")) return true;
    current = (current.originalError ?? current.cause) as typeof current;
  }
  return false;
}

/** Kafka answered UNKNOWN_TOPIC_OR_PARTITION (also inside kafkajs's wrappers): for a while after a topic's creation, for good after its deletion. */
export function isUnknownTopicOrPartition(error: unknown): boolean {
  return rootCause(error).type === "UNKNOWN_TOPIC_OR_PARTITION";
}

/** How a broker's close under a request still being written reaches the client on a real network: a reset, or a write after it. */
const DROPPED_SOCKET_CODES = new Set(["ECONNRESET", "EPIPE"]);

/**
 * A connection the broker closed under a request, as it does on one above its socket.request.max.bytes (also when it
 * stops): kafkajs's 'Closed connection' when the close came in order, but mostly 'Connection error: write EPIPE' or
 * 'read ECONNRESET' (the broker closes after reading the size prefix, with the rest of the request unread).
 */
export function isConnectionClosed(error: unknown): boolean {
  const root = rootCause(error) as KafkaJsFailure & { code?: unknown };
  if (root.name === "KafkaJSConnectionClosedError") return true;
  if (root.name !== "KafkaJSConnectionError") return false;
  return (typeof root.code === "string" && DROPPED_SOCKET_CODES.has(root.code)) || /\b(ECONNRESET|EPIPE)\b/.test(root.message ?? "");
}

/** A SASL refusal of credentials the brokers accepted before in this process (kafka-auth.ts marks it). */
function credentialsAcceptedBefore(root: KafkaJsFailure): boolean {
  return (root as Record<string, unknown>)[ACCEPTED_BEFORE] === true;
}

export function isRetriableKafkaError(error: unknown): boolean {
  if (error instanceof SluiceError) return error.retriable;
  const root = rootCause(error);
  if (isConsumerWithoutGroup(root)) return true;
  if (root.type && REBALANCED.has(root.type)) return true;
  // Refused credentials are a config error until the brokers accepted this process's once; then a rotation under way.
  if (root.name === "KafkaJSSASLAuthenticationError") return credentialsAcceptedBefore(root);
  if (describeTlsFailure(root) !== undefined) return false;
  if (root.type && FENCED.has(root.type)) return false;
  if (root.name && CONNECTION_FAILURES.has(root.name)) return true;
  if (isKafkaJsMetadataRace(error)) return true;
  return root.retriable === true || (error as KafkaJsFailure)?.retriable === true;
}

export function kafkaError(error: unknown, operation: string, brokers: readonly string[]): SluiceError {
  if (error instanceof SluiceError) return error;
  const root = rootCause(error);
  const message = (error as KafkaJsFailure)?.message ?? String(error);
  const detail = root.message && root.message !== message ? `${message} (${root.message})` : message;
  const context = { component: "kafka", operation, brokers: brokers.join(",") };
  if (root.name === "KafkaJSSASLAuthenticationError") {
    if ((root as Record<string, unknown>)[NOT_REFUSED] === true) {
      return new SluiceError(
        `Kafka ${brokers.join(",")}: the SASL authentication failed during ${operation} without the broker refusing the credentials: ${detail}; the broker did not prove it holds this user's credentials: check that topics.brokers are the brokers meant (and topics.tls, which authenticates them)`,
        { code: "KAFKA_AUTH_FAILED", context, cause: error },
      );
    }
    if (credentialsAcceptedBefore(root)) {
      return new SluiceError(
        `Kafka ${brokers.join(",")} refused the credentials during ${operation}: ${detail}; waiting for the brokers to accept them (retried with backoff; topics.sasl.password_file is read again at each attempt)`,
        { code: "KAFKA_AUTH_FAILED", retriable: true, context, cause: error },
      );
    }
    return new SluiceError(`Kafka ${brokers.join(",")} refused the credentials during ${operation}: ${detail}; check topics.sasl (mechanism, username, password)`, { code: "KAFKA_AUTH_FAILED", context, cause: error });
  }
  const tlsFailure = describeTlsFailure(root);
  if (tlsFailure !== undefined) {
    return new SluiceError(`Kafka ${brokers.join(",")}: ${tlsFailure} during ${operation}; check topics.tls (ca_file for the brokers' CA, cert_file/key_file when they require a client certificate)`, { code: "KAFKA_TLS_FAILED", context, cause: error });
  }
  if (root.type && FENCED.has(root.type)) {
    return new SluiceError(`Kafka fenced this producer during ${operation} (${root.type}): another Sluice process uses the same transactional id; stop one of them`, { code: "KAFKA_PRODUCER_FENCED", context, cause: error });
  }
  if (isConsumerWithoutGroup(root)) {
    return new ConnectionError(`Kafka consumer is rejoining its group after a failure (brokers ${brokers.join(",")}) during ${operation}; retried once it has rejoined`, { code: "KAFKA_CONSUMER_REJOINING", context, cause: error });
  }
  if (root.type && REBALANCED.has(root.type)) {
    return new ConnectionError(`Kafka consumer group rebalanced during ${operation} (${root.type}): this member's partitions may have moved; it rejoins and reads on from the stored offsets`, { code: "KAFKA_GROUP_REBALANCED", context, cause: error });
  }
  if (root.type === "MESSAGE_TOO_LARGE") {
    // The broker does not say which topic: it refused a partition's record batch of the request as a whole.
    return new SluiceError(
      `Kafka refused a record batch during ${operation} as larger than a topic's max.message.bytes (or the broker's message.max.bytes for a topic without it): ${detail}; lower topics.batch_bytes below the smallest such limit, or raise that limit (kafka-configs.sh --alter --entity-type topics --add-config max.message.bytes=...)`,
      { code: "KAFKA_MESSAGE_TOO_LARGE", context, cause: error },
    );
  }
  if (root.type === "RECORD_LIST_TOO_LARGE") {
    // A partition's records of one request must also fit one log segment: a refusal of the same kind, handled as one.
    return new SluiceError(
      `Kafka refused a record batch during ${operation} as larger than a topic's segment.bytes (or the brokers' log.segment.bytes for a topic without it): ${detail}; lower topics.batch_bytes below the smallest such limit, or raise that limit (kafka-configs.sh --alter --entity-type topics --add-config segment.bytes=...)`,
      { code: "KAFKA_MESSAGE_TOO_LARGE", context, cause: error },
    );
  }
  if (isRetriableKafkaError(error)) {
    // Also answered for a while after a topic is created, but for good once it was deleted: the producer then creates it again.
    const deleted = root.type === "UNKNOWN_TOPIC_OR_PARTITION"
      ? "; if it lasts, the topic was deleted: capture creates it again (it then holds only the changes since; docs/operations.md, \"A sink refuses to start\")"
      : "";
    return new ConnectionError(`Kafka ${brokers.join(",")} unavailable during ${operation}: ${detail}${deleted}`, { code: "KAFKA_UNAVAILABLE", context, cause: error });
  }
  return new SluiceError(`Kafka ${operation} failed: ${detail}`, { code: root.type ? `KAFKA_${root.type}` : "KAFKA_ERROR", context, cause: error });
}
