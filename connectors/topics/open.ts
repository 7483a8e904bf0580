import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import type { SluiceConfig, TopicsConfig } from "../../config/schema.ts";
import type { Logger } from "../../runtime/logger.ts";
import type { KafkaReaderLimits } from "../kafka/kafka-consumer.ts";
import type { LostTopicPolicy } from "../kafka/lost-internal-topics.ts";
import { dataCheckDeadLetterTopic, dataTopicPrefix, parkingTopicOf, sinkDeadLetterTopic } from "./names.ts";
import type { TopicLog } from "./contract.ts";
import { isRetriable } from "../errors.ts";
import { sleep } from "../../runtime/backoff.ts";

/** The longest wait between two tries to open the embedded log, as capture's between two produce tries. */
const EMBEDDED_OPEN_MAX_DELAY_MS = 30_000;

const errorText = (error: unknown): string => (error instanceof Error ? error.message : String(error));

/**
 * Opens the deployment's topic log as configured: the embedded log file, or a Kafka cluster
 * (retrying until reachable or `signal` aborts). `writer` names a second writer in the same
 * deployment (e.g. a sink thread) so its Kafka transactional id does not fence the first's.
 * For `sluice run` only: operator commands use openTopicLogForCommand.
 */
export async function openTopicLog(
  config: TopicsConfig,
  deployment: string,
  logger: Logger,
  signal?: AbortSignal,
  writer?: string,
  options: { lazyProducer?: boolean; readerLimits?: KafkaReaderLimits; lostTopics?: LostTopicPolicy; onWaiting?: (why: string | null) => void } = {},
): Promise<TopicLog> {
  if (config.kind === "embedded") {
    // Loaded on demand, like Kafka's: a Kafka deployment never loads the embedded log (node:sqlite and its modules).
    const { EmbeddedTopicLog, embeddedOptionsFromConfig } = await import("../embedded/embedded-log.ts");
    // A disk full (or the file locked) when the log is first created is waited out like a full disk later on, not a failed start.
    for (let attempt = 1; ; attempt++) {
      try {
        const log = EmbeddedTopicLog.open(embeddedOptionsFromConfig(config, logger, deployment));
        options.onWaiting?.(null);
        return log;
      } catch (error) {
        if (!isRetriable(error) || signal?.aborted) throw error;
        const delayMs = Math.min(EMBEDDED_OPEN_MAX_DELAY_MS, 500 * 2 ** Math.min(attempt - 1, 10));
        options.onWaiting?.(errorText(error));
        logger.warn({ err: errorText(error), attempt, delayMs }, "opening the embedded topic log failed; retrying");
        await sleep(delayMs, signal);
      }
    }
  }
  // Loaded on demand: an embedded deployment never loads kafkajs.
  const { KafkaTopicLog } = await import("../kafka/kafka-log.ts");
  const transactionalId = writer ? transactionalIdOf(deployment, config.client_id, writer) : undefined;
  // A lazy producer registers its transactional id (fencing any other holder) only at its first write: a standby capture writes nothing until it leads.
  return KafkaTopicLog.open({ config, deployment, logger, ...(signal ? { signal } : {}), ...(transactionalId ? { transactionalId } : {}), ...(options.lazyProducer ? { access: "command" as const } : {}), ...(options.readerLimits ? { readerLimits: options.readerLimits } : {}), ...(options.lostTopics ? { lostTopics: options.lostTopics } : {}) });
}

/**
 * How a deployment's Kafka log judges an internal topic it finds missing at open (connectors/kafka/lost-internal-topics.ts):
 * `accept` only from sluice run --accept-lost-topics, the operator's word that the loss is known.
 */
