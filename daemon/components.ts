/**
 * Builds the parts of a deployment from its config: the schema registry, sources, sinks, and
 * the topic naming that joins them. One place that knows every connector kind; what a sink's
 * thread needs is in daemon/sink-components.ts (re-exported here), which that thread loads alone.
 */
import { dirname, join } from "node:path";
import type { SluiceConfig, SourceConfig } from "../config/schema.ts";
import type { ChangeEvent, ProducedRecord, RegistryJournal, Source, TableSnapshotProgress, TopicCreation, TopicLog, TopicSpec } from "../connectors/contracts.ts";
import { SluiceError } from "../connectors/errors.ts";
import { controlTopic, parkingTopicOf, TOPIC_NAME_INVALID } from "../connectors/topics/names.ts";
import { LocalRegistry, openJournalStore, RemoteRegistry } from "../schema-registry/index.ts";
import type { SchemaRegistry } from "../schema-registry/index.ts";
import { AvroChangeEncoder } from "../schema-registry/index.ts";
import type { ChangeEncoder } from "./capture.ts";
import { CompactedRecords } from "./compacted-records.ts";
import { controlledTopic, controlRecord, controlTopicSpec } from "./control-records.ts";
import type { Logger } from "../runtime/logger.ts";
import { ColumnTransforms } from "./governance/transforms.ts";
import { PersonalDataEncryptor, personalTables, sharedKeyStore } from "./governance/personal-data.ts";
import { sealWorkers } from "./governance/seal-workers.ts";
import { dataTopicPrefix } from "./sink-components.ts";

export { createSink, dataTopicPrefix, deadLetterTopic, internalTopicSpec, messageDeadLetterTopicSpec, parseDataTopic, personalDecryptor, recordDecoder, sinkGroupName, sinkTopics, sourceDeadLetterTopicSpec } from "./sink-components.ts";

export interface RegistrySetup {
  readonly registry: SchemaRegistry;
  /** The built-in registry, whose REST API the daemon serves; absent with a remote registry. */
  readonly local: LocalRegistry | null;
}

/**
 * The deployment's schema registry. Opening it only reads (the built-in registry loads its journal
 * from the topic log; a remote one needs no log, so `log` may be null then): a command can open it
 * on a read-only log beside a running daemon.
 */
export async function openRegistry(config: SluiceConfig, log: TopicLog | null): Promise<RegistrySetup> {
  const settings = config.schema_registry;
  if (settings.kind === "remote") {
    const auth = settings.token
      ? { bearerToken: settings.token }
      : settings.username
        ? { username: settings.username, password: settings.password ?? "" }
        : undefined;
    const registry = new RemoteRegistry({ url: settings.url, timeoutMs: settings.timeout, cacheSize: settings.cache_size, ...(auth ? { auth } : {}) });
    return { registry, local: null };
  }
  if (!log) throw new TypeError("the built-in schema registry is kept in the topic log: open the log first");
  const store = await openJournalStore(log.registryJournal);
  const local = new LocalRegistry(store, { defaultCompatibility: settings.compatibility });
  return { registry: local, local };
}

/**
 * What a data topic created by `event` gets (TopicLog.createTopic): a snapshot read outside online snapshots (the initial
 * snapshot, exported or MySQL's), or the reset that closes a whole-table snapshot, writes every row of the table; an
 * online snapshot's read may not.
 */
export function topicCreationBy(event: ChangeEvent): TopicCreation | undefined {
  if (!event.source.snapshot) return undefined;
  if (event.op === "r") return { snapshot: event.source.snapshotMarker === "incremental" ? "online" : "whole-table" };
  return event.op === "t" ? { snapshot: "whole-table" } : undefined;
}

export function parkingTopic(config: SluiceConfig, source: SourceConfig): string {
  return parkingTopicOf(config.name, source.name);
}

/** The registry as capture uses it, telling `onNewVersion` when a registration added a version. */
function countingRegistry(registry: SchemaRegistry, onNewVersion: (subject: string) => void): SchemaRegistry {
  return {
    async register(subject, schema) {
      const before = await registry.getLatest(subject);
      const id = await registry.register(subject, schema);
      if (before?.id !== id) onNewVersion(subject);
      return id;
    },
    getById: (id) => registry.getById(id),
    getLatest: (subject) => registry.getLatest(subject),
    getVersion: (subject, version) => registry.getVersion(subject, version),
    listSubjects: () => registry.listSubjects(),
    listVersions: (subject) => registry.listVersions(subject),
    checkCompatibility: (subject, schema) => registry.checkCompatibility(subject, schema),
    getCompatibilityLevel: (subject) => registry.getCompatibilityLevel(subject),
  };
}

