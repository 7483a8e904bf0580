/**
 * Outbox routing (docs/outbox.md), in capture's encode step: an inserted row of an outbox table,
 * or a PostgreSQL logical message with the outbox prefix, becomes one record on the topic its
 * aggregate type chooses -- key the aggregate id (text), value the payload (its JSON text, or Avro
 * under the aggregate type's registered schema), headers `id` and `type` -- as Debezium's outbox
 * event router does. Everything else goes to the table encoder. The records travel with the
 * batch's checkpoint like any other, so they are exactly-once into topics too.
 */
import { MiB, readBoundedFile } from "../config/bounded-file.ts";
import avro from "avsc";
import type { Type } from "avsc";
import type { ChangeEvent, ColumnValue, ProducedRecord, TopicLog } from "../connectors/contracts.ts";
import { tableMatcher } from "../connectors/common/table-patterns.ts";
import { ConfigError, SluiceError } from "../connectors/errors.ts";
import { LOGICAL_MESSAGE_SCHEMA } from "../connectors/postgres/logical-messages.ts";
import { isInternalTopic, kafkaTopicNameProblem, TOPIC_NAME_INVALID } from "../connectors/topics/names.ts";
import type { SluiceConfig, SourceConfig } from "../config/schema.ts";
import { outboxMessageBytes } from "../config/schema.ts";
import type { SchemaRegistry } from "../schema-registry/registry.ts";
import { encodeFramed } from "../schema-registry/wire-format.ts";
import { jsonShapeProblem } from "../runtime/json-shape.ts";
import type { JsonShapeLimits } from "../runtime/json-shape.ts";
import type { ChangeEncoder, ParkedChangeSealer } from "./capture.ts";
import { formatPosition } from "../connectors/common/position-text.ts";
import { OUTBOX_KEPT_PREFIX_BYTES, utf8Prefix } from "../connectors/postgres/logical-messages.ts";
import { recordBytes } from "../connectors/topics/spec.ts";
import { serializeEventBytes } from "./event-json.ts";
import type { Logger } from "../runtime/logger.ts";
import { whenDurable } from "./when-durable.ts";

type OutboxConfig = NonNullable<SourceConfig["outbox"]>;

/**
 * Error code of an outbox row or message that is no event (a missing part, a payload its schema refuses, too large): by
 * outbox.on_invalid, dead-lettered (the stream flows on) or halting the outbox table (parked, nothing lost).
 */
export const OUTBOX_EVENT_INVALID = "OUTBOX_EVENT_INVALID";
/** Error code of an Avro schema file that cannot be read or is no schema: the deployment's problem, every event of its type would fail, so it halts the outbox table whatever on_invalid says. */
export const OUTBOX_SCHEMA_UNREADABLE = "OUTBOX_SCHEMA_UNREADABLE";
/**
 * Error code of an Avro payload whose aggregate type outbox.payload.schemas names no schema for: most often the
 * application shipped a new type before Sluice's config listed it, so it halts the outbox table whatever on_invalid
 * says (parked, nothing lost) until the config names a schema and a restart publishes the events in order (the
 * schemas are read at start: `sluice halted retry` would re-encode under the same config and halt again).
 */
export const OUTBOX_SCHEMA_MISSING = "OUTBOX_SCHEMA_MISSING";

/**
 * Error code of a row of an outbox table whose aggregate type outbox.aggregate_types does not list, or whose topic would
 * be one more than outbox.max_topics: it halts the outbox table whatever on_invalid says (parked, nothing lost) until the
 * config allows it and a restart publishes the events in order. A logical message so refused is
 * OUTBOX_EVENT_INVALID instead (anyone connected may emit one).
 */
export const OUTBOX_TOPIC_REFUSED = "OUTBOX_TOPIC_REFUSED";

/** Why an event was dead-lettered, as the metric's label: too large, a topic the outbox may not make, or anything else that makes it no event. */
export type OutboxRefusal = "too-large" | "topic-refused" | "invalid";

/**
 * Where events that are no event go (on_invalid dead-letter): a row of an outbox table to the source's dead-letter topic,
 * beside the data checks' (the only copy of the change, kept unless the operator bounds it); a logical message, which
 * anyone connected may emit, to a bounded topic of its own, so that junk messages never evict those.
 */
