/** The kafkajs client for a deployment's `topics: {kind: kafka}` config, logging through pino. */
import { createRequire } from "node:module";
import type { ConnectionOptions } from "node:tls";
import { Kafka, logLevel } from "kafkajs";
import type { ISocketFactory, KafkaConfig, LogEntry } from "kafkajs";
import type { TopicsConfig } from "../../config/schema.ts";
import type { Logger } from "../../runtime/logger.ts";
import { readTlsFiles } from "../common/tls-files.ts";
import { saslMechanism } from "./kafka-auth.ts";
import { registerCompressionCodecs } from "./compression.ts";
// kafkajs decodes a batch the log cleaner emptied to nothing, losing its offsets: this keeps them.
import "./emptied-batches.ts";

export type KafkaTopicsConfig = Extract<TopicsConfig, { kind: "kafka" }>;

interface RequestQueue {
  pending: unknown[];
  throttledUntil: number;
  scheduleCheckPendingRequests(): void;
}

let requestQueueGuarded = false;

/**
 * kafkajs 2.2.4 (tulios/kafkajs#1751, #1704) re-arms its pending-request check after every
 * response even when nothing is pending or throttled, with the delay `throttledUntil - now`, which
 * is then negative: Node 24 prints TimeoutNegativeWarning and each connection spins a 1 ms timer
 * loop. The check is only needed while requests wait (in flight limit or broker throttling).
 */
export function guardRequestQueue(): void {
  if (requestQueueGuarded) return;
  requestQueueGuarded = true;
  const { prototype } = createRequire(import.meta.url)("kafkajs/src/network/requestQueue/index.js") as { prototype: RequestQueue };
  const schedule = prototype.scheduleCheckPendingRequests;
  prototype.scheduleCheckPendingRequests = function (this: RequestQueue) {
    // Nothing waits and no throttle runs: no check to schedule (kafkajs would schedule it at a negative delay).
    if (this.pending.length === 0 && this.throttledUntil <= Date.now()) return;
    schedule.call(this);
  };
}

/** `socketFactory`: how the client opens its connections (kafkajs's own by default; a test cuts them through it). */
export function createKafkaClient(config: KafkaTopicsConfig, logger: Logger, socketFactory?: ISocketFactory): Kafka {
  registerCompressionCodecs();
  guardRequestQueue();
  const kafkaLogger = logger.child({ component: "kafkajs" });
  const settings: KafkaConfig = {
    clientId: config.client_id,
    brokers: config.brokers,
    connectionTimeout: 5_000,
    requestTimeout: 30_000,
    // kafkajs retries each request a few times; Sluice's own loop retries whole operations with backoff.
    retry: { initialRetryTime: 200, maxRetryTime: 5_000, retries: 4 },
    logLevel: logLevel.INFO,
    logCreator: () => (entry: LogEntry) => {
      const { message, ...fields } = entry.log;
      // kafkajs reports every retried request as an error; Sluice logs the outcome itself, so these stay at debug.
      if (entry.level <= logLevel.WARN) kafkaLogger.debug({ namespace: entry.namespace, ...fields }, message);
      else kafkaLogger.trace({ namespace: entry.namespace, ...fields }, message);
    },
  };
  if (config.tls?.enabled) settings.ssl = kafkaTlsOptions(config.tls);
  if (socketFactory) settings.socketFactory = socketFactory;
  // The password is read at each authentication: a rotated topics.sasl.password_file is taken at the next connection.
  if (config.sasl) settings.sasl = saslMechanism(config.sasl);
  return new Kafka(settings);
}

/** Node TLS options for the brokers: the CA to trust and the client certificate, read from their PEM files. */
function kafkaTlsOptions(tls: NonNullable<KafkaTopicsConfig["tls"]>): ConnectionOptions {
  const files = readTlsFiles(tls, { label: "Kafka topic log", section: "topics.tls", context: { component: "kafka" } });
  return { rejectUnauthorized: true, ...(files.ca ? { ca: [files.ca] } : {}), ...(files.cert ? { cert: files.cert } : {}), ...(files.key ? { key: files.key } : {}) };
}