/** Avro encoding for capture; creates each topic the first time a record goes to it. */
export function captureEncoder(
  config: SluiceConfig,
  source: SourceConfig,
  registry: SchemaRegistry,
  log: TopicLog,
  onNewSchemaVersion: (table: string) => void = () => undefined,
  logger?: Logger,
): ChangeEncoder {
  const prefix = `${dataTopicPrefix(config.name, source.name)}.`;
  const avro = new AvroChangeEncoder({
    registry: countingRegistry(registry, (subject) => {
      if (subject.endsWith("-value")) onNewSchemaVersion(subject.slice(prefix.length, -"-value".length));
    }),
    topicPrefix: (name) => dataTopicPrefix(config.name, name),
    numericMode: source.decimal_mode,
    envelope: source.envelope,
    timePrecision: source.envelope === "sluice" ? "avro" : source.time_precision_mode,
    ...(source.kind === "postgres"
      ? { hstore: source.envelope === "sluice" ? "map" : source.hstore_handling_mode, interval: source.envelope === "sluice" ? "string" : source.interval_handling_mode }
      : {}),
    skippedOperations: source.skipped_operations,
    transactionMetadata: source.transaction_metadata,
  });
  const created = new Set<string>();
  const partialTables = new Set<string>();
  const compactedRecords = new CompactedRecords(registry, (event, columns) => {
    const table = `${event.schema.schema}.${event.schema.table}`;
    if (partialTables.has(table)) return;
    partialTables.add(table);
    logger?.warn(
      { table, columns, source: source.name },
      `table ${table}: an update came without the values of ${columns.join(", ")} (unchanged TOAST under REPLICA IDENTITY DEFAULT); its topic is compacted, so once the record that carried them is compacted away a replay from the beginning (a rebuild, a new sink) gets null for them. Run ALTER TABLE ${table} REPLICA IDENTITY FULL (then updates carry them), then re-snapshot the table`,
    );
  });
  const transforms = new ColumnTransforms(source.governance);
  // Personal columns are encrypted after the transforms (a column is one or the other), before encoding.
  const personal = personalTables(source).size > 0 ? new PersonalDataEncryptor(source, sharedKeyStore(config, log), sealWorkers().start()) : null;
  // With personal data, a batch's events are transformed once, in `prepare` (which seals their personal values on the seal workers):
  // those a transform rewrote are kept until the next batch's prepare (a Map emptied per batch: a WeakMap entry per event cost the collector more than the transform).
  const transformedEvents = new Map<ChangeEvent, ChangeEvent>();
  const transform = (event: ChangeEvent): ChangeEvent => transformedEvents.get(event) ?? transforms.apply(event);
  const prepareBatch = (events: readonly ChangeEvent[]): readonly ChangeEvent[] => {
    transformedEvents.clear();
    if (!transforms.active) return events;
    return events.map((event) => {
      const transformed = transforms.apply(event);
      if (transformed !== event) transformedEvents.set(event, transformed);
      return transformed;
    });
  };
  /** Data topics being created or created, by name; a failed creation is tried again with the next change. */
  const creations = new Map<string, Promise<void>>();
  const ensureDataTopic = (topic: string, keyed: boolean, table: string, by: TopicCreation | undefined): Promise<void> => {
    let creation = creations.get(topic);
    if (creation === undefined) {
      creation = log.createTopic(dataTopicSpec(config, topic, { keyed }), by).catch((error: unknown) => {
        throw unnamableTopic(error, topic, table) ?? (keyed ? error : keylessInCompacted(error, topic, table, source.name));
      }).then(() => {
        created.add(topic);
        if (!keyed && config.topics.retention.cleanup_policy !== "delete") {
          logger?.warn(
            { topic, table, maxAge: config.topics.retention.max_age },
            "table has no key, so its topic cannot be compacted: it keeps changes by topics.retention.max_age only, and once they expire a rebuild or a new sink needs a re-snapshot; give the table a primary key (PostgreSQL: or key_columns)",
          );
        }
      });
      creations.set(topic, creation);
      creation.catch(() => creations.delete(topic));
    }
    return creation;
  };
  const control = controlTopic(config.name);
  const truncatesInDataTopic = source.envelope === "sluice" || !source.skipped_operations.includes("t");
  /** A truncate goes to the control topic (control-records.ts), and to its data topic only where consumers asked for op t records. */
  const truncateRecords = (event: ChangeEvent, records: ProducedRecord[]): ProducedRecord[] => {
    const [data] = records;
    if (!data || data.value === null) return records;
    return truncatesInDataTopic ? [data, controlRecord(control, event, data.topic, data.value)] : [controlRecord(control, event, data.topic, data.value)];
  };
  return {
    ...(personal ? { prepare: (events: readonly ChangeEvent[]) => personal.prepare(prepareBatch(events)) } : {}),
    // What encode gives, with no promise per change, once nothing is left to wait for: the table's schemas registered and its topic created, personal values sealed (by prepare's seal workers) or their keys in memory; not for truncates.
    encodeNow(captured: ChangeEvent): ProducedRecord[] | undefined {
      if (captured.op === "t") return undefined;
      const transformed = transform(captured);
      const event = personal ? personal.applyNow(transformed) : transformed;
      if (event === undefined) return undefined;
      const topic = avro.readyTopic(event.schema);
      if (topic === undefined || !created.has(topic)) return undefined;
      const records = avro.encodeNow(event);
      if (records === undefined) return undefined;
      return compactsDataTopic(config, event.schema.key.length > 0) ? compactedRecords.rewriteNow(event, records) : records;
    },
    async encode(captured: ChangeEvent): Promise<ProducedRecord[]> {
      // Governance transforms first: the schema registered and every record carry only their result.
      const transformed = transform(captured);
      const event = personal ? await personal.apply(transformed) : transformed;
      const keyed = event.schema.key.length > 0;
      const table = `${event.schema.schema}.${event.schema.table}`;
      // A table's first change: its topic is created while its schemas register (a first start waited for one, then the other).
      // Nothing is written to it before encode returns, so no record precedes its schemas.
      const early = event.op === "t" ? undefined : avro.topicOf(event);
      const creating = early !== undefined && !created.has(early) ? ensureDataTopic(early, keyed, table, topicCreationBy(event)) : undefined;
      creating?.catch(() => undefined);
      let records = await avro.encode(event);
      await creating;
      if (event.op === "t") records = truncateRecords(event, records);
      if (compactsDataTopic(config, keyed)) records = await compactedRecords.rewrite(event, records);
      for (const record of records) {
        if (record.topic === control) {
          if (!created.has(control)) await log.createTopic(controlTopicSpec(control, config.topics.retention, config.topics.max_record_bytes));
          created.add(control);
          // Sinks hold a control record until its data topic is applied: the topic must exist, even for a table truncated before its first row.
          const dataTopic = controlledTopic(record)!;
          if (!created.has(dataTopic)) await ensureDataTopic(dataTopic, keyed, table, topicCreationBy(event));
          continue;
        }
        if (!created.has(record.topic)) await ensureDataTopic(record.topic, keyed, table, topicCreationBy(event));
      }
      return records;
    },
  };
}