export interface OutboxDeadLetters {
  /** `<deployment>.dlq.<source>`: rows of outbox tables. */
  readonly topic: string;
  /** `<deployment>.dlq.<source>.messages`: logical messages. */
  readonly messageTopic: string;
  /** Creates `topic` (one of the two); called before its first dead letter in this process. */
  create(topic: string): Promise<void>;
  /** Seals personal values as parking does (an outbox table may be a personal table). */
  readonly sealer?: ParkedChangeSealer | undefined;
  /** Called once the dead letter is durable (capture runs it after the write that stored it: durableWork), not at each encoding. */
  onDeadLetter?(table: string, refusal: OutboxRefusal): void;
}

/**
 * What a logical message's content, or a payload parsed for Avro, may hold before JSON.parse builds it on the thread
 * that captures (runtime/json-shape.ts): anyone connected may emit a logical message, and 4 MiB of nested arrays or of
 * `{},` repeated ran that thread's heap (~57 MiB) out of memory. 150,000 values, as a registry body; 1,000 deep, which
 * JSON.stringify (it recurses) writes back well within the stack.
 */
export const OUTBOX_JSON_SHAPE: JsonShapeLimits = { maxDepth: 1_000, maxValues: 150_000 };

interface OutboxEvent {
  readonly id: string;
  readonly aggregateType: string;
  readonly aggregateId: string;
  readonly type: string;
  /** The payload's text (JSON), or bytes as stored; null for a tombstone. */
  readonly payload: string | Uint8Array | null;
}

interface AvroPayload {
  readonly type: Type;
  readonly schemaId: number;
}

export class OutboxRouter implements ChangeEncoder {
  private readonly outbox: OutboxConfig;
  /** outbox.max_message_bytes, or topics.max_record_bytes when it is not set. */
  private readonly maxMessageBytes: number;
  private readonly maxMessageBytesName: string;
  private readonly config: SluiceConfig;
  private readonly source: SourceConfig;
  private readonly inner: ChangeEncoder;
  private readonly log: TopicLog;
  private readonly registry: SchemaRegistry;
  private readonly logger: Logger | undefined;
  private readonly tables: ReadonlySet<string>;
  private readonly created = new Set<string>();
  private readonly avroPayloads = new Map<string, Promise<AvroPayload>>();
  private readonly warned = new Set<string>();
  private readonly deadLetters: OutboxDeadLetters | undefined;
  private readonly deadLetterTopicsCreated = new Set<string>();
  /** outbox.aggregate_types, or null: any type. */
  private readonly allowedTypes: ReadonlySet<string> | null;
  /** The topics matching outbox.topic (outboxTopics), once read. */
  private existingTopics: Promise<Set<string>> | null = null;

  /** Without `deadLetters`, an event that is no event always throws (halts), whatever on_invalid says. */
  constructor(config: SluiceConfig, source: SourceConfig & { outbox: OutboxConfig }, inner: ChangeEncoder, log: TopicLog, registry: SchemaRegistry, logger?: Logger, deadLetters?: OutboxDeadLetters) {
    this.config = config;
    this.source = source;
    this.outbox = source.outbox;
    this.maxMessageBytes = outboxMessageBytes(source.outbox, config.topics);
    this.maxMessageBytesName = `outbox.max_message_bytes (${this.maxMessageBytes}${source.outbox.max_message_bytes === undefined ? ": topics.max_record_bytes, as it is not set" : ""})`;
    this.inner = inner;
    this.log = log;
    this.registry = registry;
    this.logger = logger;
    this.deadLetters = deadLetters;
    this.tables = new Set(this.outbox.tables);
    this.allowedTypes = this.outbox.aggregate_types === undefined ? null : new Set(this.outbox.aggregate_types);
    const captured = tableMatcher(source.tables);
    for (const table of this.outbox.tables) {
      const dot = table.indexOf(".");
      if (!captured(table.slice(0, dot), table.slice(dot + 1))) {
        throw new ConfigError(`source ${source.name}: outbox table ${table} is not among the source's tables (${source.tables.join(", ")}): add it there too`, { code: "CONFIG_INVALID", context: { component: "outbox", source: source.name, table } });
      }
    }
        const sample = this.topicOf("x");
    const clash = config.sources.find((s) => sample.startsWith(`${config.name}.${s.name}.`));
    if (clash !== undefined) {
      throw new ConfigError(`source ${source.name}: outbox.topic "${this.outbox.topic}" gives topics under ${config.name}.${clash.name}., where sinks read row changes: choose another (default "{deployment}.outbox.{aggregate_type}")`, { code: "CONFIG_INVALID", context: { component: "outbox", source: source.name } });
    }
  }

