/**
 * An internal topic found missing when a Kafka topic log opens, told from a first start or an upgrade by what the
 * deployment's other topics hold (KafkaTopicLog.ensureInternalTopics gathers it, judgeLostTopics decides). Created again
 * empty, the schema registry's journal, the checkpoints and the subjects' keys lose what replay, capture and the sinks read
 * back from them, so their loss is refused unless the operator accepts it (`sluice run --accept-lost-topics`); the schema
 * histories', the topic identities' and a parking topic's loss is warned with its consequence (an upgrade from a version
 * without them, or a parking topic deleted once nothing was parked, looks the same); the other internal topics
 * (announcements, the capture lease) hold nothing to lose and are created silently.
 */
import { SluiceError } from "../errors.ts";
import { checkpointTopic, registryTopic, schemaHistoryTopic, subjectKeysTopic, topicIdsTopic } from "../topics/names.ts";

export const INTERNAL_TOPIC_LOST = "INTERNAL_TOPIC_LOST";

/** What a deployment's config says about its internal topics (connectors/topics/open.ts lostTopicPolicyOf). */
export interface LostTopicPolicy {
  /** The built-in registry keeps its schemas in `<deployment>.sluice.schemas`; a remote registry leaves it unused. */
  readonly builtinRegistry: boolean;
  /** The MySQL sources, whose schema histories `<deployment>.sluice.schema-history` keeps. */
  readonly mysqlSources: readonly string[];
  /**
   * The sources' topics, told by the deployment's own naming: another producer's topics that merely start with
   * `<deployment>.` (Debezium's `<topic.prefix>.<schema>.<table>` on a shared cluster) are no trace of this deployment.
   */
  readonly sources: readonly SourceTopics[];
  /** personal_data is configured: the subjects' keys of personal columns are kept in `<deployment>.sluice.subject-keys`. */
  readonly personalData?: boolean;
  /**
   * The topics likeliest to hold sealed values, read first in the bounded look for one: the data topics of the tables with
   * personal columns, their sources' parking and dead-letter topics, the sinks' dead-letter topics.
   */
  readonly personalTopics?: readonly string[];
  /** Every sink's dead-letter topic: a custom dead_letter_topic may have any name, not only `<deployment>.dlq.<sink>`. */
  readonly deadLetterTopics?: readonly string[];
  /** The operator accepts the loss (sluice run --accept-lost-topics): the topics are created again, the registry's new ids kept above those records reference. */
  readonly accept: boolean;
}

/** A source's topics beside its data topics `<deployment>.<source>.<schema>.<table>`. */
export interface SourceTopics {
  readonly name: string;
  /** transaction_metadata: `<deployment>.<source>.transaction`. */
  readonly transactionTopic: boolean;
  /** outbox.topic, its template ({deployment}, {source}, {aggregate_type}), or null without an outbox. */
  readonly outboxTopic: string | null;
}

/** `topics` with the policy's personalTopics first, each part in its order. */
export function sealedLookOrder(policy: Pick<LostTopicPolicy, "personalTopics">, topics: readonly string[]): string[] {
  const first = new Set(policy.personalTopics ?? []);
  return [...topics.filter((topic) => first.has(topic)), ...topics.filter((topic) => !first.has(topic))];
}

/**
 * The topics the bounded look for sealed values reads, of the `existing` ones: the framed ones (data, control, parking), then
 * the dead-letter topics (a data check's and a sink's `<deployment>.dlq.<name>`, and the sinks' custom dead_letter_topic),
 * the personal topics first.
 */
export function sealedLookTopics(deployment: string, policy: Pick<LostTopicPolicy, "personalTopics" | "deadLetterTopics">, framedTopics: readonly string[], existing: readonly string[]): string[] {
  const deadLetters = new Set(policy.deadLetterTopics ?? []);
  const letters = existing.filter((name) => name.startsWith(`${deployment}.dlq.`) || deadLetters.has(name));
  return sealedLookOrder(policy, [...new Set([...framedTopics, ...letters])]);
}

/** Is `topic` one of the deployment's data topics (as daemon/sink-components.ts parseDataTopic reads them)? */
export function isDeploymentDataTopic(deployment: string, policy: Pick<LostTopicPolicy, "sources">, topic: string): boolean {
  return policy.sources.some((source) => {
    const prefix = `${deployment}.${source.name}.`;
    return topic.startsWith(prefix) && topic.indexOf(".", prefix.length) > prefix.length;
  });
}

/** Is `topic` one the deployment's sources write (data, transaction metadata, outbox events)? */
export function isDeploymentSourceTopic(deployment: string, policy: Pick<LostTopicPolicy, "sources">, topic: string): boolean {
  if (isDeploymentDataTopic(deployment, policy, topic)) return true;
  return policy.sources.some(
    (source) => (source.transactionTopic && topic === `${deployment}.${source.name}.transaction`) || (source.outboxTopic !== null && outboxTopicPattern(deployment, source.name, source.outboxTopic).test(topic)),
  );
}

