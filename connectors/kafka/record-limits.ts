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

/** The tighter of a described topic's max.message.bytes and segment.bytes; null when neither is a byte count. */
export function describedRecordLimit(topic: string, maxMessageBytes: DescribedConfig, segmentBytes: DescribedConfig): RecordLimit | null {
  const message = bytesOf(maxMessageBytes.value);
  const segment = bytesOf(segmentBytes.value);
  const inherited = (config: DescribedConfig) => config.source !== undefined && config.source !== TOPIC_CONFIG;
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

/** Kafka's default segment.bytes (1 GiB), and the largest it takes (an int32). */
const DEFAULT_SEGMENT_BYTES = 2 ** 30;
const MAX_SEGMENT_BYTES = 2 ** 31 - 1;
/** Records of the largest size a suggested segment.bytes holds at least: a segment per record would make a file (and its indexes) per record. */
const RECORDS_PER_SEGMENT = 16;

/**
 * The value of `config` (max.message.bytes or segment.bytes) an operator sets to take records of `needed` bytes: that for
 * max.message.bytes, and for segment.bytes room for many of them, Kafka's default 1 GiB at least.
 */
export function raisedConfigValue(config: "max.message.bytes" | "segment.bytes", needed: number): number {
  if (config === "max.message.bytes") return needed;
  return Math.min(MAX_SEGMENT_BYTES, Math.max(DEFAULT_SEGMENT_BYTES, RECORDS_PER_SEGMENT * needed));
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