export function lostTopicPolicyOf(config: SluiceConfig, accept = false): LostTopicPolicy {
  return {
    builtinRegistry: config.schema_registry.kind !== "remote",
    mysqlSources: config.sources.filter((s) => s.kind === "mysql").map((s) => s.name),
    sources: config.sources.map((s) => ({ name: s.name, transactionTopic: s.transaction_metadata, outboxTopic: s.outbox?.topic ?? null })),
    personalData: config.personal_data !== undefined,
    personalTopics: personalTopicsOf(config),
    deadLetterTopics: config.sinks.map((sink) => sinkDeadLetterTopic(config.name, sink)),
    accept,
  };
}

/** The data topics of the tables with personal columns, their sources' parking and dead-letter topics, the sinks' dead-letter topics reading those sources. */
function personalTopicsOf(config: SluiceConfig): string[] {
  const d = config.name;
  const sources = config.sources.filter((s) => Object.values(s.governance?.tables ?? {}).some((rules) => rules.personal !== undefined));
  const names = sources.map((s) => s.name);
  return [
    ...sources.flatMap((s) => Object.entries(s.governance?.tables ?? {}).filter(([, rules]) => rules.personal !== undefined).map(([table]) => `${dataTopicPrefix(d, s.name)}.${table}`)),
    ...names.flatMap((source) => [parkingTopicOf(d, source), dataCheckDeadLetterTopic(d, source)]),
    ...config.sinks.filter((sink) => (sink.sources ?? names).some((source) => names.includes(source))).map((sink) => sinkDeadLetterTopic(d, sink)),
  ];
}

/**
 * A sink thread's writer name: its own per process (`sink.<sink>.<host>.<pid>`), since several
 * processes may run the same sink, sharing its partitions, and must not fence each other's producer.
 */
export function sinkWriter(sink: string, owner: string): string {
  return `sink.${sink}.${owner.replace(/[^A-Za-z0-9._-]/g, "_")}`;
}

/**
 * How an operator command (every command but `sluice run`) uses the log while a daemon may be
 * running on it: "read-only" has no producer and takes no lock or lease (writes fail with
 * TOPIC_LOG_READ_ONLY); "write" may write, with a Kafka transactional id of its own, connected
 * only when it first produces.
 */
export type CommandAccess = "read-only" | "write";

/**
 * A command gives up on an unreachable Kafka after a few seconds instead of waiting for ever: one attempt, in which
 * kafkajs already retries the connection 4 times (kafka-client.ts), 3-4 s (5 attempts kept the operator ~20 s).
 */
const COMMAND_RETRY = { initialMs: 200, maxMs: 2_000, maxAttempts: 1 };

export async function openTopicLogForCommand(config: TopicsConfig, deployment: string, logger: Logger, access: CommandAccess, lostTopics?: LostTopicPolicy): Promise<TopicLog> {
  if (config.kind === "embedded") {
    const { EmbeddedTopicLog } = await import("../embedded/embedded-log.ts");
    return EmbeddedTopicLog.open({ path: config.path, logger, readOnly: access === "read-only", maintenanceIntervalMs: 0 });
  }
  const { KafkaTopicLog } = await import("../kafka/kafka-log.ts");
  return KafkaTopicLog.open({
    config,
    deployment,
    logger,
    access: access === "read-only" ? "read-only" : "command",
    transactionalId: commandTransactionalId(deployment, config.client_id),
    retry: COMMAND_RETRY,
    ...(lostTopics ? { lostTopics } : {}),
  });
}

/**
 * Kafka transactional ids: the daemon's capture is `<deployment>.<client_id>`, a sink thread's
 * `<deployment>.<client_id>.sink.<sink>`, a command's `<deployment>.<client_id>.command.<host>.<pid>.<random>`:
 * the prefixes keep them apart, so no command ever fences the daemon's or a sink's producer.
 */
export function transactionalIdOf(deployment: string, clientId: string, writer?: string): string {
  return writer ? `${deployment}.${clientId}.${writer}` : `${deployment}.${clientId}`;
}

export function commandTransactionalId(deployment: string, clientId: string): string {
  return transactionalIdOf(deployment, clientId, `command.${hostname()}.${process.pid}.${randomBytes(4).toString("hex")}`);
}