/** The topics an outbox template gives (daemon/outbox-router.ts topicOf: the aggregate type's characters other than [A-Za-z0-9._-] become _). */
function outboxTopicPattern(deployment: string, source: string, template: string): RegExp {
  const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const parts = template.split("{aggregate_type}").map((part) => escape(part.replaceAll("{deployment}", deployment).replaceAll("{source}", source)));
  return new RegExp(`^${parts.join("[A-Za-z0-9._-]+")}$`, "u");
}

/** The internal topics whose loss matters, as found at open. */
export interface InternalTopicsFound {
  /** "empty": there with no record, as a deleted journal created again by hand or by a command. */
  readonly registry: "kept" | "missing" | "empty";
  /** "empty": there with no record, as a topic created again from a manifest (Strimzi, Terraform, kafka-topics). */
  readonly checkpoints: "kept" | "missing" | "empty";
  readonly schemaHistoryMissing: boolean;
  readonly topicIdsMissing: boolean;
  /** The subjects' keys, judged only with personal_data ("kept" otherwise); "empty" as the registry's. */
  readonly subjectKeys: "kept" | "missing" | "empty";
}

/** What the deployment's other topics show of earlier runs. */
export interface DeploymentTraces {
  /** Per topic holding Confluent-framed records (data, control, parking topics): the schema ids its sampled records reference. */
  readonly framed: ReadonlyMap<string, readonly number[]>;
  /** The deployment's data topics that exist, empty or not. */
  readonly dataTopics: readonly string[];
  /** Sources with a checkpoint in `<deployment>.sluice.checkpoints`. */
  readonly checkpointed: readonly string[];
  /**
   * Topics (data, parking, dead-letter) whose sampled records hold personal values sealed with a subject's key
   * (`sluice-enc:`): a key store held keys, since a key is stored before any value is sealed with it.
   */
  readonly sealed: readonly string[];
  /** The highest schema id the registry issued, as recorded in the checkpoints topic (HIGHEST_SCHEMA_ID_KEY); null when none is. */
  readonly highestSchemaId: number | null;
}

export interface LostTopicsVerdict {
  /** Refuses the open: what is lost, and the ways on. */
  readonly refusal: SluiceError | null;
  /** Losses warned, each with its consequence. */
  readonly warnings: readonly { readonly topic: string; readonly message: string }[];
  /**
   * The loss of the registry accepted: new schema ids must be above this one, the highest of the recorded highest id and
   * the ids the sampled records reference, plus RESERVED_ID_MARGIN.
   */
  readonly reserveIdsThrough: number | null;
}

const LISTED = 5;
/**
 * Schema ids kept from new schemas above the highest one known (judgeLostTopics): for a deployment whose registry issued
 * ids before the highest was recorded (an upgrade) or in a process of an older version, whose ids only the sampled
 * records show.
 */
export const RESERVED_ID_MARGIN = 10_000;