  async encode(event: ChangeEvent): Promise<ProducedRecord[]> {
    const table = `${event.schema.schema}.${event.schema.table}`;
    const message = event.schema.sourceKind === "postgres" && event.schema.schema === LOGICAL_MESSAGE_SCHEMA;
    if (!message && !this.tables.has(table)) return this.inner.encode(event);
    if (event.source.snapshot || event.op === "r") return [];
    if (event.op !== "c") {
      this.ignore(table, event.op);
      return [];
    }
    try {
      return await this.route(event, table, message);
    } catch (error) {
      if (!(error instanceof SluiceError) || error.code !== OUTBOX_EVENT_INVALID || this.outbox.on_invalid === "halt" || this.deadLetters === undefined) throw error;
      return this.deadLetter(event, table, message, error, this.deadLetters);
    }
  }

  /**
   * Everything an event can be refused for is checked before its topic is made: its parts, the aggregate type's topic
   * (its name, Sluice's own or a data topic, outbox.aggregate_types and outbox.max_topics), its payload (Avro: the
   * schema named and the payload fitting it) and its record's size. Anyone connected to the database may emit a
   * logical message with the prefix, so a topic made first would let them make topics of their choosing, without bound.
   */
  private async route(event: ChangeEvent, table: string, message: boolean): Promise<ProducedRecord[]> {
    const parsed = message ? this.fromMessage(event, table) : this.fromRow(event, table);
    const topic = this.topicOf(parsed.aggregateType);
    this.admitType(parsed.aggregateType, topic, table, event, message);
    const known = this.created.has(topic);
    if (!known) await this.admitTopic(parsed.aggregateType, topic, table, event, message);
    const record: ProducedRecord = {
      topic,
      key: Buffer.from(parsed.aggregateId, "utf8"),
      value: parsed.payload === null ? null : await this.value(topic, parsed, table, event, message),
      headers: { id: Buffer.from(parsed.id, "utf8"), type: Buffer.from(parsed.type, "utf8") },
      timestamp: event.source.commitTimeMs,
    };
    // Checked here, not by capture (RECORD_TOO_LARGE halts the table): an event too large for its topic is the event's problem.
    const bytes = recordBytes(record);
    const configured = this.config.topics.max_record_bytes;
    if (bytes > configured) throw invalid(`the event's record is ${bytes} bytes, over topics.max_record_bytes (${configured})`, table, event, { bytes, refusal: "too-large" });
    if (!known) {
      await this.log.createTopic({
        name: topic,
        partitions: this.config.topics.partitions,
        retentionMs: this.config.topics.retention.max_age === 0 ? null : this.config.topics.retention.max_age,
        retentionBytes: this.config.topics.retention.max_bytes ?? null,
        compacted: false,
        maxRecordBytes: configured,
      }).catch((error: unknown) => {
        // Kafka: a name that differs from an existing topic's only in "." and "_" (known only to the broker).
        if (error instanceof SluiceError && (error.code === TOPIC_NAME_INVALID || error.code === "TOPIC_SPEC_INVALID")) {
          throw invalid(`the aggregate type ${JSON.stringify(parsed.aggregateType)} gives a topic name the topic log refuses: ${error.message}`, table, event);
        }
        throw error;
      });
      this.created.add(topic);
      // Counted once made: an event refused after its admission (its payload, its size) takes no place under max_topics.
      if (this.existingTopics !== null) (await this.existingTopics).add(topic);
    }
    // A Kafka topic that existed with a smaller max.message.bytes is known once it is declared.
    const limit = this.recordLimit(topic);
    if (bytes > limit.bytes) throw invalid(`the event's record is ${bytes} bytes, over ${limit.name}`, table, event, { bytes, refusal: "too-large" });
    return [record];
  }

