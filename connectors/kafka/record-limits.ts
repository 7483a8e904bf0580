/**
 * What limits the records and record batches Kafka takes into a topic, and how an operator raises it. The broker refuses a
 * partition's records of one produce request above the topic's max.message.bytes (MESSAGE_TOO_LARGE) and above its
 * segment.bytes (RECORD_LIST_TOO_LARGE); a topic without its own of either takes the brokers' message.max.bytes or
 * log.segment.bytes, both changeable for the whole cluster while Sluice runs (kafka-configs --entity-type brokers
 * --entity-default). And a broker closes the connection on a whole request above its socket.request.max.bytes (a
 * static setting), which a client can only take for a network failure.
 */
import type { RecordLimit } from "../topics/contract.ts";

/** DescribeConfigs' ConfigSource of a value the topic sets itself (kafka-configs --entity-type topics). */
const TOPIC_CONFIG = 1;

/** A produce request's bytes beyond its records' own (header, ids, topic and partition framing, batch header): kept free of records. */
export const REQUEST_FRAMING_BYTES = 1024;

export interface DescribedConfig {
  readonly value: string | undefined;
  /** DescribeConfigs' ConfigSource: 1 when the topic sets it itself. */
  readonly source: number | undefined;
}

/** A limit the topic sets itself or that Sluice set at its creation (max.message.bytes = topics.max_record_bytes). */
export function ownRecordLimit(topic: string, bytes: number): RecordLimit {
  return { bytes, setting: `max.message.bytes of topic ${topic}`, raise: "raise it to topics.max_record_bytes", config: "max.message.bytes" };
}

/**
 * The lowest of each broker-level record limit across the brokers (DescribeConfigs of each broker): a topic without its
 * own max.message.bytes or segment.bytes takes the value of the broker leading each partition, and a topic's describe
 * shows only the value of the broker that answered it.
 */
export interface BrokerLimits {
  readonly socketRequestMaxBytes?: number;
  /** message.max.bytes: the max.message.bytes of a topic without its own. */
  readonly messageMaxBytes?: number;
  /** log.segment.bytes: the segment.bytes of a topic without its own. */
  readonly logSegmentBytes?: number;
}

/** The broker configs BrokerLimits is read from. */
export const BROKER_LIMIT_CONFIGS = ["socket.request.max.bytes", "message.max.bytes", "log.segment.bytes"];

/** The lowest of each limit over the brokers' described configs (a broker without a readable value leaves it to the others). */
export function brokerLimitsOf(brokers: readonly { readonly configEntries: readonly { readonly configName: string; readonly configValue: string | null }[] }[]): BrokerLimits {
  const lowest = (name: string): number | undefined => {
    let bytes: number | undefined;
    for (const broker of brokers) {
      const value = bytesOf(broker.configEntries.find((e) => e.configName === name)?.configValue ?? undefined);
      if (value !== null) bytes = Math.min(bytes ?? value, value);
    }
    return bytes;
  };
  const socketRequestMaxBytes = lowest("socket.request.max.bytes");
  const messageMaxBytes = lowest("message.max.bytes");
  const logSegmentBytes = lowest("log.segment.bytes");
  return {
    ...(socketRequestMaxBytes !== undefined && socketRequestMaxBytes > 2 * REQUEST_FRAMING_BYTES ? { socketRequestMaxBytes } : {}),
    ...(messageMaxBytes !== undefined ? { messageMaxBytes } : {}),
    ...(logSegmentBytes !== undefined ? { logSegmentBytes } : {}),
  };
}

/**
 * The tighter of a described topic's max.message.bytes and segment.bytes; null when neither is a byte count. A value the
 * topic takes from the brokers is the lowest of theirs (`brokers`) where that is lower than the one described.
 */