export function compactsDataTopic(config: SluiceConfig, keyed: boolean): boolean {
  return keyed && config.topics.retention.cleanup_policy !== "delete";
}

/** A table whose topic name the topic log refuses halts (SCHEMA_UNSUPPORTED), the other tables and the daemon go on; null for other failures. */
function unnamableTopic(error: unknown, topic: string, table: string): SluiceError | null {
  if (!(error instanceof SluiceError) || (error.code !== TOPIC_NAME_INVALID && error.code !== "TOPIC_SPEC_INVALID")) return null;
  return new SluiceError(`table ${JSON.stringify(table)} cannot be captured: the topic log refuses its topic name (${error.message}); rename the table or leave it out of the source's tables`, {
    code: "SCHEMA_UNSUPPORTED",
    context: { component: "capture", table, topic },
    cause: error,
  });
}

/**
 * A table that lost its primary key (ALTER TABLE ... DROP PRIMARY KEY) writes keyless records, which its compacted topic
 * refuses: that table halts (SCHEMA_UNSUPPORTED is a table-halting code), the other tables and the daemon go on.
 */
function keylessInCompacted(error: unknown, topic: string, table: string, source: string): unknown {
  if (!(error instanceof SluiceError) || error.code !== "TOPIC_MISMATCH") return error;
  return new SluiceError(
    `table ${table} has no primary key now, and its topic ${topic} is compacted, which cannot take changes without a key: give the table its primary key again, skip the changes made without it ("sluice halted skip --source ${source} --table ${table} --all-pending", a dry run, then with --execute), then read the table again ("sluice snapshot --table ${table} --execute") (${error.message})`,
    { code: "SCHEMA_UNSUPPORTED", context: { component: "capture", table, topic }, cause: error },
  );
}

/**
 * A data topic as the config asks: compacted (`topics.retention.cleanup_policy` compact or
 * compact,delete) unless the policy is delete or its records have no key (a keyless table's rows,
 * the transaction-metadata topic): a compacted topic refuses keyless records. An existing
 * uncompacted topic is accepted; the daemon reports it at start (topic-policy.ts).
 */