  /** outbox.aggregate_types: an unlisted type is refused (any topic, made or not). */
  private admitType(aggregateType: string, topic: string, table: string, event: ChangeEvent, message: boolean): void {
    if (this.allowedTypes === null || this.allowedTypes.has(aggregateType)) return;
    throw this.topicRefused(`the aggregate type ${JSON.stringify(aggregateType)} (topic ${topic}) is not among outbox.aggregate_types`, aggregateType, table, event, message);
  }

  /**
   * A topic this process has not written yet: its name, and outbox.max_topics, before it is made. Without
   * outbox.aggregate_types, a logical message (anyone connected may emit one) makes no new topic: it is published only to
   * a topic that exists. Were it allowed to, any login could fill outbox.max_topics with types of its choosing, and the
   * application's next new aggregate type, written as a row, would halt the outbox table (OUTBOX_TOPIC_REFUSED) for good.
   * A config file with message_prefix must list the types (config/schema.ts), so this holds only for a config built otherwise.
   */
  private async admitTopic(aggregateType: string, topic: string, table: string, event: ChangeEvent, message: boolean): Promise<void> {
    const taken = this.takenTopic(topic);
    if (taken !== null) throw invalid(`the aggregate type ${JSON.stringify(aggregateType)} gives topic ${JSON.stringify(topic)}, ${taken}`, table, event);
    // Kafka's rules for either log (the stricter: a deployment may move to Kafka).
    const problem = kafkaTopicNameProblem(topic);
    if (problem !== null) throw invalid(`the aggregate type ${JSON.stringify(aggregateType)} gives a topic name the topic log refuses: ${problem}`, table, event);
    // With aggregate_types set, the list bounds the topics; a template without {aggregate_type} makes one topic.
    if (this.allowedTypes !== null || !this.outbox.topic.includes("{aggregate_type}")) return;
    const existing = await this.outboxTopics();
    if (existing.has(topic)) return;
    if (message) {
      throw this.topicRefused(
        `the logical message's aggregate type ${JSON.stringify(aggregateType)} has no topic (${topic}), and a logical message makes a new topic only for a type outbox.aggregate_types lists (anyone connected may emit one); list it there, or write the event as a row of an outbox table`,
        aggregateType,
        table,
        event,
        message,
      );
    }
    if (existing.size >= this.outbox.max_topics) {
      throw this.topicRefused(
        `the aggregate type ${JSON.stringify(aggregateType)} would make a new topic ${topic}, and ${existing.size === 1 ? "1 topic matches" : `${existing.size} topics match`} outbox.topic "${this.outbox.topic}" already (outbox.max_topics ${this.outbox.max_topics}); raise outbox.max_topics or list the wanted types in outbox.aggregate_types`,
        aggregateType,
        table,
        event,
        message,
      );
    }
  }

  /**
   * The topics that match outbox.topic, read from the topic log once (those made before this process, by any source
   * whose outbox.topic gives the same names, count too), then kept with the ones this process makes. Sluice's own and
   * the data topics are left out: "{deployment}.{aggregate_type}" matches them too, and no aggregate type makes one.
   */
  private outboxTopics(): Promise<Set<string>> {
    if (this.existingTopics === null) {
      const pattern = topicPattern(this.outbox.topic, this.config.name, this.source.name);
      const listing = this.log.topicNames().then((names) => new Set(names.filter((name) => pattern.test(name) && this.takenTopic(name) === null)));
      this.existingTopics = listing;
      listing.catch(() => {
        if (this.existingTopics === listing) this.existingTopics = null;
      });
    }
    return this.existingTopics;
  }

  /**
   * A logical message (anyone connected may emit one) is no event: dead-lettered, or halting under on_invalid halt. A
   * row of an outbox table (written by the application, which holds INSERT on it) halts the table whatever on_invalid
   * says: most often the application shipped a new type before the config allowed it, and its events wait, parked, until
   * a restart with the config that allows it.
   */
  private topicRefused(why: string, aggregateType: string, table: string, event: ChangeEvent, message: boolean): SluiceError {
    if (message) return invalid(why, table, event, { refusal: "topic-refused" });
    return new SluiceError(`outbox ${table}: ${why}. Change the config and restart: the events wait, parked, and are published in order (sluice halted skip --source ${this.source.name} --table ${table} leaves this one out)`, {
      code: OUTBOX_TOPIC_REFUSED,
      context: { component: "outbox", source: event.source.name, table, position: `${event.source.position.commit}/${event.source.position.change}`, aggregateType },
    });
  }