export function describedRecordLimit(topic: string, maxMessageBytes: DescribedConfig, segmentBytes: DescribedConfig, brokers: BrokerLimits = {}): RecordLimit | null {
  const inherited = (config: DescribedConfig) => config.source !== undefined && config.source !== TOPIC_CONFIG;
  const valueOf = (config: DescribedConfig, lowestOfBrokers: number | undefined): number | null => {
    const described = bytesOf(config.value);
    if (!inherited(config) || lowestOfBrokers === undefined) return described;
    return described === null ? lowestOfBrokers : Math.min(described, lowestOfBrokers);
  };
  const message = valueOf(maxMessageBytes, brokers.messageMaxBytes);
  const segment = valueOf(segmentBytes, brokers.logSegmentBytes);
  if (segment !== null && (message === null || segment < message)) {
    return inherited(segmentBytes)
      ? { bytes: segment, setting: `log.segment.bytes of the brokers, which topic ${topic} takes (a record batch must fit one log segment)`, raise: "raise it, or set the topic's own segment.bytes above topics.max_record_bytes", config: "segment.bytes" }
      : { bytes: segment, setting: `segment.bytes of topic ${topic}`, raise: "raise it above topics.max_record_bytes (a record batch must fit one log segment)", config: "segment.bytes" };
  }
  if (message === null) return null;
  return inherited(maxMessageBytes)
    ? { bytes: message, setting: `message.max.bytes of the brokers, which topic ${topic} takes (it sets no max.message.bytes)`, raise: "raise it, or set the topic's own max.message.bytes to topics.max_record_bytes", config: "max.message.bytes" }
    : ownRecordLimit(topic, message);
}

/** The largest record a request within the brokers' smallest socket.request.max.bytes carries. */
export function requestRecordLimit(socketRequestMaxBytes: number): RecordLimit {
  return {
    bytes: socketRequestMaxBytes - REQUEST_FRAMING_BYTES,
    setting: `socket.request.max.bytes of the brokers (${socketRequestMaxBytes}) less ${REQUEST_FRAMING_BYTES} bytes of request framing`,
    raise: "raise socket.request.max.bytes in the brokers' server.properties, a static setting read at their start",
    config: null,
  };
}

/** Kafka's default segment.bytes (1 GiB), the smallest it takes (1 MiB), and the largest (an int32). */
const DEFAULT_SEGMENT_BYTES = 2 ** 30;
const MIN_SEGMENT_BYTES = 2 ** 20;
const MAX_SEGMENT_BYTES = 2 ** 31 - 1;
/** Records of the largest size a suggested segment.bytes holds at least: a segment per record would make a file (and its indexes) per record. */
const RECORDS_PER_SEGMENT = 16;

/**
 * The value of `config` (max.message.bytes or segment.bytes) an operator sets to take records of `needed` bytes: that for
 * max.message.bytes, and for segment.bytes room for many of them, Kafka's default 1 GiB at least, but no more than the
 * topic's retention.bytes (`retentionBytes`, per partition; null or negative: none) unless a record needs more: Kafka
 * deletes whole segments and never the one written to, so a segment larger than retention.bytes kept a partition at up to
 * a segment's size, past what retention.bytes says.
 */
export function raisedConfigValue(config: "max.message.bytes" | "segment.bytes", needed: number, retentionBytes: number | null = null): number {
  if (config === "max.message.bytes") return needed;
  let bytes = Math.max(DEFAULT_SEGMENT_BYTES, RECORDS_PER_SEGMENT * needed);
  if (retentionBytes !== null && retentionBytes >= 0) bytes = Math.min(bytes, retentionBytes);
  return Math.min(MAX_SEGMENT_BYTES, Math.max(bytes, needed, MIN_SEGMENT_BYTES));
}

/** The tighter of two limits (the first when equal). */
export function tighter(a: RecordLimit | undefined, b: RecordLimit | undefined): RecordLimit | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return b.bytes < a.bytes ? b : a;
}

function bytesOf(value: string | undefined): number | null {
  if (value === undefined || value === "") return null;
  const bytes = Number(value);
  return Number.isSafeInteger(bytes) && bytes > 0 ? bytes : null;
}