export function dataTopicSpec(config: SluiceConfig, name: string, options: { keyed?: boolean } = {}): TopicSpec {
  const retention = config.topics.retention;
  const compacted = compactsDataTopic(config, options.keyed !== false);
  const expires = !compacted || retention.cleanup_policy === "compact,delete";
  return {
    name,
    partitions: config.topics.partitions,
    retentionMs: expires && retention.max_age !== 0 ? retention.max_age : null,
    retentionBytes: expires ? (retention.max_bytes ?? null) : null,
    compacted,
    ...(compacted ? { tombstoneRetentionMs: retention.tombstones, minCompactionLagMs: retention.min_compaction_lag, acceptUncompacted: true } : {}),
    maxRecordBytes: config.topics.max_record_bytes,
  };
}

/**
 * Starts loading the modules these sources need (createSource's, and the PostgreSQL slot takeover's)
 * without waiting for them: called while a start waits on the broker for the capture lease, so the
 * first term does not load them on its way to the first record. A module that fails to load fails
 * again where it is used.
 */
export function preloadSources(sources: readonly SourceConfig[]): void {
  const kinds = new Set(sources.map((s) => s.kind));
  const loads: Promise<unknown>[] = [];
  if (kinds.has("postgres")) loads.push(import("../connectors/postgres/source.ts"), import("./slot-takeover.ts"));
  if (kinds.has("mysql")) loads.push(import("../connectors/mysql/index.ts"), import("../connectors/mysql/schema/schema-history.ts"));
  for (const load of loads) load.catch(() => undefined);
}

/**
 * How a PostgreSQL source hands on its stream. With personal columns it hands on whole batches, not
 * slices of 64: sealing spreads a batch's row images over the seal workers in requests of 512 while the
 * main thread seals the first 128 itself, so in slices the main thread sealed every row image
 * (governed capture 50-53k changes/s against 61-62k in whole batches, docs/benchmarks.md).
 */
export function postgresBatching(config: Pick<SourceConfig, "governance">): { sliceEvents?: number } {
  return personalTables(config).size > 0 ? { sliceEvents: Number.MAX_SAFE_INTEGER } : {};
}

export async function createSource(config: SourceConfig, logger: Logger, hooks: SourceHooks): Promise<Source> {
  switch (config.kind) {
    case "postgres": {
      const { PostgresSource } = await import("../connectors/postgres/source.ts");
      // outbox.max_message_bytes, or topics.max_record_bytes when it is not set (as config/schema.ts outboxMessageBytes).
      const outboxMaxMessageBytes = config.outbox?.max_message_bytes ?? hooks.maxRecordBytes;
      const outboxBytes = config.outbox === undefined || outboxMaxMessageBytes === undefined ? {} : { outboxMaxMessageBytes };
      return new PostgresSource(config, { logger, onSnapshotProgress: hooks.onSnapshotProgress, ...postgresBatching(config), ...outboxBytes });
    }
    case "mysql": {
      const { createMysqlSource } = await import("../connectors/mysql/index.ts");
      const { FileSchemaHistoryStore, JournalSchemaHistoryStore } = await import("../connectors/mysql/schema/schema-history.ts");
      // Kept beside the embedded log, in a topic of the Kafka log: without it a restart reads the
      // tables' current definitions, and a binlog without column metadata (binlog_row_metadata not
      // FULL) written before a DDL the restart finds done decodes with the new columns.
      const schemaHistory = hooks.stateDir
        ? new FileSchemaHistoryStore(join(hooks.stateDir, `${config.name}.schema-history.jsonl`))
        : hooks.schemaHistoryJournal
          ? new JournalSchemaHistoryStore(hooks.schemaHistoryJournal, config.name)
          : undefined;
      return createMysqlSource(config, { logger, onSnapshotProgress: hooks.onSnapshotProgress, ...(schemaHistory ? { schemaHistory } : {}) });
    }
  }
}

export interface SourceHooks {
  onSnapshotProgress(progress: readonly TableSnapshotProgress[]): void;
  /** A folder for a source's own durable state (the embedded log's), or null. */
  readonly stateDir: string | null;
  /** Where the topic log keeps the MySQL sources' schema histories when there is no folder (Kafka). */
  readonly schemaHistoryJournal?: RegistryJournal | undefined;
  /** The deployment's topics.max_record_bytes: outbox.max_message_bytes when that is not set. */
  readonly maxRecordBytes?: number;
}

/** Where sources keep state of their own: beside the embedded log's file; none with Kafka. */
export function sourceStateDir(config: SluiceConfig): string | null {
  return config.topics.kind === "embedded" ? dirname(config.topics.path) : null;
}
