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
import { isInternalTopic, TOPIC_NAME_INVALID } from "../connectors/topics/names.ts";
import type { SluiceConfig, SourceConfig } from "../config/schema.ts";
import type { SchemaRegistry } from "../schema-registry/registry.ts";
import { encodeFramed } from "../schema-registry/wire-format.ts";
import { jsonShapeProblem } from "../runtime/json-shape.ts";
import type { JsonShapeLimits } from "../runtime/json-shape.ts";
import type { ChangeEncoder } from "./capture.ts";
import type { Logger } from "../runtime/logger.ts";

type OutboxConfig = NonNullable<SourceConfig["outbox"]>;

/** Error code of an outbox row or message that is no event (a missing part, a payload its schema refuses): halts the outbox table, parked, nothing lost. */
export const OUTBOX_EVENT_INVALID = "OUTBOX_EVENT_INVALID";

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

  constructor(config: SluiceConfig, source: SourceConfig & { outbox: OutboxConfig }, inner: ChangeEncoder, log: TopicLog, registry: SchemaRegistry, logger?: Logger) {
    this.config = config;
    this.source = source;
    this.outbox = source.outbox;
    this.inner = inner;
    this.log = log;
    this.registry = registry;
    this.logger = logger;
    this.tables = new Set(this.outbox.tables);
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
    const parsed = message ? this.fromMessage(event, table) : this.fromRow(event, table);
    const topic = this.topicOf(parsed.aggregateType);
    if (!this.created.has(topic)) {
      const taken = this.takenTopic(topic);
      if (taken !== null) throw invalid(`the aggregate type ${JSON.stringify(parsed.aggregateType)} gives topic ${JSON.stringify(topic)}, ${taken}`, table, event);
      await this.log.createTopic({
        name: topic,
        partitions: this.config.topics.partitions,
        retentionMs: this.config.topics.retention.max_age === 0 ? null : this.config.topics.retention.max_age,
        retentionBytes: this.config.topics.retention.max_bytes ?? null,
        compacted: false,
        maxRecordBytes: this.config.topics.max_record_bytes,
      }).catch((error: unknown) => {
        if (error instanceof SluiceError && (error.code === TOPIC_NAME_INVALID || error.code === "TOPIC_SPEC_INVALID")) {
          throw invalid(`the aggregate type ${JSON.stringify(parsed.aggregateType)} gives a topic name the topic log refuses: ${error.message}`, table, event);
        }
        throw error;
      });
      this.created.add(topic);
    }
    return [
      {
        topic,
        key: Buffer.from(parsed.aggregateId, "utf8"),
        value: parsed.payload === null ? null : await this.value(topic, parsed, table, event),
        headers: { id: Buffer.from(parsed.id, "utf8"), type: Buffer.from(parsed.type, "utf8") },
        timestamp: event.source.commitTimeMs,
      },
    ];
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
    return {
      id: part(columns.event_id, "event id"),
      aggregateType: part(columns.aggregate_type, "aggregate type"),
      aggregateId: part(columns.aggregate_id, "aggregate id"),
      type: part(columns.event_type, "event type"),
      payload: payload === undefined || payload === null ? null : payload instanceof Uint8Array ? payload : text(payload),
    };
  }

  private fromMessage(event: ChangeEvent, table: string): OutboxEvent {
    const content = event.after?.["content"];
    const text = typeof content === "string" ? content : "";
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

  private async value(topic: string, event: OutboxEvent, table: string, change: ChangeEvent): Promise<Uint8Array> {
    const payload = event.payload!;
    if (this.outbox.payload.format === "json") return typeof payload === "string" ? Buffer.from(payload, "utf8") : payload;
    const schemaFile = this.outbox.payload.schemas[event.aggregateType];
    if (schemaFile === undefined) throw invalid(`payload format avro, and outbox.payload.schemas names no schema for aggregate type "${event.aggregateType}"`, table, change);
    const { type, schemaId } = await this.avroPayload(topic, schemaFile);
    const json = typeof payload === "string" ? payload : Buffer.from(payload).toString("utf8");
    const shape = jsonShapeProblem(json, OUTBOX_JSON_SHAPE);
    if (shape !== null) throw invalid(`the payload is refused unread: ${shape}`, table, change);
    let value: unknown;
    try {
      value = type.clone(JSON.parse(json), { coerceBuffers: true });
    } catch (error) {
      throw invalid(`the payload does not fit the Avro schema of ${event.aggregateType} (${schemaFile}): ${(error as Error).message}`, table, change);
    }
    return encodeFramed(schemaId, type, value);
  }

  private avroPayload(topic: string, file: string): Promise<AvroPayload> {
    let known = this.avroPayloads.get(topic);
    if (!known) {
      known = (async () => {
        const schema = JSON.parse(readSchemaFile(file)) as object;
        const type = avro.Type.forSchema(schema as never, { wrapUnions: "auto" });
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
function readSchemaFile(file: string): string {
  try {
    return readBoundedFile(file, AVRO_SCHEMA_FILE_MAX_BYTES).toString("utf8");
  } catch (error) {
    const { code } = error as { code?: unknown };
    throw Object.assign(new Error(`cannot read the Avro schema file ${file}: ${(error as Error).message}${typeof code === "string" ? ` (${code})` : ""}`, { cause: error }), { code });
  }
}

function text(value: ColumnValue): string {
  if (typeof value === "string") return value;
  if (value instanceof Uint8Array) return Buffer.from(value).toString("utf8");
  return String(value);
}

function invalid(message: string, table: string, event: ChangeEvent): SluiceError {
  return new SluiceError(`outbox ${table}: ${message}`, {
    code: OUTBOX_EVENT_INVALID,
    context: { component: "outbox", source: event.source.name, table, position: `${event.source.position.commit}/${event.source.position.change}` },
  });
}

/** The source's encoder, behind its outbox router when the source has an `outbox`. */
export function withOutbox(config: SluiceConfig, source: SourceConfig, inner: ChangeEncoder, log: TopicLog, registry: SchemaRegistry, logger?: Logger): ChangeEncoder {
  return source.outbox === undefined ? inner : new OutboxRouter(config, source as SourceConfig & { outbox: OutboxConfig }, inner, log, registry, logger);
}