  /** The largest record `topic` takes: topics.max_record_bytes, or less when an existing Kafka topic's max.message.bytes says so. */
  private recordLimit(topic: string): { bytes: number; name: string } {
    const configured = this.config.topics.max_record_bytes;
    const existing = this.log.maxRecordBytes?.(topic) ?? Number.POSITIVE_INFINITY;
    return existing < configured ? { bytes: existing, name: `max.message.bytes of topic ${topic} (${existing})` } : { bytes: configured, name: `topics.max_record_bytes (${configured})` };
  }

  /**
   * The event as one record of the source's dead-letter topic, instead of halting its stream: the change as JSON (as
   * parking keeps it), with headers naming why, where and how much of it is kept. Content over max_message_bytes (a
   * message's was cut at decoding already), or a change too large for one dead-letter record, keeps only the first
   * OUTBOX_KEPT_PREFIX_BYTES of its content and its size.
   */
  private async deadLetter(event: ChangeEvent, table: string, message: boolean, error: SluiceError, deadLetters: OutboxDeadLetters): Promise<ProducedRecord[]> {
    const column = message ? "content" : this.outbox.columns.payload;
    const after = event.after ?? {};
    const declared = message ? after["content_bytes"] : undefined;
    const value = after[column];
    const size = typeof declared === "number" ? declared : byteLength(value ?? null);
    let keep = Math.min(OUTBOX_KEPT_PREFIX_BYTES, this.maxMessageBytes);
    const cut = (row: typeof after, columns: readonly string[]) => {
      const out = { ...row };
      for (const name of columns) {
        const v = out[name];
        if (typeof v === "string" || v instanceof Uint8Array) out[name] = utf8Prefix(typeof v === "string" ? Buffer.from(v, "utf8") : v, keep);
      }
      return out;
    };
    let kept: ChangeEvent = event;
    let whole = typeof declared !== "number" && size <= this.maxMessageBytes;
    if (!whole) kept = { ...event, after: cut(after, [column]) };
    const topic = message ? deadLetters.messageTopic : deadLetters.topic;
    if (!this.deadLetterTopicsCreated.has(topic)) {
      await deadLetters.create(topic);
      this.deadLetterTopicsCreated.add(topic);
    }
    const position = formatPosition(event.schema.sourceKind, event.source.position);
    const build = async (change: ChangeEvent, keptWhole: boolean): Promise<ProducedRecord> => {
      const note = keptWhole ? "kept whole" : `kept: its first ${Math.min(keep, size)} of ${size} bytes of ${column}`;
      const sealed = deadLetters.sealer ? await deadLetters.sealer.seal(change) : { event: change, headers: {} };
      return {
        topic,
        key: Buffer.from(table),
        value: serializeEventBytes(sealed.event),
        headers: {
          "sluice.reason": Buffer.from(`${error.message}; source ${event.source.name}, position ${position}; ${note}`),
          "sluice.check": Buffer.from("outbox"),
          "sluice.column": Buffer.from(column),
          "sluice.table": Buffer.from(table),
          "sluice.position": Buffer.from(position),
          "sluice.bytes": Buffer.from(String(size)),
          "sluice.kept": Buffer.from(keptWhole ? "whole" : "prefix"),
          ...sealed.headers,
        },
        timestamp: event.source.commitTimeMs,
      };
    };
    let record = await build(kept, whole);
    const limit = this.recordLimit(topic).bytes;
    if (recordBytes(record) > limit) {
      // Other columns too large (an outbox row's own): every text of the row cut as well.
      whole = false;
      record = await build({ ...kept, after: cut(after, Object.keys(after)) }, false);
      // A topics.max_record_bytes near the kept prefix's size (64 KiB) takes no such prefix with its headers: shorter ones until it fits.
      while (recordBytes(record) > limit && keep > 1) {
        keep = Math.floor(keep / 2);
        record = await build({ ...kept, after: cut(after, Object.keys(after)) }, false);
      }
    }
    const refusal = error.context["refusal"];
    const reason: OutboxRefusal = refusal === "too-large" || refusal === "topic-refused" ? refusal : "invalid";
    const onDeadLetter = deadLetters.onDeadLetter;
    // Counted once durable: an event encoded again (a write that failed and the source sending it again, a release) is one dead letter.
    if (onDeadLetter !== undefined) whenDurable(record, () => onDeadLetter.call(deadLetters, table, reason));
    this.logger?.warn(
      { source: event.source.name, table, position, deadLetterTopic: topic, bytes: size, kept: whole ? "whole" : "prefix", err: error.toLog() },
      `outbox ${table}: the event at ${position} is no event and was sent to ${topic}; the stream flows on ("sluice dead-letters --source ${event.source.name}${message ? " --messages" : ""}" lists it)`,
    );
    return [record];
  }