export function judgeLostTopics(deployment: string, found: InternalTopicsFound, traces: DeploymentTraces, policy: LostTopicPolicy): LostTopicsVerdict {
  const lost: { topic: string; message: string }[] = [];
  let reserveIdsThrough: number | null = null;
  const framedTopics = [...traces.framed.keys()].sort();
  const ids = [...new Set([...traces.framed.values()].flat())].sort((a, b) => a - b);
  if (policy.builtinRegistry && found.registry !== "kept" && ids.length > 0) {
    lost.push({
      topic: registryTopic(deployment),
      message: `${registryTopic(deployment)} (the built-in schema registry) is ${found.registry === "missing" ? "gone" : "empty"}, while records in ${listed(framedTopics)} reference schema ids ${listed(ids.map(String))} it no longer has: ` +
        `those records cannot be decoded (replays, rebuilds, a sink added later fail on them), and a registry started empty would give new schemas those same ids, so old records would be read with another table's schema`,
    });
    // The sample holds the last records of each partition only, and the registry hands a schema registered again its
    // old id, so a higher id may sit in older records: the highest id issued is recorded beside the checkpoints for that.
    // Without that record (ids issued before it was kept), the margin: ids are only numbers, a wide one costs nothing.
    reserveIdsThrough = Math.max(ids[ids.length - 1]!, traces.highestSchemaId ?? 0) + RESERVED_ID_MARGIN;
  }
  if (found.checkpoints !== "kept" && framedTopics.length > 0) {
    lost.push({
      topic: checkpointTopic(deployment),
      message: `${checkpointTopic(deployment)} (the sources' checkpoints and the PostgreSQL sources' record of the tables' layouts) is ${found.checkpoints === "missing" ? "gone" : "empty"}, while ${listed(framedTopics)} hold records capture wrote: ` +
        `every source would start as if for the first time, as snapshot.mode says (initial, when-needed: every table read again into the topics, a PostgreSQL source's replication slot dropped and made again; never: a MySQL source streams from the binlog's current end, losing the changes made while Sluice was stopped)`,
    });
  }
  if (policy.personalData === true && found.subjectKeys !== "kept" && traces.sealed.length > 0) {
    lost.push({
      topic: subjectKeysTopic(deployment),
      message: `${subjectKeysTopic(deployment)} (the data subjects' keys of the personal columns) is ${found.subjectKeys === "missing" ? "gone" : "empty"}, while records in ${listed([...traces.sealed].sort())} hold personal values sealed with those keys: ` +
        `the personal values of existing records cannot be decrypted any more (sinks, replays, rebuilds and a sink added later would apply every one as null, as if every subject had been forgotten; parked changes would be released with their personal and transformed columns null), ` +
        `and capture would make new keys for the same subjects without a word`,
    });
  }
  const warnings: { topic: string; message: string }[] = [];
  const historied = traces.checkpointed.filter((source) => policy.mysqlSources.includes(source));
  if (found.schemaHistoryMissing && historied.length > 0) {
    warnings.push({
      topic: schemaHistoryTopic(deployment),
      message:
        `${schemaHistoryTopic(deployment)} does not exist while MySQL source(s) ${listed(historied)} have checkpoints: it was deleted, or this is the first start since an upgrade from a version that kept no schema history. ` +
        `It is created again empty and those sources resume with the tables' current definitions: if a captured table's definition changed while Sluice was stopped and binlog_row_metadata is not FULL, rows written before that change decode with the new columns; read such a table again (sluice snapshot -c FILE --table T --execute)`,
    });
  }
  if (found.topicIdsMissing && traces.dataTopics.length > 0) {
    warnings.push({
      topic: topicIdsTopic(deployment),
      message:
        `${topicIdsTopic(deployment)} does not exist while data topics ${listed([...traces.dataTopics].sort())} do: it was deleted, or this is the first start since an upgrade from a version that recorded no topic identities. ` +
        `It is created again and each data topic gets a new identity: a sink that stored its offsets with the former identities refuses them at its start (SINK_LOG_MISMATCH) and needs a rebuild (docs/operations.md, "An internal topic was deleted")`,
    });
  }
  if (lost.length === 0 || policy.accept) {
    const accepted = lost.map(({ topic, message }) => ({ topic, message: `loss accepted (--accept-lost-topics), created again: ${message}` }));
    return { refusal: null, warnings: [...accepted, ...warnings], reserveIdsThrough: policy.accept ? reserveIdsThrough : null };
  }
  return {
    refusal: new SluiceError(
      `Sluice's internal topics were deleted while it was stopped, and this deployment ran before: ${lost.map((l) => l.message).join("; ")}. ` +
        `Nothing was created. Restore the topic(s) from a backup and start again; or accept the loss: sluice run -c FILE --accept-lost-topics creates them again` +
        (lost.some((l) => l.topic === registryTopic(deployment))
          ? ` (the registry's new schema ids kept above those the records reference, the schemas registered again as capture meets each table), after which the records written before cannot be decoded: rebuild from a fresh snapshot`
          : "") +
        (lost.some((l) => l.topic === subjectKeysTopic(deployment)) ? `; the personal values written before stay unreadable (a fresh snapshot publishes them again under new keys)` : "") +
        ` (docs/operations.md, "An internal topic was deleted")`,
      { code: INTERNAL_TOPIC_LOST, context: { component: "kafka", deployment, topics: lost.map((l) => l.topic).join(",") } },
    ),
    warnings,
    reserveIdsThrough: null,
  };
}

/**
 * A parking topic (`<deployment>.sluice.halted.<source>`) about to be created while its source's data topics exist: the
 * warning saying what may be lost. Not refused: what is parked lives only in the parking topic itself (the changes, and
 * markers of how far each table was released), so nothing outside it tells a topic that held parked changes from one
 * deleted once nothing was parked, as docs/governance.md says to purge it.
 */
export function parkingTopicLostWarning(topic: string, dataTopics: readonly string[]): string {
  return (
    `${topic} (where capture parks the changes of tables halted at capture) does not exist while the source's data topics ${listed([...dataTopics].sort())} do: ` +
    `it was deleted while Sluice was stopped. It is created again empty. If changes were parked in it (sluice halted listed tables halted at capture), they are lost: ` +
    `capture's position is past them, so their tables' topics and every sink lack them for good, with no gap to see; read those tables again (sluice snapshot -c FILE --table T --execute). ` +
    `If nothing was parked when it was deleted, nothing is lost`
  );
}

/** Does `payload` hold a personal value sealed with a subject's key (daemon/governance/subject-keys.ts: `sluice-enc:v1:`, `sluice-enc:v2:`)? */
export function holdsSealedValue(payload: Uint8Array | null): boolean {
  return payload !== null && Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).includes(SEALED_MARK);
}

const SEALED_MARK = Buffer.from("sluice-enc:v", "latin1");

/** The schema id a Confluent-framed payload references (magic byte 0, then a 4-byte big-endian id), or null for one that is not framed. */
export function framedSchemaId(payload: Uint8Array | null): number | null {
  if (payload === null || payload.length < 5 || payload[0] !== 0) return null;
  return ((payload[1]! << 24) >>> 0) + (payload[2]! << 16) + (payload[3]! << 8) + payload[4]!;
}

function listed(items: readonly string[]): string {
  return items.length <= LISTED ? items.join(", ") : `${items.slice(0, LISTED).join(", ")} and ${items.length - LISTED} more`;
}