  private fromRow(event: ChangeEvent, table: string): OutboxEvent {
    const row = event.after ?? {};
    const columns = this.outbox.columns;
    const part = (name: string, what: string): string => {
      const value = row[name];
      if (value === undefined || value === null) throw invalid(`the outbox row has no ${what} (column ${name})`, table, event);
      return text(value);
    };
    const payload = row[columns.payload];
    const bytes = bytesOver(payload ?? null, this.maxMessageBytes);
    if (bytes !== undefined) throw invalid(`the payload is ${bytes} bytes, over ${this.maxMessageBytesName}`, table, event, { bytes, refusal: "too-large" });
    return {
      id: part(columns.event_id, "event id"),
      aggregateType: part(columns.aggregate_type, "aggregate type"),
      aggregateId: part(columns.aggregate_id, "aggregate id"),
      type: part(columns.event_type, "event type"),
      payload: payload === undefined || payload === null ? null : payload instanceof Uint8Array ? payload : text(payload),
    };
  }

  private fromMessage(event: ChangeEvent, table: string): OutboxEvent {
    const declared = event.after?.["content_bytes"];
    if (typeof declared === "number") {
      throw invalid(`the logical message's content is ${declared} bytes, over ${this.maxMessageBytesName}; only its first bytes were kept`, table, event, { bytes: declared, refusal: "too-large" });
    }
    const content = event.after?.["content"];
    const text = typeof content === "string" ? content : "";
    // The decoder cuts a larger message (logicalMessageEvent); one parked whole by an earlier version is not parsed either.
    const bytes = bytesOver(text, this.maxMessageBytes);
    if (bytes !== undefined) throw invalid(`the logical message's content is ${bytes} bytes, over ${this.maxMessageBytesName}`, table, event, { bytes, refusal: "too-large" });
    const shape = jsonShapeProblem(text, OUTBOX_JSON_SHAPE);
    if (shape !== null) throw invalid(`the logical message's content is refused unread: ${shape}`, table, event);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw invalid("the logical message's content is not JSON", table, event);
    }
    if (typeof json !== "object" || json === null || Array.isArray(json)) throw invalid("the logical message's content is not a JSON object", table, event);
    const fields = json as Record<string, unknown>;
    const columns = this.outbox.columns;
    const asText = (value: unknown, name: string): string => {
      if (typeof value === "string") return value;
      try {
        return JSON.stringify(value);
      } catch (error) {
        // JSON.parse takes any depth, JSON.stringify recurses: a value nested some thousands deep (anyone may send a logical message) overflows the stack.
        throw invalid(`the logical message's field ${name} cannot be written back as JSON (${(error as Error).message}; nested too deeply?)`, table, event);
      }
    };
    const part = (name: string, what: string): string => {
      const value = fields[name];
      if (value === undefined || value === null) throw invalid(`the logical message has no ${what} (field ${name})`, table, event);
      return asText(value, name);
    };
    const payload = fields[columns.payload];
    return {
      id: part(columns.event_id, "event id"),
      aggregateType: part(columns.aggregate_type, "aggregate type"),
      aggregateId: part(columns.aggregate_id, "aggregate id"),
      type: part(columns.event_type, "event type"),
      payload: payload === undefined || payload === null ? null : asText(payload, columns.payload),
    };
  }

  /** What else `topic` is when an aggregate type (a value any writer of the outbox table chooses) makes it one of Sluice's own or a source's data topic, else null. */
  private takenTopic(topic: string): string | null {
    if (isInternalTopic(this.config.name, topic)) return "one of Sluice's own topics";
    const source = this.config.sources.find((s) => topic.startsWith(`${this.config.name}.${s.name}.`));
    return source === undefined ? null : `where sinks read the row changes of source ${source.name}`;
  }

  private topicOf(aggregateType: string): string {
    return this.outbox.topic
      .replaceAll("{deployment}", this.config.name)
      .replaceAll("{source}", this.source.name)
      .replaceAll("{aggregate_type}", aggregateType.replace(/[^A-Za-z0-9._-]/g, "_"));
  }

  private async value(topic: string, event: OutboxEvent, table: string, change: ChangeEvent, message: boolean): Promise<Uint8Array> {
    const payload = event.payload!;
    if (this.outbox.payload.format === "json") return typeof payload === "string" ? Buffer.from(payload, "utf8") : payload;
    const schemaFile = this.outbox.payload.schemas[event.aggregateType];
    // Anyone connected may emit a logical message: its unlisted aggregate type is the message's fault, not a halt of the stream.
    if (schemaFile === undefined && message) throw invalid(`payload format avro, and outbox.payload.schemas names no schema for the logical message's aggregate type ${JSON.stringify(event.aggregateType)}`, table, change);
    if (schemaFile === undefined) {
      throw new SluiceError(
        `outbox ${table}: payload format avro, and outbox.payload.schemas names no schema for aggregate type "${event.aggregateType}". Change the config and restart: the events wait, parked, and are published in order (sluice halted skip --source ${this.source.name} --table ${table} leaves this one out)`,
        { code: OUTBOX_SCHEMA_MISSING, context: { component: "outbox", source: change.source.name, table, position: `${change.source.position.commit}/${change.source.position.change}`, topic, aggregateType: event.aggregateType } },
      );
    }
    const { type, schemaId } = await this.avroPayload(topic, schemaFile);
    const json = typeof payload === "string" ? payload : Buffer.from(payload).toString("utf8");
    const shape = jsonShapeProblem(json, OUTBOX_JSON_SHAPE);
    if (shape !== null) throw invalid(`the payload is refused unread: ${shape}`, table, change);
    // Neither JSON.parse's nor avsc's message is given: they quote the payload, which may be personal data (the dead letter's reason is never sealed).
    let parsed: unknown;
    try {
      parsed = JSON.parse(json);
    } catch {
      throw invalid(`the payload is not JSON`, table, change);
    }
    let value: unknown;
    try {
      value = type.clone(parsed, { coerceBuffers: true });
    } catch {
      throw invalid(`the payload does not fit the Avro schema of ${event.aggregateType} (${schemaFile}): ${avroMisfit(type, parsed)}`, table, change);
    }
    return encodeFramed(schemaId, type, value);
  }

  private avroPayload(topic: string, file: string): Promise<AvroPayload> {
    let known = this.avroPayloads.get(topic);
    if (!known) {
      known = (async () => {
        const { schema, type } = avroSchemaOf(file, topic);
        const schemaId = await this.registry.register(`${topic}-value`, JSON.stringify(schema));
        return { type, schemaId };
      })();
      this.avroPayloads.set(topic, known);
      known.catch(() => this.avroPayloads.delete(topic));
    }
    return known;
  }

  private ignore(table: string, op: string): void {
    const expected = op === "d" && this.outbox.table_mode === "insert-then-delete";
    const key = `${table}:${op}`;
    if (expected || this.warned.has(key)) return;
    this.warned.add(key);
    this.logger?.warn({ table, op, source: this.source.name }, op === "u" ? "outbox: an update of an outbox row is no event and is ignored (events are inserts)" : `outbox: ${op === "d" ? "a delete" : "a truncate"} of an outbox table is no event and is ignored`);
  }
}

/** An Avro schema of a few hundred fields is tens of KiB: a larger file is a wrong path, never read whole. */
const AVRO_SCHEMA_FILE_MAX_BYTES = 4 * MiB;

/** Read on the thread that captures: a FIFO or a device is refused (config/bounded-file.ts), not waited on or read without end. */
function readSchemaFile(file: string, topic: string): string {
  try {
    return readBoundedFile(file, AVRO_SCHEMA_FILE_MAX_BYTES).toString("utf8");
  } catch (error) {
    const { code } = error as { code?: unknown };
    throw new SluiceError(`cannot read the Avro schema file ${file}: ${(error as Error).message}${typeof code === "string" ? ` (${code})` : ""}`, {
      code: OUTBOX_SCHEMA_UNREADABLE,
      cause: error,
      context: { component: "outbox", topic, file, ...(typeof code === "string" ? { errno: code } : {}) },
    });
  }
}

/** Where a value does not fit an Avro type, without the value: "field total is not a long". */
function avroMisfit(type: Type, value: unknown): string {
  let first: { path: string[]; type: Type } | null = null;
  type.isValid(value, { errorHook: (path, _value, misfit) => (first ??= { path, type: misfit }) });
  if (first === null) return "avsc refused it";
  const { path, type: misfit } = first as { path: string[]; type: Type };
  const name = misfit.branchName ?? misfit.typeName;
  return path.length === 0 ? `it is not a ${name}` : `field ${path.join(".")} is not a ${name}`;
}

function avroSchemaOf(file: string, topic: string): { schema: object; type: Type } {
  const text = readSchemaFile(file, topic);
  try {
    const schema = JSON.parse(text) as object;
    return { schema, type: avro.Type.forSchema(schema as never, { wrapUnions: "auto" }) };
  } catch (error) {
    throw new SluiceError(`the Avro schema file ${file} is no Avro schema: ${(error as Error).message}`, { code: OUTBOX_SCHEMA_UNREADABLE, cause: error, context: { component: "outbox", topic, file } });
  }
}

/** Topic names outbox.topic gives for some aggregate type (as topicOf writes it: letters, digits, ".", "_" and "-"). */
function topicPattern(template: string, deployment: string, source: string): RegExp {
  const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const parts = template.replaceAll("{deployment}", deployment).replaceAll("{source}", source).split("{aggregate_type}").map(escape);
  return new RegExp(`^${parts[0]}([A-Za-z0-9._-]*)${parts.slice(1).join("\\1")}$`);
}

/**
 * A column's bytes when over `max`, else undefined. Text is counted only when it may be over: its UTF-8 takes at most
 * three bytes per UTF-16 code unit (a surrogate pair's four for two), so one within a third of `max` is not (per message).
 */
function bytesOver(value: ColumnValue, max: number): number | undefined {
  if (typeof value === "string" && value.length * 3 <= max) return undefined;
  const bytes = byteLength(value);
  return bytes > max ? bytes : undefined;
}

/** Bytes of a column's value as stored (text as UTF-8). */
function byteLength(value: ColumnValue): number {
  if (typeof value === "string") return Buffer.byteLength(value, "utf8");
  if (value instanceof Uint8Array) return value.length;
  return 0;
}

function text(value: ColumnValue): string {
  if (typeof value === "string") return value;
  if (value instanceof Uint8Array) return Buffer.from(value).toString("utf8");
  return String(value);
}

function invalid(message: string, table: string, event: ChangeEvent, extra: { bytes?: number; refusal?: OutboxRefusal } = {}): SluiceError {
  return new SluiceError(`outbox ${table}: ${message}`, {
    code: OUTBOX_EVENT_INVALID,
    context: { component: "outbox", source: event.source.name, table, position: `${event.source.position.commit}/${event.source.position.change}`, ...extra },
  });
}

/** The source's encoder, behind its outbox router when the source has an `outbox`. */
export function withOutbox(config: SluiceConfig, source: SourceConfig, inner: ChangeEncoder, log: TopicLog, registry: SchemaRegistry, logger?: Logger, deadLetters?: OutboxDeadLetters): ChangeEncoder {
  return source.outbox === undefined ? inner : new OutboxRouter(config, source as SourceConfig & { outbox: OutboxConfig }, inner, log, registry, logger, deadLetters);
}
